#pragma once
/// \file multilabel_soft_margin_loss.hpp
/// \brief Multi-label soft margin loss with class weights, as LibTorch's, on a fused kernel.

#include <torchloss/weighted_binary_cross_entropy.hpp>

namespace torchloss {

/// Options of MultiLabelSoftMarginLoss and functional::multilabel_soft_margin_loss.
struct MultiLabelSoftMarginLossOptions {
  /// Per-class weights \f$w\f$, shape [C]; undefined means all ones.
  TORCH_ARG(torch::Tensor, weight) = {};
  /// torch::kNone ([N]), torch::kMean (over samples) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace functional {

/// Options of functional::multilabel_soft_margin_loss (the same as the module's).
using MultiLabelSoftMarginLossFuncOptions = MultiLabelSoftMarginLossOptions;

/// Multi-label soft margin loss of logits \f$x\f$ [N, C] against targets \f$y \in \{0, 1\}\f$
/// [N, C] (values in [0, 1] are accepted):
/// \f[ \ell_n = -\frac{1}{C} \sum_c w_c \left[ y_{nc} \log\sigma(x_{nc}) + (1 - y_{nc}) \log(1 - \sigma(x_{nc})) \right], \f]
/// kMean averages \f$\ell_n\f$ over the N samples. Equal in value and gradient to
/// `torch::nn::functional::multilabel_soft_margin_loss` with the same weight, computed in one
/// fused pass with the stable softplus form. Errors: input not 2-D, target not of the input's
/// shape or outside [0, 1], a weight not of shape [C], devices.
inline torch::Tensor multilabel_soft_margin_loss(const torch::Tensor& input, const torch::Tensor& target,
                                                 const MultiLabelSoftMarginLossFuncOptions& options = {}) {
  const char* fn = "torchloss::multilabel_soft_margin_loss";
  detail::check_logits(fn, input);
  TORCH_CHECK(input.dim() == 2, fn, ": input must have shape [N, C], got ", detail::shape_str(input));
  detail::check_class_vector(fn, input, options.weight(), input.size(1), "weight");
  // The 1/C of the class mean goes into both parts of the binary cross-entropy term.
  const double inverse_classes = input.size(1) > 0 ? 1.0 / static_cast<double>(input.size(1)) : 0.0;
  return detail::elementwise_loss<detail::BinaryCrossEntropyTerm>(
      fn, input, target, options.weight(), detail::reduction_code(options.reduction()),
      {inverse_classes, inverse_classes}, /*group=*/input.size(1));
}

}  // namespace functional

/// Module form of functional::multilabel_soft_margin_loss; `weight` is a registered buffer.
class MultiLabelSoftMarginLossImpl
    : public detail::WeightBufferLossImpl<MultiLabelSoftMarginLossImpl, MultiLabelSoftMarginLossOptions> {
 public:
  /// The name pretty_print uses.
  static constexpr const char* kName = "MultiLabelSoftMarginLoss";
  /// Builds the loss from its options.
  explicit MultiLabelSoftMarginLossImpl(MultiLabelSoftMarginLossOptions options_ = {})
      : WeightBufferLossImpl(std::move(options_)) {}
  /// The functional form the module applies.
  static torch::Tensor loss(const torch::Tensor& input, const torch::Tensor& target,
                            const MultiLabelSoftMarginLossOptions& options) {
    return functional::multilabel_soft_margin_loss(input, target, options);
  }
  /// Prints the options pretty_print shows before the reduction (none).
  void print_options(std::ostream&) const {}
};

/// Module holder of MultiLabelSoftMarginLossImpl.
TORCH_MODULE(MultiLabelSoftMarginLoss);

}  // namespace torchloss
