// One training step of center loss (forward + backward + center update), float32, against the
// formulations a LibTorch user finds elsewhere.
//
// CPU, N = 256 samples of D = 512 features, C ∈ {10, 10^4, 10^5} classes:
//   BM_CenterLoss/torchloss     torchloss::CenterLoss (gather forward, fused loops, the paper's
//                               update of the classes present: O(N·D), flat in C)
//   BM_CenterLoss/aten_path     the same module on its device-agnostic ATen path (diagnostic)
//   BM_CenterLoss/distmat       the popular PyTorch port: an N×C distance matrix
//                               ‖x‖² + ‖c‖² − 2xcᵀ, masked by the labels, clamped, summed;
//                               the centers a parameter moved by SGD on their dense gradient
//   BM_CenterLoss/dense_update  a gather forward, and the update computed for all C classes
//                               (per-class sums and counts as [C, D] and [C] tensors, every
//                               center rewritten): what a direct port of the Caffe layer does
//   BM_CopyFloor/clone          features.clone(): the memory floor (one read, one write of x)
// GPU (registered only when torch::cuda::is_available()), N = 1024, D = 512, C = 10^5:
//   BM_CenterLossCUDA/torchloss      the fused kernels of torchloss::cuda when linked
//                                    (label "kernels"), else the ATen path (label "aten")
//   BM_CenterLossCUDA/deterministic  the same under deterministicAlgorithms() (segment kernels)
//   BM_CenterLossCUDA/aten_path      the ATen path on the GPU
//   BM_CenterLossCUDA/distmat        the distance-matrix port on the GPU
//   BM_CopyFloor/clone (1024/100000) features.clone() on the GPU
//
// Names follow bench_common.hpp (BM_<Family>/<variant>/<N>/<C>/threads:<T>), so
// bench/summarize.py tabulates them; D is fixed at 512.

#include "bench_common.hpp"

#include <torchloss/center_loss.hpp>

#include <algorithm>
#include <cstdio>
#include <string>

