#pragma once
/// \file cuda_registry.hpp
/// \brief Tables of the optional fused CUDA kernels (STYLE.md: "use a registry").
///
/// A header-only library cannot let an inline function's body depend on `__CUDACC__` (two
/// translation units would hold two definitions: an ODR violation the linker resolves
/// silently). Instead every translation unit sees the same inline tables of function
/// pointers below, constant-initialised to null. The nvcc-compiled file
/// include/torchloss/cuda/register.cu (the CMake target `torchloss::cuda` compiles it into
/// the consumer) fills them during static initialisation. A loss uses a table for CUDA
/// tensors when it is filled and otherwise runs ATen ops, which are correct on any device.
///
/// Plain C++: this header includes neither CUDA nor ATen's CUDA headers.

#include <ATen/ATen.h>

namespace torchloss {
namespace detail {

/// The fused CUDA kernels of center loss (include/torchloss/cuda/center_loss_kernels.cuh),
/// behind ATen glue (include/torchloss/cuda/center_loss_glue.cuh). Tensors are contiguous,
/// on one CUDA device; `centers` and `diff` share the compute dtype (float or double),
/// `features` may also be float16 or bfloat16; per-class sums and counts are float64.
struct CenterLossCudaOps {
  /// Fused forward: diff = x − c_y and losses_i = ½‖diff_i‖² in one pass; returns false when a
  /// label lies outside [0, C) (its row is zero then).
  bool (*forward)(const at::Tensor& features, const at::Tensor& centers, const at::Tensor& labels,
                  at::Tensor& diff, at::Tensor& losses) = nullptr;
  /// c_j += α Σ_{y_i = j} diff_i / (1 + n_j) in place, for the classes present: atomics, or a
  /// stable sort by label and a fixed-order sum per class when `deterministic`.
  void (*update)(const at::Tensor& centers, const at::Tensor& diff, const at::Tensor& labels, double alpha,
                 bool deterministic) = nullptr;
  /// Per-class sums Σ diff_i [K, D] and counts [K] (float64) of the K classes present,
  /// ascending, in a fixed order (for the all-reduce of the distributed update).
  void (*class_sums)(const at::Tensor& diff, const at::Tensor& labels, at::Tensor& classes, at::Tensor& sums,
                     at::Tensor& counts) = nullptr;
  /// c_{classes_k} += α sums_k / (1 + counts_k) in place.
  void (*apply_class_sums)(const at::Tensor& centers, const at::Tensor& classes, const at::Tensor& sums,
                           const at::Tensor& counts, double alpha) = nullptr;
};

/// The center-loss table: null until register.cu fills it (C++17 inline variable: one
/// object program-wide, constant-initialised before any dynamic initialiser runs).
inline CenterLossCudaOps center_loss_cuda_ops{};

/// Whether the fused center-loss kernels were compiled into this program.
inline bool center_loss_cuda_kernels_registered() { return center_loss_cuda_ops.forward != nullptr; }

}  // namespace detail
}  // namespace torchloss
