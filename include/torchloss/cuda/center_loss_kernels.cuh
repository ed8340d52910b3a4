#pragma once
/// \file center_loss_kernels.cuh
/// \brief The fused CUDA kernels of center loss, on raw pointers and a `cudaStream_t`.
///
/// This header needs only the CUDA toolkit (no ATen, no LibTorch), so CI compiles it with
/// `nvcc -arch=sm_90` and `-arch=sm_75` on machines without a GPU or a CUDA LibTorch (the
/// CTest test `cuda_kernels_compile`). The ATen glue (center_loss_glue.cuh) and the
/// registration file (register.cu) connect it to torchloss::functional::center_loss().
///
/// Notation: features \f$x\f$ [N, D] (float, double, `__half` or `__nv_bfloat16`), labels
/// \f$y\f$ [N] int64, centers \f$c\f$ [C, D] and diff [N, D] in the compute type `Acc` (float,
/// or double for double features), all contiguous. Every kernel does O(N·D) work; none reads
/// or writes a center whose class is absent from the batch.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace torchloss {
/// Raw CUDA kernels of the losses (pointers and streams only); see center_loss_kernels.cuh.
namespace cuda {
/// The kernels of center loss and their launchers, each returning the launch's `cudaError_t`.
namespace kernels {

/// Threads per block of the row-wise kernels (forward) and of the column-wise ones (update).
constexpr int kCenterThreads = 128;

/// Widens a feature to float (float16 and bfloat16 are computed in float32).
__device__ __forceinline__ float widen(float value) { return value; }
/// Double features stay double.
__device__ __forceinline__ double widen(double value) { return value; }
/// float16 to float32.
__device__ __forceinline__ float widen(__half value) { return __half2float(value); }
/// bfloat16 to float32.
__device__ __forceinline__ float widen(__nv_bfloat16 value) { return __bfloat162float(value); }

/// Sum of `value` over the block, in a fixed tree order (so deterministic); the result is
/// valid in thread 0. `scratch` holds one value per warp.
template <typename Acc, int kThreads>
__device__ __forceinline__ Acc block_sum(Acc value, Acc* scratch) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps, at most 32 of them");
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < kThreads / 32 ? scratch[lane] : Acc(0);
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  __syncthreads();  // scratch is reused by the next row
  return value;
}

/// Fused forward, one block per row (grid-stride): diff_i = x_i − c_{y_i} and
/// losses_i = ½‖diff_i‖², reading x_i and c_{y_i} once. A label outside [0, C) sets
/// `*bad_label` and zeroes its row instead of reading out of bounds.
template <typename T, typename Acc, int kThreads>
__global__ void __launch_bounds__(kThreads)
    center_forward_kernel(const T* __restrict__ features, const Acc* __restrict__ centers,
                          const int64_t* __restrict__ labels, int64_t n, int64_t d, int64_t num_classes,
                          Acc* __restrict__ diff, Acc* __restrict__ losses, int* __restrict__ bad_label) {
  __shared__ Acc scratch[kThreads / 32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int64_t label = labels[row];
    const bool valid = label >= 0 && label < num_classes;
    if (!valid && threadIdx.x == 0) *bad_label = 1;
    const T* x = features + row * d;
    const Acc* c = centers + (valid ? label : 0) * d;
    Acc* out = diff + row * d;
    Acc squares = 0;
    for (int64_t k = threadIdx.x; k < d; k += kThreads) {
      const Acc value = valid ? static_cast<Acc>(widen(x[k])) - c[k] : Acc(0);
      out[k] = value;
      squares += value * value;
    }
    squares = block_sum<Acc, kThreads>(squares, scratch);
    if (threadIdx.x == 0) losses[row] = Acc(0.5) * squares;
  }
}

/// counts[y_i] += 1 for every sample (counts: C zeroed ints; labels already validated). A
/// template, like every kernel here, so that a header included by several translation units
/// defines no symbol twice.
template <typename Count>
__global__ void count_labels_kernel(const int64_t* __restrict__ labels, int64_t n, Count* __restrict__ counts) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    atomicAdd(counts + labels[i], 1);
  }
}

