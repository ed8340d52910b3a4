#pragma once
/// \file ghm_loss.hpp
/// \brief Gradient harmonizing losses (Li, Liu and Wang, AAAI 2019): GHM-C on logits with
/// binary targets and GHM-R with the authentic smooth L1, as mmdetection implements them,
/// with their running bin counts in a registered buffer. See \ref ghm for the mathematics.

#include <torchloss/detail/ghm.hpp>
#include <torchloss/distributed.hpp>

#include <ostream>
#include <utility>

namespace torchloss {

/// Options of GHMCLoss and functional::ghmc_loss.
///
/// \code
/// torchloss::GHMCLoss loss(torchloss::GHMCLossOptions().bins(30).momentum(0.75));
/// \endcode
struct GHMCLossOptions {
  /// Number \f$B \ge 1\f$ of equal-width bins of the gradient norm on \f$[0, 1]\f$.
  TORCH_ARG(int64_t, bins) = 10;
  /// Moving-average factor \f$m \in [0, 1)\f$ of the bin counts; 0 uses each batch's own counts.
  TORCH_ARG(double, momentum) = 0;
  /// Factor of the whole loss (finite).
  TORCH_ARG(double, loss_weight) = 1.0;
  /// Sums the bin counts and \f$\mathrm{tot}\f$ over the ranks of a process group before the
  /// weights are computed, so every rank weights the same way (see AllReduceFn; a
  /// `c10::intrusive_ptr<c10d::ProcessGroup>` converts to it). Empty: one process.
  TORCH_ARG(AllReduceFn, process_group) = {};
};

/// Options of GHMRLoss and functional::ghmr_loss.
///
/// \code
/// torchloss::GHMRLoss loss(torchloss::GHMRLossOptions().mu(0.02).momentum(0.7).loss_weight(10));
/// \endcode
struct GHMRLossOptions {
  /// \f$\mu > 0\f$ of the authentic smooth L1 \f$\sqrt{d^2 + \mu^2} - \mu\f$.
  TORCH_ARG(double, mu) = 0.02;
  /// Number \f$B \ge 1\f$ of equal-width bins of the gradient norm on \f$[0, 1]\f$.
  TORCH_ARG(int64_t, bins) = 10;
  /// Moving-average factor \f$m \in [0, 1)\f$ of the bin counts; 0 uses each batch's own counts.
  TORCH_ARG(double, momentum) = 0;
  /// Factor of the whole loss (finite).
  TORCH_ARG(double, loss_weight) = 1.0;
  /// Sums the bin counts and \f$\mathrm{tot}\f$ over the ranks of a process group (see
  /// GHMCLossOptions::process_group). Empty: one process.
  TORCH_ARG(AllReduceFn, process_group) = {};
};

namespace detail {

/// GHM-C's term, binary cross entropy on logits: ℓ = softplus(x) − x·y, ∂ℓ/∂x = σ(x) − y,
/// ∂ℓ/∂y = −x; the gradient norm is |σ(x) − y|.
struct GHMCTerm {
  /// No parameters.
  struct Params {
    std::vector<double> pack() const { return {}; }
    static Params unpack(const std::vector<double>&) { return {}; }
  };
  static constexpr bool kProbabilityTarget = true;
  template <typename V>
  static V value_and_grad(const V& x, const V& y, const Params&, V& grad) {
    const auto s = ops::logistic(x);
    grad = s.p - y;
    return s.softplus - x * y;
  }
  template <typename V>
  static V target_grad(const V& x, const V&) {
    return -x;
  }
};

/// √(d² + μ²) without overflow or underflow in the square (a float32 d² overflows for
/// |d| > 1.8e19): d² + μ² directly while both are below 2^60, else
/// s·√((|d|/s)² + (μ/s)²) with s = max(|d|, μ). Vectors take the scaled form only when a
/// lane needs it.
template <typename V>
inline V hypot_mu(const V& d, double mu) {
  if constexpr (std::is_same<V, torch::Tensor>::value) {
    return d.hypot(torch::full({}, mu, d.options()));
  } else if constexpr (std::is_same<V, double>::value) {
    return std::hypot(d, mu);
  } else {
    constexpr float kSafe = 1.152921504606846976e18f;  // 2^60: its square is far below FLT_MAX
    const V magnitude = abs_value(d);
    if (mu < kSafe && !any_lane(magnitude > kSafe)) return square_root(d * d + ops::lit<V>(mu * mu));
    const V mu_v = ops::lit<V>(mu);
    const V s = select(magnitude > mu_v, magnitude, mu_v);
    // The larger part is exactly 1 (s = ∞ then gives ∞, not ∞/∞).
    const V a = select(magnitude == s, splat<V>(1), magnitude / s);
    const V b = select(mu_v == s, splat<V>(1), mu_v / s);
    return s * square_root(a * a + b * b);
  }
}

/// GHM-R's term, the authentic smooth L1 of d = x − y: ℓ = √(d² + μ²) − μ (as mmdetection
/// writes it; for |d| ≪ μ its rounding error, about μ·ε, exceeds ℓ ≈ d²/2μ, but stays far
/// below the loss of any element that matters), ∂ℓ/∂x = d / √(d² + μ²), ∂ℓ/∂y = −∂ℓ/∂x;
/// the root is hypot_mu(), finite for every finite d and μ.
struct GHMRTerm {
  /// μ.
  struct Params {
    double mu = 0.02;
    std::vector<double> pack() const { return {mu}; }
    static Params unpack(const std::vector<double>& v) { return {v[0]}; }
  };
  static constexpr bool kProbabilityTarget = false;
  template <typename V>
  static V value_and_grad(const V& x, const V& y, const Params& p, V& grad) {
    const V d = x - y;
    const V root = hypot_mu(d, p.mu);
    grad = d / root;
    return root - ops::lit<V>(p.mu);
  }
  template <typename V>
  static V target_grad(const V&, const V& grad) {
    return -grad;
  }
};

/// Validates GHM-C's options.
inline void check_options(const char* fn, const GHMCLossOptions& options) {
  check_ghm_options(fn, options.bins(), options.momentum(), options.loss_weight());
}

/// Validates GHM-R's options.
inline void check_options(const char* fn, const GHMRLossOptions& options) {
  check_ghm_options(fn, options.bins(), options.momentum(), options.loss_weight());
  TORCH_CHECK(options.mu() > 0 && std::isfinite(options.mu()), fn, ": mu must be positive and finite, got ",
              options.mu());
}

/// GHM-C with validation; `fn` names the caller in errors.
inline torch::Tensor ghmc_loss(const char* fn, const torch::Tensor& input, const torch::Tensor& target,
                               const torch::Tensor& label_weight, const torch::Tensor& acc_sum,
                               const GHMCLossOptions& options) {
  check_options(fn, options);
  check_logits(fn, input);
  TORCH_CHECK(target.defined(), fn, ": target is an undefined tensor");
  torch::Tensor y = target, weight = label_weight;
  if (is_supported_float(target.scalar_type())) {
    check_same_shape_target(fn, input, target);
    check_label_weight(fn, input, label_weight, input.sizes(), "the input shape");
  } else {
    // mmdetection's other form: int64 labels [N] over C classes, one-hot expanded; a label
    // outside [0, C) (the background, C, in mmdetection) is a row of zeros.
    TORCH_CHECK(target.scalar_type() == torch::kLong, fn,
                ": target must be float [N, C] (binary targets) or int64 [N] (class labels), got ",
                target.scalar_type());
    TORCH_CHECK(input.dim() == 2 && target.dim() == 1 && target.size(0) == input.size(0), fn,
                ": int64 class labels must have shape [N] for input [N, C], got target ", shape_str(target),
                " and input ", shape_str(input));
    check_same_device(fn, input, target, "target");
    check_label_weight(fn, input, label_weight, target.sizes(), "[N] (one weight per label) for int64 labels, i.e.");
    y = (target.unsqueeze(1) == torch::arange(input.size(1), target.options())).to(compute_dtype(input.scalar_type()));
    if (weight.defined()) weight = weight.view({-1, 1});
  }
  check_acc_sum(fn, input, acc_sum, options.bins(), options.momentum());
  GHMCall call;
  call.fn = fn;
  call.edges = GHMEdges(options.bins());
  call.momentum = options.momentum();
  call.loss_weight = options.loss_weight();
  call.tot_is_weight_sum = false;
  call.acc_sum = acc_sum;
  call.all_reduce = options.process_group();
  return ghm_loss<GHMCTerm>(input, y, weight, call, {});
}

/// GHM-R with validation; `fn` names the caller in errors.
inline torch::Tensor ghmr_loss(const char* fn, const torch::Tensor& input, const torch::Tensor& target,
                               const torch::Tensor& label_weight, const torch::Tensor& acc_sum,
                               const GHMRLossOptions& options) {
  check_options(fn, options);
  check_logits(fn, input);
  TORCH_CHECK(target.defined(), fn, ": target is an undefined tensor");
  TORCH_CHECK(is_supported_float(target.scalar_type()), fn, ": target must be a floating-point tensor, got ",
              target.scalar_type());
  TORCH_CHECK(target.sizes() == input.sizes(), fn, ": target shape ", shape_str(target), " must equal input shape ",
              shape_str(input));
  check_same_device(fn, input, target, "target");
  check_label_weight(fn, input, label_weight, input.sizes(), "the input shape");
  check_acc_sum(fn, input, acc_sum, options.bins(), options.momentum());
  GHMCall call;
  call.fn = fn;
  call.edges = GHMEdges(options.bins());
  call.momentum = options.momentum();
  call.loss_weight = options.loss_weight();
  call.tot_is_weight_sum = true;
  call.acc_sum = acc_sum;
  call.all_reduce = options.process_group();
  return ghm_loss<GHMRTerm>(input, target, label_weight, call, GHMRTerm::Params{options.mu()});
}

}  // namespace detail

namespace functional {

/// Options of functional::ghmc_loss (the same as the module's).
using GHMCFuncOptions = GHMCLossOptions;
/// Options of functional::ghmr_loss (the same as the module's).
using GHMRFuncOptions = GHMRLossOptions;

/// GHM-C loss of logits \f$x\f$ against binary targets \f$y\f$ (mmdetection's `GHMC`), with
/// the running bin counts passed explicitly (as `batch_norm` takes its running statistics).
///
/// With \f$g_i = |\sigma(x_i) - y_i|\f$ (a constant: no gradient flows through it), the
/// counted elements \f$V = \{i : \mathrm{label\_weight}_i > 0\}\f$,
/// \f$\mathrm{tot} = \max(|V|, 1)\f$, and \f$B\f$ bins
/// \f$[e_b, e_{b+1})\f$, \f$e_b = b / B\f$ (float32, the last edge raised by \f$10^{-6}\f$),
/// let \f$R_b = \{i \in V : e_b \le g_i < e_{b+1}\}\f$ and \f$n\f$ the number of non-empty bins
/// (\f$g_i\f$ evaluated in float64 for the comparison, on every path and for every dtype, so
/// a \f$g_i\f$ equal to an edge, e.g. 0.5 at \f$x_i = 0\f$, falls in the bin above it).
/// Element \f$i \in R_b\f$ gets the weight
/// \f[ w_i = \frac{\mathrm{tot}}{n\, a_b}, \qquad
///     a_b = \begin{cases} |R_b| & m = 0, \\ m\, A_b + (1 - m)\, |R_b| & m > 0, \end{cases} \f]
/// the new \f$a_b\f$ being stored back into \f$A_b\f$ when \f$m > 0\f$
/// (elements outside \f$V\f$ get 0; bins with \f$R_b = \emptyset\f$ keep \f$A_b\f$), and
/// \f[ \mathrm{loss} = \frac{\mathrm{loss\_weight}}{\mathrm{tot}} \sum_i w_i\,
///     \bigl[\mathrm{softplus}(x_i) - x_i y_i\bigr], \qquad
///     \frac{\partial\,\mathrm{loss}}{\partial x_i} = \frac{\mathrm{loss\_weight}}{\mathrm{tot}}\, w_i\,
///     (\sigma(x_i) - y_i). \f]
///
/// \param input logits [N, C] (any shape works element-wise), float32/64, float16 or bfloat16
///   (computed in float32, returned in the input's dtype).
/// \param target float targets in [0, 1] of the input's shape, or int64 labels [N] for an input
///   [N, C] (one-hot expanded; a label outside [0, C) is a row of zeros).
/// \param label_weight undefined (every element counts), or the target's shape; only its sign
///   matters (> 0: counted).
/// \param acc_sum the running counts \f$A\f$, float32/64 [bins] on the input's device, updated
///   in place; required when momentum > 0, unused (may be undefined) otherwise.
/// \param options bins, momentum, loss_weight, process_group.
///
/// With a process group, the counts \f$|R_b|\f$ and \f$|V|\f$ are summed over the ranks first:
/// every rank then holds the same \f$A\f$, and the ranks' losses add up to the loss of one
/// process fed all the ranks' elements. Errors (messages start with `torchloss::ghmc_loss: `):
/// bins outside [1, 2^24], momentum outside [0, 1), a non-finite loss_weight, a target or
/// label_weight of the wrong shape, dtype or device, targets outside [0, 1], a missing or
/// misshapen acc_sum.
inline torch::Tensor ghmc_loss(const torch::Tensor& input, const torch::Tensor& target,
                               const torch::Tensor& label_weight = {}, const torch::Tensor& acc_sum = {},
                               const GHMCFuncOptions& options = {}) {
  return detail::ghmc_loss("torchloss::ghmc_loss", input, target, label_weight, acc_sum, options);
}

/// GHM-R loss of predictions \f$x\f$ against regression targets \f$y\f$ (mmdetection's `GHMR`),
/// with the running bin counts passed explicitly.
///
/// With \f$d_i = x_i - y_i\f$, the authentic smooth L1
/// \f$\ell_i = \sqrt{d_i^2 + \mu^2} - \mu\f$ and the gradient norm
/// \f$g_i = |d_i| / \sqrt{d_i^2 + \mu^2}\f$, the bins, counts and weights \f$w_i\f$ are those of
/// ghmc_loss(), except that \f$\mathrm{tot} = \max(\sum_i \mathrm{label\_weight}_i, 1)\f$ (as in
/// mmdetection: the sum of the weights, which equals the number of counted elements for 0/1
/// weights), and
/// \f[ \mathrm{loss} = \frac{\mathrm{loss\_weight}}{\mathrm{tot}} \sum_i w_i\, \ell_i, \qquad
///     \frac{\partial\,\mathrm{loss}}{\partial x_i} = \frac{\mathrm{loss\_weight}}{\mathrm{tot}}\, w_i\,
///     \frac{d_i}{\sqrt{d_i^2 + \mu^2}} = -\frac{\partial\,\mathrm{loss}}{\partial y_i}. \f]
///
/// \param input predictions, any shape, floating (float16/bfloat16 computed in float32).
/// \param target floating targets of the input's shape (a gradient flows to them if they
///   require one).
/// \param label_weight undefined (all ones) or the input's shape; > 0 marks counted elements.
/// \param acc_sum running counts [bins], as for ghmc_loss().
/// \param options mu, bins, momentum, loss_weight, process_group.
///
/// Errors as ghmc_loss() (prefix `torchloss::ghmr_loss: `), and \f$\mu \le 0\f$.
inline torch::Tensor ghmr_loss(const torch::Tensor& input, const torch::Tensor& target,
                               const torch::Tensor& label_weight = {}, const torch::Tensor& acc_sum = {},
                               const GHMRFuncOptions& options = {}) {
  return detail::ghmr_loss("torchloss::ghmr_loss", input, target, label_weight, acc_sum, options);
}

}  // namespace functional

/// The part GHMCLossImpl and GHMRLossImpl share: the options and the registered buffer
/// `acc_sum` [bins] of running bin counts (float32, zeros at the start, as mmdetection's).
/// Being a buffer, it moves with `->to()`, is copied by `clone()`, and is written and read by
/// `torch::save` / `torch::load`, so a resumed run continues identically.
///
/// `acc_sum` changes on every forward call with momentum > 0, in training and evaluation
/// mode alike (as in mmdetection); evaluate on a `clone()` to leave it untouched.
///
/// Thread safety: one module may be called from several threads at once; each call's update
/// of `acc_sum` is a locked read-modify-write (detail::state_lock), so none is lost.
template <class Derived, class Options>
class GHMLossImplBase : public torch::nn::Cloneable<Derived> {
 public:
  /// Stores the options; the derived constructor calls reset().
  explicit GHMLossImplBase(Options options_) : options(std::move(options_)) {}