namespace {

using torchloss_bench::Shape;

constexpr int64_t kDim = 512;
constexpr double kAlpha = 0.5;

/// The CPU grid of the issue: N = 256, C ∈ {10, 10^4, 10^5}, each at every thread count.
void apply_center_grid(benchmark::internal::Benchmark* bench) {
  for (int64_t classes : {10, 10000, 100000}) {
    for (int64_t threads : torchloss_bench::thread_counts()) bench->Args({256, classes, threads});
  }
  bench->ArgNames({"", "", "threads"})->UseRealTime();
  bench->ComputeStatistics("min", [](const std::vector<double>& times) {
    return *std::min_element(times.begin(), times.end());
  });
}

/// Features [N, D] ~ N(0, 1), a leaf that requires grad, on `device`.
torch::Tensor make_features(int64_t rows, const torch::Device& device, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return torch::randn({rows, kDim}).to(device).set_requires_grad(true);
}

/// Labels [N] uniform in [0, C).
torch::Tensor make_labels(const Shape& shape, const torch::Device& device, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randint(shape.classes, {shape.rows}, torch::kLong).to(device);
}

/// Centers [C, D] ~ N(0, 1) (a trained model's are not zero).
torch::Tensor make_centers(const Shape& shape, const torch::Device& device, uint64_t seed = 2) {
  torch::manual_seed(seed);
  return torch::randn({shape.classes, kDim}).to(device);
}

/// Counters: N·D features per step.
void set_counters(benchmark::State& state, const Shape& shape) {
  const int64_t elements = shape.rows * kDim;
  state.SetItemsProcessed(state.iterations() * elements);
  state.SetBytesProcessed(state.iterations() * elements * static_cast<int64_t>(sizeof(float)));
  state.counters["N"] = static_cast<double>(shape.rows);
  state.counters["C"] = static_cast<double>(shape.classes);
  state.counters["D"] = static_cast<double>(kDim);
  state.counters["threads"] = static_cast<double>(at::get_num_threads());
}

/// Times `step()` (one training step); on CUDA every step ends with a device synchronisation.
template <typename Step>
void run_steps(benchmark::State& state, const Shape& shape, bool cuda, Step&& step) {
  step();  // untimed warm-up: allocator growth, thread pools, CUDA context and kernels
  if (cuda) torch::cuda::synchronize();
  for (auto _ : state) {
    step();
    if (cuda) torch::cuda::synchronize();
  }
  set_counters(state, shape);
}

/// torchloss: the module's step (the update happens inside backward).
void center_torchloss_on(benchmark::State& state, const Shape& shape, const torch::Device& device, bool aten_path) {
  torch::Tensor features = make_features(shape.rows, device);
  const torch::Tensor labels = make_labels(shape, device);
  torchloss::CenterLoss loss(torchloss::CenterLossOptions(shape.classes, kDim).alpha(kAlpha));
  {
    torch::NoGradGuard no_grad;
    loss->centers.set_data(make_centers(shape, device));
  }
  torchloss::detail::ScopedAtenPath path(aten_path);
  run_steps(state, shape, device.is_cuda(), [&] {
    features.mutable_grad() = torch::Tensor();
    torch::Tensor value = loss(features, labels);
    value.backward();
    benchmark::DoNotOptimize(value);
  });
}

/// The popular port (KaiyangZhou/pytorch-center-loss): distance matrix, mask, clamp, mean over
/// N; centers a parameter with a dense gradient, moved by an SGD step of rate α.
void center_distmat_on(benchmark::State& state, const Shape& shape, const torch::Device& device) {
  torch::Tensor features = make_features(shape.rows, device);
  const torch::Tensor labels = make_labels(shape, device);
  torch::Tensor centers = make_centers(shape, device).set_requires_grad(true);
  const torch::Tensor classes = torch::arange(shape.classes, torch::TensorOptions().dtype(torch::kLong).device(device));
  run_steps(state, shape, device.is_cuda(), [&] {
    features.mutable_grad() = torch::Tensor();
    centers.mutable_grad() = torch::Tensor();
    const int64_t n = features.size(0), c = centers.size(0);
    auto distmat = features.pow(2).sum(1, true).expand({n, c}) + centers.pow(2).sum(1, true).expand({c, n}).t();
    distmat = distmat.addmm(features, centers.t(), /*beta=*/1, /*alpha=*/-2);
    const auto mask = labels.unsqueeze(1).expand({n, c}).eq(classes.expand({n, c}));
    torch::Tensor value = (distmat * mask.to(torch::kFloat)).clamp(1e-12, 1e12).sum() / n;
    value.backward();
    {
      torch::NoGradGuard no_grad;
      centers.sub_(centers.grad(), kAlpha);
    }
    benchmark::DoNotOptimize(value);
  });
}

/// A gather forward, then the update of all C centers from dense per-class statistics.
void center_dense_update_on(benchmark::State& state, const Shape& shape, const torch::Device& device) {
  torch::Tensor features = make_features(shape.rows, device);
  const torch::Tensor labels = make_labels(shape, device);
  torch::Tensor centers = make_centers(shape, device);
  run_steps(state, shape, device.is_cuda(), [&] {
    features.mutable_grad() = torch::Tensor();
    const auto diff = features - centers.index_select(0, labels);
    torch::Tensor value = 0.5 * diff.pow(2).sum() / features.size(0);
    value.backward();
    {
      torch::NoGradGuard no_grad;
      const auto d = diff.detach();
      const auto sums = torch::zeros_like(centers).index_add_(0, labels, d);
      const auto counts = torch::zeros({centers.size(0)}, centers.options())
                              .index_add_(0, labels, torch::ones({labels.size(0)}, centers.options()));
      centers.add_(kAlpha * sums / (1 + counts).unsqueeze(1));
    }
    benchmark::DoNotOptimize(value);
  });
}

/// features.clone(): one read and one write of the features.
void copy_floor_on(benchmark::State& state, const Shape& shape, const torch::Device& device) {
  const torch::Tensor features = make_features(shape.rows, device).detach();
  run_steps(state, shape, device.is_cuda(), [&] {
    torch::Tensor copy = features.clone();
    benchmark::DoNotOptimize(copy);
  });
}

void center_torchloss(benchmark::State& state) {
  center_torchloss_on(state, torchloss_bench::shape_and_threads(state), torch::kCPU, false);
}
void center_aten_path(benchmark::State& state) {
  center_torchloss_on(state, torchloss_bench::shape_and_threads(state), torch::kCPU, true);
}
void center_distmat(benchmark::State& state) {
  center_distmat_on(state, torchloss_bench::shape_and_threads(state), torch::kCPU);
}
void center_dense_update(benchmark::State& state) {
  center_dense_update_on(state, torchloss_bench::shape_and_threads(state), torch::kCPU);
}
void center_copy_floor(benchmark::State& state) {
  copy_floor_on(state, torchloss_bench::shape_and_threads(state), torch::kCPU);
}

template <typename Fn>
benchmark::internal::Benchmark* register_center(const char* name, Fn fn) {
  benchmark::internal::Benchmark* bench = benchmark::RegisterBenchmark(name, fn);
  apply_center_grid(bench);
  return bench;
}

const benchmark::internal::Benchmark* const registered[] = {
    register_center("BM_CenterLoss/torchloss", center_torchloss),
    register_center("BM_CenterLoss/aten_path", center_aten_path),
    register_center("BM_CenterLoss/distmat", center_distmat),
    register_center("BM_CenterLoss/dense_update", center_dense_update),
    register_center("BM_CopyFloor/clone", center_copy_floor),
};

// ---- GPU --------------------------------------------------------------------------------------

/// The GPU shape of the issue: N = 1024, C = 10^5 (D = 512), one host thread.
void apply_cuda_shape(benchmark::internal::Benchmark* bench) {
  bench->Args({1024, 100000, 1})->ArgNames({"", "", "threads"})->UseRealTime();
  bench->ComputeStatistics("min", [](const std::vector<double>& times) {
    return *std::min_element(times.begin(), times.end());
  });
}

/// Restores the global deterministic-algorithms flag on scope exit.
struct ScopedDeterministic {
  bool previous;
  explicit ScopedDeterministic(bool on) : previous(at::globalContext().deterministicAlgorithms()) {
    at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
  }
  ~ScopedDeterministic() { at::globalContext().setDeterministicAlgorithms(previous, false); }
};

const torch::Device kCuda(torch::kCUDA, 0);

void cuda_torchloss(benchmark::State& state) {
  state.SetLabel(torchloss::detail::center_loss_cuda_kernels_registered() ? "kernels" : "aten (torchloss::cuda not linked)");
  center_torchloss_on(state, torchloss_bench::shape_and_threads(state), kCuda, false);
}
void cuda_deterministic(benchmark::State& state) {
  ScopedDeterministic deterministic(true);
  state.SetLabel(torchloss::detail::center_loss_cuda_kernels_registered() ? "kernels" : "aten (torchloss::cuda not linked)");
  center_torchloss_on(state, torchloss_bench::shape_and_threads(state), kCuda, false);
}
void cuda_aten_path(benchmark::State& state) {
  center_torchloss_on(state, torchloss_bench::shape_and_threads(state), kCuda, true);
}
void cuda_distmat(benchmark::State& state) {
  center_distmat_on(state, torchloss_bench::shape_and_threads(state), kCuda);
}
void cuda_copy_floor(benchmark::State& state) {
  copy_floor_on(state, torchloss_bench::shape_and_threads(state), kCuda);
}

void register_cuda_benchmarks() {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_center_loss: no CUDA device, the BM_CenterLossCUDA benchmarks are skipped\n");
    return;
  }
  apply_cuda_shape(benchmark::RegisterBenchmark("BM_CenterLossCUDA/torchloss", cuda_torchloss));
  apply_cuda_shape(benchmark::RegisterBenchmark("BM_CenterLossCUDA/deterministic", cuda_deterministic));
  apply_cuda_shape(benchmark::RegisterBenchmark("BM_CenterLossCUDA/aten_path", cuda_aten_path));
  apply_cuda_shape(benchmark::RegisterBenchmark("BM_CenterLossCUDA/distmat", cuda_distmat));
  apply_cuda_shape(benchmark::RegisterBenchmark("BM_CopyFloor/clone", cuda_copy_floor));
}

}  // namespace

/// Exit code of `--require-gpu` on a machine without a GPU (CTest's SKIP_RETURN_CODE).
constexpr int kSkipNoGpu = 77;

int main(int argc, char** argv) {
  // --require-gpu: the CUDA smoke test; on a machine without a GPU it reports itself skipped.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) != "--require-gpu") continue;
    if (!torch::cuda::is_available()) {
      std::puts("skipped: no CUDA device (torch::cuda::is_available() is false)");
      return kSkipNoGpu;
    }
    std::copy(argv + i + 1, argv + argc, argv + i);
    --argc;
    break;
  }
  register_cuda_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
