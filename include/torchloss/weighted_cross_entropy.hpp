#pragma once
/// \file weighted_cross_entropy.hpp
/// \brief Weighted softmax cross entropy: options, functional form and module.

#include <torchloss/detail/softmax_loss.hpp>
#include <torchloss/detail/weight_buffer_module.hpp>

namespace torchloss {

/// Options of WeightedCrossEntropyLoss and functional::weighted_cross_entropy.
///
/// \code
/// torchloss::WeightedCrossEntropyLoss loss(
///     torchloss::WeightedCrossEntropyLossOptions().weight(w).label_smoothing(0.1));
/// \endcode
struct WeightedCrossEntropyLossOptions {
  /// Per-class weights \f$w\f$, shape [C]; undefined means all ones.
  TORCH_ARG(torch::Tensor, weight) = {};
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// Label smoothing \f$\varepsilon \in [0, 1]\f$ (the target becomes \f$(1-\varepsilon)\,\mathrm{onehot} + \varepsilon / C\f$).
  TORCH_ARG(double, label_smoothing) = 0.0;
  /// torch::kNone, torch::kMean (weighted mean) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// Cross entropy's target term: value = −log p_y, derivative −1.
struct CrossEntropyTerm {
  /// Cross entropy has no parameters of its own.
  struct Params {
    std::vector<double> pack() const { return {}; }
    static Params unpack(const std::vector<double>&) { return {}; }
  };
  template <typename V>
  static V value(const V& logp, const Params&) {
    return -logp;
  }
  template <typename V>
  static V grad_logp(const V& logp, const Params&) {
    return logp * 0 - 1;
  }
};

}  // namespace detail

namespace functional {

/// Options of functional::weighted_cross_entropy (the same as the module's).
using WeightedCrossEntropyFuncOptions = WeightedCrossEntropyLossOptions;

/// Weighted softmax cross entropy of logits \f$x\f$ [N, C] or [N, C, d1, ...] and int64 class
/// targets \f$y\f$ [N] or [N, d1, ...]:
/// \f[ \ell_i = (1-\varepsilon)\, w_{y_i} \left(-\log p_{i,y_i}\right)
///       + \frac{\varepsilon}{C} \sum_{c} w_c \left(-\log p_{i,c}\right),
///     \qquad p_i = \mathrm{softmax}(x_i), \f]
/// with \f$\ell_i = 0\f$ where \f$y_i\f$ is `ignore_index`. kMean returns
/// \f$\sum_i \ell_i / \sum_{i \text{ not ignored}} w_{y_i}\f$, and 0 (with a zero gradient) when
/// every target is ignored. Values and gradients equal
/// `torch::nn::functional::cross_entropy` with the same arguments, except that all-ignored
/// case, where PyTorch returns NaN. float16/bfloat16 are computed in float32; the result has
/// the input's dtype. Errors: wrong shapes, non-int64 target, labels outside [0, C) that are
/// not `ignore_index`, a weight not of shape [C], `label_smoothing` outside [0, 1], tensors on
/// different devices.
inline torch::Tensor weighted_cross_entropy(const torch::Tensor& input, const torch::Tensor& target,
                                            const WeightedCrossEntropyFuncOptions& options = {}) {
  const detail::SoftmaxLossConfig cfg{"torchloss::weighted_cross_entropy", options.ignore_index(),
                                      options.label_smoothing(), detail::reduction_code(options.reduction()),
                                      /*weighted_mean=*/true};
  return detail::softmax_loss<detail::CrossEntropyTerm>(input, target, options.weight(), cfg, {});
}

}  // namespace functional

/// Module form of functional::weighted_cross_entropy. The class weights are a registered
/// buffer `weight`, so `->to(device)`, `clone()` and `torch::save` carry them.
class WeightedCrossEntropyLossImpl
    : public detail::WeightBufferLossImpl<WeightedCrossEntropyLossImpl, WeightedCrossEntropyLossOptions> {
 public:
  /// The name pretty_print uses.
  static constexpr const char* kName = "WeightedCrossEntropyLoss";
  /// Builds the loss from its options.
  explicit WeightedCrossEntropyLossImpl(WeightedCrossEntropyLossOptions options_ = {})
      : WeightBufferLossImpl(std::move(options_)) {}
  /// The functional form the module applies.
  static torch::Tensor loss(const torch::Tensor& input, const torch::Tensor& target,
                            const WeightedCrossEntropyLossOptions& options) {
    return functional::weighted_cross_entropy(input, target, options);
  }
  /// Prints the options pretty_print shows before the reduction.
  void print_options(std::ostream& stream) const {
    stream << "ignore_index=" << options.ignore_index() << ", label_smoothing=" << options.label_smoothing() << ", ";
  }
};

/// Module holder of WeightedCrossEntropyLossImpl (`std::shared_ptr` semantics, like torch::nn::CrossEntropyLoss).
TORCH_MODULE(WeightedCrossEntropyLoss);

}  // namespace torchloss
