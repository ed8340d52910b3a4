#pragma once
/// \file softmax_loss.hpp
/// \brief Shared machinery of the softmax (multi-class) losses: layout, dtype, label checks,
/// class weights, ignore_index, label smoothing, reductions, the fused CPU kernels, the
/// device-agnostic ATen path and the autograd function. A loss supplies only its
/// target term (a `Term` policy):
///
///   value(log p_y)     the unweighted loss of one sample as a function of log p_y,
///   grad_logp(log p_y) its derivative with respect to log p_y.
///
/// With class weight w, smoothing ε and C classes, sample i's loss and logit gradient are
/// \f[ \ell_i = (1-\varepsilon)\, w_{y_i}\, \mathrm{value}(\log p_{i,y_i})
///            + \tfrac{\varepsilon}{C} \textstyle\sum_c w_c(\mathrm{lse}_i - x_{i,c}) \f]
/// \f[ \partial \ell_i / \partial x_{i,k} = (1-\varepsilon)\, w_{y_i}\, h_i\,(\delta_{k y_i} - p_{i,k})
///            + \tfrac{\varepsilon}{C}(W p_{i,k} - w_k), \quad h_i = \mathrm{grad\_logp}(\log p_{i,y_i}),
///            \; W = \textstyle\sum_c w_c \f]
/// since \f$\partial \log p_y / \partial x_k = \delta_{ky} - p_k\f$.

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/fast_math.hpp>
#include <torchloss/detail/kernel_utils.hpp>
#include <torchloss/detail/reduction.hpp>

#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>
#include <vector>

