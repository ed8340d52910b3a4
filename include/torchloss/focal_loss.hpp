#pragma once
/// \file focal_loss.hpp
/// \brief Softmax (multi-class) focal loss and its α-weighted form: options, functional
/// form and the modules FocalLoss and WeightedFocalLoss.

#include <torchloss/detail/ops.hpp>
#include <torchloss/detail/module_state.hpp>
#include <torchloss/detail/softmax_loss.hpp>

namespace torchloss {

/// Options of FocalLoss and functional::focal_loss.
///
/// \code
/// torchloss::FocalLoss loss(torchloss::FocalLossOptions().gamma(2.0).alpha(per_class_alpha));
/// \endcode
struct FocalLossOptions {
  /// Focusing parameter \f$\gamma \ge 0\f$; 0 gives cross entropy.
  TORCH_ARG(double, gamma) = 2.0;
  /// Per-class weights \f$\alpha\f$, shape [C], non-negative; undefined means all ones.
  TORCH_ARG(torch::Tensor, alpha) = {};
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// torch::kNone, torch::kMean (sum / number of non-ignored targets) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

/// Options of WeightedFocalLoss: FocalLossOptions with the per-class α required.
struct WeightedFocalLossOptions {
  /// Builds the options from the required per-class weights α [C].
  /* implicit */ WeightedFocalLossOptions(torch::Tensor alpha) : alpha_(std::move(alpha)) {}
  /// Per-class weights \f$\alpha\f$, shape [C], non-negative (required).
  TORCH_ARG(torch::Tensor, alpha);
  /// Focusing parameter \f$\gamma \ge 0\f$.
  TORCH_ARG(double, gamma) = 2.0;
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// torch::kNone, torch::kMean or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// The focal target term of the softmax machinery, as a function of \f$\ell = \log p_y\f$
/// with \f$q = 1 - p_y = -\mathrm{expm1}(\ell)\f$ (accurate when \f$p_y \to 1\f$):
/// value \f$-q^\gamma \ell\f$, derivative \f$q^\gamma(\gamma\, p_y\, \ell / q - 1)\f$, where
/// \f$\ell / q \to -1\f$ as \f$q \to 0\f$, so the derivative is finite for every \f$\gamma \ge 0\f$.
struct FocalTerm {
  /// γ.
  struct Params {
    double gamma = 2.0;
    std::vector<double> pack() const { return {gamma}; }
    static Params unpack(const std::vector<double>& v) { return {v[0]}; }
  };
  template <typename V>
  static V value(const V& logp, const Params& p) {
    const V q = -ops::expm1(logp);
    return -ops::pow_unit(q, p.gamma) * logp;
  }
  template <typename V>
  static V grad_logp(const V& logp, const Params& p) {
    const V q = -ops::expm1(logp);
    const V ratio = ops::div_or(logp, q, -1.0);
    return ops::pow_unit(q, p.gamma) * (ops::lit<V>(p.gamma) * (1 - q) * ratio - 1);
  }
};

/// Validates γ and α (the checks both focal modules and the functional form share).
inline void check_focal_options(const char* fn, double gamma, const torch::Tensor& alpha) {
  TORCH_CHECK(gamma >= 0, fn, ": gamma must be >= 0, got ", gamma);
  if (alpha.defined() && alpha.numel() > 0 && detail::is_supported_float(alpha.scalar_type())) {
    const double smallest = alpha.min().item<double>();
    TORCH_CHECK(smallest >= 0, fn, ": alpha must be non-negative, got ", smallest);
  }
}

}  // namespace detail

namespace functional {

/// Options of functional::focal_loss (the same as the module's).
using FocalLossFuncOptions = FocalLossOptions;

/// Softmax focal loss (Lin et al., ICCV 2017) of logits \f$x\f$ [N, C] or [N, C, d1, ...] and
/// int64 class targets \f$y\f$ [N] or [N, d1, ...]:
/// \f[ \ell_i = -\alpha_{y_i} (1 - p_{i,y_i})^\gamma \log p_{i,y_i}, \qquad p_i = \mathrm{softmax}(x_i), \f]
/// \f$\ell_i = 0\f$ where \f$y_i\f$ is `ignore_index`; kMean divides the sum by the number of
/// non-ignored targets (0 when there are none). \f$\gamma = 0\f$ and no α give cross entropy.
/// The gradient is analytic,
/// \f$\partial \ell_i / \partial x_{i,k} = \alpha_{y_i} h_i (\delta_{k y_i} - p_{i,k})\f$ with
/// \f$h_i = (1-p)^\gamma(\gamma\, p \log p / (1-p) - 1)\f$ at \f$p = p_{i,y_i}\f$, finite for every
/// \f$\gamma \ge 0\f$ at any logit. Errors: as weighted_cross_entropy, plus `gamma < 0` and a
/// negative α.
inline torch::Tensor focal_loss(const torch::Tensor& input, const torch::Tensor& target,
                                const FocalLossFuncOptions& options = {}) {
  const char* fn = "torchloss::focal_loss";
  detail::check_focal_options(fn, options.gamma(), options.alpha());
  const detail::SoftmaxLossConfig cfg{fn, options.ignore_index(), 0.0, detail::reduction_code(options.reduction()),
                                      /*weighted_mean=*/false};
  return detail::softmax_loss<detail::FocalTerm>(input, target, options.alpha(), cfg, {options.gamma()}, "alpha");
}

}  // namespace functional

namespace detail {

/// What FocalLoss and WeightedFocalLoss share (the pattern of LibTorch's ConvNdImpl):
/// α as a registered buffer and a forward that calls functional::focal_loss.
template <class Derived, class Options>
class FocalLossImplBase : public torch::nn::Cloneable<Derived> {
 public:
  explicit FocalLossImplBase(Options options_) : options(std::move(options_)) { reset(); }

