// Forward+backward of torchloss's weighted cross entropy and α-weighted binary cross entropy
// against what a LibTorch user has without torchloss, float32 on CPU.
//
//   BM_WeightedCE/torchloss        torchloss::functional::weighted_cross_entropy, class weights
//   BM_WeightedCE/builtin          torch::nn::functional::cross_entropy, the same arguments
//   BM_WeightedCEForward/...       the same two, forward only (a diagnostic: the backward's
//                                  share is the difference)
//   BM_WeightedBCE/torchloss       torchloss::functional::weighted_binary_cross_entropy, α = 0.25
//   BM_WeightedBCE/composed        the α-weighted BCE a user writes from logsigmoid
//   BM_WeightedBCE/builtin_bce     binary_cross_entropy_with_logits (plain BCE, no α: the
//                                  built-in reference for the cost of one fused BCE)
//   BM_CopyFloor/clone             x.clone(): the memory floor
//
// bench/summarize.py turns --benchmark_format=json output into the ratio tables of RESULTS.md.

#include "bench_common.hpp"

#include <torchloss/torchloss.hpp>

namespace {

namespace F = torch::nn::functional;
using torchloss_bench::Shape;

constexpr double kAlpha = 0.25;

torchloss_bench::WeightedTarget class_targets_and_weights(const Shape& shape) {
  return {torchloss_bench::make_class_targets(shape), torchloss_bench::make_class_weights(shape)};
}

torch::Tensor weighted_ce_torchloss(const torch::Tensor& x, const torchloss_bench::WeightedTarget& in) {
  return torchloss::functional::weighted_cross_entropy(
      x, in.target, torchloss::functional::WeightedCrossEntropyFuncOptions().weight(in.weight));
}

torch::Tensor weighted_ce_builtin(const torch::Tensor& x, const torchloss_bench::WeightedTarget& in) {
  return F::cross_entropy(x, in.target, F::CrossEntropyFuncOptions().weight(in.weight));
}

// Forward only, under autograd: a diagnostic that splits a step into its halves.
template <typename Loss>
void forward_only(benchmark::State& state, Loss loss) {
  const Shape shape = torchloss_bench::shape_and_threads(state);
  const torch::Tensor logits = torchloss_bench::make_logits(shape);
  const auto inputs = class_targets_and_weights(shape);
  torchloss_bench::run_forward_only(state, shape, [&] { return loss(logits, inputs); });
}

torch::Tensor probability_targets(const Shape& shape) { return torchloss_bench::make_probability_targets(shape); }

// Registration order is the console's order; summarize.py does not depend on it.
const benchmark::internal::Benchmark* const registered[] = {
    torchloss_bench::register_loss_step("BM_WeightedCE/torchloss", class_targets_and_weights, weighted_ce_torchloss),
    torchloss_bench::register_loss_step("BM_WeightedCE/builtin", class_targets_and_weights, weighted_ce_builtin),
    torchloss_bench::register_grid("BM_WeightedCEForward/torchloss",
                                   [](benchmark::State& state) { forward_only(state, weighted_ce_torchloss); }),
    torchloss_bench::register_grid("BM_WeightedCEForward/builtin",
                                   [](benchmark::State& state) { forward_only(state, weighted_ce_builtin); }),
    torchloss_bench::register_loss_step(
        "BM_WeightedBCE/torchloss", probability_targets,
        [](const torch::Tensor& x, const torch::Tensor& y) {
          return torchloss::functional::weighted_binary_cross_entropy(
              x, y, torchloss::functional::WeightedBinaryCrossEntropyFuncOptions(kAlpha));
        }),
    torchloss_bench::register_loss_step(
        "BM_WeightedBCE/composed", probability_targets,
        [](const torch::Tensor& x, const torch::Tensor& y) {
          return -(kAlpha * y * F::logsigmoid(x) + (1 - kAlpha) * (1 - y) * F::logsigmoid(-x)).mean();
        }),
    torchloss_bench::register_loss_step(
        "BM_WeightedBCE/builtin_bce", probability_targets,
        [](const torch::Tensor& x, const torch::Tensor& y) { return F::binary_cross_entropy_with_logits(x, y); }),
    torchloss_bench::register_copy_floor(),
};

}  // namespace

BENCHMARK_MAIN();