namespace torchloss {
namespace detail {

/// The options every softmax loss shares, as the autograd function carries them.
struct SoftmaxLossConfig {
  const char* fn;           ///< public function name, for error messages
  int64_t ignore_index;     ///< target value that contributes nothing
  double label_smoothing;   ///< ε in [0, 1]
  int64_t reduction;        ///< at::Reduction code
  bool weighted_mean;       ///< kMean divides by Σ w_y (cross entropy) or by the count (focal)
};

/// Tensors in the kernels' layout: x [rows, C] contiguous in the compute dtype, target [rows].
struct SoftmaxRows {
  torch::Tensor x, target, weight;
  int64_t rows = 0, classes = 0;
};

/// Moves the class dim last ([N, C, d...] -> [N·d..., C]) and converts to the compute dtype.
inline SoftmaxRows softmax_rows(const torch::Tensor& input, const torch::Tensor& target,
                                const torch::Tensor& weight) {
  SoftmaxRows r;
  const auto dtype = compute_dtype(input.scalar_type());
  r.classes = input.size(1);
  r.x = (input.dim() == 2 ? input : input.movedim(1, -1)).to(dtype).contiguous().view({-1, r.classes});
  r.rows = r.x.size(0);
  r.target = target.contiguous().view({-1});
  if (weight.defined()) r.weight = weight.to(dtype).contiguous();
  return r;
}

/// Undoes softmax_rows for a gradient [rows, C] -> the input's shape and dtype.
inline torch::Tensor from_softmax_rows(const torch::Tensor& grad_rows, std::vector<int64_t> input_sizes,
                                       torch::ScalarType dtype) {
  if (input_sizes.size() == 2) return grad_rows.to(dtype);
  const int64_t classes = input_sizes[1];
  input_sizes.erase(input_sizes.begin() + 1);
  input_sizes.push_back(classes);
  return grad_rows.view(input_sizes).movedim(-1, 1).to(dtype);
}

/// Forward results: per-row losses, the per-row statistics [rows, 2] saved for backward
/// (the row max m and log Σ_c e^{x_c − m}; log p_c = (x_c − m) − that, which keeps the
/// precision that x_c − lse loses at large |x|), and the kMean denominator.
struct SoftmaxForward {
  torch::Tensor losses, stats;
  double denominator = 0;
};

/// Σ_c w_c, or C without weights.
template <typename T>
inline T class_weight_total(const T* w, int64_t classes) {
  if (!w) return static_cast<T>(classes);
  return simd_sum<T>(classes, [&](int64_t c, auto tag) { return load<decltype(tag)>(w + c); });
}

/// Fused CPU forward: one pass for the row max, one for Σ exp (both over a row that stays in
/// cache), per row. Rows whose target is ignored are skipped.
template <class Term, typename T>
SoftmaxForward softmax_forward_cpu(const SoftmaxRows& r, const SoftmaxLossConfig& cfg,
                                   const typename Term::Params& params) {
  SoftmaxForward out;
  out.losses = torch::empty({r.rows}, r.x.options());
  out.stats = torch::zeros({r.rows, 2}, r.x.options());
  const T* x = r.x.data_ptr<T>();
  const int64_t* target = r.target.data_ptr<int64_t>();
  const T* w = r.weight.defined() ? r.weight.template data_ptr<T>() : nullptr;
  T* losses = out.losses.template data_ptr<T>();
  T* stats = out.stats.template data_ptr<T>();
  const int64_t C = r.classes;
  const T eps = static_cast<T>(cfg.label_smoothing);
  const T keep = T(1) - eps;
  const T w_total = class_weight_total(w, C);
  std::atomic<bool> bad_label{false};
  const int64_t grain = std::max<int64_t>(1, 32768 / C);
  // Per-chunk denominators, summed in a fixed order so results do not depend on scheduling.
  const int64_t chunks = (r.rows + grain - 1) / grain;
  std::vector<double> chunk_denominator(static_cast<size_t>(chunks), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      double denominator = 0;
      const int64_t row_end = std::min(r.rows, (chunk + 1) * grain);
      dispatch_simd<T>([&](auto width) {
        using W = decltype(width);
        for (int64_t i = chunk * grain; i < row_end; ++i) {
          const int64_t t = target[i];
          if (t == cfg.ignore_index) {
            losses[i] = 0;
            continue;
          }
          if (t < 0 || t >= C) {
            bad_label = true;
            losses[i] = 0;
            continue;
          }
          const T* xr = x + i * C;
          const T m = simd_max<T, W>(xr, C);
          const T sum_exp = simd_sum<T, W>(C, [&](int64_t c, auto tag) {
            using V = decltype(tag);
            return fast::exp(load<V>(xr + c) - m);
          });
          const T log_sum = std::log(sum_exp);
          stats[2 * i] = m;
          stats[2 * i + 1] = log_sum;
          const T w_y = w ? w[t] : T(1);
          T loss = keep * w_y * Term::value((xr[t] - m) - log_sum, params);
          if (eps > 0) {
            // Σ_c w_c (lse − x_c) = W log_sum + Σ_c w_c (m − x_c).
            const T weighted_gap = simd_sum<T, W>(C, [&](int64_t c, auto tag) {
              using V = decltype(tag);
              const V gap = m - load<V>(xr + c);
              return w ? load<V>(w + c) * gap : gap;
            });
            loss += eps / T(C) * (w_total * log_sum + weighted_gap);
          }
          losses[i] = loss;
          denominator += cfg.weighted_mean ? static_cast<double>(w_y) : 1.0;
        }
      });
      chunk_denominator[static_cast<size_t>(chunk)] = denominator;
    }
  });
  if (bad_label) check_labels_in_range(cfg.fn, r.target, C, cfg.ignore_index);
  for (double d : chunk_denominator) out.denominator += d;
  return out;
}

/// Fused CPU backward: one pass per row writing
/// grad_k = g·[p_k (ε W / C − (1−ε) w_y h) − ε w_k / C] + δ_{k y} g (1−ε) w_y h.
template <class Term, typename T>
torch::Tensor softmax_backward_cpu(const SoftmaxRows& r, const torch::Tensor& stats_tensor,
                                   const torch::Tensor& scale, const SoftmaxLossConfig& cfg,
                                   const typename Term::Params& params) {
  auto grad = torch::empty_like(r.x);
  const T* x = r.x.data_ptr<T>();
  const int64_t* target = r.target.data_ptr<int64_t>();
  const T* w = r.weight.defined() ? r.weight.template data_ptr<T>() : nullptr;
  const T* stats = stats_tensor.data_ptr<T>();
  const auto scale_c = scale.contiguous();
  const T* g = scale_c.data_ptr<T>();
  const int64_t g_stride = scale_c.numel() == 1 ? 0 : 1;
  T* out = grad.template data_ptr<T>();
  const int64_t C = r.classes;
  const T eps = static_cast<T>(cfg.label_smoothing);
  const T keep = T(1) - eps;
  const T w_total = class_weight_total(w, C);
  at::parallel_for(0, r.rows, std::max<int64_t>(1, 32768 / C), [&](int64_t begin, int64_t end) {
    dispatch_simd<T>([&](auto width) {
      using W = decltype(width);
      for (int64_t i = begin; i < end; ++i) {
        T* gr = out + i * C;
        const int64_t t = target[i];
        const T gi = g[i * g_stride];
        if (t == cfg.ignore_index) {
          std::fill(gr, gr + C, T(0));
          continue;
        }
        const T* xr = x + i * C;
        const T m = stats[2 * i], log_sum = stats[2 * i + 1];
        const T w_y = w ? w[t] : T(1);
        const T target_coef = gi * keep * w_y * Term::grad_logp((xr[t] - m) - log_sum, params);
        const T p_coef = gi * eps * w_total / T(C) - target_coef;
        const T smooth = gi * eps / T(C);
        simd_for<T, W>(C, [&](int64_t c, auto tag) {
          using V = decltype(tag);
          V grad_c = p_coef * fast::exp((load<V>(xr + c) - m) - log_sum);
          if (eps > 0) grad_c = grad_c - smooth * (w ? load<V>(w + c) : splat<V>(1));
          store(gr + c, grad_c);
        });
        gr[t] += target_coef;
      }
    });
  });
  return grad;
}

