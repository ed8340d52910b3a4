#pragma once
/// \file bench_common.hpp
/// \brief Setup that every torchloss benchmark program shares: the shape × thread grid,
/// inputs of a shape, the forward+backward loop, and the copy-floor benchmark.
///
/// Naming convention (bench/summarize.py parses it):
///   BM_<Family>/<variant>/<N>/<C>/threads:<T>/real_time
/// The variant `torchloss` is the one the others are compared with; `BM_CopyFloor/clone`
/// (x.clone() of the same logits) is the memory floor of every family at that shape.

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace torchloss_bench {

/// One benchmark shape: N rows of C classes (or C labels, for the multi-label losses).
struct Shape {
  int64_t rows, classes;
};

/// The shapes of the issue: a tiny batch (overhead-bound), a wide classifier (ImageNet-like
/// C = 1000) and a tall multi-label batch (COCO-like C = 80).
inline const std::vector<Shape>& shapes() {
  static const std::vector<Shape> all{{256, 10}, {4096, 1000}, {65536, 80}};
  return all;
}

/// The intra-op thread counts (at::set_num_threads) each shape runs at.
inline const std::vector<int64_t>& thread_counts() {
  static const std::vector<int64_t> all{1, 2};
  return all;
}

/// Registers the grid (of `grid_shapes`, by default shapes()) on a benchmark: args (N, C, threads),
/// named N/C/threads:T, timed in
/// wall-clock time (ATen's worker threads do part of the work, so the main thread's CPU
/// time would under-count).
inline void apply_grid(benchmark::internal::Benchmark* bench, const std::vector<Shape>& grid_shapes = shapes()) {
  for (const Shape& shape : grid_shapes) {
    for (int64_t threads : thread_counts()) bench->Args({shape.rows, shape.classes, threads});
  }
  bench->ArgNames({"", "", "threads"})->UseRealTime();
  // With --benchmark_repetitions, also report the fastest repetition: on a machine shared
  // with compilers, the minimum is the least disturbed estimate (summarize.py prefers it).
  bench->ComputeStatistics("min", [](const std::vector<double>& times) {
    return *std::min_element(times.begin(), times.end());
  });
}

/// Reads the shape of a grid benchmark and sets its intra-op thread count.
inline Shape shape_and_threads(const benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(2)));
  return {state.range(0), state.range(1)};
}

/// Logits [N, C] float32 ~ N(0, 4): a leaf that requires grad, made once per benchmark.
inline torch::Tensor make_logits(const Shape& shape, uint64_t seed = 0) {
  torch::manual_seed(seed);
  return (2 * torch::randn({shape.rows, shape.classes})).set_requires_grad(true);
}

/// Class targets [N] int64, uniform in [0, C).
inline torch::Tensor make_class_targets(const Shape& shape, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randint(shape.classes, {shape.rows}, torch::kLong);
}

/// Soft (probability) targets [N, C] float32, uniform in [0, 1].
inline torch::Tensor make_probability_targets(const Shape& shape, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::rand({shape.rows, shape.classes});
}

/// Random positive class weights [C] float32, uniform in [0.1, 1.1].
inline torch::Tensor make_class_weights(const Shape& shape, uint64_t seed = 2) {
  torch::manual_seed(seed);
  return torch::rand({shape.classes}) + 0.1;
}

/// Reports what one iteration touched: N·C logits (items) and their float32 bytes, so the
/// console shows elements/s and bytes/s comparable across shapes.
inline void set_throughput(benchmark::State& state, const Shape& shape) {
  const int64_t elements = shape.rows * shape.classes;
  state.SetItemsProcessed(state.iterations() * elements);
  state.SetBytesProcessed(state.iterations() * elements * static_cast<int64_t>(sizeof(float)));
  state.counters["N"] = static_cast<double>(shape.rows);
  state.counters["C"] = static_cast<double>(shape.classes);
  state.counters["threads"] = static_cast<double>(at::get_num_threads());
}

