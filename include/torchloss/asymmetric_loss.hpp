#pragma once
/// \file asymmetric_loss.hpp
/// \brief Asymmetric loss for multi-label classification (Ridnik et al., ICCV 2021):
/// options, functional form and module.

#include <torchloss/detail/elementwise_loss.hpp>

#include <cmath>

namespace torchloss {

/// Options of AsymmetricLoss and functional::asymmetric_loss.
///
/// \code
/// torchloss::AsymmetricLoss loss(torchloss::AsymmetricLossOptions().gamma_neg(4).clip(0.05));
/// \endcode
struct AsymmetricLossOptions {
  /// Focusing parameter \f$\gamma_+ \ge 0\f$ of the positives (0: plain log-likelihood).
  TORCH_ARG(double, gamma_pos) = 0.0;
  /// Focusing parameter \f$\gamma_- \ge 0\f$ of the negatives.
  TORCH_ARG(double, gamma_neg) = 4.0;
  /// Probability margin \f$m \in [0, 1)\f$ of the negatives: \f$p_m = \max(p - m, 0)\f$, so easy
  /// negatives with \f$p \le m\f$ contribute nothing; 0 disables the shift.
  TORCH_ARG(double, clip) = 0.05;
  /// Treat the focusing factors \f$(1-p)^{\gamma_+}\f$ and \f$p_m^{\gamma_-}\f$ as constants in
  /// backward, as the reference does with `disable_torch_grad_focal_loss=True` (its default
  /// and its training recipe). false: the exact gradient of the loss.
  TORCH_ARG(bool, detach_focusing) = false;
  /// torch::kNone (per element), torch::kMean (over all elements) or torch::kSum (the
  /// reference's `-loss.sum()`).
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// The asymmetric term with \f$p = \sigma(x)\f$, \f$q = 1 - p = \sigma(-x)\f$ (each accurate at
/// any logit), \f$p_m = \max(p - m, 0)\f$, \f$1 - p_m = q + m\f$:
///
/// value \f$y\, q^{\gamma_+}\, \mathrm{softplus}(-x) + (1-y)\, p_m^{\gamma_-} L\f$ with
/// \f$L = -\log(1 - p_m)\f$;
///
/// derivative \f$-y\, q^{\gamma_+}(\phi\gamma_+\, p\, \mathrm{softplus}(-x) + q)
///   + (1-y)\, [p > m]\; p_m^{\gamma_-}\, p q\, (\phi\gamma_-\, L / p_m + 1/(1 - p_m))\f$,
///
/// where \f$\phi\f$ is 1, or 0 when the focusing factors are detached. \f$L / p_m \to 1\f$ as
/// \f$p_m \to 0\f$, so \f$p_m^{\gamma-1}\f$ never appears and the derivative is finite for every
/// \f$\gamma \ge 0\f$ (it is 0 for \f$p \le m\f$, where \f$p_m\f$ is constant). Without a clip
/// (\f$m = 0\f$) the negative part is \f$p^{\gamma_-}\,\mathrm{softplus}(x)\f$ with derivative
/// \f$p^{\gamma_-}(\phi\gamma_-\, q\, \mathrm{softplus}(x) + p)\f$, exact when \f$q\f$ underflows.
struct AsymmetricTerm {
  /// γ+, γ−, the clip m, and φ (1: exact gradient, 0: focusing factors detached).
  struct Params {
    double gamma_pos = 0, gamma_neg = 4, clip = 0.05, focus_grad = 1;
    std::vector<double> pack() const { return {gamma_pos, gamma_neg, clip, focus_grad}; }
    static Params unpack(const std::vector<double>& v) { return {v[0], v[1], v[2], v[3]}; }
  };
  template <typename V>
  static V value(const V& x, const V& y, const Params& p) {
    const auto s = ops::logistic(x);
    const V positive = ops::pow_unit(s.q, p.gamma_pos) * (s.softplus - x);  // softplus(−x) = softplus(x) − x
    if (p.clip == 0) {
      return y * positive + (1 - y) * ops::pow_unit(s.p, p.gamma_neg) * s.softplus;
    }
    const V shifted = ops::relu(s.p - ops::lit<V>(p.clip));
    const V negative = ops::pow_unit(shifted, p.gamma_neg) * ops::neg_log1m(shifted, s.q + ops::lit<V>(p.clip));
    return y * positive + (1 - y) * negative;
  }
  template <typename V>
  static V grad(const V& x, const V& y, const Params& p) {
    const auto s = ops::logistic(x);
    const V positive = -ops::pow_unit(s.q, p.gamma_pos) *
                       (ops::lit<V>(p.focus_grad * p.gamma_pos) * s.p * (s.softplus - x) + s.q);
    if (p.clip == 0) {
      const V negative =
          ops::pow_unit(s.p, p.gamma_neg) * (ops::lit<V>(p.focus_grad * p.gamma_neg) * s.q * s.softplus + s.p);
      return y * positive + (1 - y) * negative;
    }
    const V shifted = ops::relu(s.p - ops::lit<V>(p.clip));
    const V one_minus_shifted = s.q + ops::lit<V>(p.clip);
    const V log_ratio = ops::div_or(ops::neg_log1m(shifted, one_minus_shifted), shifted, 1.0);  // L / p_m
    const V negative = ops::step(shifted) * ops::pow_unit(shifted, p.gamma_neg) * (s.p * s.q) *
                       (ops::lit<V>(p.focus_grad * p.gamma_neg) * log_ratio + 1 / one_minus_shifted);
    return y * positive + (1 - y) * negative;
  }
};

/// Validates the options of the asymmetric loss.
inline void check_asymmetric_options(const char* fn, const AsymmetricLossOptions& options) {
  TORCH_CHECK(options.gamma_pos() >= 0 && std::isfinite(options.gamma_pos()), fn,
              ": gamma_pos must be a finite number >= 0, got ", options.gamma_pos());
  TORCH_CHECK(options.gamma_neg() >= 0 && std::isfinite(options.gamma_neg()), fn,
              ": gamma_neg must be a finite number >= 0, got ", options.gamma_neg());
  TORCH_CHECK(options.clip() >= 0 && options.clip() < 1, fn, ": clip must be in [0, 1), got ", options.clip());
}

}  // namespace detail

namespace functional {

/// Options of functional::asymmetric_loss (the same as the module's).
using AsymmetricLossFuncOptions = AsymmetricLossOptions;

/// Asymmetric loss (Ridnik et al., *Asymmetric Loss For Multi-Label Classification*, ICCV
/// 2021) of logits \f$x\f$ (any shape, e.g. [N, C] for C labels) against targets
/// \f$y \in \{0, 1\}\f$ of the same shape, element-wise
/// \f[ \ell = -y\,(1-p)^{\gamma_+} \log p \;-\; (1-y)\, p_m^{\gamma_-} \log(1 - p_m), \qquad
///     p = \sigma(x),\; p_m = \max(p - m, 0), \f]
/// with the clip \f$m\f$ (0 disables it). A soft target \f$y \in [0, 1]\f$ interpolates the two
/// parts linearly. Reductions: kNone returns the element losses, kMean averages over all
/// elements (API default, like SigmoidFocalLoss), kSum adds them. The reference
/// implementation (Alibaba-MIIL's `AsymmetricLoss`) returns the sum, `-loss.sum()`: use
/// torch::kSum for its scale (kMean is that sum divided by N·C). Its values agree with this
/// function except where it clamps probabilities at 1e-8 (\f$|\log p|\f$ capped at 18.4); here
/// \f$\log p\f$ and \f$\log(1 - p_m)\f$ are exact at any logit. Its default gradient treats the
/// focusing factors as constants; set `detach_focusing(true)` for that, or keep the exact
/// gradient (the default here). Both are analytic and finite for every \f$\gamma \ge 0\f$ at
/// any logit. Errors: target not of the input's shape or outside [0, 1],
/// \f$\gamma_\pm < 0\f$, clip outside [0, 1), devices.
inline torch::Tensor asymmetric_loss(const torch::Tensor& input, const torch::Tensor& target,
                                     const AsymmetricLossFuncOptions& options = {}) {
  const char* fn = "torchloss::asymmetric_loss";
  detail::check_asymmetric_options(fn, options);
  return detail::elementwise_loss<detail::AsymmetricTerm>(
      fn, input, target, torch::Tensor(), detail::reduction_code(options.reduction()),
      {options.gamma_pos(), options.gamma_neg(), options.clip(), options.detach_focusing() ? 0.0 : 1.0});
}

}  // namespace functional

/// Module form of functional::asymmetric_loss (no tensors of its own).
class AsymmetricLossImpl : public torch::nn::Cloneable<AsymmetricLossImpl> {
 public:
  /// Builds the loss from its options (checked here).
  explicit AsymmetricLossImpl(AsymmetricLossOptions options_ = {}) : options(std::move(options_)) { reset(); }

  /// Checks the options; nothing to register.
  void reset() override { detail::check_asymmetric_options("torchloss::AsymmetricLoss", options); }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::AsymmetricLoss(gamma_pos=" << options.gamma_pos() << ", gamma_neg=" << options.gamma_neg()
           << ", clip=" << options.clip() << ", detach_focusing=" << (options.detach_focusing() ? "true" : "false")
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `input` logits against `target` labels in {0, 1}.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::asymmetric_loss(input, target, options);
  }

  /// The options the module was built with.
  AsymmetricLossOptions options;
};

/// Module holder of AsymmetricLossImpl.
TORCH_MODULE(AsymmetricLoss);

}  // namespace torchloss