/// Device-agnostic forward with ATen ops (CUDA and any other device; same formulas).
template <class Term>
SoftmaxForward softmax_forward_aten(const SoftmaxRows& r, const SoftmaxLossConfig& cfg,
                                    const typename Term::Params& params) {
  check_labels_in_range(cfg.fn, r.target, r.classes, cfg.ignore_index);
  SoftmaxForward out;
  const auto valid = r.target != cfg.ignore_index;
  const auto safe_target = r.target.masked_fill(~valid, 0);
  const auto m = std::get<0>(r.x.max(1, /*keepdim=*/true));
  const auto gap = r.x - m;  // x_c − m
  const auto log_sum = gap.exp().sum(1).log();
  out.stats = torch::stack({m.squeeze(1), log_sum}, 1);
  const auto logp_y = gap.gather(1, safe_target.unsqueeze(1)).squeeze(1) - log_sum;
  const auto w_y = r.weight.defined() ? r.weight.index_select(0, safe_target) : torch::ones_like(log_sum);
  auto losses = (1 - cfg.label_smoothing) * w_y * Term::value(logp_y, params);
  if (cfg.label_smoothing > 0) {
    const auto w = r.weight.defined() ? r.weight : torch::ones({r.classes}, r.x.options());
    const auto smooth = log_sum * w.sum() - gap.matmul(w);
    losses = losses + cfg.label_smoothing / static_cast<double>(r.classes) * smooth;
  }
  const auto valid_f = valid.to(r.x.scalar_type());
  out.losses = losses * valid_f;
  const auto counted = cfg.weighted_mean ? (w_y * valid_f).sum() : valid_f.sum();
  out.denominator = counted.item<double>();
  return out;
}

/// Device-agnostic backward with ATen ops.
template <class Term>
torch::Tensor softmax_backward_aten(const SoftmaxRows& r, const torch::Tensor& stats, const torch::Tensor& scale,
                                    const SoftmaxLossConfig& cfg, const typename Term::Params& params) {
  const auto valid = r.target != cfg.ignore_index;
  const auto safe_target = r.target.masked_fill(~valid, 0);
  const auto g = scale.expand({r.rows}) * valid.to(r.x.scalar_type());
  // log p = (x − m) − log Σ e^{x − m}, from the forward's row statistics.
  const auto logp = (r.x - stats.select(1, 0).unsqueeze(1)) - stats.select(1, 1).unsqueeze(1);
  const auto logp_y = logp.gather(1, safe_target.unsqueeze(1)).squeeze(1);
  const auto w_y = r.weight.defined() ? r.weight.index_select(0, safe_target) : torch::ones_like(logp_y);
  const double eps = cfg.label_smoothing;
  const auto target_coef = g * (1 - eps) * w_y * Term::grad_logp(logp_y, params);
  const auto p = logp.exp();
  auto grad = p * (-target_coef).unsqueeze(1);
  if (eps > 0) {
    const auto w = r.weight.defined() ? r.weight : torch::ones({r.classes}, r.x.options());
    const auto smooth = (g * (eps / static_cast<double>(r.classes))).unsqueeze(1);
    grad = grad + smooth * (w.sum() * p - w.unsqueeze(0));
  }
  return grad.scatter_add(1, safe_target.unsqueeze(1), target_coef.unsqueeze(1));
}