/// The training step of a loss, timed: `loss_fn()` builds the scalar loss from the leaf
/// `logits`, then backward() fills logits.grad(). The gradient is reset (not zeroed in place)
/// before each step, so AccumulateGrad takes the freshly computed gradient as a user's
/// `optimizer.zero_grad(set_to_none=true)` loop would.
template <typename LossFn>
void run_forward_backward(benchmark::State& state, const Shape& shape, torch::Tensor& logits,
                          LossFn&& loss_fn) {
  // One untimed step first: Google Benchmark 1.7 has no warm-up phase, and the first step
  // pays for allocator growth and for starting the autograd and OpenMP worker threads.
  loss_fn().backward();
  for (auto _ : state) {
    logits.mutable_grad() = torch::Tensor();
    torch::Tensor loss = loss_fn();
    loss.backward();
    torch::Tensor grad = logits.grad();
    benchmark::DoNotOptimize(loss);
    benchmark::DoNotOptimize(grad);
  }
  set_throughput(state, shape);
}

/// The forward pass alone (under autograd, so it saves what backward would need); a
/// diagnostic that splits a forward+backward time into its halves.
template <typename LossFn>
void run_forward_only(benchmark::State& state, const Shape& shape, LossFn&& loss_fn) {
  loss_fn();  // untimed warm-up, as in run_forward_backward
  for (auto _ : state) {
    torch::Tensor loss = loss_fn();
    benchmark::DoNotOptimize(loss);
  }
  set_throughput(state, shape);
}

/// The memory floor: one read and one write of the logits (x.clone()). A fused
/// forward+backward must at least read x and write grad, so it cannot beat this by much.
inline void copy_floor(benchmark::State& state) {
  const Shape shape = shape_and_threads(state);
  torch::Tensor logits = make_logits(shape).detach();
  logits.clone();  // untimed warm-up, as in run_forward_backward
  for (auto _ : state) {
    torch::Tensor copy = logits.clone();
    benchmark::DoNotOptimize(copy);
  }
  set_throughput(state, shape);
}

/// Registers `fn` (a callable taking benchmark::State&) under `name` on the whole grid.
/// Use at namespace scope: `const auto* registered = register_grid("BM_X/variant", ...);`.
template <typename Fn>
benchmark::internal::Benchmark* register_grid(const char* name, Fn&& fn) {
  benchmark::internal::Benchmark* bench = benchmark::RegisterBenchmark(name, std::forward<Fn>(fn));
  apply_grid(bench);
  return bench;
}

/// Registers a forward+backward benchmark of one loss on the grid: `make_inputs(shape)`
/// builds what the loss needs besides the logits (a target, or a target and weights) once,
/// `loss(logits, inputs)` is the timed step's loss.
template <typename MakeInputs, typename Loss>
benchmark::internal::Benchmark* register_loss_step(const char* name, MakeInputs make_inputs, Loss loss) {
  return register_grid(name, [make_inputs, loss](benchmark::State& state) {
    const Shape shape = shape_and_threads(state);
    torch::Tensor logits = make_logits(shape);
    const auto inputs = make_inputs(shape);
    run_forward_backward(state, shape, logits, [&] { return loss(logits, inputs); });
  });
}

/// A target and per-class weights, for the class-weighted losses.
struct WeightedTarget {
  torch::Tensor target, weight;
};

/// Binary targets [N, C] float32 in {0, 1} (multi-label).
inline torch::Tensor make_binary_targets(const Shape& shape, uint64_t seed = 1) {
  return (make_probability_targets(shape, seed) > 0.5).to(torch::kFloat);
}

/// Registers the copy floor as `BM_CopyFloor/clone` (once per benchmark program).
inline benchmark::internal::Benchmark* register_copy_floor() {
  return register_grid("BM_CopyFloor/clone", copy_floor);
}

}  // namespace torchloss_bench