  /// Validates the options and registers `acc_sum` (zeros [bins], float32).
  void reset() override {
    detail::check_options(Derived::kName, options);
    acc_sum = this->register_buffer("acc_sum", torch::zeros({options.bins()}, torch::kFloat));
  }

  /// The options the module was built with.
  Options options;
  /// Running bin counts \f$A\f$ [bins] (updated only when momentum > 0).
  torch::Tensor acc_sum;
};

/// GHM-C loss module (see functional::ghmc_loss for the formulas); stateful through `acc_sum`.
///
/// \code
/// torchloss::GHMCLoss criterion(torchloss::GHMCLossOptions().bins(30).momentum(0.75));
/// auto loss = criterion(logits, targets, label_weights);  // [N, C] each
/// loss.backward();
/// \endcode
class GHMCLossImpl : public GHMLossImplBase<GHMCLossImpl, GHMCLossOptions> {
 public:
  /// Name in error messages.
  static constexpr const char* kName = "torchloss::GHMCLoss";

  /// Builds the loss and registers `acc_sum`.
  explicit GHMCLossImpl(GHMCLossOptions options_ = {}) : GHMLossImplBase(std::move(options_)) { reset(); }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::GHMCLoss(bins=" << options.bins() << ", momentum=" << options.momentum()
           << ", loss_weight=" << options.loss_weight()
           << ", distributed=" << (options.process_group() ? "true" : "false") << ")";
  }

