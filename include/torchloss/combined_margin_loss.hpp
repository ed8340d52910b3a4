#pragma once
/// \file combined_margin_loss.hpp
/// \brief Combined angular / cosine margin softmax loss on cosine logits: ArcFace (Deng et al.,
/// CVPR 2019), CosFace (Wang et al., CVPR 2018) and both together, as insightface's
/// `CombinedMarginLoss` defines them. Options, functional form and module.
///
/// \code
/// torchloss::NormedLinear head(embedding_dim, num_classes);   // cosine logits in [-1, 1]
/// torchloss::CombinedMarginLoss arcface(torchloss::CombinedMarginLossOptions::arcface());
/// auto loss = arcface(head(backbone(images)), labels);
/// \endcode

#include <torchloss/weighted_cross_entropy.hpp>

#include <cmath>
#include <limits>

namespace torchloss {

/// Options of CombinedMarginLoss and functional::combined_margin_loss. The defaults are
/// ArcFace's (s = 64, m2 = 0.5); arcface() and cosface() spell the two usual presets.
///
/// \code
/// torchloss::CombinedMarginLoss loss(torchloss::CombinedMarginLossOptions().scale(30).angular_margin(0.3));
/// auto cosface = torchloss::CombinedMarginLossOptions::cosface(/*scale=*/64, /*margin=*/0.35);
/// \endcode
struct CombinedMarginLossOptions {
  /// Logit scale \f$s > 0\f$ (insightface's `s`).
  TORCH_ARG(double, scale) = 64.0;
  /// Additive angular margin \f$m_2 \in [0, \pi]\f$ (ArcFace): the target's angle becomes
  /// \f$\theta + m_2\f$.
  TORCH_ARG(double, angular_margin) = 0.5;
  /// Additive cosine margin \f$m_3 \ge 0\f$ (CosFace), taken off the target's cosine after
  /// the angular margin.
  TORCH_ARG(double, additive_margin) = 0.0;
  /// insightface's `easy_margin`: the angular margin applies only where \f$\cos\theta > 0\f$
  /// (the target logit is left as is elsewhere), instead of the fallback
  /// \f$\cos\theta - m_2 \sin m_2\f$ where \f$\theta + m_2 > \pi\f$.
  TORCH_ARG(bool, easy_margin) = false;
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// torch::kNone, torch::kMean (mean over non-ignored targets) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;

