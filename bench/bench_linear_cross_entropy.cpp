/// \file bench_linear_cross_entropy.cpp
/// \brief The fused classifier head (torchloss::functional::linear_cross_entropy) against the
/// unfused `cross_entropy(linear(x, W, b), y)` a user writes with LibTorch's own functions:
/// wall time and peak resident memory of one forward + backward (gradients of x, W and b),
/// float32, D = 512 features.
///
/// Variants (BM_LinearCE/<variant>/<N>/<C>/threads:<T>):
///   torchloss  linear_cross_entropy, automatic chunk size
///   unfused    torch::nn::functional::linear + cross_entropy
///   matmuls    the three matrix products alone (x·Wᵀ, G·W, Gᵀ·x on the same row chunks, under
///              no_grad, G = the chunk's logits): the time floor of any head with these gradients
///
/// Counters: `extra_peak_MiB` = peak resident set (VmHWM, reset before the first step) minus
/// the resident set with the inputs made; `grad_MiB` = the gradients of x, W and b themselves,
/// which every variant must hold. Run each variant in its own process (`--benchmark_filter`),
/// so that one variant's freed pages do not hide inside another's peak; see RESULTS.md.

#include "bench_common.hpp"

#include <torchloss/linear_cross_entropy.hpp>

#include <fstream>
#include <sstream>
#include <string>

namespace {

using torchloss_bench::Shape;

/// Feature size D of every shape.
constexpr int64_t kFeatures = 512;

/// A field of /proc/self/status in MiB (VmRSS: resident now; VmHWM: peak resident), or -1
/// where the file does not exist (not Linux).
double status_mib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream value(line.substr(field.size() + 1));
      double kib = 0;
      value >> kib;
      return kib / 1024.0;
    }
  }
  return -1;
}

/// Resets VmHWM to the current resident set (Linux ≥ 4.0: "5" to /proc/self/clear_refs).
void reset_peak_resident() { std::ofstream("/proc/self/clear_refs") << "5"; }

/// Leaves of a head: features x [N, D], weight W [C, D] (Linear's scale, 1/√D), bias b [C],
/// labels y [N].
struct Head {
  torch::Tensor x, w, b, y;
};

Head make_head(const Shape& shape) {
  torch::manual_seed(0);
  Head h;
  h.x = torch::randn({shape.rows, kFeatures}).set_requires_grad(true);
  h.w = (torch::randn({shape.classes, kFeatures}) / std::sqrt(static_cast<double>(kFeatures))).set_requires_grad(true);
  h.b = (torch::randn({shape.classes}) * 0.01).set_requires_grad(true);
  h.y = torchloss_bench::make_class_targets(shape);
  return h;
}

/// Times `step(head)` (one forward + backward, or the products alone) and records the extra
/// peak memory over all steps. The gradients are reset before each step (set to none), so a
/// step holds one set of them, as a training loop with `zero_grad(set_to_none)` does.
template <class Step>
void run_head(benchmark::State& state, Step step) {
  const Shape shape = torchloss_bench::shape_and_threads(state);
  Head h = make_head(shape);
  reset_peak_resident();
  const double baseline = status_mib("VmRSS");
  for (auto _ : state) {
    h.x.mutable_grad() = torch::Tensor();
    h.w.mutable_grad() = torch::Tensor();
    h.b.mutable_grad() = torch::Tensor();
    step(h);
  }
  state.counters["extra_peak_MiB"] = status_mib("VmHWM") - baseline;
  state.counters["grad_MiB"] = static_cast<double>((shape.rows + shape.classes) * kFeatures + shape.classes) *
                               sizeof(float) / (1024.0 * 1024.0);
  state.counters["N"] = static_cast<double>(shape.rows);
  state.counters["C"] = static_cast<double>(shape.classes);
  state.counters["D"] = static_cast<double>(kFeatures);
  state.counters["threads"] = static_cast<double>(at::get_num_threads());
}

void fused_step(Head& h) {
  auto loss = torchloss::functional::linear_cross_entropy(h.x, h.w, h.b, h.y);
  loss.backward();
  benchmark::DoNotOptimize(loss);
}

void unfused_step(Head& h) {
  namespace nnf = torch::nn::functional;
  auto loss = nnf::cross_entropy(nnf::linear(h.x, h.w, h.b), h.y);
  loss.backward();
  benchmark::DoNotOptimize(loss);
}

/// The three products of the fused head on its row chunks, without the softmax.
void matmuls_step(Head& h) {
  torch::NoGradGuard no_grad;
  const int64_t n = h.x.size(0), classes = h.w.size(0);
  const int64_t chunk = torchloss::detail::resolve_chunk_rows(0, n, classes);
  auto grad_input = torch::empty_like(h.x);
  auto grad_weight = torch::zeros_like(h.w);
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t rows = std::min(chunk, n - begin);
    const auto x = h.x.narrow(0, begin, rows);
    const auto logits = at::addmm(h.b, x, h.w.t());
    auto grad_rows = grad_input.narrow(0, begin, rows);
    at::mm_out(grad_rows, logits, h.w);
    grad_weight.addmm_(logits.t(), x);
  }
  benchmark::DoNotOptimize(grad_input);
  benchmark::DoNotOptimize(grad_weight);
}

/// N = 4096 at the class counts and at small ones (the crossover), plus a tiny shape
/// (256×10) for the smoke test; 2 intra-op threads (the machine has 2 cores).
void apply_shapes(benchmark::internal::Benchmark* bench) {
  bench->Args({256, 10, 2});
  for (int64_t classes : {128, 512, 2048, 8192, 32768, 131072}) bench->Args({4096, classes, 2});
  bench->ArgNames({"", "", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

const auto* const fused = benchmark::RegisterBenchmark("BM_LinearCE/torchloss", [](benchmark::State& state) {
  run_head(state, fused_step);
})->Apply(apply_shapes);
const auto* const unfused = benchmark::RegisterBenchmark("BM_LinearCE/unfused", [](benchmark::State& state) {
  run_head(state, unfused_step);
})->Apply(apply_shapes);
const auto* const matmuls = benchmark::RegisterBenchmark("BM_LinearCE/matmuls", [](benchmark::State& state) {
  run_head(state, matmuls_step);
})->Apply(apply_shapes);

}  // namespace

BENCHMARK_MAIN();