  /// The loss of `input` logits [N, C] against `target` (float [N, C] or int64 [N]), counting
  /// the elements with `label_weight` > 0 (undefined: all). Updates `acc_sum` when momentum > 0.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target,
                        const torch::Tensor& label_weight = {}) {
    return detail::ghmc_loss(kName, input, target, label_weight, acc_sum, options);
  }
};

/// Module holder of GHMCLossImpl.
TORCH_MODULE(GHMCLoss);

/// GHM-R loss module (see functional::ghmr_loss for the formulas); stateful through `acc_sum`.
///
/// \code
/// torchloss::GHMRLoss criterion(torchloss::GHMRLossOptions().mu(0.02).momentum(0.7).loss_weight(10));
/// auto loss = criterion(box_deltas, box_targets, box_weights);
/// \endcode
class GHMRLossImpl : public GHMLossImplBase<GHMRLossImpl, GHMRLossOptions> {
 public:
  /// Name in error messages.
  static constexpr const char* kName = "torchloss::GHMRLoss";

  /// Builds the loss and registers `acc_sum`.
  explicit GHMRLossImpl(GHMRLossOptions options_ = {}) : GHMLossImplBase(std::move(options_)) { reset(); }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::GHMRLoss(mu=" << options.mu() << ", bins=" << options.bins()
           << ", momentum=" << options.momentum() << ", loss_weight=" << options.loss_weight()
           << ", distributed=" << (options.process_group() ? "true" : "false") << ")";
  }

  /// The loss of predictions `input` against `target` (same shape), counting the elements
  /// with `label_weight` > 0 (undefined: all). Updates `acc_sum` when momentum > 0.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target,
                        const torch::Tensor& label_weight = {}) {
    return detail::ghmr_loss(kName, input, target, label_weight, acc_sum, options);
  }
};

/// Module holder of GHMRLossImpl.
TORCH_MODULE(GHMRLoss);

}  // namespace torchloss
