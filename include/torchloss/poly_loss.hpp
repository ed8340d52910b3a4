#pragma once
/// \file poly_loss.hpp
/// \brief Poly-1 cross entropy (Leng et al., *PolyLoss: A Polynomial Expansion Perspective of
/// Classification Loss Functions*, ICLR 2022): options, functional form and module PolyLoss.

#include <torchloss/detail/ops.hpp>
#include <torchloss/detail/softmax_loss.hpp>

#include <cmath>
#include <ostream>

namespace torchloss {

/// Options of PolyLoss and functional::poly1_cross_entropy.
///
/// \code
/// torchloss::PolyLoss loss(torchloss::PolyLossOptions().epsilon(2.0));
/// \endcode
struct PolyLossOptions {
  /// \f$\varepsilon\f$, the weight of the first polynomial term \f$(1 - p_y)\f$; any finite
  /// value (negative values are allowed, as in the paper's search, and 0 gives cross entropy).
  TORCH_ARG(double, epsilon) = 1.0;
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// torch::kNone, torch::kMean (sum / number of non-ignored targets) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// The Poly-1 target term of the softmax machinery, as a function of \f$\ell = \log p_y\f$:
/// value \f$-\ell + \varepsilon(1 - e^{\ell}) = -\ell - \varepsilon\,\mathrm{expm1}(\ell)\f$ (accurate when
/// \f$p_y \to 1\f$), derivative \f$-1 - \varepsilon e^{\ell}\f$.
struct Poly1Term {
  /// ε.
  struct Params {
    double epsilon = 1.0;
    std::vector<double> pack() const { return {epsilon}; }
    static Params unpack(const std::vector<double>& v) { return {v[0]}; }
  };
  template <typename V>
  static V value(const V& logp, const Params& p) {
    return -logp - ops::lit<V>(p.epsilon) * ops::expm1(logp);
  }
  template <typename V>
  static V grad_logp(const V& logp, const Params& p) {
    return -ops::lit<V>(p.epsilon) * (ops::expm1(logp) + 1) - 1;
  }
};

}  // namespace detail

namespace functional {

/// Options of functional::poly1_cross_entropy (the same as the module's).
using Poly1CrossEntropyFuncOptions = PolyLossOptions;

/// Poly-1 cross entropy (Leng et al., ICLR 2022) of logits \f$x\f$ [N, C] or [N, C, d1, ...] and
/// int64 class targets \f$y\f$ [N] or [N, d1, ...]:
/// \f[ \ell_i = -\log p_{i,y_i} + \varepsilon\,(1 - p_{i,y_i}), \qquad p_i = \mathrm{softmax}(x_i), \f]
/// \f$\ell_i = 0\f$ where \f$y_i\f$ is `ignore_index`; kMean divides the sum by the number of
/// non-ignored targets (0 when there are none). The gradient is analytic,
/// \f$\partial \ell_i / \partial x_{i,k} = (1 + \varepsilon\, p_{i,y_i})(p_{i,k} - \delta_{k y_i})\f$.
/// Fused CPU kernels shared with cross entropy. Errors: as weighted_cross_entropy (shapes,
/// labels, devices), plus a non-finite \f$\varepsilon\f$.
inline torch::Tensor poly1_cross_entropy(const torch::Tensor& input, const torch::Tensor& target,
                                         const Poly1CrossEntropyFuncOptions& options = {}) {
  const char* fn = "torchloss::poly1_cross_entropy";
  TORCH_CHECK(std::isfinite(options.epsilon()), fn, ": epsilon must be finite, got ", options.epsilon());
  const detail::SoftmaxLossConfig cfg{fn, options.ignore_index(), 0.0, detail::reduction_code(options.reduction()),
                                      /*weighted_mean=*/false};
  return detail::softmax_loss<detail::Poly1Term>(input, target, torch::Tensor(), cfg, {options.epsilon()});
}

}  // namespace functional

/// Module form of functional::poly1_cross_entropy (no state).
class PolyLossImpl : public torch::nn::Cloneable<PolyLossImpl> {
 public:
  /// Builds the loss from its options.
  explicit PolyLossImpl(PolyLossOptions options_ = {}) : options(std::move(options_)) { reset(); }

  /// Checks ε (nothing to register).
  void reset() override {
    TORCH_CHECK(std::isfinite(options.epsilon()), "torchloss::PolyLoss: epsilon must be finite, got ",
                options.epsilon());
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::PolyLoss(epsilon=" << options.epsilon() << ", ignore_index=" << options.ignore_index()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `input` logits against `target` class indices.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::poly1_cross_entropy(input, target, options);
  }

  /// The options the module was built with.
  PolyLossOptions options;
};

/// Module holder of PolyLossImpl.
TORCH_MODULE(PolyLoss);

}  // namespace torchloss
