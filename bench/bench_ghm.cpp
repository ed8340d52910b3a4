// Forward+backward of torchloss's GHM-C and GHM-R against the composed version: mmdetection's
// GHMC/GHMR forward written in ATen, with its loop over the bins (three comparisons, a sum
// and a host read per bin), float32 on CPU. RetinaNet's settings: GHM-C 30 bins, momentum
// 0.75; GHM-R μ = 0.02, 10 bins, momentum 0.7. Every element counts (label_weight ones, as
// a detector passes it).
//
//   BM_GHMC/torchloss     torchloss::GHMCLoss
//   BM_GHMC/composed      mmdetection's GHMC in ATen
//   BM_GHMR/torchloss     torchloss::GHMRLoss
//   BM_GHMR/composed      mmdetection's GHMR in ATen
//   BM_CopyFloor/clone    x.clone(): the memory floor
//   BM_StateLock/uncontended  taking and releasing the lock that makes a state update
//                         thread-safe (detail::state_lock), once per GHM forward with momentum
//                         and once per CenterLoss update: its single-thread cost per call
//
// bench/summarize.py turns --benchmark_format=json output into the ratio tables of RESULTS.md.

#include "bench_common.hpp"

#include <torchloss/torchloss.hpp>

namespace {

using torchloss_bench::Shape;

constexpr int64_t kClassificationBins = 30;
constexpr double kClassificationMomentum = 0.75;
constexpr int64_t kRegressionBins = 10;
constexpr double kRegressionMomentum = 0.7;
constexpr double kMu = 0.02;

/// mmdetection's per-bin loop (GHMC.forward / GHMR.forward), line for line in ATen.
torch::Tensor composed_ghm(bool regression, const torch::Tensor& pred, const torch::Tensor& target,
                           const torch::Tensor& label_weight, torch::Tensor& acc_sum, const torch::Tensor& edges,
                           int64_t bins, double momentum) {
  torch::Tensor loss, g;
  if (regression) {
    const auto diff = pred - target;
    loss = torch::sqrt(diff * diff + kMu * kMu) - kMu;
    g = torch::abs(diff / torch::sqrt(kMu * kMu + diff * diff)).detach();
  } else {
    g = torch::abs(pred.sigmoid().detach() - target);
  }
  auto weights = torch::zeros_like(pred);
  const auto valid = label_weight > 0;
  const double tot = std::max((regression ? label_weight.sum() : valid.to(torch::kFloat).sum()).item<double>(), 1.0);
  int64_t n = 0;
  for (int64_t i = 0; i < bins; ++i) {
    const auto inds = (g >= edges[i]) & (g < edges[i + 1]) & valid;
    const double num_in_bin = inds.sum().item<double>();
    if (num_in_bin > 0) {
      if (momentum > 0) {
        acc_sum[i] = momentum * acc_sum[i] + (1 - momentum) * num_in_bin;
        weights.index_put_({inds}, tot / acc_sum[i]);
      } else {
        weights.index_put_({inds}, tot / num_in_bin);
      }
      n += 1;
    }
  }
  if (n > 0) weights = weights / n;
  if (regression) return (loss * weights).sum() / tot;
  return torch::nn::functional::binary_cross_entropy_with_logits(
             pred, target, torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().weight(weights).reduction(torch::kSum)) /
         tot;
}

/// mmdetection's edges buffer: arange(bins + 1) / bins, the last one raised by 1e-6 (GHMC)
/// or set to 1e3 (GHMR; g <= 1 there, so both put g = 1 in the last bin).
torch::Tensor mmdet_edges(int64_t bins, bool regression) {
  auto edges = torch::arange(bins + 1).to(torch::kFloat) / bins;
  if (regression) {
    edges[bins] = 1e3;
  } else {
    edges[bins] += 1e-6;
  }
  return edges;
}

/// Binary targets [N, C] (about 10% positives).
torch::Tensor make_sparse_binary_targets(const Shape& shape) {
  return (torchloss_bench::make_probability_targets(shape) > 0.9).to(torch::kFloat);
}

/// Regression targets [N, C] ~ N(0, 4), like the logits: differences of every scale.
torch::Tensor make_regression_targets(const Shape& shape) {
  torch::manual_seed(3);
  return 2 * torch::randn({shape.rows, shape.classes});
}

void ghmc_torchloss(benchmark::State& state) {
  const Shape shape = torchloss_bench::shape_and_threads(state);
  torch::Tensor logits = torchloss_bench::make_logits(shape);
  const torch::Tensor target = make_sparse_binary_targets(shape);
  const torch::Tensor label_weight = torch::ones_like(target);
  torchloss::GHMCLoss loss(
      torchloss::GHMCLossOptions().bins(kClassificationBins).momentum(kClassificationMomentum));
  torchloss_bench::run_forward_backward(state, shape, logits, [&] { return loss(logits, target, label_weight); });
}

void ghmc_composed(benchmark::State& state) {
  const Shape shape = torchloss_bench::shape_and_threads(state);
  torch::Tensor logits = torchloss_bench::make_logits(shape);
  const torch::Tensor target = make_sparse_binary_targets(shape);
  const torch::Tensor label_weight = torch::ones_like(target);
  const torch::Tensor edges = mmdet_edges(kClassificationBins, false);
  torch::Tensor acc_sum = torch::zeros({kClassificationBins});
  torchloss_bench::run_forward_backward(state, shape, logits, [&] {
    return composed_ghm(false, logits, target, label_weight, acc_sum, edges, kClassificationBins,
                        kClassificationMomentum);
  });
}

void ghmr_torchloss(benchmark::State& state) {
  const Shape shape = torchloss_bench::shape_and_threads(state);
  torch::Tensor pred = torchloss_bench::make_logits(shape);
  const torch::Tensor target = make_regression_targets(shape);
  const torch::Tensor label_weight = torch::ones_like(target);
  torchloss::GHMRLoss loss(torchloss::GHMRLossOptions().mu(kMu).bins(kRegressionBins).momentum(kRegressionMomentum));
  torchloss_bench::run_forward_backward(state, shape, pred, [&] { return loss(pred, target, label_weight); });
}

void ghmr_composed(benchmark::State& state) {
  const Shape shape = torchloss_bench::shape_and_threads(state);
  torch::Tensor pred = torchloss_bench::make_logits(shape);
  const torch::Tensor target = make_regression_targets(shape);
  const torch::Tensor label_weight = torch::ones_like(target);
  const torch::Tensor edges = mmdet_edges(kRegressionBins, true);
  torch::Tensor acc_sum = torch::zeros({kRegressionBins});
  torchloss_bench::run_forward_backward(state, shape, pred, [&] {
    return composed_ghm(true, pred, target, label_weight, acc_sum, edges, kRegressionBins, kRegressionMomentum);
  });
}

void state_lock_uncontended(benchmark::State& state) {
  torch::Tensor acc_sum = torch::zeros({kClassificationBins});
  for (auto _ : state) {
    auto lock = torchloss::detail::state_lock(acc_sum);
    benchmark::DoNotOptimize(lock);
  }
}

// Registration order is the console's order; summarize.py does not depend on it.
const benchmark::internal::Benchmark* const registered[] = {
    torchloss_bench::register_grid("BM_GHMC/torchloss", ghmc_torchloss),
    torchloss_bench::register_grid("BM_GHMC/composed", ghmc_composed),
    torchloss_bench::register_grid("BM_GHMR/torchloss", ghmr_torchloss),
    torchloss_bench::register_grid("BM_GHMR/composed", ghmr_composed),
    torchloss_bench::register_copy_floor(),
    benchmark::RegisterBenchmark("BM_StateLock/uncontended", state_lock_uncontended),
};

}  // namespace

BENCHMARK_MAIN();