  /// Registers the `alpha` buffer (when given).
  void reset() override {
    alpha = options.alpha().defined() ? this->register_buffer("alpha", options.alpha().clone()) : torch::Tensor();
  }

  /// Loads a saved state; refuses one with an `alpha` when this module has none.
  void load(torch::serialize::InputArchive& archive) override {
    check_no_unregistered_tensor(archive, std::string("torchloss::") + Derived::kName, "alpha", alpha.defined(),
                                 "options.alpha(...)");
    torch::nn::Module::load(archive);
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::" << Derived::kName << "(gamma=" << options.gamma()
           << ", ignore_index=" << options.ignore_index()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `input` logits against `target` class indices.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::focal_loss(input, target,
                                  FocalLossOptions()
                                      .gamma(options.gamma())
                                      .alpha(alpha)
                                      .ignore_index(options.ignore_index())
                                      .reduction(options.reduction()));
  }

  /// The options the module was built with.
  Options options;
  /// Registered per-class weights [C] (undefined when none).
  torch::Tensor alpha;
};

}  // namespace detail

/// Module form of functional::focal_loss; α (when given) is a registered buffer.
class FocalLossImpl : public detail::FocalLossImplBase<FocalLossImpl, FocalLossOptions> {
 public:
  /// The name pretty_print uses.
  static constexpr const char* kName = "FocalLoss";
  /// Builds the loss from its options.
  explicit FocalLossImpl(FocalLossOptions options_ = {}) : FocalLossImplBase(std::move(options_)) {}
};

/// Module holder of FocalLossImpl.
TORCH_MODULE(FocalLoss);

/// FocalLoss with a required per-class α [C] (the α-balanced focal loss).
class WeightedFocalLossImpl : public detail::FocalLossImplBase<WeightedFocalLossImpl, WeightedFocalLossOptions> {
 public:
  /// The name pretty_print uses.
  static constexpr const char* kName = "WeightedFocalLoss";
  /// Builds the loss from its options; α must be defined.
  explicit WeightedFocalLossImpl(WeightedFocalLossOptions options_) : FocalLossImplBase(checked(std::move(options_))) {}

 private:
  static WeightedFocalLossOptions checked(WeightedFocalLossOptions options) {
    TORCH_CHECK(options.alpha().defined(), "torchloss::WeightedFocalLoss: alpha is required (a per-class tensor [C])");
    return options;
  }
};

/// Module holder of WeightedFocalLossImpl.
TORCH_MODULE(WeightedFocalLoss);

}  // namespace torchloss
