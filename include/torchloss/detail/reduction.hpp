#pragma once
/// \file reduction.hpp
/// \brief Dtype promotion, reductions and the upstream-gradient scale shared by every loss.

#include <torchloss/detail/compat.hpp>

namespace torchloss {
namespace detail {

/// The dtype the kernels compute in: float for float16/bfloat16, the input's otherwise.
inline torch::ScalarType compute_dtype(torch::ScalarType input_dtype) {
  return (input_dtype == torch::kHalf || input_dtype == torch::kBFloat16) ? torch::kFloat : input_dtype;
}

/// `t` as a contiguous tensor of the compute dtype (no copy when it already is one).
inline torch::Tensor to_compute(const torch::Tensor& t, torch::ScalarType input_dtype) {
  return t.to(compute_dtype(input_dtype)).contiguous();
}

/// Reduces per-element losses: kNone keeps them, kSum adds them, kMean divides the sum by
/// `denominator` and returns 0 (not NaN) when the denominator is 0.
inline torch::Tensor reduce_loss(const torch::Tensor& losses, int64_t reduction, double denominator) {
  switch (static_cast<at::Reduction::Reduction>(reduction)) {
    case at::Reduction::None:
      return losses;
    case at::Reduction::Sum:
      return losses.sum();
    default:
      return denominator > 0 ? losses.sum() / denominator : losses.sum() * 0.0;
  }
}

/// The gradient reaching each element from the reduced output: the incoming gradient itself
/// for kNone and kSum (a scalar broadcasts), divided by the denominator for kMean (0 when
/// the denominator is 0, matching reduce_loss).
inline torch::Tensor element_grad_scale(const torch::Tensor& grad_output, int64_t reduction, double denominator) {
  if (static_cast<at::Reduction::Reduction>(reduction) == at::Reduction::Mean) {
    return denominator > 0 ? grad_output / denominator : torch::zeros_like(grad_output);
  }
  return grad_output;
}

}  // namespace detail
}  // namespace torchloss
