#pragma once
/// \file row_loss.hpp
/// \brief Shared machinery of the losses whose sample i is a function of the whole logit row
/// \f$x_i\f$ [C] and per-row data (a soft target row, two labels, a teacher row, a label and
/// class counts): soft-target and mixup cross entropy, distillation, Seesaw.
///
/// Such a loss supplies only a row computation: given row i it returns \f$\ell_i\f$ and, when
/// asked, writes \f$\partial \ell_i / \partial x_i\f$ (the row's gradient, unscaled) into the
/// row of a gradient buffer. The fused CPU kernel computes both in one pass per row (its row
/// stays in cache); the ATen path computes the same formulas with tensor ops. The autograd
/// function below then owns everything else: dtypes, reductions (kMean over the N rows), the
/// gradient written in the forward (kMean's 1/N folded in), which the backward hands on as it
/// is for a unit upstream gradient, or scales by the upstream gradient.

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/fast_math.hpp>
#include <torchloss/detail/kernel_utils.hpp>
#include <torchloss/detail/reduction.hpp>

#include <ATen/Parallel.h>

#include <array>
#include <atomic>
#include <functional>

namespace torchloss {
namespace detail {

/// What a row loss's forward returns: per-row losses [N] and, when asked for, the gradient
/// [N, C] of \f$\sum_i f \ell_i\f$ with respect to the logits (f = `grad_factor`), both in the
/// compute dtype.
struct RowLossOutput {
  torch::Tensor losses, grad;
};

/// The row computation of a loss: (logits [N, C] contiguous in the compute dtype, whether to
/// write the gradient, the factor f of that gradient) -> RowLossOutput.
using RowLossCompute = std::function<RowLossOutput(const torch::Tensor& x, bool with_grad, double grad_factor)>;

/// Sum of the lanes of v by halves (log2 of the lanes dependent additions, not one per lane):
/// a row's closing reductions are a fixed cost per row, which short rows (C = 80) feel.
template <typename V>
inline lane_t<V> lane_sum_tree(V v) {
  if constexpr (is_simd_v<V>) {
    constexpr int lanes = static_cast<int>(lanes_v<V>);
    lane_t<V> part[lanes];
    for (int j = 0; j < lanes; ++j) part[j] = v[j];
    for (int width = lanes / 2; width > 0; width /= 2) {
      for (int j = 0; j < width; ++j) part[j] += part[j + width];
    }
    return part[0];
  } else {
    return v;
  }
}

/// Σ_{k<n} of K quantities at once: `f(k, tag)` returns std::array<V, K> of the V of its tag
/// (vector lanes, then the scalar tail), so one pass over a row feeds several sums.
template <typename T, typename V, size_t K, typename F>
inline std::array<T, K> simd_sums(int64_t n, F&& f) {
  constexpr int64_t width = lanes_v<V>;
  std::array<V, K> acc{};
  int64_t k = 0;
  for (; k + width <= n; k += width) {
    const std::array<V, K> terms = f(k, V{});
    for (size_t j = 0; j < K; ++j) acc[j] += terms[j];
  }
  std::array<T, K> total{};
  for (size_t j = 0; j < K; ++j) total[j] = lane_sum_tree(acc[j]);
  for (; k < n; ++k) {
    const std::array<T, K> terms = f(k, T{});
    for (size_t j = 0; j < K; ++j) total[j] += terms[j];
  }
  return total;
}

/// Runs `row(i, width_tag)` for every row on the CPU: rows split over ATen's threads (about
/// 32K elements a task), each task's rows in the widest SIMD width (dispatch_simd), float
/// denormals flushed (the e^{x − max} of far-below-max logits).
template <typename T, typename Row>
inline void for_each_row_cpu(int64_t rows, int64_t classes, Row&& row) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(classes, 1)),
                   [&](int64_t begin, int64_t end) {
                     const ScopedFlushDenormals flush(std::is_same<T, float>::value);
                     dispatch_simd<T>([&](auto width) {
                       for (int64_t i = begin; i < end; ++i) row(i, width);
                     });
                   });
}

/// The row statistics of a softmax: the row max m and log Σ_c e^{x_c − m}, so that
/// log p_c = (x_c − m) − log_sum keeps the precision that x_c − lse loses at large |x|.
template <typename T>
struct RowSoftmax {
  T max, log_sum;
};

