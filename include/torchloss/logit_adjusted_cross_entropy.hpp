#pragma once
/// \file logit_adjusted_cross_entropy.hpp
/// \brief Logit-adjusted cross entropy (Menon et al., ICLR 2021), which at τ = 1 is the
/// balanced softmax (Ren et al., NeurIPS 2020): options, functional form and module.

#include <torchloss/class_weights.hpp>
#include <torchloss/weighted_cross_entropy.hpp>

#include <cmath>
#include <numeric>

namespace torchloss {

/// Options of LogitAdjustedCrossEntropyLoss and functional::logit_adjusted_cross_entropy.
///
/// \code
/// // counts[c] = training samples of class c
/// torchloss::LogitAdjustedCrossEntropyLoss loss(
///     torchloss::LogitAdjustedCrossEntropyLossOptions(counts).tau(1.0));
/// \endcode
struct LogitAdjustedCrossEntropyLossOptions {
  /// Builds the options from the per-class training counts \f$n_c\f$ (required).
  /* implicit */ LogitAdjustedCrossEntropyLossOptions(torch::Tensor class_counts)
      : class_counts_(std::move(class_counts)) {}
  /// Per-class sample counts \f$n_c\f$, shape [C], integer or floating, every entry \f$> 0\f$;
  /// the prior is \f$\pi_c = n_c / \sum_k n_k\f$.
  TORCH_ARG(torch::Tensor, class_counts);
  /// Scaling \f$\tau \ge 0\f$ of the log prior added to the logits; 0 gives cross entropy,
  /// 1 the balanced softmax.
  TORCH_ARG(double, tau) = 1.0;
  /// Per-class weights \f$w\f$, shape [C]; undefined means all ones.
  TORCH_ARG(torch::Tensor, weight) = {};
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// Label smoothing \f$\varepsilon \in [0, 1]\f$, applied to the adjusted logits as in
  /// WeightedCrossEntropyLoss.
  TORCH_ARG(double, label_smoothing) = 0.0;
  /// torch::kNone, torch::kMean (weighted mean, as cross entropy) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// The log prior \f$\log \pi_c = \log n_c - \log \sum_k n_k\f$ as a float64 tensor [C] on the
/// counts' device, after checking that the counts are a 1-D tensor of `num_classes` positive
/// entries. CPU counts take a plain loop (no ATen launches: this runs on every call).
inline torch::Tensor log_class_prior(const char* fn, const torch::Tensor& counts, int64_t num_classes) {
  const auto n = class_weights::detail::checked_class_counts(fn, counts, num_classes);
  if (!n.device().is_cpu()) return n.log() - n.sum().log();
  auto log_prior = torch::empty({num_classes}, n.options());
  const double* count = n.data_ptr<double>();
  double* out = log_prior.data_ptr<double>();
  const double total = std::accumulate(count, count + num_classes, 0.0);
  const double log_total = std::log(total);
  for (int64_t c = 0; c < num_classes; ++c) out[c] = std::log(count[c]) - log_total;
  return log_prior;
}

}  // namespace detail

namespace functional {

/// Options of functional::logit_adjusted_cross_entropy (the same as the module's).
using LogitAdjustedCrossEntropyFuncOptions = LogitAdjustedCrossEntropyLossOptions;

/// Logit-adjusted cross entropy (Menon et al., *Long-tail learning via logit adjustment*,
/// ICLR 2021) of logits \f$x\f$ [N, C] or [N, C, d1, ...] and int64 class targets \f$y\f$ [N] or
/// [N, d1, ...]: cross entropy of the logits shifted by the scaled log prior,
/// \f[ \ell_i = w_{y_i} \left(-\log \frac{e^{x_{i,y_i} + \tau \log \pi_{y_i}}}
///       {\sum_c e^{x_{i,c} + \tau \log \pi_c}}\right), \qquad \pi_c = \frac{n_c}{\sum_k n_k}, \f]
/// with label smoothing, `ignore_index`, weights and reductions exactly as
/// weighted_cross_entropy() on \f$x + \tau \log \pi\f$. At \f$\tau = 1\f$ this is the balanced
/// softmax (Ren et al., NeurIPS 2020),
/// \f$-\log\left(n_{y} e^{x_{y}} / \sum_c n_c e^{x_c}\right)\f$. The adjustment only trains the
/// logits: predict with the raw \f$x\f$ (argmax of \f$x\f$, not of \f$x + \tau \log\pi\f$).
/// The prior is added inside the fused kernels (no copy of the logits); since it is a
/// constant, \f$\partial \ell / \partial x\f$ is cross entropy's gradient at the adjusted logits.
/// Errors: as weighted_cross_entropy, plus class_counts undefined, not of shape [C], or with
/// an entry \f$\le 0\f$, and \f$\tau < 0\f$.
inline torch::Tensor logit_adjusted_cross_entropy(const torch::Tensor& input, const torch::Tensor& target,
                                                  const LogitAdjustedCrossEntropyFuncOptions& options) {
  const char* fn = "torchloss::logit_adjusted_cross_entropy";
  TORCH_CHECK(options.tau() >= 0 && std::isfinite(options.tau()), fn, ": tau must be a finite number >= 0, got ",
              options.tau());
  detail::check_class_target(fn, input, target);
  detail::LogitTransform transform;
  if (options.tau() > 0) {
    transform.offset = detail::log_class_prior(fn, options.class_counts(), input.size(1)).mul_(options.tau());
  } else {
    detail::log_class_prior(fn, options.class_counts(), input.size(1));  // τ = 0 still validates the counts
  }
  if (transform.offset.defined()) detail::check_same_device(fn, input, transform.offset, "class_counts");
  const detail::SoftmaxLossConfig cfg{fn, options.ignore_index(), options.label_smoothing(),
                                      detail::reduction_code(options.reduction()), /*weighted_mean=*/true};
  return detail::softmax_loss<detail::CrossEntropyTerm>(input, target, options.weight(), cfg, {}, "weight", transform);
}

}  // namespace functional

/// Module form of functional::logit_adjusted_cross_entropy. The counts are a registered
/// buffer `class_counts` and the class weights (when given) a buffer `weight`, so
/// `->to(device)`, `clone()` and `torch::save` carry them.
class LogitAdjustedCrossEntropyLossImpl : public torch::nn::Cloneable<LogitAdjustedCrossEntropyLossImpl> {
 public:
  /// Builds the loss from its options; the counts are checked here.
  explicit LogitAdjustedCrossEntropyLossImpl(LogitAdjustedCrossEntropyLossOptions options_)
      : options(std::move(options_)) {
    reset();
  }

