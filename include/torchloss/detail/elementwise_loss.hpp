#pragma once
/// \file elementwise_loss.hpp
/// \brief Shared machinery of the sigmoid (binary and multi-label) losses, whose loss is a
/// sum of independent per-element terms ℓ(x, y): a broadcast weight, target checks, dtype,
/// reductions, fused CPU kernels, the device-agnostic ATen path and the autograd function.
/// A loss supplies a `Term` policy with `value(x, y, params)` and `grad(x, y, params)`
/// (∂ℓ/∂x), written once as templates that work on scalars (CPU kernels) and on tensors
/// (ATen path), through the overloads in ops.hpp.

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/ops.hpp>
#include <torchloss/detail/reduction.hpp>
#include <torchloss/detail/kernel_utils.hpp>

#include <ATen/Parallel.h>


namespace torchloss {
namespace detail {

/// A weight broadcast to an input, encoded for the fused kernels: element i of the flattened
/// input reads values()[(i / inner()) % period()]. A weight whose non-1 dims form one block
/// of the input's dims is read in place (period = the block's size, inner = the size of the
/// dims after it); any other weight is materialised to the input's shape (period = numel,
/// inner = 1). The ATen path reads broadcastable(), which needs no division, so an empty
/// input (inner or period 0 in the formula) is no special case there; inner() and period()
/// are at least 1, so index() never divides by zero either.
class BroadcastWeight {
 public:
  /// No weight: every element weighs 1.
  BroadcastWeight() = default;

  /// Encodes `weight` (undefined: none), broadcastable to `input_sizes`, in `dtype`.
  BroadcastWeight(const torch::Tensor& weight, torch::IntArrayRef input_sizes, torch::ScalarType dtype) {
    if (!weight.defined()) return;
    const int64_t input_dim = static_cast<int64_t>(input_sizes.size());
    const int64_t offset = input_dim - weight.dim();
    int64_t first = -1, last = -1;
    for (int64_t d = 0; d < weight.dim(); ++d) {
      if (weight.size(d) != 1) {
        if (first < 0) first = d + offset;
        last = d + offset;
      }
    }
    bool block = true;
    for (int64_t d = first; first >= 0 && d <= last; ++d) block = block && weight.size(d - offset) == input_sizes[d];
    if (!block) {
      values_ = weight.to(dtype).expand(input_sizes).contiguous();
      shape_ = input_sizes.vec();
      period_ = std::max<int64_t>(1, values_.numel());
      return;
    }
    values_ = weight.to(dtype).contiguous();
    shape_ = weight.sizes().vec();
    period_ = std::max<int64_t>(1, values_.numel());
    int64_t inner = 1;
    if (first < 0) {
      inner = c10::multiply_integers(input_sizes);  // one value for the whole input
    } else {
      for (int64_t d = last + 1; d < input_dim; ++d) inner *= input_sizes[d];
    }
    inner_ = std::max<int64_t>(1, inner);
  }

  /// Whether there is a weight.
  bool defined() const { return values_.defined(); }
  /// The weight values (contiguous, compute dtype); undefined when there is no weight.
  const torch::Tensor& values() const { return values_; }
  /// Elements that share one weight value before the index advances (>= 1).
  int64_t inner() const { return inner_; }
  /// Distinct weight values along the pattern (>= 1).
  int64_t period() const { return period_; }
  /// The index into values() of flattened element i.
  int64_t index(int64_t i) const { return (i / inner_) % period_; }

  /// The values in a shape that broadcasts to the input (ATen path; ones({}) without weight).
  torch::Tensor broadcastable(const torch::TensorOptions& options) const {
    return defined() ? values_.view(shape_) : torch::ones({}, options);
  }
  /// The values expanded to the input's shape (a view, no copy; ones without weight).
  torch::Tensor expanded(const torch::Tensor& input) const {
    return broadcastable(input.options()).expand(input.sizes());
  }

