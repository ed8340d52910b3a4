#pragma once
/// \file checks.hpp
/// \brief Input validation shared by every loss. Each message starts with the public
/// function's name ("torchloss::focal_loss: ") and names the argument and the bad value.

#include <torchloss/detail/compat.hpp>

#include <sstream>
#include <string>

namespace torchloss {
namespace detail {

/// Formats a shape as "[2, 3]".
inline std::string shape_str(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

/// Whether torchloss computes in this dtype: float, double, and half / bfloat16 (computed in
/// float). LibTorch 2.x's `at::isFloatingType` also accepts the Float8 and Float4 variants,
/// which no kernel here (nor most of ATen) takes: they get a torchloss error, not ATen's.
inline bool is_supported_float(c10::ScalarType dtype) {
  return dtype == torch::kFloat || dtype == torch::kDouble || dtype == torch::kHalf || dtype == torch::kBFloat16;
}

/// Logits must be a defined floating-point tensor.
inline void check_logits(const char* fn, const torch::Tensor& input, const char* name = "input") {
  TORCH_CHECK(input.defined(), fn, ": ", name, " is an undefined tensor");
  TORCH_CHECK(is_supported_float(input.scalar_type()), fn, ": ", name,
              " must be a floating-point tensor (float, double, half or bfloat16), got ",
              input.scalar_type());
}

/// `other` must live on `input`'s device.
inline void check_same_device(const char* fn, const torch::Tensor& input, const torch::Tensor& other,
                              const char* name) {
  TORCH_CHECK(other.device() == input.device(), fn, ": ", name, " is on ", other.device(),
              " but input is on ", input.device());
}

/// A class-index target for a class-dim input [N, C, d...]: int64 of shape [N, d...]
/// on the input's device. Label values are checked by the kernels that read them.
inline void check_class_target(const char* fn, const torch::Tensor& input, const torch::Tensor& target) {
  check_logits(fn, input);
  TORCH_CHECK(input.dim() >= 2, fn, ": input must have shape [N, C] or [N, C, d1, ...], got ",
              shape_str(input));
  TORCH_CHECK(input.size(1) >= 1, fn, ": input needs at least one class, got shape ", shape_str(input));
  TORCH_CHECK(target.defined(), fn, ": target is an undefined tensor");
  TORCH_CHECK(target.scalar_type() == torch::kLong, fn,
              ": target must hold int64 class indices, got ", target.scalar_type());
  check_same_device(fn, input, target, "target");
  bool shape_ok = target.dim() == input.dim() - 1 && target.size(0) == input.size(0);
  for (int64_t d = 2; shape_ok && d < input.dim(); ++d) {
    shape_ok = target.size(d - 1) == input.size(d);
  }
  TORCH_CHECK(shape_ok, fn, ": target shape ", shape_str(target), " does not match input shape ",
              shape_str(input), " (expected [N, d1, ...] for input [N, C, d1, ...])");
}

/// Raises the error for the first label outside [0, num_classes) that is not ignore_index.
/// Called by kernels after they found one, and by the device-agnostic path.
inline void check_labels_in_range(const char* fn, const torch::Tensor& target, int64_t num_classes,
                                  int64_t ignore_index) {
  const auto bad = ((target < 0) | (target >= num_classes)) & (target != ignore_index);
  if (!bad.any().item<bool>()) return;
  const int64_t value = target.masked_select(bad).flatten()[0].item<int64_t>();
  TORCH_CHECK(false, fn, ": target label ", value, " is outside [0, ", num_classes,
              ") and is not ignore_index (", ignore_index, ")");
}

/// An optional per-class vector: undefined, or floating [num_classes] on the input's device.
inline void check_class_vector(const char* fn, const torch::Tensor& input, const torch::Tensor& vec,
                               int64_t num_classes, const char* name) {
  if (!vec.defined()) return;
  TORCH_CHECK(is_supported_float(vec.scalar_type()), fn, ": ", name,
              " must be a floating-point tensor, got ", vec.scalar_type());
  TORCH_CHECK(vec.dim() == 1 && vec.size(0) == num_classes, fn, ": ", name, " must have shape [",
              num_classes, "] (one entry per class), got ", shape_str(vec));
  check_same_device(fn, input, vec, name);
}

/// A float target of exactly the input's shape and device (no broadcasting).
inline void check_same_shape_target(const char* fn, const torch::Tensor& input, const torch::Tensor& target) {
  check_logits(fn, input);
  TORCH_CHECK(target.defined(), fn, ": target is an undefined tensor");
  TORCH_CHECK(is_supported_float(target.scalar_type()), fn,
              ": target must be a floating-point tensor of probabilities, got ", target.scalar_type());
  TORCH_CHECK(target.sizes() == input.sizes(), fn, ": target shape ", shape_str(target),
              " must equal input shape ", shape_str(input));
  check_same_device(fn, input, target, "target");
}

/// Raises the error for the first target value outside [0, 1] (NaN passes: it propagates).
inline void check_probabilities(const char* fn, const torch::Tensor& target) {
  const auto bad = (target < 0) | (target > 1);
  if (!bad.any().item<bool>()) return;
  const double value = target.masked_select(bad).flatten()[0].item<double>();
  TORCH_CHECK(false, fn, ": target value ", value, " is outside [0, 1]");
}

/// A weight that broadcasts to the input's shape without enlarging it.
inline void check_broadcast_weight(const char* fn, const torch::Tensor& input, const torch::Tensor& weight) {
  if (!weight.defined()) return;
  TORCH_CHECK(is_supported_float(weight.scalar_type()), fn,
              ": weight must be a floating-point tensor, got ", weight.scalar_type());
  bool ok = weight.dim() <= input.dim();
  for (int64_t d = 1; ok && d <= weight.dim(); ++d) {
    const int64_t w = weight.size(-d);
    ok = w == 1 || w == input.size(-d);
  }
  TORCH_CHECK(ok, fn, ": weight shape ", shape_str(weight), " does not broadcast to input shape ",
              shape_str(input));
  check_same_device(fn, input, weight, "weight");
}

/// Called first in the backward of a loss whose backward is not itself differentiable: under
/// create_graph=true (grad mode on inside the backward) its second derivative would silently
/// come out as nothing, so the call is refused instead.
inline void check_no_double_backward(const char* fn) {
  TORCH_CHECK(!torch::GradMode::is_enabled(), fn,
              ": double backward (backward with create_graph=true) is not supported by this loss");
}

/// A scalar option inside [low, high] (NaN fails).
inline void check_range(const char* fn, const char* name, double value, double low, double high) {
  TORCH_CHECK(value >= low && value <= high, fn, ": ", name, " must be in [", low, ", ", high,
              "], got ", value);
}

}  // namespace detail
}  // namespace torchloss
