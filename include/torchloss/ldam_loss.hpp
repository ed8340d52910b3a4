#pragma once
/// \file ldam_loss.hpp
/// \brief Label-distribution-aware margin loss (Cao et al., NeurIPS 2019): options,
/// functional form and module. Pair it with NormedLinear (cosine logits) and
/// class_weights::deferred (DRW), as the paper does.

#include <torchloss/class_weights.hpp>
#include <torchloss/weighted_cross_entropy.hpp>

#include <algorithm>
#include <cmath>

namespace torchloss {

/// Options of LDAMLoss and functional::ldam_loss.
///
/// \code
/// torchloss::LDAMLoss loss(torchloss::LDAMLossOptions(counts).max_margin(0.5).scale(30));
/// \endcode
struct LDAMLossOptions {
  /// Builds the options from the per-class training counts \f$n_c\f$ (required).
  /* implicit */ LDAMLossOptions(torch::Tensor class_counts) : class_counts_(std::move(class_counts)) {}
  /// Per-class sample counts \f$n_c\f$, shape [C], integer or floating, every entry \f$> 0\f$.
  TORCH_ARG(torch::Tensor, class_counts);
  /// The largest margin \f$M \ge 0\f$ (that of the rarest class); 0 gives cross entropy of
  /// \f$s x\f$.
  TORCH_ARG(double, max_margin) = 0.5;
  /// Logit scale \f$s > 0\f$ (the reference's `s`; 30 suits cosine logits in [−1, 1]).
  TORCH_ARG(double, scale) = 30.0;
  /// Per-class weights \f$w\f$, shape [C] (deferred re-weighting sets them per epoch);
  /// undefined means all ones.
  TORCH_ARG(torch::Tensor, weight) = {};
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// torch::kNone, torch::kMean (weighted mean, as cross entropy) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// The LDAM margins \f$m_c = M\, n_c^{-1/4} / \max_k n_k^{-1/4} = M (\min_k n_k / n_c)^{1/4}\f$
/// as a float64 tensor [C] on the counts' device, after checking the counts (1-D,
/// `num_classes` positive entries) and \f$M \ge 0\f$.
inline torch::Tensor ldam_margins(const char* fn, const torch::Tensor& counts, int64_t num_classes,
                                  double max_margin) {
  TORCH_CHECK(max_margin >= 0 && std::isfinite(max_margin), fn, ": max_margin must be a finite number >= 0, got ",
              max_margin);
  const auto n = class_weights::detail::checked_class_counts(fn, counts, num_classes);
  if (!n.device().is_cpu()) return (n.min() / n).pow(0.25) * max_margin;
  auto margins = torch::empty({num_classes}, n.options());
  const double* count = n.data_ptr<double>();
  double* out = margins.data_ptr<double>();
  const double smallest = num_classes > 0 ? *std::min_element(count, count + num_classes) : 1.0;
  for (int64_t c = 0; c < num_classes; ++c) out[c] = max_margin * std::pow(smallest / count[c], 0.25);
  return margins;
}

/// Checks the LDAM scale \f$s > 0\f$.
inline void check_ldam_scale(const char* fn, double scale) {
  TORCH_CHECK(scale > 0 && std::isfinite(scale), fn, ": scale must be a finite number > 0, got ", scale);
}

}  // namespace detail

namespace functional {

/// Options of functional::ldam_loss (the same as the module's).
using LDAMLossFuncOptions = LDAMLossOptions;

/// LDAM loss (Cao, Wei, Gaidon, Arechiga, Ma, *Learning Imbalanced Datasets with
/// Label-Distribution-Aware Margin Loss*, NeurIPS 2019) of logits \f$x\f$ [N, C] or
/// [N, C, d1, ...] and int64 class targets \f$y\f$: cross entropy of the scaled logits with the
/// target's margin taken off,
/// \f[ \ell_i = w_{y_i} \left(-\log \frac{e^{s (x_{i,y_i} - m_{y_i})}}
///       {e^{s (x_{i,y_i} - m_{y_i})} + \sum_{c \ne y_i} e^{s x_{i,c}}}\right), \qquad
///     m_c = M \frac{n_c^{-1/4}}{\max_k n_k^{-1/4}}, \f]
/// so rare classes get larger margins (the rarest gets \f$M\f$). kMean is the weighted mean
/// \f$\sum_i \ell_i / \sum_i w_{y_i}\f$ over non-ignored targets, as the reference's
/// `F.cross_entropy(s * output, target, weight)`; with \f$M = 0\f$ the loss is cross entropy of
/// \f$s x\f$. Meant for cosine logits in [−1, 1] (NormedLinear); with deferred re-weighting
/// (class_weights::deferred) as `weight` it is the paper's LDAM-DRW. The margins and scale are
/// applied inside the fused kernels; the gradient is \f$s\f$ times cross entropy's at the
/// transformed logits. Errors: as weighted_cross_entropy, plus class_counts undefined, not
/// of shape [C], or with an entry \f$\le 0\f$, \f$M < 0\f$ and \f$s \le 0\f$.
inline torch::Tensor ldam_loss(const torch::Tensor& input, const torch::Tensor& target,
                               const LDAMLossFuncOptions& options) {
  const char* fn = "torchloss::ldam_loss";
  detail::check_ldam_scale(fn, options.scale());
  detail::check_class_target(fn, input, target);
  detail::LogitTransform transform;
  transform.scale = options.scale();
  const auto margins = detail::ldam_margins(fn, options.class_counts(), input.size(1), options.max_margin());
  detail::check_same_device(fn, input, margins, "class_counts");
  if (options.max_margin() > 0) transform.margin = margins;
  const detail::SoftmaxLossConfig cfg{fn, options.ignore_index(), 0.0, detail::reduction_code(options.reduction()),
                                      /*weighted_mean=*/true};
  return detail::softmax_loss<detail::CrossEntropyTerm>(input, target, options.weight(), cfg, {}, "weight", transform);
}

}  // namespace functional

/// Module form of functional::ldam_loss. The counts are a registered buffer `class_counts`
/// and the class weights a registered buffer `weight` [C], always present (ones when none
/// are given), so deferred re-weighting is one in-place copy per epoch:
///
/// \code
/// torchloss::LDAMLoss criterion(torchloss::LDAMLossOptions(counts));
/// // at the start of each epoch (DRW from epoch 160, as the paper):
/// criterion->weight.copy_(torchloss::class_weights::deferred(epoch, 160, counts));
/// \endcode
class LDAMLossImpl : public torch::nn::Cloneable<LDAMLossImpl> {
 public:
  /// Builds the loss from its options; counts, margin and scale are checked here.
  explicit LDAMLossImpl(LDAMLossOptions options_) : options(std::move(options_)) { reset(); }

