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
///
/// A loss may also ask for a logit transform applied inside the kernels (LogitTransform):
/// \f[ z_{i,c} = s\,(x_{i,c} + b_c - m_{y_i}\, \delta_{c y_i}) \f]
/// with a per-class offset b (logit adjustment), a scale s and a per-class margin m taken
/// off the target logit (LDAM). Everything above then holds for z in place of x, and since
/// b and m are constants, \f$\partial \ell / \partial x = s\, \partial \ell / \partial z\f$.
/// The kernels work on the unscaled \f$u = x + b - m_y\,\mathrm{onehot}(y)\f$ (additions only)
/// and scale differences, \f$z_c - \max z = s\,(u_c - \max u)\f$: the row's largest entry is
/// then exactly 0 in every pass (a scaled logit of 3e5 has a float ulp of 0.03, which a
/// recomputation could round differently), and no precision is lost to large \f$s\,x\f$.
/// The default (no offset, s = 1, no margin) runs the plain kernels, untouched.
///
/// A per-sample margin \f$\mu_i = \mu(x_{i,y_i})\f$, a function of the target logit alone
/// (a TargetLogitTransform; CombinedMarginLoss: \f$\mu(c) = c - \psi(c) + m_3\f$), may further be
/// taken off row i's target logit, \f$u_{i,y_i} = x_{i,y_i} + b_{y_i} - m_{y_i} - \mu_i\f$. The forward
/// kernel evaluates it on the target logit it reads anyway, and keeps \f$\mu_i\f$ and the slope
/// \f$\partial u_{i,y_i} / \partial x_{i,y_i} = 1 - \mu'\f$ for backward, where the slope multiplies
/// the target entry of the gradient (the other entries are unchanged: \f$\mu_i\f$ reads nothing
/// else).

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

/// A per-sample margin μ(x_y) taken off the target logit, with the slope ∂u_y/∂x_y = 1 − μ'(x_y)
/// (see the file comment): evaluated by the CPU kernels once per row, by the ATen path on the
/// gathered target logits.
struct TargetLogitTransform {
  virtual ~TargetLogitTransform() = default;
  /// μ and the slope at one target logit (any rounding of it to the compute dtype is the caller's).
  virtual void at(double target_logit, double& margin, double& slope) const = 0;
  /// μ and the slope at each of `target_logits` [rows], in their dtype.
  virtual std::pair<torch::Tensor, torch::Tensor> at(const torch::Tensor& target_logits) const = 0;
};

/// The options every softmax loss shares, as the autograd function carries them.
struct SoftmaxLossConfig {
  const char* fn;           ///< public function name, for error messages
  int64_t ignore_index;     ///< target value that contributes nothing
  double label_smoothing;   ///< ε in [0, 1]
  int64_t reduction;        ///< at::Reduction code
  bool weighted_mean;       ///< kMean divides by Σ w_y (cross entropy) or by the count (focal)
  double logit_scale = 1.0; ///< s of the logit transform (1: none)
  /// The per-sample target margin of the logit transform (forward only; null: none).
  const TargetLogitTransform* target_transform = nullptr;
};

/// The optional logit transform z = s·(x + b − m_y·onehot(y)) of a softmax loss (see the
/// file comment). b and m are constants: they get no gradient.
struct LogitTransform {
  torch::Tensor offset;  ///< b [C], added to every row; undefined: none
  torch::Tensor margin;  ///< m [C], m_y taken off the target logit; undefined: none
  double scale = 1.0;    ///< s > 0, multiplies the shifted logits
  const TargetLogitTransform* target_transform = nullptr;  ///< μ(x_y); null: none
};

/// Tensors in the kernels' layout: x [rows, C] contiguous in the compute dtype, target [rows].
struct SoftmaxRows {
  torch::Tensor x, target, weight;
  torch::Tensor offset, margin;  ///< the LogitTransform's b and m [C] (undefined when none)
  torch::Tensor sample_margin, target_slope;  ///< μ_i and ∂u_y/∂x_y [rows] of a TargetLogitTransform
  int64_t rows = 0, classes = 0;
};

