#pragma once
/// \file sigmoid_focal_loss.hpp
/// \brief Sigmoid (binary and multi-label) focal loss, as torchvision.ops.sigmoid_focal_loss.

#include <torchloss/detail/elementwise_loss.hpp>

namespace torchloss {

/// Options of SigmoidFocalLoss and functional::sigmoid_focal_loss.
///
/// \code
/// torchloss::SigmoidFocalLoss loss(torchloss::SigmoidFocalLossOptions().gamma(2.0).alpha(0.25));
/// \endcode
struct SigmoidFocalLossOptions {
  /// Focusing parameter \f$\gamma \ge 0\f$; 0 gives (α-weighted) binary cross entropy.
  TORCH_ARG(double, gamma) = 2.0;
  /// Weight \f$\alpha \le 1\f$ of positives (negatives get \f$1-\alpha\f$); negative disables.
  TORCH_ARG(double, alpha) = 0.25;
  /// torch::kNone, torch::kMean (over all elements) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// The sigmoid focal term with \f$p = \sigma(x)\f$, \f$m = 1 - p_t = y(1-p) + (1-y)p\f$ and
/// \f$\mathrm{ce} = \mathrm{softplus}(x) - xy\f$:
/// value \f$\alpha_t\, m^\gamma\, \mathrm{ce}\f$, derivative
/// \f$\alpha_t m^\gamma [(p - y) + \gamma\, \mathrm{ce}\, (1-2y)\, p(1-p)/m]\f$. For
/// \f$\gamma < 1\f$ the ratio \f$p(1-p)/m\f$ (at most 2, and 0 at \f$m = 0\f$) keeps
/// \f$m^{\gamma-1}\f$ from overflowing; for \f$\gamma \ge 1\f$ the bounded \f$m^{\gamma-1}\f$ is
/// factored out instead. The gradient is finite for every \f$\gamma \ge 0\f$ at any logit.
struct SigmoidFocalTerm {
  /// γ and α (α < 0: no α-weighting).
  struct Params {
    double gamma = 2.0, alpha = 0.25;
    std::vector<double> pack() const { return {gamma, alpha}; }
    static Params unpack(const std::vector<double>& v) { return {v[0], v[1]}; }
  };
  template <typename V>
  static V alpha_t(const V& y, const Params& p) {
    return p.alpha < 0 ? y * 0 + 1 : ops::lit<V>(p.alpha) * y + ops::lit<V>(1 - p.alpha) * (1 - y);
  }
  template <typename V>
  static V value(const V& x, const V& y, const Params& p) {
    const auto s = ops::logistic(x);
    const V m = y * s.q + (1 - y) * s.p;
    return alpha_t(y, p) * ops::pow_unit(m, p.gamma) * (s.softplus - x * y);
  }
  template <typename V>
  static V grad(const V& x, const V& y, const Params& p) {
    const auto s = ops::logistic(x);
    const V m = y * s.q + (1 - y) * s.p;
    const V p_minus_y = s.p * (1 - y) - s.q * y;
    const V focus = ops::lit<V>(p.gamma) * (s.softplus - x * y) * (1 - 2 * y);
    if (p.gamma >= 1) {
      // m^{γ−1} <= 1 here: factor it out and skip the division.
      return alpha_t(y, p) * ops::pow_unit(m, p.gamma - 1) * (m * p_minus_y + focus * s.p * s.q);
    }
    return alpha_t(y, p) * ops::pow_unit(m, p.gamma) * (p_minus_y + focus * ops::div_or(s.p * s.q, m, 0.0));
  }
};

}  // namespace detail

namespace functional {

/// Options of functional::sigmoid_focal_loss (the same as the module's).
using SigmoidFocalLossFuncOptions = SigmoidFocalLossOptions;

/// Sigmoid focal loss of logits \f$x\f$ (any shape) against targets \f$y \in [0, 1]\f$ of the same
/// shape, element-wise
/// \f[ \ell = \alpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(x, y), \quad p = \sigma(x),\;
///     p_t = p y + (1-p)(1-y),\; \alpha_t = \alpha y + (1-\alpha)(1-y), \f]
/// with \f$\alpha_t = 1\f$ when \f$\alpha < 0\f$; kMean averages over all elements. Values and
/// gradients equal `torchvision.ops.sigmoid_focal_loss`, except that the gradient here is
/// finite where torchvision's is NaN (\f$\gamma < 1\f$ on saturated logits). Errors: target
/// not of the input's shape or outside [0, 1], `gamma < 0`, `alpha > 1`, devices.
inline torch::Tensor sigmoid_focal_loss(const torch::Tensor& input, const torch::Tensor& target,
                                        const SigmoidFocalLossFuncOptions& options = {}) {
  const char* fn = "torchloss::sigmoid_focal_loss";
  TORCH_CHECK(options.gamma() >= 0, fn, ": gamma must be >= 0, got ", options.gamma());
  TORCH_CHECK(options.alpha() <= 1, fn, ": alpha must be at most 1 (or negative to disable), got ", options.alpha());
  return detail::elementwise_loss<detail::SigmoidFocalTerm>(fn, input, target, torch::Tensor(),
                                                            detail::reduction_code(options.reduction()),
                                                            {options.gamma(), options.alpha()});
}

}  // namespace functional

/// Module form of functional::sigmoid_focal_loss (no tensors of its own).
class SigmoidFocalLossImpl : public torch::nn::Cloneable<SigmoidFocalLossImpl> {
 public:
  /// Builds the loss from its options.
  explicit SigmoidFocalLossImpl(SigmoidFocalLossOptions options_ = {}) : options(std::move(options_)) {}

  /// Nothing to register.
  void reset() override {}

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::SigmoidFocalLoss(gamma=" << options.gamma() << ", alpha=" << options.alpha()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `input` logits against `target` probabilities.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::sigmoid_focal_loss(input, target, options);
  }

  /// The options the module was built with.
  SigmoidFocalLossOptions options;
};

/// Module holder of SigmoidFocalLossImpl.
TORCH_MODULE(SigmoidFocalLoss);

}  // namespace torchloss
