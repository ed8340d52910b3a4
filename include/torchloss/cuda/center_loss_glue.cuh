#pragma once
/// \file center_loss_glue.cuh
/// \brief ATen glue of the center-loss kernels: tensors to raw pointers, the current CUDA
/// stream and device, dtype dispatch and error checks. Only register.cu includes it, and
/// only where LibTorch has CUDA (the CMake target torchloss::cuda); its functions fill
/// torchloss::detail::center_loss_cuda_ops.

#include <torchloss/cuda/center_loss_kernels.cuh>
#include <torchloss/detail/cuda_registry.hpp>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <tuple>

namespace torchloss {
namespace cuda {
namespace detail {

/// Raises a c10::Error for a failed CUDA call or launch.
inline void check_cuda(cudaError_t error, const char* what) {
  TORCH_CHECK(error == cudaSuccess, "torchloss::center_loss: CUDA error in ", what, ": ",
              cudaGetErrorString(error));
}

/// A sort of the labels into per-class segments: the stable order, the segment starts
/// [K + 1], the class of each segment [K] and its size [K].
struct LabelSegments {
  at::Tensor order, starts, classes, counts;
  int64_t size = 0;
};

/// Stable sort by label, then run lengths (O(N log N) on the device, independent of C).
inline LabelSegments label_segments(const at::Tensor& labels) {
  LabelSegments s;
  at::Tensor sorted, inverse;
  std::tie(sorted, s.order) = labels.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  std::tie(s.classes, inverse, s.counts) =
      at::unique_consecutive(sorted, /*return_inverse=*/false, /*return_counts=*/true);
  s.size = s.classes.numel();
  s.starts = at::zeros({s.size + 1}, labels.options());
  if (s.size > 0) s.starts.narrow(0, 1, s.size).copy_(s.counts.cumsum(0));
  return s;
}

/// registry: forward.
inline bool center_forward(const at::Tensor& features, const at::Tensor& centers, const at::Tensor& labels,
                           at::Tensor& diff, at::Tensor& losses) {
  const c10::cuda::CUDAGuard guard(features.device());
  const int64_t n = features.size(0), d = features.size(1), num_classes = centers.size(0);
  diff = at::empty({n, d}, centers.options());
  losses = at::empty({n}, centers.options());
  if (n == 0) return true;
  auto bad_label = at::zeros({1}, labels.options().dtype(at::kInt));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(centers.scalar_type(), "torchloss_center_forward_cuda", [&] {
    using Acc = scalar_t;
    const Acc* c = centers.data_ptr<Acc>();
    const int64_t* y = labels.data_ptr<int64_t>();
    Acc* out = diff.data_ptr<Acc>();
    Acc* loss = losses.data_ptr<Acc>();
    int* bad = bad_label.data_ptr<int>();
    cudaError_t error;
    if (features.scalar_type() == at::kHalf) {
      const auto* x = reinterpret_cast<const __half*>(features.data_ptr<at::Half>());
      error = kernels::launch_center_forward(x, c, y, n, d, num_classes, out, loss, bad, stream);
    } else if (features.scalar_type() == at::kBFloat16) {
      const auto* x = reinterpret_cast<const __nv_bfloat16*>(features.data_ptr<at::BFloat16>());
      error = kernels::launch_center_forward(x, c, y, n, d, num_classes, out, loss, bad, stream);
    } else {
      error = kernels::launch_center_forward(features.data_ptr<Acc>(), c, y, n, d, num_classes, out, loss, bad,
                                             stream);
    }
    check_cuda(error, "center_forward_kernel");
  });
  return bad_label.item<int>() == 0;  // one 4-byte read, like the label check of the ATen path
}

/// registry: update (atomics, or the deterministic segments).
inline void center_update(const at::Tensor& centers, const at::Tensor& diff, const at::Tensor& labels, double alpha,
                          bool deterministic) {
  const c10::cuda::CUDAGuard guard(diff.device());
  const int64_t n = diff.size(0), d = diff.size(1), num_classes = centers.size(0);
  if (n == 0) return;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  if (deterministic) {
    const LabelSegments s = label_segments(labels);
    AT_DISPATCH_FLOATING_TYPES(centers.scalar_type(), "torchloss_center_update_cuda", [&] {
      check_cuda(kernels::launch_center_update_segmented(centers.data_ptr<scalar_t>(), diff.data_ptr<scalar_t>(),
                                                         s.order.data_ptr<int64_t>(), s.starts.data_ptr<int64_t>(),
                                                         s.classes.data_ptr<int64_t>(), s.size, d, alpha, stream),
                 "center_update_segmented_kernel");
    });
  } else {
    // C ints, zeroed by one memset: the only C-sized work of a step (0.4 MB at C = 10^5).
    auto counts = at::empty({num_classes}, labels.options().dtype(at::kInt));
    AT_DISPATCH_FLOATING_TYPES(centers.scalar_type(), "torchloss_center_update_cuda", [&] {
      check_cuda(kernels::launch_center_update_atomic(centers.data_ptr<scalar_t>(), diff.data_ptr<scalar_t>(),
                                                      labels.data_ptr<int64_t>(), counts.data_ptr<int>(),
                                                      num_classes, n, d, alpha, stream),
                 "center_update_atomic_kernel");
    });
  }
}

/// registry: class_sums (float64 sums and counts of the classes present, ascending).
inline void center_class_sums(const at::Tensor& diff, const at::Tensor& labels, at::Tensor& classes, at::Tensor& sums,
                              at::Tensor& counts) {
  const c10::cuda::CUDAGuard guard(diff.device());
  const int64_t d = diff.size(1);
  const LabelSegments s = label_segments(labels);
  classes = s.classes;
  counts = s.counts.to(at::kDouble);
  sums = at::empty({s.size, d}, diff.options().dtype(at::kDouble));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(diff.scalar_type(), "torchloss_center_class_sums_cuda", [&] {
    check_cuda(kernels::launch_class_sums_segmented(sums.data_ptr<double>(), diff.data_ptr<scalar_t>(),
                                                    s.order.data_ptr<int64_t>(), s.starts.data_ptr<int64_t>(), s.size,
                                                    d, stream),
               "class_sums_segmented_kernel");
  });
}

/// registry: apply_class_sums.
inline void center_apply_class_sums(const at::Tensor& centers, const at::Tensor& classes, const at::Tensor& sums,
                                    const at::Tensor& counts, double alpha) {
  const c10::cuda::CUDAGuard guard(centers.device());
  const auto classes_c = classes.contiguous();
  const auto sums_c = sums.to(at::kDouble).contiguous();
  const auto counts_c = counts.to(at::kDouble).contiguous();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(centers.scalar_type(), "torchloss_center_apply_cuda", [&] {
    check_cuda(kernels::launch_apply_class_sums(centers.data_ptr<scalar_t>(), classes_c.data_ptr<int64_t>(),
                                                sums_c.data_ptr<double>(), counts_c.data_ptr<double>(),
                                                classes_c.numel(), centers.size(1), alpha, stream),
               "apply_class_sums_kernel");
  });
}

}  // namespace detail
}  // namespace cuda
}  // namespace torchloss
