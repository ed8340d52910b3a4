#pragma once
/// \file weighted_binary_cross_entropy.hpp
/// \brief α-weighted binary cross entropy on logits: options, functional form and module.

#include <torchloss/detail/elementwise_loss.hpp>
#include <torchloss/detail/weight_buffer_module.hpp>

namespace torchloss {

/// Options of WeightedBinaryCrossEntropyLoss and functional::weighted_binary_cross_entropy.
///
/// \code
/// torchloss::WeightedBinaryCrossEntropyLoss loss(torchloss::WeightedBinaryCrossEntropyLossOptions(0.25));
/// \endcode
struct WeightedBinaryCrossEntropyLossOptions {
  /// \f$\alpha\f$, the weight of positive targets (negatives get \f$1-\alpha\f$); must be at most
  /// 1, and a negative value disables the α-weighting (plain binary cross entropy).
  /* implicit */ WeightedBinaryCrossEntropyLossOptions(double alpha) : alpha_(alpha) {}
  /// See the constructor.
  TORCH_ARG(double, alpha);
  /// Element weights broadcastable to the input's shape (e.g. [C] for [N, C]); undefined means ones.
  TORCH_ARG(torch::Tensor, weight) = {};
  /// torch::kNone, torch::kMean (over all elements) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// The α-weighted binary cross entropy term with softplus s(x) = log(1 + e^x):
/// ℓ = a₊ y s(−x) + a₋ (1−y) s(x), ∂ℓ/∂x = −a₊ y (1−σ(x)) + a₋ (1−y) σ(x).
struct BinaryCrossEntropyTerm {
  /// The weights of the positive and negative parts: (α, 1−α), or (1, 1) when α < 0.
  struct Params {
    double positive = 1, negative = 1;
    std::vector<double> pack() const { return {positive, negative}; }
    static Params unpack(const std::vector<double>& v) { return {v[0], v[1]}; }
    static Params from_alpha(double alpha) { return alpha < 0 ? Params{1, 1} : Params{alpha, 1 - alpha}; }
  };
  template <typename V>
  static V value(const V& x, const V& y, const Params& p) {
    // s(−x) = s(x) − x: one softplus serves both parts.
    const V sp = ops::softplus(x);
    return ops::lit<V>(p.positive) * y * (sp - x) + ops::lit<V>(p.negative) * (1 - y) * sp;
  }
  template <typename V>
  static V grad(const V& x, const V& y, const Params& p) {
    const V s = ops::sigmoid(x);
    return ops::lit<V>(p.negative) * (1 - y) * s - ops::lit<V>(p.positive) * y * (1 - s);
  }
};

}  // namespace detail

namespace functional {

/// Options of functional::weighted_binary_cross_entropy (the same as the module's).
using WeightedBinaryCrossEntropyFuncOptions = WeightedBinaryCrossEntropyLossOptions;

/// α-weighted binary cross entropy of logits \f$x\f$ (any shape) against float targets
/// \f$y \in [0, 1]\f$ of the same shape:
/// \f[ \ell = w \left[-\alpha\, y \log\sigma(x) - (1-\alpha)(1-y) \log(1-\sigma(x))\right], \f]
/// computed as \f$w[\alpha\, y\, s(-x) + (1-\alpha)(1-y)\, s(x)]\f$ with the stable softplus
/// \f$s(x) = \max(x,0) + \log(1+e^{-|x|})\f$, so it is finite at any logit. With \f$\alpha < 0\f$
/// both parts have weight 1 and the value equals
/// `torch::nn::functional::binary_cross_entropy_with_logits` with the same `weight`.
/// kMean divides the sum by the number of elements (0 for an empty input).
/// Errors: target not of the input's shape, target outside [0, 1], a weight that does not
/// broadcast to the input, \f$\alpha > 1\f$, tensors on different devices.
inline torch::Tensor weighted_binary_cross_entropy(const torch::Tensor& input, const torch::Tensor& target,
                                                   const WeightedBinaryCrossEntropyFuncOptions& options) {
  const char* fn = "torchloss::weighted_binary_cross_entropy";
  TORCH_CHECK(options.alpha() <= 1, fn, ": alpha must be at most 1 (or negative to disable), got ",
              options.alpha());
  return detail::elementwise_loss<detail::BinaryCrossEntropyTerm>(
      fn, input, target, options.weight(), detail::reduction_code(options.reduction()),
      detail::BinaryCrossEntropyTerm::Params::from_alpha(options.alpha()));
}

}  // namespace functional

/// Module form of functional::weighted_binary_cross_entropy; `weight` is a registered buffer.
class WeightedBinaryCrossEntropyLossImpl
    : public detail::WeightBufferLossImpl<WeightedBinaryCrossEntropyLossImpl, WeightedBinaryCrossEntropyLossOptions> {
 public:
  /// The name pretty_print uses.
  static constexpr const char* kName = "WeightedBinaryCrossEntropyLoss";
  /// Builds the loss from its options (α is required).
  explicit WeightedBinaryCrossEntropyLossImpl(WeightedBinaryCrossEntropyLossOptions options_)
      : WeightBufferLossImpl(std::move(options_)) {}
  /// The functional form the module applies.
  static torch::Tensor loss(const torch::Tensor& input, const torch::Tensor& target,
                            const WeightedBinaryCrossEntropyLossOptions& options) {
    return functional::weighted_binary_cross_entropy(input, target, options);
  }
  /// Prints the options pretty_print shows before the reduction.
  void print_options(std::ostream& stream) const { stream << "alpha=" << options.alpha() << ", "; }
};

/// Module holder of WeightedBinaryCrossEntropyLossImpl.
TORCH_MODULE(WeightedBinaryCrossEntropyLoss);

}  // namespace torchloss