/// A row's softmax statistics in two passes over the row (max, then Σ exp).
template <typename T, typename W>
inline RowSoftmax<T> row_softmax(const T* xr, int64_t classes) {
  const T m = simd_max<T, W>(xr, classes);
  const T sum_exp = simd_sum<T, W>(classes, [&](int64_t c, auto tag) {
    using V = decltype(tag);
    return fast::exp(load<V>(xr + c) - m);
  });
  return {m, std::log(sum_exp)};
}

/// The autograd function of every row loss: the forward runs the loss's RowLossCompute,
/// reduces, and keeps the gradient it wrote; the backward scales that gradient.
struct RowLossFunction : public torch::autograd::Function<RowLossFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                                                const char* fn, const RowLossCompute& compute, int64_t reduction,
                                                bool with_grad) {
    const auto x = to_compute(input, input.scalar_type());
    const int64_t rows = x.size(0);
    // The gradient written in the forward is that of the reduced loss for a unit upstream
    // gradient: kMean's 1/N folded in (0 for an empty batch, whose kMean is 0).
    const double grad_factor = reduction == at::Reduction::Mean ? (rows > 0 ? 1.0 / rows : 0.0) : 1.0;
    RowLossOutput out = compute(x, with_grad, grad_factor);
    ctx->save_for_backward({out.grad});
    ctx->saved_data["reduction"] = reduction;
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(input.scalar_type());
    ctx->saved_data["fn"] = std::string(fn);
    return {reduce_loss(out.losses, reduction, static_cast<double>(rows)).to(input.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    check_no_double_backward(ctx->saved_data["fn"].toStringRef().c_str());
    const auto grad = ctx->get_saved_variables()[0];
    TORCH_CHECK(grad.defined(), "torchloss: a row loss was differentiated although its forward ran without grad mode");
    const auto input_dtype = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    const auto& grad_output = grad_outputs[0];
    torch::Tensor result;
    if (ctx->saved_data["reduction"].toInt() == at::Reduction::None) {
      result = grad * grad_output.to(grad.scalar_type()).unsqueeze(1);
    } else {
      // The usual loss.backward(): hand the buffer on (released with the graph, so
      // AccumulateGrad can keep it without a copy).
      const bool unit = grad_output.numel() == 1 && grad_output.device().is_cpu() && grad_output.item<double>() == 1;
      result = unit ? grad : grad * grad_output.to(grad.scalar_type());
    }
    return {result.to(input_dtype), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Applies a row loss to logits [N, C] (already validated): the gradient is written in the
/// forward only when one will be asked for (grad mode on and the input requires it).
inline torch::Tensor row_loss(const char* fn, const torch::Tensor& input, const RowLossCompute& compute,
                              int64_t reduction) {
  const bool with_grad = torch::GradMode::is_enabled() && input.requires_grad();
  return RowLossFunction::apply(input, fn, compute, reduction, with_grad)[0];
}

/// Logits for a row loss: a defined floating tensor [N, C] with C >= 1.
inline void check_row_logits(const char* fn, const torch::Tensor& input, const char* name = "input") {
  check_logits(fn, input, name);
  TORCH_CHECK(input.dim() == 2, fn, ": ", name, " must have shape [N, C], got ", shape_str(input));
  TORCH_CHECK(input.size(1) >= 1, fn, ": ", name, " needs at least one class, got shape ", shape_str(input));
}

/// Class labels for logits [N, C]: int64 [N] on the input's device (values: check_labels).
inline void check_row_labels(const char* fn, const torch::Tensor& input, const torch::Tensor& labels,
                             const char* name) {
  TORCH_CHECK(labels.defined(), fn, ": ", name, " is an undefined tensor");
  TORCH_CHECK(labels.scalar_type() == torch::kLong, fn, ": ", name, " must hold int64 class indices, got ",
              labels.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == input.size(0), fn, ": ", name, " must have shape [",
              input.size(0), "] for input ", shape_str(input), ", got ", shape_str(labels));
  check_same_device(fn, input, labels, name);
}

/// Raises the error for the first label outside [0, classes) (these losses have no ignore_index).
inline void check_labels(const char* fn, const torch::Tensor& labels, int64_t classes, const char* name) {
  const auto bad = (labels < 0) | (labels >= classes);
  if (!bad.any().item<bool>()) return;
  const int64_t value = labels.masked_select(bad)[0].item<int64_t>();
  TORCH_CHECK(false, fn, ": ", name, " label ", value, " is outside [0, ", classes, ")");
}

}  // namespace detail
}  // namespace torchloss