/// Atomic update, one thread per element of diff: c_{y_i} += α diff_i / (1 + n_{y_i}).
/// The order of the additions into one center varies from run to run (not deterministic).
template <typename Acc>
__global__ void center_update_atomic_kernel(Acc* __restrict__ centers, const Acc* __restrict__ diff,
                                            const int64_t* __restrict__ labels, const int* __restrict__ counts,
                                            int64_t n, int64_t d, double alpha) {
  const int64_t total = n * d;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = idx / d, k = idx - row * d;
    const int64_t label = labels[row];
    const Acc step = static_cast<Acc>(alpha) / (Acc(1) + static_cast<Acc>(counts[label]));
    atomicAdd(centers + label * d + k, step * diff[idx]);
  }
}

/// Sum of diff over one segment of rows (the samples of one class, in batch order), in float64.
template <typename Acc>
__device__ __forceinline__ double segment_sum(const Acc* __restrict__ diff, const int64_t* __restrict__ order,
                                              int64_t first, int64_t last, int64_t d, int64_t column) {
  double sum = 0;
  for (int64_t r = first; r < last; ++r) sum += static_cast<double>(diff[order[r] * d + column]);
  return sum;
}

/// Deterministic update: samples sorted (stably) by label, segment s = the rows
/// order[starts[s] .. starts[s+1]) of class classes[s]. One thread per (segment, column) sums
/// its segment in batch order and writes c ← c + α Σ diff / (1 + n): no atomics, the same
/// bits on every run. grid.x covers the columns, grid.y strides over the segments.
template <typename Acc>
__global__ void center_update_segmented_kernel(Acc* __restrict__ centers, const Acc* __restrict__ diff,
                                               const int64_t* __restrict__ order, const int64_t* __restrict__ starts,
                                               const int64_t* __restrict__ classes, int64_t num_segments, int64_t d,
                                               double alpha) {
  const int64_t column = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (column >= d) return;
  for (int64_t s = blockIdx.y; s < num_segments; s += gridDim.y) {
    const int64_t first = starts[s], last = starts[s + 1];
    const double sum = segment_sum(diff, order, first, last, d, column);
    Acc* c = centers + classes[s] * d + column;
    *c = static_cast<Acc>(static_cast<double>(*c) + alpha / (1.0 + static_cast<double>(last - first)) * sum);
  }
}

/// Per-class sums for the distributed update: sums[s] = Σ diff over segment s (float64
/// [K, D]), in batch order, as center_update_segmented_kernel sums them.
template <typename Acc>
__global__ void class_sums_segmented_kernel(double* __restrict__ sums, const Acc* __restrict__ diff,
                                            const int64_t* __restrict__ order, const int64_t* __restrict__ starts,
                                            int64_t num_segments, int64_t d) {
  const int64_t column = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (column >= d) return;
  for (int64_t s = blockIdx.y; s < num_segments; s += gridDim.y) {
    sums[s * d + column] = segment_sum(diff, order, starts[s], starts[s + 1], d, column);
  }
}

/// Applies summed statistics: c_{classes_k} ← c + α sums_k / (1 + counts_k) (classes distinct).
template <typename Acc>
__global__ void apply_class_sums_kernel(Acc* __restrict__ centers, const int64_t* __restrict__ classes,
                                        const double* __restrict__ sums, const double* __restrict__ counts,
                                        int64_t num_rows, int64_t d, double alpha) {
  const int64_t column = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (column >= d) return;
  for (int64_t k = blockIdx.y; k < num_rows; k += gridDim.y) {
    Acc* c = centers + classes[k] * d + column;
    *c = static_cast<Acc>(static_cast<double>(*c) + alpha / (1.0 + counts[k]) * sums[k * d + column]);
  }
}