/// Whether the rows carry a logit transform (the kernels then take their transformed form).
inline bool has_logit_transform(const SoftmaxRows& r, const SoftmaxLossConfig& cfg) {
  return r.offset.defined() || r.margin.defined() || cfg.target_transform || r.sample_margin.defined() ||
         cfg.logit_scale != 1.0;
}

/// Moves the class dim last ([N, C, d...] -> [N·d..., C]) and converts to the compute dtype.
inline SoftmaxRows softmax_rows(const torch::Tensor& input, const torch::Tensor& target,
                                const torch::Tensor& weight, const torch::Tensor& offset = {},
                                const torch::Tensor& margin = {}) {
  SoftmaxRows r;
  const auto dtype = compute_dtype(input.scalar_type());
  r.classes = input.size(1);
  r.x = (input.dim() == 2 ? input : input.movedim(1, -1)).to(dtype).contiguous().view({-1, r.classes});
  r.rows = r.x.size(0);
  if (target.defined()) r.target = target.contiguous().view({-1});
  if (weight.defined()) r.weight = weight.to(dtype).contiguous();
  if (offset.defined()) r.offset = offset.to(dtype).contiguous();
  if (margin.defined()) r.margin = margin.to(dtype).contiguous();
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

/// Per lane of V, for the columns base, base + 1, ...: whether the column is `index` (a select
/// mask; a bool for scalars).
template <typename V>
inline auto lane_is(int64_t base, int64_t index) {
  if constexpr (is_simd_v<V>) {
    int_vector_t<V> column{};
    for (int j = 0; j < lanes_v<V>; ++j) column[j] = j;
    return column == static_cast<std::int32_t>(index - base);
  } else {
    return base == index;
  }
}

/// Fused CPU forward: one pass for the row max, one for Σ exp (both over a row that stays in
/// cache), per row. Rows whose target is ignored are skipped. `Transformed` selects the form
/// that reads the logits through the LogitTransform: u_c = x_c + b_c off the target, the
/// target's u_y = x_y + b_y − m_y put in its lane (so a large margin neither overflows nor
/// cancels in the row's max and Σ exp), and z_c − max z = s·(u_c − max u). The saved row
/// statistic is then max u (not max z).
template <class Term, typename T, bool Transformed>
SoftmaxForward softmax_forward_cpu_impl(const SoftmaxRows& r, const SoftmaxLossConfig& cfg,
                                        const typename Term::Params& params) {
  SoftmaxForward out;
  out.losses = torch::empty({r.rows}, r.x.options());
  out.stats = torch::zeros({r.rows, 2}, r.x.options());
  const T* x = r.x.data_ptr<T>();
  const int64_t* target = r.target.data_ptr<int64_t>();
  const T* w = r.weight.defined() ? r.weight.template data_ptr<T>() : nullptr;
  const T* offset = r.offset.defined() ? r.offset.template data_ptr<T>() : nullptr;
  const T* margin = r.margin.defined() ? r.margin.template data_ptr<T>() : nullptr;
  // A target transform's μ_i and slope are computed here, into the rows' (allocated) tensors.
  const TargetLogitTransform* target_transform = cfg.target_transform;
  T* sample_margin = target_transform ? r.sample_margin.template data_ptr<T>() : nullptr;
  T* target_slope = target_transform ? r.target_slope.template data_ptr<T>() : nullptr;
  const T logit_scale = static_cast<T>(cfg.logit_scale);
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
    // Rows of large-magnitude float logits (and LDAM's scaled ones, s = 30) put most
    // e^{z − max z} below float's normal range, where each result costs a microcode assist.
    const ScopedFlushDenormals flush(Transformed || std::is_same<T, float>::value);
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      double denominator = 0;
      const int64_t row_end = std::min(r.rows, (chunk + 1) * grain);
      dispatch_simd<T>([&](auto width) {
        using W = decltype(width);
        for (int64_t i = chunk * grain; i < row_end; ++i) {
          const int64_t t = target[i];
          if (t == cfg.ignore_index || t < 0 || t >= C) {
            if (t != cfg.ignore_index) bad_label = true;
            losses[i] = 0;
            if (target_transform) {
              sample_margin[i] = 0;
              target_slope[i] = 1;
            }
            continue;
          }
          const T* xr = x + i * C;
          // u_c = x_c + b_c (the target's margin is applied to u_t alone); x itself when plain.
          const auto shifted = [&](int64_t c, auto tag) {
            using V = decltype(tag);
            const V v = load<V>(xr + c);
            if constexpr (Transformed) {
              return offset ? v + load<V>(offset + c) : v;
            } else {
              return v;
            }
          };
          T m, sum_exp, target_gap, margin_t = 0;  // target_gap = z_t − max z
          if constexpr (Transformed) {
            margin_t = margin ? margin[t] : T(0);
            if (target_transform) {
              double mu = 0, slope = 1;
              target_transform->at(static_cast<double>(xr[t]), mu, slope);
              sample_margin[i] = static_cast<T>(mu);
              target_slope[i] = static_cast<T>(slope);
              margin_t += sample_margin[i];
            }
            const T u_t = shifted(t, T{}) - margin_t;
            // u_c with the target's lane replaced by u_t: whole vectors across the target (no
            // scalar tails on either side of it), and the unmargined target never enters.
            const auto margined = [&](int64_t c, auto tag) {
              using V = decltype(tag);
              return select(lane_is<V>(c, t), splat<V>(u_t), shifted(c, tag));
            };
            m = simd_max_of<T, W>(C, margined);
            target_gap = logit_scale * (u_t - m);
            sum_exp = simd_sum<T, W>(C, [&](int64_t c, auto tag) { return fast::exp(logit_scale * (margined(c, tag) - m)); });
          } else {
            m = simd_max<T, W>(xr, C);
            sum_exp = simd_sum<T, W>(C, [&](int64_t c, auto tag) {
              using V = decltype(tag);
              return fast::exp(load<V>(xr + c) - m);
            });
            target_gap = xr[t] - m;
          }
          const T log_sum = std::log(sum_exp);
          const T logp_t = target_gap - log_sum;
          stats[2 * i] = m;
          stats[2 * i + 1] = log_sum;
          const T w_y = w ? w[t] : T(1);
          T loss = keep * w_y * Term::value(logp_t, params);
          if (eps > 0) {
            // Σ_c w_c (lse − z_c) = W log_sum + s Σ_c w_c (m − u_c); the target's margin adds
            // w_y m_y to the unmargined sum (s = 1, u = x without a transform).
            const T weighted_gap = simd_sum<T, W>(C, [&](int64_t c, auto tag) {
              using V = decltype(tag);
              const V gap = m - shifted(c, tag);
              return w ? load<V>(w + c) * gap : gap;
            });
            const T scaled_gap = Transformed ? logit_scale * (weighted_gap + w_y * margin_t) : weighted_gap;
            loss += eps / T(C) * (w_total * log_sum + scaled_gap);
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

/// Fused CPU forward of a softmax loss (the plain or the transformed-logit kernel).
template <class Term, typename T>
SoftmaxForward softmax_forward_cpu(const SoftmaxRows& r, const SoftmaxLossConfig& cfg,
                                   const typename Term::Params& params) {
  if (has_logit_transform(r, cfg)) return softmax_forward_cpu_impl<Term, T, true>(r, cfg, params);
  return softmax_forward_cpu_impl<Term, T, false>(r, cfg, params);
}

/// Fused CPU backward: one pass per row writing
/// grad_k = g·[p_k (ε W / C − (1−ε) w_y h) − ε w_k / C] + δ_{k y} g (1−ε) w_y h,
/// with p from the logits z the forward saw (p_k = e^{s (u_k − max u) − log_sum} when they
/// were transformed) and g scaled by s (∂z/∂x = s). Into `grad` when given, which may be r.x
/// itself (each entry is read before it is written), else into a new tensor.
template <class Term, typename T, bool Transformed>
torch::Tensor softmax_backward_cpu_impl(const SoftmaxRows& r, const torch::Tensor& stats_tensor,
                                        const torch::Tensor& scale, const SoftmaxLossConfig& cfg,
                                        const typename Term::Params& params, torch::Tensor grad = {}) {
  if (!grad.defined()) grad = torch::empty_like(r.x);
  const T* x = r.x.data_ptr<T>();
  const int64_t* target = r.target.data_ptr<int64_t>();
  const T* w = r.weight.defined() ? r.weight.template data_ptr<T>() : nullptr;
  const T* offset = r.offset.defined() ? r.offset.template data_ptr<T>() : nullptr;
  const T* margin = r.margin.defined() ? r.margin.template data_ptr<T>() : nullptr;
  const T* sample_margin = r.sample_margin.defined() ? r.sample_margin.template data_ptr<T>() : nullptr;
  const T* target_slope = r.target_slope.defined() ? r.target_slope.template data_ptr<T>() : nullptr;
  const T logit_scale = static_cast<T>(cfg.logit_scale);
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
    // As in the forward: p_coef·p of such rows would mostly be denormals.
    const ScopedFlushDenormals flush(Transformed || std::is_same<T, float>::value);
    dispatch_simd<T>([&](auto width) {
      using W = decltype(width);
      for (int64_t i = begin; i < end; ++i) {
        T* gr = out + i * C;
        const int64_t t = target[i];
        if (t == cfg.ignore_index) {
          std::fill(gr, gr + C, T(0));
          continue;
        }
        const T* xr = x + i * C;
        const T m = stats[2 * i], log_sum = stats[2 * i + 1];
        // log p_c: (x_c − m) − log_sum, or s (u_c − max u) − log_sum with u_c = x_c + b_c.
        const auto logp = [&](int64_t c, auto tag) {
          using V = decltype(tag);
          const V v = load<V>(xr + c);
          if constexpr (Transformed) {
            return logit_scale * ((offset ? v + load<V>(offset + c) : v) - m) - log_sum;
          } else {
            return (v - m) - log_sum;
          }
        };
        const T gi = Transformed ? g[i * g_stride] * logit_scale : g[i * g_stride];
        const bool target_margined = Transformed && (margin || sample_margin);
        const T margin_t = target_margined ? (margin ? margin[t] : T(0)) + (sample_margin ? sample_margin[i] : T(0)) : T(0);
        const T logp_t = Transformed ? logit_scale * ((offset ? xr[t] + offset[t] : xr[t]) - margin_t - m) - log_sum
                                     : logp(t, T{});
        const T w_y = w ? w[t] : T(1);
        const T target_coef = gi * keep * w_y * Term::grad_logp(logp_t, params);
        const T p_coef = gi * eps * w_total / T(C) - target_coef;
        const T smooth = gi * eps / T(C);
        simd_for<T, W>(C, [&](int64_t c, auto tag) {
          using V = decltype(tag);
          V grad_c = p_coef * fast::exp(logp(c, tag));
          if (eps > 0) grad_c = grad_c - smooth * (w ? load<V>(w + c) : splat<V>(1));
          store(gr + c, grad_c);
        });
        if (target_margined) {
          // The loop used the unmargined target logit; redo the target with its margin.
          gr[t] = p_coef * fast::exp(logp_t) - (eps > 0 ? smooth * w_y : T(0)) + target_coef;
        } else {
          gr[t] += target_coef;
        }
        if (Transformed && target_slope) gr[t] *= target_slope[i];
      }
    });
  });
  return grad;
}

/// Fused CPU backward of a softmax loss (the plain or the transformed-logit kernel), into
/// `grad` when given (r.x itself for an in-place backward).
template <class Term, typename T>
torch::Tensor softmax_backward_cpu(const SoftmaxRows& r, const torch::Tensor& stats_tensor,
                                   const torch::Tensor& scale, const SoftmaxLossConfig& cfg,
                                   const typename Term::Params& params, const torch::Tensor& grad = {}) {
  if (has_logit_transform(r, cfg)) {
    return softmax_backward_cpu_impl<Term, T, true>(r, stats_tensor, scale, cfg, params, grad);
  }
  return softmax_backward_cpu_impl<Term, T, false>(r, stats_tensor, scale, cfg, params, grad);
}

/// The unscaled transformed logits u = x + b − m_y·onehot(y) as a tensor (the ATen path;
/// z = s·u), or x itself without a transform. Rows with an ignored target take class 0's
/// margin: their results are masked out.
inline torch::Tensor shifted_logits(const SoftmaxRows& r, const torch::Tensor& safe_target) {
  auto u = r.x;
  if (r.offset.defined()) u = u + r.offset;
  if (r.margin.defined() || r.sample_margin.defined()) {
    auto target_margin = r.margin.defined() ? r.margin.index_select(0, safe_target) : r.sample_margin;
    if (r.margin.defined() && r.sample_margin.defined()) target_margin = target_margin + r.sample_margin;
    u = u.scatter_add(1, safe_target.unsqueeze(1), -target_margin.unsqueeze(1));
  }
  return u;
}

/// The per-row statistics [rows, 2] (max u, log Σ_c e^{s (u_c − max u)}) with ATen ops, and
/// the gaps s·(u − max u) in `gap`. Differentiable in the logits (the max, a shift that
/// cancels, is taken as a constant).
inline torch::Tensor softmax_row_stats(const SoftmaxRows& r, const SoftmaxLossConfig& cfg,
                                       const torch::Tensor& safe_target, torch::Tensor& gap) {
  const auto u = shifted_logits(r, safe_target);
  const auto m = std::get<0>(u.detach().max(1, /*keepdim=*/true));
  // z_c − max z = s (u_c − max u); s = 1 without a transform.
  gap = cfg.logit_scale != 1.0 ? (u - m) * cfg.logit_scale : u - m;
  const auto log_sum = gap.exp().sum(1).log();
  return torch::stack({m.squeeze(1), log_sum}, 1);
}

/// Device-agnostic forward with ATen ops (CUDA and any other device; same formulas).
template <class Term>
SoftmaxForward softmax_forward_aten(const SoftmaxRows& r, const SoftmaxLossConfig& cfg,
                                    const typename Term::Params& params) {
  check_labels_in_range(cfg.fn, r.target, r.classes, cfg.ignore_index);
  SoftmaxForward out;
  const auto valid = r.target != cfg.ignore_index;
  const auto safe_target = r.target.masked_fill(~valid, 0);
  torch::Tensor gap;
  out.stats = softmax_row_stats(r, cfg, safe_target, gap);
  const auto log_sum = out.stats.select(1, 1);
  const auto logp_y = gap.gather(1, safe_target.unsqueeze(1)).squeeze(1) - log_sum;
  const auto w_y = r.weight.defined() ? r.weight.index_select(0, safe_target) : torch::ones_like(log_sum);
  auto losses = (1 - cfg.label_smoothing) * w_y * Term::value(logp_y, params);
  if (cfg.label_smoothing > 0) {
    const auto w = r.weight.defined() ? r.weight : torch::ones({r.classes}, r.x.options());
    const auto smooth = log_sum * w.sum() - gap.matmul(w);
    losses = losses + cfg.label_smoothing / static_cast<double>(r.classes) * smooth;
  }
  const auto valid_f = valid.to(r.x.scalar_type());
  // Selected, not multiplied: an ignored row's NaN or Inf stays out (0 · NaN = NaN), as on
  // the fused path, which skips such rows, and in LibTorch's cross_entropy.
  out.losses = torch::where(valid, losses, torch::zeros_like(losses));
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
  // ∂z/∂x = s: the logit scale joins the upstream gradient.
  const auto g = scale.expand({r.rows}) * valid.to(r.x.scalar_type()) * cfg.logit_scale;
  // log p = s (u − max u) − log Σ e^{s (u − max u)}, from the forward's row statistics.
  const auto gap = shifted_logits(r, safe_target) - stats.select(1, 0).unsqueeze(1);
  const auto logp = (cfg.logit_scale != 1.0 ? gap * cfg.logit_scale : gap) - stats.select(1, 1).unsqueeze(1);
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
  grad = grad.scatter_add(1, safe_target.unsqueeze(1), target_coef.unsqueeze(1));
  if (r.target_slope.defined()) {
    const auto target_grad = grad.gather(1, safe_target.unsqueeze(1)) * r.target_slope.unsqueeze(1);
    grad = grad.scatter(1, safe_target.unsqueeze(1), target_grad);
  }
  // Ignored rows get 0, not 0 · (a NaN or Inf of theirs).
  return torch::where(valid.unsqueeze(1), grad, torch::zeros_like(grad));
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
                                                const optional<torch::Tensor>& weight,
                                                const optional<torch::Tensor>& logit_offset,
                                                const optional<torch::Tensor>& target_margin, SoftmaxLossConfig cfg,
                                                typename Term::Params params) {
    SoftmaxRows r = softmax_rows(input, target, weight.value_or(torch::Tensor()),
                                 logit_offset.value_or(torch::Tensor()), target_margin.value_or(torch::Tensor()));
    if (cfg.target_transform) {
      if (use_cpu_kernel(r.x)) {
        // Filled by the forward kernel, from the target logits it reads anyway.
        r.sample_margin = torch::empty({r.rows}, r.x.options());
        r.target_slope = torch::empty({r.rows}, r.x.options());
      } else {
        check_labels_in_range(cfg.fn, r.target, r.classes, cfg.ignore_index);
        const auto valid = r.target != cfg.ignore_index;
        const auto safe_target = r.target.masked_fill(~valid, 0);
        const auto [mu, slope] = cfg.target_transform->at(r.x.gather(1, safe_target.unsqueeze(1)).squeeze(1));
        r.sample_margin = mu.masked_fill(~valid, 0).to(r.x.scalar_type());
        r.target_slope = slope.masked_fill(~valid, 1).to(r.x.scalar_type());
      }
    }
    SoftmaxForward f;
    if (use_cpu_kernel(r.x)) {
      AT_DISPATCH_FLOATING_TYPES(r.x.scalar_type(), "torchloss_softmax_forward", [&] {
        f = softmax_forward_cpu<Term, scalar_t>(r, cfg, params);
      });
    } else {
      f = softmax_forward_aten<Term>(r, cfg, params);
    }
    // The input itself as well: a backward under create_graph differentiates through it.
    ctx->save_for_backward(
        {r.x, r.target, r.weight, f.stats, r.offset, r.margin, r.sample_margin, r.target_slope, input});
    ctx->saved_data["input_sizes"] = input.sizes().vec();
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(input.scalar_type());
    ctx->saved_data["denominator"] = f.denominator;
    ctx->saved_data["cfg"] = std::vector<double>{static_cast<double>(cfg.ignore_index), cfg.label_smoothing,
                                                 static_cast<double>(cfg.reduction),
                                                 cfg.weighted_mean ? 1.0 : 0.0, cfg.logit_scale};
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
    r.offset = saved[4];
    r.margin = saved[5];
    r.sample_margin = saved[6];
    r.target_slope = saved[7];
    r.rows = r.x.size(0);
    r.classes = r.x.size(1);
    auto stats = saved[3];
    const auto packed = ctx->saved_data["cfg"].toDoubleVector();
    const std::string fn = ctx->saved_data["fn"].toStringRef();
    const SoftmaxLossConfig cfg{fn.c_str(), static_cast<int64_t>(packed[0]), packed[1],
                                static_cast<int64_t>(packed[2]), packed[3] != 0.0, packed[4]};
    const auto params = Term::Params::unpack(ctx->saved_data["params"].toDoubleVector());
    const double denominator = ctx->saved_data["denominator"].toDouble();
    const auto scale =
        element_grad_scale(grad_outputs[0].to(r.x.scalar_type()), cfg.reduction, denominator).reshape({-1});
    torch::Tensor grad;
    if (torch::GradMode::is_enabled()) {
      // create_graph: the ATen formulas on the saved input, with the row statistics
      // recomputed from it, so the gradient is itself differentiable.
      // A per-sample target transform (the combined margin's ψ) enters the gradient through
      // its saved value and slope, constants here: its second derivative would be silently
      // wrong, so it is refused.
      TORCH_CHECK(!r.sample_margin.defined(), fn,
                  ": double backward (create_graph=true) is not supported with an angular margin");
      const auto& input = saved[8];
      r.x = softmax_rows(input, torch::Tensor(), torch::Tensor()).x;
      const auto safe_target = r.target.masked_fill(r.target == cfg.ignore_index, 0);
      torch::Tensor gap;
      stats = softmax_row_stats(r, cfg, safe_target, gap);
      grad = softmax_backward_aten<Term>(r, stats, scale, cfg, params);
    } else if (use_cpu_kernel(r.x)) {
      AT_DISPATCH_FLOATING_TYPES(r.x.scalar_type(), "torchloss_softmax_backward", [&] {
        grad = softmax_backward_cpu<Term, scalar_t>(r, stats, scale, cfg, params);
      });
    } else {
      grad = softmax_backward_aten<Term>(r, stats, scale, cfg, params);
    }
    const auto input_dtype = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    // Labels, weights, the transform's constants and the options get no gradient.
    return {from_softmax_rows(grad, ctx->saved_data["input_sizes"].toIntVector(), input_dtype), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// An optional tensor as an autograd argument (an undefined tensor cannot be one; an empty
/// optional can).
inline optional<torch::Tensor> optional_tensor(const torch::Tensor& t) {
  return t.defined() ? optional<torch::Tensor>(t) : c10::nullopt;
}

/// Validates the shared arguments of a softmax loss and applies it, on the logits
/// themselves or, with a `transform`, on z = s·(x + b − m_y·onehot(y)).
template <class Term>
torch::Tensor softmax_loss(const torch::Tensor& input, const torch::Tensor& target, const torch::Tensor& weight,
                           const SoftmaxLossConfig& cfg, const typename Term::Params& params,
                           const char* weight_name = "weight", const LogitTransform& transform = {}) {
  check_class_target(cfg.fn, input, target);
  check_class_vector(cfg.fn, input, weight, input.size(1), weight_name);
  check_class_vector(cfg.fn, input, transform.offset, input.size(1), "logit offset");
  check_class_vector(cfg.fn, input, transform.margin, input.size(1), "margin");
  check_range(cfg.fn, "label_smoothing", cfg.label_smoothing, 0.0, 1.0);
  TORCH_CHECK(transform.scale > 0 && std::isfinite(transform.scale), cfg.fn,
              ": scale must be a finite number > 0, got ", transform.scale);
  SoftmaxLossConfig transformed_cfg = cfg;
  transformed_cfg.logit_scale = transform.scale;
  transformed_cfg.target_transform = transform.target_transform;
  return SoftmaxLossFunction<Term>::apply(input, target, optional_tensor(weight), optional_tensor(transform.offset),
                                          optional_tensor(transform.margin), transformed_cfg, params)[0];
}

}  // namespace detail
}  // namespace torchloss