  /// Checks the counts and τ, and registers the `class_counts` and `weight` buffers.
  void reset() override {
    const char* fn = "torchloss::LogitAdjustedCrossEntropyLoss";
    TORCH_CHECK(options.class_counts().defined(), fn, ": class_counts is required (a per-class tensor [C])");
    detail::log_class_prior(fn, options.class_counts(), options.class_counts().numel());
    TORCH_CHECK(options.tau() >= 0 && std::isfinite(options.tau()), fn, ": tau must be a finite number >= 0, got ",
                options.tau());
    class_counts = register_buffer("class_counts", options.class_counts().clone());
    weight = options.weight().defined() ? register_buffer("weight", options.weight().clone()) : torch::Tensor();
  }

  /// Loads a saved state; refuses one with a `weight` when this module has none.
  void load(torch::serialize::InputArchive& archive) override {
    detail::check_no_unregistered_tensor(archive, "torchloss::LogitAdjustedCrossEntropyLoss", "weight",
                                         weight.defined(), "options.weight(...)");
    torch::nn::Module::load(archive);
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::LogitAdjustedCrossEntropyLoss(classes=" << class_counts.numel() << ", tau=" << options.tau()
           << ", ignore_index=" << options.ignore_index() << ", label_smoothing=" << options.label_smoothing()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `input` logits against `target` class indices.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::logit_adjusted_cross_entropy(
        input, target, LogitAdjustedCrossEntropyLossOptions(options).class_counts(class_counts).weight(weight));
  }

  /// The options the module was built with.
  LogitAdjustedCrossEntropyLossOptions options;
  /// Registered per-class counts [C].
  torch::Tensor class_counts;
  /// Registered class weights [C] (undefined when none).
  torch::Tensor weight;
};

/// Module holder of LogitAdjustedCrossEntropyLossImpl.
TORCH_MODULE(LogitAdjustedCrossEntropyLoss);

}  // namespace torchloss