  /// The integers that, with values(), rebuild this encoding (for an autograd context).
  std::vector<int64_t> layout() const {
    std::vector<int64_t> packed{inner_, period_};
    packed.insert(packed.end(), shape_.begin(), shape_.end());
    return packed;
  }
  /// Rebuilds an encoding from values() and layout().
  static BroadcastWeight from_layout(torch::Tensor values, const std::vector<int64_t>& packed) {
    BroadcastWeight b;
    b.values_ = std::move(values);
    b.inner_ = packed.at(0);
    b.period_ = packed.at(1);
    b.shape_.assign(packed.begin() + 2, packed.end());
    return b;
  }

  /// Calls `run(begin, length, w, w_stride)` over [begin, end) in runs along which the weight
  /// index is either constant (w_stride 0: w[0] for the whole run) or advances with the
  /// element (w_stride 1: w[k] for element begin + k). `w` is values()' data (ignored, and a
  /// pointer to 1 passed instead, without weight).
  template <typename T, typename Run>
  void for_runs(int64_t begin, int64_t end, const T* w, Run run) const {
    static const T one = 1;
    if (!defined()) {
      if (begin < end) run(begin, end - begin, &one, std::integral_constant<int, 0>());
      return;
    }
    for (int64_t i = begin; i < end;) {
      int64_t length;
      if (inner_ == 1) {
        const int64_t j = i % period_;
        length = std::min(end - i, period_ - j);
        run(i, length, w + j, std::integral_constant<int, 1>());
      } else {
        const int64_t segment = i / inner_;
        length = std::min(end - i, (segment + 1) * inner_ - i);
        run(i, length, w + segment % period_, std::integral_constant<int, 0>());
      }
      i += length;
    }
  }

 private:
  torch::Tensor values_;
  std::vector<int64_t> shape_;  ///< the shape values_ broadcasts from
  int64_t inner_ = 1, period_ = 1;
};

/// The encoding of `weight` (undefined: none) for `input`, in `dtype`.
inline BroadcastWeight broadcast_weight(const torch::Tensor& weight, const torch::Tensor& input,
                                        torch::ScalarType dtype) {
  return BroadcastWeight(weight, input.sizes(), dtype);
}

/// The weights of elements k.. of a run as a V: loaded when the weight advances with the
/// element (stride 1), broadcast when it is constant along the run (stride 0).
template <typename V, typename T, int Stride>
inline V weight_at(const T* w, int64_t k, std::integral_constant<int, Stride>) {
  if constexpr (Stride == 1) {
    return load<V>(w + k);
  } else {
    return splat<V>(w[0]);
  }
}

/// Marks the lanes of y outside [0, 1] in `lanes` (vectors) or `scalar` (the scalar tail);
/// NaN fails both comparisons and is not marked.
template <typename Mask, typename V>
inline void note_outside_unit(Mask& lanes, bool& scalar, const V& y) {
  if constexpr (is_simd_v<V>) {
    lanes |= (y < 0) | (y > 1);
  } else {
    scalar = scalar || y < 0 || y > 1;
  }
}

/// Grain of the element-wise parallel loops.
constexpr int64_t kElementGrain = 32768;

/// Fused CPU forward: per-element losses (kNone) or their sum, and whether a target fell
/// outside [0, 1]. With `grad_out`, the same pass also writes grad_factor·w·∂ℓ/∂x there: in
/// training the backward then at most scales it, and value and gradient share their exp/log work.
template <class Term, typename T>
torch::Tensor elementwise_forward_cpu(const torch::Tensor& x_t, const torch::Tensor& y_t, const BroadcastWeight& b,
                                      int64_t reduction, const typename Term::Params& params, bool& bad_target,
                                      T* grad_out = nullptr, double grad_factor = 1) {
  const T* x = x_t.data_ptr<T>();
  const T* y = y_t.data_ptr<T>();
  const T* w = b.defined() ? b.values().template data_ptr<T>() : nullptr;
  const int64_t n = x_t.numel();
  const bool keep_elements = reduction == at::Reduction::None;
  auto losses = torch::empty(keep_elements ? x_t.sizes() : torch::IntArrayRef{}, x_t.options());
  T* out = losses.template data_ptr<T>();
  const int64_t chunks = (n + kElementGrain - 1) / kElementGrain;
  std::vector<double> chunk_sum(static_cast<size_t>(chunks), 0.0);
  std::atomic<bool> bad{false};
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      const int64_t begin = chunk * kElementGrain, end = std::min(n, begin + kElementGrain);
      T total = 0;
      bool bad_chunk = false;
      dispatch_simd<T>([&](auto width) {
        using W = decltype(width);
        // Local copies: the vector stores may alias anything (they go through memcpy), so
        // options read through a reference would be reloaded and re-broadcast per element.
        const typename Term::Params local_params = params;
        const T factor = static_cast<T>(grad_factor);
        // Lanes whose target fell outside [0, 1], OR-ed over the chunk (NaN fails both
        // comparisons: it is not counted).
        auto outside = decltype(W{} < W{}){};
        bool outside_tail = false;
        b.for_runs(begin, end, w, [&](int64_t i0, int64_t length, const T* wr, auto w_stride) {
          const T* xr = x + i0;
          const T* yr = y + i0;
          const auto element_loss = [&](int64_t k, auto tag) {
            using V = decltype(tag);
            const V xk = load<V>(xr + k), yk = load<V>(yr + k), wk = weight_at<V>(wr, k, w_stride);
            note_outside_unit(outside, outside_tail, yk);
            if (grad_out) store(grad_out + i0 + k, wk * factor * Term::grad(xk, yk, local_params));
            return wk * Term::value(xk, yk, local_params);
          };
          if (keep_elements) {
            simd_for<T, W>(length, [&](int64_t k, auto tag) { store(out + i0 + k, element_loss(k, tag)); });
          } else {
            total += simd_sum<T, W>(length, element_loss);
          }
        });
        bad_chunk = outside_tail;
        if constexpr (is_simd_v<W>) {
          for (int j = 0; j < lanes_v<W>; ++j) bad_chunk = bad_chunk || outside[j] != 0;
        }
      });
      chunk_sum[static_cast<size_t>(chunk)] = static_cast<double>(total);
      if (bad_chunk) bad = true;
    }
  });
  bad_target = bad;
  if (!keep_elements) {
    double total = 0;
    for (double s : chunk_sum) total += s;
    losses.fill_(total);
  }
  return losses;
}