  // (TORCH_ARG leaves the access private.)
 public:
  /// ArcFace: \f$m_2\f$ = `margin`, \f$m_3 = 0\f$ (insightface's defaults s = 64, m = 0.5).
  static CombinedMarginLossOptions arcface(double scale = 64.0, double margin = 0.5) {
    return CombinedMarginLossOptions().scale(scale).angular_margin(margin).additive_margin(0.0);
  }
  /// CosFace (large-margin cosine loss): \f$m_2 = 0\f$, \f$m_3\f$ = `margin` (s = 64, m = 0.35).
  static CombinedMarginLossOptions cosface(double scale = 64.0, double margin = 0.35) {
    return CombinedMarginLossOptions().scale(scale).angular_margin(0.0).additive_margin(margin);
  }
};

namespace detail {

/// Public name of the functional form, the prefix of its error messages.
constexpr const char* kCombinedMarginFn = "torchloss::combined_margin_loss";
/// π (M_PI is not standard C++).
inline constexpr double kPi = 3.14159265358979323846;

/// The margins of one call, as the per-sample target transform reads them (the trigonometry
/// done once per call, not per sample).
struct CombinedMargin {
  double angular, additive;
  bool easy;
  double cos_m, sin_m;  ///< cos m2, sin m2
  double threshold;     ///< where the angular branch starts: cos(π − m2), or 0 with easy margin
  double fallback;      ///< what the fallback branch takes off c: m2 sin m2, or 0 with easy margin
  /// \f$\sin\theta\f$ at the cosine nearest 1 below it in the compute dtype: the floor of the
  /// sine in the slope, so the slope at \f$\cos\theta = \pm 1\f$ is its value at the nearest
  /// representable cosine, and unchanged everywhere else.
  double sine_floor;
};

/// The margins, with the sine floor of compute dtype `dtype`.
inline CombinedMargin combined_margin(double angular, double additive, bool easy, torch::ScalarType dtype) {
  const double below_one = dtype == torch::kDouble ? std::nextafter(1.0, 0.0)
                                                   : static_cast<double>(std::nextafter(1.0f, 0.0f));
  return {angular,
          additive,
          easy,
          std::cos(angular),
          std::sin(angular),
          easy ? 0.0 : std::cos(kPi - angular),
          easy ? 0.0 : angular * std::sin(angular),
          std::sqrt((1.0 - below_one) * (1.0 + below_one))};
}

/// mask ? a : b, for doubles and for tensors (the ψ formula is written once for both).
inline double select_where(bool mask, double a, double b) { return mask ? a : b; }
inline torch::Tensor select_where(const torch::Tensor& mask, const torch::Tensor& a, const torch::Tensor& b) {
  return torch::where(mask, a, b);
}
/// max(v, floor) (NaN stays NaN), for doubles and tensors.
inline double at_least(double v, double floor) { return v < floor ? floor : v; }
inline torch::Tensor at_least(const torch::Tensor& v, double floor) { return v.clamp_min(floor); }

/// The target transform of row i as a margin taken off the target logit c:
/// \f$\mu = c - \psi(c) + m_3\f$ and the slope \f$\psi'(c)\f$ of the transformed logit, with
/// \f$\psi(c) = c\cos m_2 - \sin\theta \sin m_2\f$ (\f$= \cos(\theta + m_2)\f$, \f$\sin\theta = \sqrt{(1-c)(1+c)}\f$)
/// where \f$\theta + m_2 \le \pi\f$ (easy margin: where \f$c > 0\f$), else \f$c - m_2 \sin m_2\f$
/// (easy margin: \f$c\f$), and \f$\psi'(c) = \cos m_2 + c \sin m_2 / \sin\theta\f$ on the first
/// branch, 1 on the second. V is double (the CPU loop) or a float64 tensor (any device).
template <typename V>
struct TargetTransform {
  V margin, slope;
};
template <typename V>
TargetTransform<V> combined_target_transform(const V& c, const CombinedMargin& m) {
  using std::sqrt;  // doubles; tensors find at::sqrt by argument-dependent lookup
  // Cosines a rounding step outside [-1, 1] (NormedLinear's) have sine 0, not NaN.
  const V sine = sqrt(at_least((1.0 - c) * (1.0 + c), 0.0));
  const V angular = c * m.cos_m - sine * m.sin_m;
  const V angular_slope = c * (m.sin_m / at_least(sine, m.sine_floor)) + m.cos_m;
  const auto on_angular = m.easy ? c > m.threshold : c >= m.threshold;
  const V value = select_where(on_angular, angular, c - m.fallback);
  return {c - value + m.additive, select_where(on_angular, angular_slope, c * 0.0 + 1.0)};
}

/// The combined margin as the softmax kernels' per-sample target transform.
struct CombinedMarginTransform final : TargetLogitTransform {
  explicit CombinedMarginTransform(const CombinedMargin& m) : margin(m) {}
  void at(double c, double& mu, double& slope) const override {
    const auto transform = combined_target_transform(c, margin);
    mu = transform.margin;
    slope = transform.slope;
  }
  std::pair<torch::Tensor, torch::Tensor> at(const torch::Tensor& c) const override {
    const auto transform = combined_target_transform(c.to(torch::kDouble), margin);
    return {transform.margin.to(c.scalar_type()), transform.slope.to(c.scalar_type())};
  }
  CombinedMargin margin;
};

/// Checks the options of a combined margin loss (messages start with `fn`).
inline void check_combined_margin_options(const char* fn, double scale, double angular, double additive) {
  TORCH_CHECK(scale > 0 && std::isfinite(scale), fn, ": scale must be a finite number > 0, got ", scale);
  check_range(fn, "angular_margin", angular, 0.0, kPi);
  TORCH_CHECK(additive >= 0 && std::isfinite(additive), fn, ": additive_margin must be a finite number >= 0, got ",
              additive);
}

}  // namespace detail

namespace functional {

/// Options of functional::combined_margin_loss (the same as the module's).
using CombinedMarginLossFuncOptions = CombinedMarginLossOptions;

/// Combined margin loss of cosine logits \f$c\f$ [N, C] (entries in [−1, 1], e.g. from
/// NormedLinear) and int64 targets \f$y\f$ [N]: cross entropy of
/// \f[ z_{i,j} = s\, c_{i,j} \;(j \ne y_i), \qquad z_{i,y_i} = s\,(\psi(c_{i,y_i}) - m_3), \f]
/// \f[ \psi(c) = \begin{cases} \cos(\theta + m_2), \; \theta = \arccos c, & \theta + m_2 \le \pi \\ c - m_2 \sin m_2 & \text{otherwise,} \end{cases} \f]
/// insightface's `CombinedMarginLoss` with \f$m_1 = 1\f$ (its classic form, whose fallback keeps
/// \f$\psi\f$ decreasing in \f$\theta\f$). With `easy_margin`, \f$\psi(c) = \cos(\theta + m_2)\f$
/// where \f$c > 0\f$ and \f$c\f$ elsewhere. \f$m_2 = 0.5, m_3 = 0\f$ is ArcFace;
/// \f$m_2 = 0, m_3 = 0.35\f$ is CosFace (`CombinedMarginLossOptions::arcface()` / `cosface()`).
///
/// The gradient is the formula's, \f$\partial \ell / \partial c_{i,y_i} = s\,(p_{i,y_i} - 1)\,\psi'(c_{i,y_i})\f$
/// with \f$\psi'(c) = \cos m_2 + c \sin m_2 / \sin\theta\f$, wherever that is finite; at
/// \f$c = \pm 1\f$, where \f$\sin\theta = 0\f$ (autograd through `sqrt(1 - c^2)` gives Inf or NaN
/// there), \f$\sin\theta\f$ takes its value at the nearest representable cosine, so the gradient
/// is finite everywhere (and NormedLinear's zero Jacobian at \f$c = 1\f$ turns it into 0, not NaN).
/// Cosines a rounding step outside [−1, 1] are treated as ±1 in \f$\sin\theta\f$.
///
/// One fused pass over the logits: the scale and \f$\psi\f$ are applied inside the softmax
/// kernels, \f$\psi\f$ once per row on the target cosine the kernel reads anyway. kMean divides by the number
/// of non-ignored targets (0 when all are ignored). float16/bfloat16 are computed in float32.
/// Errors ("torchloss::combined_margin_loss: ..."): input not a floating-point [N, C] tensor,
/// target not int64 [N], a label outside [0, C) that is not ignore_index, \f$s \le 0\f$,
/// \f$m_2 \notin [0, \pi]\f$, \f$m_3 < 0\f$, tensors on different devices.
inline torch::Tensor combined_margin_loss(const torch::Tensor& cos, const torch::Tensor& target,
                                          const CombinedMarginLossFuncOptions& options = {}) {
  const char* fn = detail::kCombinedMarginFn;
  detail::check_class_target(fn, cos, target);
  TORCH_CHECK(cos.dim() == 2, fn, ": input must have shape [N, C] (cosine logits), got ", detail::shape_str(cos));
  detail::check_combined_margin_options(fn, options.scale(), options.angular_margin(), options.additive_margin());
  detail::LogitTransform transform;
  transform.scale = options.scale();
  const detail::CombinedMarginTransform angular(detail::combined_margin(
      options.angular_margin(), options.additive_margin(), options.easy_margin(),
      detail::compute_dtype(cos.scalar_type())));
  if (options.angular_margin() > 0) {
    // ArcFace (m3 included in μ): evaluated by the kernel on each row's target cosine.
    transform.target_transform = &angular;
  } else if (options.additive_margin() > 0) {
    // CosFace: a constant margin m3 on every target, the LDAM kernel's per-class margin.
    transform.margin = torch::full({cos.size(1)}, options.additive_margin(),
                                   cos.options().dtype(detail::compute_dtype(cos.scalar_type())));
  }
  const detail::SoftmaxLossConfig cfg{fn, options.ignore_index(), 0.0, detail::reduction_code(options.reduction()),
                                      /*weighted_mean=*/true};
  return detail::softmax_loss<detail::CrossEntropyTerm>(cos, target, torch::Tensor(), cfg, {}, "weight", transform);
}

}  // namespace functional

/// Module form of functional::combined_margin_loss (no state: the options only). Pair it with
/// a NormedLinear head, whose weight rows are the class centres on the unit sphere.
class CombinedMarginLossImpl : public torch::nn::Cloneable<CombinedMarginLossImpl> {
 public:
  /// Builds the loss from its options (ArcFace's by default), checked here.
  explicit CombinedMarginLossImpl(CombinedMarginLossOptions options_ = {}) : options(std::move(options_)) { reset(); }

  /// Checks the options (messages "torchloss::CombinedMarginLoss: ..."); nothing to register.
  void reset() override {
    detail::check_combined_margin_options("torchloss::CombinedMarginLoss", options.scale(), options.angular_margin(),
                                          options.additive_margin());
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::CombinedMarginLoss(scale=" << options.scale()
           << ", angular_margin=" << options.angular_margin() << ", additive_margin=" << options.additive_margin()
           << ", easy_margin=" << (options.easy_margin() ? "true" : "false")
           << ", ignore_index=" << options.ignore_index()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of cosine logits `cos` [N, C] against `target` class indices [N].
  torch::Tensor forward(const torch::Tensor& cos, const torch::Tensor& target) {
    return functional::combined_margin_loss(cos, target, options);
  }

  /// The options the module was built with.
  CombinedMarginLossOptions options;
};

/// Module holder of CombinedMarginLossImpl.
TORCH_MODULE(CombinedMarginLoss);

}  // namespace torchloss