/// The autograd function of every softmax loss: forward and analytic backward above, the
/// fused kernels on CPU, the ATen path elsewhere.
template <class Term>
struct SoftmaxLossFunction : public torch::autograd::Function<SoftmaxLossFunction<Term>> {
  static bool use_cpu_kernel(const torch::Tensor& x) {
    return x.device().is_cpu() && !force_aten_path;
  }

  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const torch::Tensor& input, const torch::Tensor& target,
                                                const optional<torch::Tensor>& weight, SoftmaxLossConfig cfg,
                                                typename Term::Params params) {
    const SoftmaxRows r = softmax_rows(input, target, weight.value_or(torch::Tensor()));
    SoftmaxForward f;
    if (use_cpu_kernel(r.x)) {
      AT_DISPATCH_FLOATING_TYPES(r.x.scalar_type(), "torchloss_softmax_forward", [&] {
        f = softmax_forward_cpu<Term, scalar_t>(r, cfg, params);
      });
    } else {
      f = softmax_forward_aten<Term>(r, cfg, params);
    }
    ctx->save_for_backward({r.x, r.target, r.weight, f.stats});
    ctx->saved_data["input_sizes"] = input.sizes().vec();
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(input.scalar_type());
    ctx->saved_data["denominator"] = f.denominator;
    ctx->saved_data["cfg"] = std::vector<double>{static_cast<double>(cfg.ignore_index), cfg.label_smoothing,
                                                 static_cast<double>(cfg.reduction),
                                                 cfg.weighted_mean ? 1.0 : 0.0};
    ctx->saved_data["params"] = params.pack();
    ctx->saved_data["fn"] = std::string(cfg.fn);
    auto loss = reduce_loss(f.losses, cfg.reduction, f.denominator);
    if (cfg.reduction == at::Reduction::None) {
      loss = loss.view(target.sizes());
    }
    return {loss.to(input.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    SoftmaxRows r;
    r.x = saved[0];
    r.target = saved[1];
    r.weight = saved[2];
    r.rows = r.x.size(0);
    r.classes = r.x.size(1);
    const auto& stats = saved[3];
    const auto packed = ctx->saved_data["cfg"].toDoubleVector();
    const std::string fn = ctx->saved_data["fn"].toStringRef();
    const SoftmaxLossConfig cfg{fn.c_str(), static_cast<int64_t>(packed[0]), packed[1],
                                static_cast<int64_t>(packed[2]), packed[3] != 0.0};
    const auto params = Term::Params::unpack(ctx->saved_data["params"].toDoubleVector());
    const double denominator = ctx->saved_data["denominator"].toDouble();
    const auto scale =
        element_grad_scale(grad_outputs[0].to(r.x.scalar_type()), cfg.reduction, denominator).reshape({-1});
    torch::Tensor grad;
    if (use_cpu_kernel(r.x)) {
      AT_DISPATCH_FLOATING_TYPES(r.x.scalar_type(), "torchloss_softmax_backward", [&] {
        grad = softmax_backward_cpu<Term, scalar_t>(r, stats, scale, cfg, params);
      });
    } else {
      grad = softmax_backward_aten<Term>(r, stats, scale, cfg, params);
    }
    const auto input_dtype = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    return {from_softmax_rows(grad, ctx->saved_data["input_sizes"].toIntVector(), input_dtype), torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

/// Validates the shared arguments of a softmax loss and applies it.
template <class Term>
torch::Tensor softmax_loss(const torch::Tensor& input, const torch::Tensor& target, const torch::Tensor& weight,
                           const SoftmaxLossConfig& cfg, const typename Term::Params& params,
                           const char* weight_name = "weight") {
  check_class_target(cfg.fn, input, target);
  check_class_vector(cfg.fn, input, weight, input.size(1), weight_name);
  check_range(cfg.fn, "label_smoothing", cfg.label_smoothing, 0.0, 1.0);
  // An undefined tensor cannot be an autograd input; an empty optional can.
  const optional<torch::Tensor> maybe_weight = weight.defined() ? optional<torch::Tensor>(weight) : c10::nullopt;
  return SoftmaxLossFunction<Term>::apply(input, target, maybe_weight, cfg, params)[0];
}

}  // namespace detail
}  // namespace torchloss