/// The weight as a tensor that broadcasts to x, for the ATen path.
inline torch::Tensor aten_weight(const BroadcastWeight& b, const torch::Tensor& x) {
  return b.broadcastable(x.options());
}

/// The autograd function of every element-wise loss. Its backward is differentiable when it
/// runs with grad mode on (`create_graph`): the gradient is then computed from the saved
/// input through the ATen formulas, so second derivatives are exact on every path.
template <class Term>
struct ElementwiseLossFunction : public torch::autograd::Function<ElementwiseLossFunction<Term>> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const torch::Tensor& input, const torch::Tensor& target,
                                                const optional<torch::Tensor>& weight, const char* fn,
                                                int64_t reduction, int64_t group, bool precompute_grad,
                                                typename Term::Params params) {
    const auto dtype = compute_dtype(input.scalar_type());
    const auto x = input.to(dtype).contiguous();
    const auto y = target.to(dtype).contiguous();
    const auto b = broadcast_weight(weight.value_or(torch::Tensor()), input, dtype);
    torch::Tensor losses, grad;
    // One output per group of `group` consecutive elements (a row of a multi-label loss).
    const double count = static_cast<double>(input.numel() / group);
    if (x.device().is_cpu() && !force_aten_path) {
      bool bad_target = false;
      if (precompute_grad) grad = torch::empty_like(x);
      // A reduced loss's precomputed gradient is ∂loss/∂x itself (kMean's 1/count folded in).
      const double grad_factor = reduction == at::Reduction::Mean ? (count > 0 ? 1 / count : 0.0) : 1.0;
      AT_DISPATCH_FLOATING_TYPES(dtype, "torchloss_elementwise_forward", [&] {
        losses = elementwise_forward_cpu<Term, scalar_t>(x, y, b, reduction, params, bad_target,
                                                         precompute_grad ? grad.data_ptr<scalar_t>() : nullptr,
                                                         grad_factor);
      });
      if (bad_target) check_probabilities(fn, target);
    } else {
      check_probabilities(fn, target);
      losses = aten_weight(b, x) * Term::value(x, y, params);
      if (reduction != at::Reduction::None) losses = losses.sum();
    }
    // The input itself as well: a backward under create_graph differentiates through it.
    ctx->save_for_backward({x, y, b.values(), grad, input});
    ctx->saved_data["weight_layout"] = b.layout();
    ctx->saved_data["reduction"] = reduction;
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(input.scalar_type());
    ctx->saved_data["group"] = group;
    ctx->saved_data["params"] = params.pack();
    // losses already holds the sum for kSum/kMean; kMean divides by the output count.
    auto loss = losses;
    if (reduction == at::Reduction::None && group > 1) loss = losses.view({-1, group}).sum(1);
    if (reduction == at::Reduction::Mean) loss = count > 0 ? losses / count : torch::zeros_like(losses);
    return {loss.to(input.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& y = saved[1];
    const auto b = BroadcastWeight::from_layout(saved[2], ctx->saved_data["weight_layout"].toIntVector());
    const auto& precomputed = saved[3];
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    const auto input_dtype = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    const int64_t group = ctx->saved_data["group"].toInt();
    const auto params = Term::Params::unpack(ctx->saved_data["params"].toDoubleVector());
    const auto& grad_output = grad_outputs[0];
    // Under create_graph the gradient must itself be differentiable: ATen formulas on the
    // saved input (its graph intact), never the forward's buffers.
    const bool differentiable = torch::GradMode::is_enabled();
    const auto x = differentiable ? saved[4].to(y.scalar_type()) : saved[0];
    torch::Tensor grad;
    if (!differentiable && precomputed.defined() && reduction != at::Reduction::None) {
      // The CPU kernel wrote ∂loss/∂x in the forward: scale it by the incoming gradient, or
      // hand it on as it is for the usual loss.backward() (the buffer is released with the
      // graph, so AccumulateGrad can keep it without a copy).
      const bool unit = grad_output.numel() == 1 && grad_output.device().is_cpu() && grad_output.item<double>() == 1;
      grad = unit ? precomputed : precomputed * grad_output.to(x.scalar_type());
    } else {
      auto scale = element_grad_scale(grad_output.to(x.scalar_type()), reduction, static_cast<double>(x.numel() / group));
      if (reduction == at::Reduction::None && group > 1) {
        scale = scale.reshape({-1, 1}).expand({-1, group}).reshape(x.sizes());
      }
      // kNone: the CPU kernel wrote w·∂ℓ/∂x in the forward; the ATen path computes it here.
      grad = !differentiable && precomputed.defined() ? precomputed * scale
                                                      : scale * aten_weight(b, x) * Term::grad(x, y, params);
    }
    return {grad.to(input_dtype), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Validates the shared arguments of an element-wise loss and applies it.
/// `group` > 1 sums each run of `group` consecutive elements into one output (kNone gives
/// input.numel() / group values; kMean divides by that count).
template <class Term>
torch::Tensor elementwise_loss(const char* fn, const torch::Tensor& input, const torch::Tensor& target,
                               const torch::Tensor& weight, int64_t reduction, const typename Term::Params& params,
                               int64_t group = 1) {
  check_same_shape_target(fn, input, target);
  check_broadcast_weight(fn, input, weight);
  const optional<torch::Tensor> maybe_weight = weight.defined() ? optional<torch::Tensor>(weight) : c10::nullopt;
  // In training the forward also writes the gradient (the backward then at most scales it).
  const bool precompute_grad = torch::GradMode::is_enabled() && input.requires_grad();
  return ElementwiseLossFunction<Term>::apply(input, target, maybe_weight, fn, reduction, std::max<int64_t>(group, 1),
                                              precompute_grad,
                                              params)[0];
}

}  // namespace detail
}  // namespace torchloss