/// Blocks for a grid-stride loop over `work` items at `threads` per block (at least 1,
/// at most 65535 so that every launch configuration is valid on sm_75 and newer).
inline unsigned int grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

/// The (columns, segments) grid of the column-wise kernels.
inline dim3 column_grid(int64_t d, int64_t rows) {
  return dim3(grid_for(d, kCenterThreads), static_cast<unsigned int>(rows < 1 ? 1 : (rows > 65535 ? 65535 : rows)));
}

/// Launches center_forward_kernel on `stream`; `bad_label` must be zeroed before.
template <typename T, typename Acc>
cudaError_t launch_center_forward(const T* features, const Acc* centers, const int64_t* labels, int64_t n, int64_t d,
                                  int64_t num_classes, Acc* diff, Acc* losses, int* bad_label, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const unsigned int blocks = static_cast<unsigned int>(n < 65535 ? n : 65535);
  center_forward_kernel<T, Acc, kCenterThreads>
      <<<blocks, kCenterThreads, 0, stream>>>(features, centers, labels, n, d, num_classes, diff, losses, bad_label);
  return cudaGetLastError();
}

/// Launches the atomic update on `stream`: counts (C ints) are zeroed, counted, then used.
template <typename Acc>
cudaError_t launch_center_update_atomic(Acc* centers, const Acc* diff, const int64_t* labels, int* counts,
                                        int64_t num_classes, int64_t n, int64_t d, double alpha, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  cudaError_t error = cudaMemsetAsync(counts, 0, static_cast<size_t>(num_classes) * sizeof(int), stream);
  if (error != cudaSuccess) return error;
  count_labels_kernel<int><<<grid_for(n, 256), 256, 0, stream>>>(labels, n, counts);
  error = cudaGetLastError();
  if (error != cudaSuccess) return error;
  center_update_atomic_kernel<Acc><<<grid_for(n * d, 256), 256, 0, stream>>>(centers, diff, labels, counts, n, d, alpha);
  return cudaGetLastError();
}

/// Launches the deterministic update over `num_segments` label segments on `stream`.
template <typename Acc>
cudaError_t launch_center_update_segmented(Acc* centers, const Acc* diff, const int64_t* order, const int64_t* starts,
                                           const int64_t* classes, int64_t num_segments, int64_t d, double alpha,
                                           cudaStream_t stream) {
  if (num_segments == 0) return cudaSuccess;
  center_update_segmented_kernel<Acc><<<column_grid(d, num_segments), kCenterThreads, 0, stream>>>(
      centers, diff, order, starts, classes, num_segments, d, alpha);
  return cudaGetLastError();
}

/// Launches the per-class sums over `num_segments` label segments on `stream`.
template <typename Acc>
cudaError_t launch_class_sums_segmented(double* sums, const Acc* diff, const int64_t* order, const int64_t* starts,
                                        int64_t num_segments, int64_t d, cudaStream_t stream) {
  if (num_segments == 0) return cudaSuccess;
  class_sums_segmented_kernel<Acc>
      <<<column_grid(d, num_segments), kCenterThreads, 0, stream>>>(sums, diff, order, starts, num_segments, d);
  return cudaGetLastError();
}

/// Launches the application of summed statistics to `num_rows` distinct classes on `stream`.
template <typename Acc>
cudaError_t launch_apply_class_sums(Acc* centers, const int64_t* classes, const double* sums, const double* counts,
                                    int64_t num_rows, int64_t d, double alpha, cudaStream_t stream) {
  if (num_rows == 0) return cudaSuccess;
  apply_class_sums_kernel<Acc>
      <<<column_grid(d, num_rows), kCenterThreads, 0, stream>>>(centers, classes, sums, counts, num_rows, d, alpha);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace cuda
}  // namespace torchloss