  /// Checks the options and registers the `class_counts` and `weight` buffers.
  void reset() override {
    const char* fn = "torchloss::LDAMLoss";
    TORCH_CHECK(options.class_counts().defined(), fn, ": class_counts is required (a per-class tensor [C])");
    const int64_t classes = options.class_counts().numel();
    detail::ldam_margins(fn, options.class_counts(), classes, options.max_margin());
    detail::check_ldam_scale(fn, options.scale());
    class_counts = register_buffer("class_counts", options.class_counts().clone());
    if (options.weight().defined()) {
      TORCH_CHECK(options.weight().dim() == 1 && options.weight().size(0) == classes, fn,
                  ": weight must have shape [", classes, "] (one entry per class), got ",
                  detail::shape_str(options.weight()));
      weight = register_buffer("weight", options.weight().clone());
    } else {
      weight = register_buffer("weight", torch::ones({classes}, options.class_counts().options().dtype(torch::kFloat)));
    }
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::LDAMLoss(classes=" << class_counts.numel() << ", max_margin=" << options.max_margin()
           << ", scale=" << options.scale() << ", ignore_index=" << options.ignore_index()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `input` logits (cosine logits, typically) against `target` class indices.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::ldam_loss(input, target, LDAMLossOptions(options).class_counts(class_counts).weight(weight));
  }

  /// The options the module was built with.
  LDAMLossOptions options;
  /// Registered per-class counts [C].
  torch::Tensor class_counts;
  /// Registered class weights [C] (ones unless given; DRW overwrites them in place).
  torch::Tensor weight;
};

/// Module holder of LDAMLossImpl.
TORCH_MODULE(LDAMLoss);

}  // namespace torchloss
