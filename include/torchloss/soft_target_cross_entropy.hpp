#pragma once
/// \file soft_target_cross_entropy.hpp
/// \brief Cross entropy against soft (distribution) targets, as timm's SoftTargetCrossEntropy,
/// and its pair form for mixup/cutmix, which never builds the [N, C] target: options,
/// functional forms and the module SoftTargetCrossEntropyLoss.

#include <torchloss/detail/row_loss.hpp>

#include <ostream>

namespace torchloss {

/// Options of SoftTargetCrossEntropyLoss and functional::soft_target_cross_entropy.
///
/// \code
/// torchloss::SoftTargetCrossEntropyLoss loss;  // kMean: timm's SoftTargetCrossEntropy
/// auto value = loss(logits, mixed_targets);    // [N, C] each
/// \endcode
struct SoftTargetCrossEntropyLossOptions {
  /// torch::kNone (one value per row), torch::kMean (mean over the N rows) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

/// Options of functional::mixup_cross_entropy.
///
/// \code
/// namespace F = torchloss::functional;
/// auto loss = F::mixup_cross_entropy(logits, y, y.flip(0), lam, F::MixupCrossEntropyFuncOptions().label_smoothing(0.1));
/// \endcode
struct MixupCrossEntropyOptions {
  /// Label smoothing \f$\varepsilon \in [0, 1]\f$ of each one-hot target, as timm's
  /// `mixup_target`: off value \f$\varepsilon / C\f$, on value \f$1 - \varepsilon + \varepsilon / C\f$.
  TORCH_ARG(double, label_smoothing) = 0.0;
  /// torch::kNone (one value per row), torch::kMean (mean over the N rows) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// Soft-target cross entropy rows: \f$\ell_i = S_i \log \Sigma_i - \sum_c t_{i,c}(x_{i,c} - m_i)\f$
/// with \f$m_i = \max_c x_{i,c}\f$, \f$\Sigma_i = \sum_c e^{x_{i,c} - m_i}\f$, \f$S_i = \sum_c t_{i,c}\f$;
/// gradient \f$S_i p_{i,k} - t_{i,k}\f$. CPU: one pass for the max, one for the three sums (and
/// the target's range), one for the gradient.
inline RowLossCompute soft_target_rows(const char* fn, const torch::Tensor& target) {
  return [fn, target](const torch::Tensor& x, bool with_grad, double grad_factor) {
    const int64_t rows = x.size(0), classes = x.size(1);
    const auto t = target.to(x.scalar_type()).contiguous();
    RowLossOutput out;
    if (x.device().is_cpu() && !force_aten_path) {
      out.losses = torch::empty({rows}, x.options());
      if (with_grad) out.grad = torch::empty_like(x);
      std::atomic<bool> outside{false};
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchloss_soft_target_cross_entropy", [&] {
        const scalar_t* xs = x.data_ptr<scalar_t>();
        const scalar_t* ts = t.data_ptr<scalar_t>();
        scalar_t* losses = out.losses.data_ptr<scalar_t>();
        scalar_t* grad = with_grad ? out.grad.data_ptr<scalar_t>() : nullptr;
        const auto factor = static_cast<scalar_t>(grad_factor);
        for_each_row_cpu<scalar_t>(rows, classes, [&](int64_t i, auto width) {
          using W = decltype(width);
          const scalar_t* xr = xs + i * classes;
          const scalar_t* tr = ts + i * classes;
          scalar_t* gr = grad ? grad + i * classes : nullptr;
          const scalar_t m = simd_max<scalar_t, W>(xr, classes);
          // e^{x − m} (kept in the gradient row), Σ t, Σ t (x − m) and the count of targets
          // outside [0, 1] (NaN: not counted).
          const auto sums = simd_sums<scalar_t, W, 4>(classes, [&](int64_t c, auto tag) {
            using V = decltype(tag);
            const V gap = load<V>(xr + c) - m;
            const V tc = load<V>(tr + c);
            const V e = fast::exp(gap);
            if (gr) store(gr + c, e);
            return std::array<V, 4>{e, tc, tc * gap, select((tc < 0) | (tc > 1), splat<V>(1), V{})};
          });
          if (sums[3] > 0) outside = true;
          const scalar_t log_sum = std::log(sums[0]);
          losses[i] = sums[1] * log_sum - sums[2];
          if (!gr) return;
          // p = e^{x − m} / Σ: the gradient S·p − t scaled by the factor.
          const scalar_t p_coef = factor * sums[1] / sums[0];
          simd_for<scalar_t, W>(classes, [&](int64_t c, auto tag) {
            using V = decltype(tag);
            store(gr + c, p_coef * load<V>(gr + c) - factor * load<V>(tr + c));
          });
        });
      });
      if (outside) check_probabilities(fn, target);
      return out;
    }
    check_probabilities(fn, target);
    const auto logp = torch::log_softmax(x, 1);
    out.losses = -(t * logp).sum(1);
    if (with_grad) out.grad = (t.sum(1, true) * logp.exp() - t) * grad_factor;
    return out;
  };
}

/// Mixup cross entropy rows, the soft-target rows at
/// \f$t_{i,c} = \varepsilon / C + (1 - \varepsilon)(\lambda\,[c = a_i] + (1 - \lambda)\,[c = b_i])\f$
/// without the target: \f$\ell_i = \log \Sigma_i - \tfrac{\varepsilon}{C} \sum_c (x_{i,c} - m_i)
/// - (1 - \varepsilon)\bigl(\lambda (x_{i,a_i} - m_i) + (1 - \lambda)(x_{i,b_i} - m_i)\bigr)\f$, gradient
/// \f$p_{i,k} - t_{i,k}\f$. CPU: three passes over the logit row, as index cross entropy.
inline RowLossCompute mixup_rows(const char* fn, const torch::Tensor& y_a, const torch::Tensor& y_b, double lam,
                                 double smoothing) {
  return [=](const torch::Tensor& x, bool with_grad, double grad_factor) {
    const int64_t rows = x.size(0), classes = x.size(1);
    const double keep = 1 - smoothing, off = smoothing / static_cast<double>(classes);
    RowLossOutput out;
    if (x.device().is_cpu() && !force_aten_path) {
      out.losses = torch::empty({rows}, x.options());
      if (with_grad) out.grad = torch::empty_like(x);
      const auto a_labels = y_a.contiguous(), b_labels = y_b.contiguous();
      std::atomic<bool> bad_label{false};
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchloss_mixup_cross_entropy", [&] {
        const scalar_t* xs = x.data_ptr<scalar_t>();
        const int64_t* as = a_labels.data_ptr<int64_t>();
        const int64_t* bs = b_labels.data_ptr<int64_t>();
        scalar_t* losses = out.losses.data_ptr<scalar_t>();
        scalar_t* grad = with_grad ? out.grad.data_ptr<scalar_t>() : nullptr;
        const auto weight_a = static_cast<scalar_t>(keep * lam), weight_b = static_cast<scalar_t>(keep * (1 - lam));
        const auto off_t = static_cast<scalar_t>(off);
        const auto factor = static_cast<scalar_t>(grad_factor);
        for_each_row_cpu<scalar_t>(rows, classes, [&](int64_t i, auto width) {
          using W = decltype(width);
          const int64_t a = as[i], b = bs[i];
          if (a < 0 || a >= classes || b < 0 || b >= classes) {
            bad_label = true;
            losses[i] = 0;
            return;
          }
          const scalar_t* xr = xs + i * classes;
          scalar_t* gr = grad ? grad + i * classes : nullptr;
          const scalar_t m = simd_max<scalar_t, W>(xr, classes);
          // Σ e^{x − m} (each kept in the gradient row) and, with smoothing, Σ (x − m).
          scalar_t sum_exp, sum_gap = 0;
          if (off_t > 0) {
            const auto sums = simd_sums<scalar_t, W, 2>(classes, [&](int64_t c, auto tag) {
              using V = decltype(tag);
              const V gap = load<V>(xr + c) - m;
              const V e = fast::exp(gap);
              if (gr) store(gr + c, e);
              return std::array<V, 2>{e, gap};
            });
            sum_exp = sums[0];
            sum_gap = sums[1];
          } else {
            sum_exp = simd_sum<scalar_t, W>(classes, [&](int64_t c, auto tag) {
              using V = decltype(tag);
              const V e = fast::exp(load<V>(xr + c) - m);
              if (gr) store(gr + c, e);
              return e;
            });
          }
          const scalar_t log_sum = std::log(sum_exp);
          // A label of weight 0 (λ = 0 or 1, ε = 1) adds no term: 0·(−inf) would be NaN.
          scalar_t loss = log_sum - off_t * sum_gap;
          if (weight_a != 0) loss -= weight_a * (xr[a] - m);
          if (weight_b != 0) loss -= weight_b * (xr[b] - m);
          losses[i] = loss;
          if (!gr) return;
          const scalar_t p_coef = factor / sum_exp, smooth = factor * off_t;
          simd_for<scalar_t, W>(classes, [&](int64_t c, auto tag) {
            using V = decltype(tag);
            store(gr + c, p_coef * load<V>(gr + c) - smooth);
          });
          gr[a] -= factor * weight_a;
          gr[b] -= factor * weight_b;
        });
      });
      if (bad_label) {
        check_labels(fn, y_a, classes, "y_a");
        check_labels(fn, y_b, classes, "y_b");
      }
      return out;
    }
    check_labels(fn, y_a, classes, "y_a");
    check_labels(fn, y_b, classes, "y_b");
    const auto m = std::get<0>(x.max(1, true));
    const auto gap = x - m;
    const auto log_sum = gap.exp().sum(1).log();
    const auto gap_a = gap.gather(1, y_a.unsqueeze(1)).squeeze(1), gap_b = gap.gather(1, y_b.unsqueeze(1)).squeeze(1);
    // As the CPU kernel: a term of weight 0 is left out, not multiplied by 0 (a logit of
    // −inf makes its gap −inf, and 0·(−inf) is NaN).
    out.losses = log_sum;
    if (off != 0) out.losses = out.losses - off * gap.sum(1);
    if (keep * lam != 0) out.losses = out.losses - keep * lam * gap_a;
    if (keep * (1 - lam) != 0) out.losses = out.losses - keep * (1 - lam) * gap_b;
    if (with_grad) {
      const auto p = (gap - log_sum.unsqueeze(1)).exp();
      out.grad = ((p - off) * grad_factor)
                     .scatter_add(1, y_a.unsqueeze(1), torch::full({rows, 1}, -grad_factor * keep * lam, x.options()))
                     .scatter_add(1, y_b.unsqueeze(1),
                                  torch::full({rows, 1}, -grad_factor * keep * (1 - lam), x.options()));
    }
    return out;
  };
}

}  // namespace detail

namespace functional {

/// Options of functional::soft_target_cross_entropy (the same as the module's).
using SoftTargetCrossEntropyFuncOptions = SoftTargetCrossEntropyLossOptions;
/// Options of functional::mixup_cross_entropy.
using MixupCrossEntropyFuncOptions = MixupCrossEntropyOptions;

/// Cross entropy of logits \f$x\f$ [N, C] against soft targets \f$t\f$ [N, C] (rows are
/// distributions: mixup/cutmix targets, smoothed labels, a teacher's probabilities):
/// \f[ \ell_i = -\sum_c t_{i,c} \log \mathrm{softmax}(x_i)_c, \qquad
///     \frac{\partial \ell_i}{\partial x_{i,k}} = \Bigl(\sum_c t_{i,c}\Bigr) p_{i,k} - t_{i,k}. \f]
/// kMean averages over the N rows: timm's `SoftTargetCrossEntropy` exactly (and PyTorch's
/// `cross_entropy` with probability targets); an empty batch gives 0. Rows are not required
/// to sum to 1, but every entry must lie in [0, 1]. The target is a constant: it gets no
/// gradient. One fused pass per row on CPU. float16/bfloat16 are computed in float32; the
/// result has the input's dtype. Errors (prefix `torchloss::soft_target_cross_entropy: `):
/// input not a floating [N, C], a target of another shape, dtype or device, target values
/// outside [0, 1].
inline torch::Tensor soft_target_cross_entropy(const torch::Tensor& input, const torch::Tensor& target,
                                               const SoftTargetCrossEntropyFuncOptions& options = {}) {
  const char* fn = "torchloss::soft_target_cross_entropy";
  detail::check_row_logits(fn, input);
  detail::check_same_shape_target(fn, input, target);
  return detail::row_loss(fn, input, detail::soft_target_rows(fn, target), detail::reduction_code(options.reduction()));
}

/// Mixup (or cutmix) cross entropy of logits \f$x\f$ [N, C] whose inputs mixed samples of
/// classes \f$a_i\f$ and \f$b_i\f$ with weight \f$\lambda\f$:
/// \f[ \ell_i = \mathrm{soft\_target\_cross\_entropy}\bigl(x_i,\ \lambda\, s(a_i) + (1-\lambda)\, s(b_i)\bigr),
///     \qquad s(y)_c = \frac{\varepsilon}{C} + (1 - \varepsilon)\,[c = y], \f]
/// timm's `mixup_target` (off value \f$\varepsilon/C\f$, on value \f$1 - \varepsilon + \varepsilon/C\f$),
/// computed without the [N, C] target:
/// \f[ \ell_i = \mathrm{lse}(x_i) - \frac{\varepsilon}{C}\sum_c x_{i,c}
///     - (1-\varepsilon)\bigl(\lambda x_{i,a_i} + (1-\lambda) x_{i,b_i}\bigr), \qquad
///     \frac{\partial \ell_i}{\partial x_{i,k}} = p_{i,k} - \frac{\varepsilon}{C}
///     - (1-\varepsilon)\bigl(\lambda [k = a_i] + (1-\lambda)[k = b_i]\bigr). \f]
/// With timm's batch mixup, \f$b = a\f$ flipped (`y.flip(0)`). kMean averages over the N rows
/// (an empty batch gives 0). One fused pass per row on CPU, as index cross entropy.
/// Errors (prefix `torchloss::mixup_cross_entropy: `): input not a floating [N, C], labels
/// not int64 [N] or outside [0, C), \f$\lambda\f$ outside [0, 1], label_smoothing outside [0, 1].
inline torch::Tensor mixup_cross_entropy(const torch::Tensor& input, const torch::Tensor& y_a, const torch::Tensor& y_b,
                                         double lam, const MixupCrossEntropyFuncOptions& options = {}) {
  const char* fn = "torchloss::mixup_cross_entropy";
  detail::check_row_logits(fn, input);
  detail::check_row_labels(fn, input, y_a, "y_a");
  detail::check_row_labels(fn, input, y_b, "y_b");
  detail::check_range(fn, "lam", lam, 0.0, 1.0);
  detail::check_range(fn, "label_smoothing", options.label_smoothing(), 0.0, 1.0);
  return detail::row_loss(fn, input, detail::mixup_rows(fn, y_a, y_b, lam, options.label_smoothing()),
                          detail::reduction_code(options.reduction()));
}

}  // namespace functional

/// Module form of functional::soft_target_cross_entropy (no state; kMean is timm's
/// `SoftTargetCrossEntropy`).
class SoftTargetCrossEntropyLossImpl : public torch::nn::Cloneable<SoftTargetCrossEntropyLossImpl> {
 public:
  /// Builds the loss from its options.
  explicit SoftTargetCrossEntropyLossImpl(SoftTargetCrossEntropyLossOptions options_ = {})
      : options(std::move(options_)) {}

  /// Nothing to register.
  void reset() override {}

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::SoftTargetCrossEntropyLoss(reduction=" << torch::enumtype::get_enum_name(options.reduction())
           << ")";
  }

  /// The loss of `input` logits [N, C] against soft targets [N, C].
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::soft_target_cross_entropy(input, target, options);
  }

  /// The options the module was built with.
  SoftTargetCrossEntropyLossOptions options;
};

/// Module holder of SoftTargetCrossEntropyLossImpl.
TORCH_MODULE(SoftTargetCrossEntropyLoss);

}  // namespace torchloss
