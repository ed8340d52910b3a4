#pragma once
// The random cases of the fuzz battery and of the libFuzzer entry: one table entry per public
// loss (kLosses), each drawing its shapes, dtype, layout, values and options from a Draw, and
// one check (check_case) that runs a case on the fused CPU path, on the ATen path and in
// float64, and compares the three: the same verdict (a clean torchloss:: error on all three,
// or a result on all three), and the same numbers within the dtype's tolerance.
//
// Adding a loss: one entry in kLosses, a lambda that draws its inputs and options from `d`
// (through the helpers below, so a case replays from its seed) and returns the loss of
// `input` (set requires_grad on what should get a gradient: make_input does it).
#include <torchloss/torchloss.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace torchloss_fuzz {

/// The source of every random choice of a case: a seeded generator (the battery) or the
/// fuzzer's bytes (libFuzzer; 0 once they run out).
class Draw {
 public:
  explicit Draw(uint64_t seed) : engine_(seed) {}
  Draw(const uint8_t* data, size_t size) : data_(data), size_(size), from_bytes_(true) {}

  /// Uniform in [0, n).
  int64_t below(int64_t n) {
    if (n <= 1) return 0;
    return static_cast<int64_t>(bits() % static_cast<uint64_t>(n));
  }
  /// True with probability p.
  bool chance(double p) { return static_cast<double>(below(1 << 20)) < p * (1 << 20); }
  /// One of `options`.
  template <typename T>
  T pick(const std::vector<T>& options) {
    return options[static_cast<size_t>(below(static_cast<int64_t>(options.size())))];
  }
  /// A seed for torch's generator, so tensor values replay too.
  uint64_t seed() { return bits(); }

 private:
  uint64_t bits() {
    if (!from_bytes_) return engine_();
    uint64_t value = 0;
    for (int i = 0; i < 4 && position_ < size_; ++i) value = (value << 8) | data_[position_++];
    return value;
  }
  std::mt19937_64 engine_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0, position_ = 0;
  bool from_bytes_ = false;
};

/// How a case runs: the path and whether its floating inputs are widened to float64.
struct Variant {
  bool aten = false;
  bool float64 = false;
  const char* name() const { return float64 ? "fused float64" : aten ? "ATen path" : "fused"; }
};

/// What one run produced: an error message, or the loss and the inputs' gradients.
struct Outcome {
  bool error = false;
  std::string message;
  torch::Tensor loss;
  std::vector<torch::Tensor> grads;
  torch::ScalarType dtype = torch::kFloat;  ///< the case's input dtype
};

/// Builds the tensors of a case; remembers the differentiable ones.
class CaseBuilder {
 public:
  CaseBuilder(Draw& d, const Variant& v) : d_(d), v_(v), generator_(at::detail::createCPUGenerator(d.seed())) {
    dtype_ = d_.pick<torch::ScalarType>({torch::kFloat, torch::kFloat, torch::kFloat, torch::kDouble, torch::kHalf,
                                         torch::kBFloat16});
    scale_ = d_.pick<double>({1, 1, 3, 10, 100, 1e4});
    non_finite_ = d_.chance(0.05);
  }

  Draw& draw() { return d_; }
  torch::ScalarType dtype() const { return dtype_; }
  bool float64() const { return v_.float64; }

  /// A batch-like size: mostly small, sometimes 0 or 1.
  int64_t size() { return d_.pick<int64_t>({0, 1, 1, 2, 3, 4, 5, 7, 16, 33}); }

  /// Standard normal values of `shape` in float64 (replayable).
  torch::Tensor normal(torch::IntArrayRef shape) {
    return at::normal(0.0, 1.0, shape, generator_, torch::TensorOptions().dtype(torch::kDouble));
  }
  /// Uniform [0, 1) values in float64.
  torch::Tensor uniform(torch::IntArrayRef shape) {
    return at::empty(shape, torch::TensorOptions().dtype(torch::kDouble)).uniform_(0, 1, generator_);
  }
  /// Integers in [low, high).
  torch::Tensor integers(int64_t low, int64_t high, torch::IntArrayRef shape) {
    return at::randint(low, high, shape, generator_, torch::TensorOptions().dtype(torch::kLong));
  }

  /// A floating tensor from float64 values: the case's dtype, then (float64 variant) widened
  /// back, so every variant sees the same values; a random layout (contiguous, transposed or
  /// broadcast with stride 0); requires grad when `differentiable`.
  torch::Tensor make(torch::Tensor values, bool differentiable) {
    values = values.to(dtype_);
    if (v_.float64) values = values.to(torch::kDouble);
    values = layout(values);
    if (differentiable) {
      values = values.detach().requires_grad_();
      inputs_.push_back(values);
    }
    return values;
  }
  /// Logit-like input: normal · the case's scale, with non-finite values sometimes.
  torch::Tensor logits(torch::IntArrayRef shape, bool differentiable = true) {
    auto values = normal(shape) * scale_;
    if (non_finite_ && values.numel() > 0) {
      values.view(-1)[0] = d_.pick<double>({NAN, INFINITY, -INFINITY, 1e30, -1e30});
    }
    return make(values, differentiable);
  }
  /// Probability-like targets in [0, 1] (binary or soft), sometimes outside when `bad`.
  torch::Tensor probabilities(torch::IntArrayRef shape, bool binary, bool bad) {
    auto values = binary ? (uniform(shape) < 0.4).to(torch::kDouble) : uniform(shape);
    if (bad && values.numel() > 0) values.view(-1)[0] = d_.pick<double>({1.5, -0.25, 2.0});
    return make(values, false);
  }
  /// Class labels in [0, classes), with ignore_index sprinkled, sometimes out of range.
  torch::Tensor labels(torch::IntArrayRef shape, int64_t classes, bool bad, int64_t ignore_index = -100) {
    auto values = integers(0, std::max<int64_t>(classes, 1), shape);
    if (values.numel() > 0 && d_.chance(0.3)) values.view(-1)[0] = ignore_index;
    if (bad && values.numel() > 0) values.view(-1)[values.numel() - 1] = d_.pick<int64_t>({classes, -5, 1000});
    return layout(values);
  }
  /// A positive per-class vector [classes] (weights, counts), zeros sometimes.
  torch::Tensor positive(int64_t classes) {
    auto values = uniform({classes}) * 2;
    if (classes > 0 && d_.chance(0.2)) values[0] = 0;
    return make(values, false);
  }

  /// One of the reductions.
  torchloss::reduction_t reduction() {
    switch (d_.below(3)) {
      case 0:
        return torch::kNone;
      case 1:
        return torch::kSum;
      default:
        return torch::kMean;
    }
  }

  /// The tensors the gradients are taken for.
  const std::vector<torch::Tensor>& inputs() const { return inputs_; }

 private:
  torch::Tensor layout(const torch::Tensor& t) {
    switch (d_.below(4)) {
      case 1:  // non-contiguous: same values, transposed strides
        return t.dim() >= 2 ? t.transpose(0, 1).contiguous().transpose(0, 1) : t;
      case 2:  // stride 0 along dim 0: row 0 repeated
        return t.dim() >= 1 && t.size(0) > 0 ? t.narrow(0, 0, 1).expand(t.sizes()) : t;
      default:
        return t;
    }
  }

  Draw& d_;
  Variant v_;
  at::Generator generator_;
  torch::ScalarType dtype_;
  double scale_;
  bool non_finite_;
  std::vector<torch::Tensor> inputs_;
};

namespace F = torchloss::functional;

/// One public loss of the battery.
struct LossEntry {
  const char* name;
  std::function<torch::Tensor(CaseBuilder&)> run;
};

/// [N, C] or [N, C, d] logits and matching labels for the softmax losses.
inline std::pair<torch::Tensor, torch::Tensor> class_inputs(CaseBuilder& b, bool bad, int64_t classes) {
  const int64_t n = b.size();
  const bool spatial = b.draw().chance(0.2);
  const auto x = spatial ? b.logits({n, classes, b.size()}) : b.logits({n, classes});
  std::vector<int64_t> label_shape{n};
  if (spatial) label_shape.push_back(x.size(2));
  return {x, b.labels(label_shape, classes, bad)};
}

/// Every public loss. Bad inputs come from `bad` (out-of-range labels or targets).
inline const std::vector<LossEntry>& losses() {
  static const std::vector<LossEntry> table = {
      {"weighted_cross_entropy",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t classes = 1 + b.draw().below(6);
         auto [x, y] = class_inputs(b, bad, classes);
         auto options = F::WeightedCrossEntropyFuncOptions().reduction(b.reduction());
         if (b.draw().chance(0.5)) options.weight(b.positive(classes));
         if (b.draw().chance(0.3)) options.label_smoothing(b.draw().pick<double>({0.1, 0.5, 1.0}));
         return F::weighted_cross_entropy(x, y, options);
       }},
      {"focal_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t classes = 1 + b.draw().below(6);
         auto [x, y] = class_inputs(b, bad, classes);
         auto options = F::FocalLossFuncOptions().gamma(b.draw().pick<double>({0, 0.5, 1, 2, 3.5})).reduction(b.reduction());
         if (b.draw().chance(0.5)) options.alpha(b.positive(classes));
         return F::focal_loss(x, y, options);
       }},
      {"logit_adjusted_cross_entropy",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t classes = 1 + b.draw().below(6);
         auto [x, y] = class_inputs(b, bad, classes);
         auto counts = b.positive(classes) * 50 + 1;
         auto options = F::LogitAdjustedCrossEntropyFuncOptions(counts).tau(b.draw().pick<double>({0, 1, 2})).reduction(
             b.reduction());
         if (b.draw().chance(0.3)) options.weight(b.positive(classes));
         return F::logit_adjusted_cross_entropy(x, y, options);
       }},
      {"ldam_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t classes = 1 + b.draw().below(6);
         const int64_t n = b.size();
         auto x = b.make(b.normal({n, classes}).clamp(-1, 1), true);
         auto y = b.labels({n}, classes, bad);
         auto options = F::LDAMLossFuncOptions(b.positive(classes) * 50 + 1)
                            .scale(b.draw().pick<double>({1, 30}))
                            .max_margin(b.draw().pick<double>({0.1, 0.5}))
                            .reduction(b.reduction());
         return F::ldam_loss(x, y, options);
       }},
      {"weighted_binary_cross_entropy",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = b.size();
         auto x = b.logits({n, c});
         auto y = b.probabilities({n, c}, b.draw().chance(0.5), bad);
         auto options = F::WeightedBinaryCrossEntropyFuncOptions(b.draw().pick<double>({-1, 0, 0.25, 1}))
                            .reduction(b.reduction());
         switch (b.draw().below(4)) {
           case 1:
             options.weight(b.positive(c));
             break;
           case 2:
             options.weight(b.make(b.uniform({n, 1}), false));
             break;
           case 3:
             options.weight(b.make(b.uniform({1}), false));
             break;
           default:
             break;
         }
         return F::weighted_binary_cross_entropy(x, y, options);
       }},
      {"sigmoid_focal_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = b.size();
         auto x = b.logits({n, c});
         auto y = b.probabilities({n, c}, b.draw().chance(0.7), bad);
         return F::sigmoid_focal_loss(x, y,
                                      F::SigmoidFocalLossFuncOptions()
                                          .gamma(b.draw().pick<double>({0, 0.5, 2}))
                                          .alpha(b.draw().pick<double>({-1, 0.25}))
                                          .reduction(b.reduction()));
       }},
      {"multilabel_soft_margin_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = b.size();
         auto x = b.logits({n, c});
         auto y = b.probabilities({n, c}, true, bad);
         auto options = F::MultiLabelSoftMarginLossFuncOptions().reduction(b.reduction());
         if (b.draw().chance(0.5)) options.weight(b.positive(c));
         return F::multilabel_soft_margin_loss(x, y, options);
       }},
      {"asymmetric_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = b.size();
         auto x = b.logits({n, c});
         auto y = b.probabilities({n, c}, true, bad);
         return F::asymmetric_loss(x, y,
                                   F::AsymmetricLossFuncOptions()
                                       .gamma_pos(b.draw().pick<double>({0, 1}))
                                       .gamma_neg(b.draw().pick<double>({0, 2, 4}))
                                       .clip(b.draw().pick<double>({0, 0.05}))
                                       .detach_focusing(b.draw().chance(0.3))
                                       .reduction(b.reduction()));
       }},
      {"ghmc_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = b.size();
         auto x = b.logits({n, c});
         const auto options = F::GHMCFuncOptions().bins(b.draw().pick<int64_t>({1, 2, 10, 30, 1000}));
         if (b.draw().chance(0.3)) {
           auto labels = b.labels({n}, c + 1, false, c);  // label C: background
           auto weight = b.draw().chance(0.5) ? b.make(b.uniform({n}), false) : torch::Tensor();
           return F::ghmc_loss(x, labels, weight, {}, options);
         }
         auto y = b.probabilities({n, c}, true, bad);
         auto weight = b.draw().chance(0.5) ? b.make((b.uniform({n, c}) < 0.7).to(torch::kDouble), false) : torch::Tensor();
         return F::ghmc_loss(x, y, weight, {}, options);
       }},
      {"ghmr_loss",
       [](CaseBuilder& b) {
         const int64_t n = b.size(), c = b.size();
         auto x = b.logits({n, c});
         auto y = b.make(b.normal({n, c}), b.draw().chance(0.3));
         auto weight = b.draw().chance(0.5) ? b.make(b.uniform({n, c}), false) : torch::Tensor();
         return F::ghmr_loss(x, y, weight, {},
                             F::GHMRFuncOptions()
                                 .mu(b.draw().pick<double>({0.02, 1.0}))
                                 .bins(b.draw().pick<int64_t>({1, 10, 30})));
       }},
      {"center_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), dim = 1 + b.draw().below(5), classes = 1 + b.draw().below(5);
         auto x = b.logits({n, dim});
         auto y = b.labels({n}, classes, bad, 0);
         const auto centers_dtype = b.float64() || b.dtype() == torch::kDouble ? torch::kDouble : torch::kFloat;
         auto centers = b.normal({classes, dim}).to(b.dtype()).to(centers_dtype);
         return F::center_loss(x, y, centers,
                               F::CenterLossFuncOptions()
                                   .alpha(b.draw().pick<double>({0, 0.5, 1}))
                                   .reduction(b.reduction())
                                   .update_centers(b.draw().chance(0.5)));
       }},
      {"soft_target_cross_entropy",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = 1 + b.draw().below(6);
         auto x = b.logits({n, c});
         auto t = b.probabilities({n, c}, b.draw().chance(0.3), bad);
         return F::soft_target_cross_entropy(x, t, F::SoftTargetCrossEntropyFuncOptions().reduction(b.reduction()));
       }},
      {"mixup_cross_entropy",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = 1 + b.draw().below(6);
         auto x = b.logits({n, c});
         auto y_a = b.labels({n}, c, bad, 0), y_b = b.labels({n}, c, false, 0);
         return F::mixup_cross_entropy(x, y_a, y_b, b.draw().pick<double>({0, 0.3, 1, bad ? 1.5 : 0.5}),
                                       F::MixupCrossEntropyFuncOptions()
                                           .label_smoothing(b.draw().pick<double>({0, 0.1}))
                                           .reduction(b.reduction()));
       }},
      {"poly1_cross_entropy",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         auto [x, y] = class_inputs(b, bad, 1 + b.draw().below(6));
         return F::poly1_cross_entropy(x, y,
                                       F::Poly1CrossEntropyFuncOptions()
                                           .epsilon(b.draw().pick<double>({-1, 0, 1, 2}))
                                           .reduction(b.reduction()));
       }},
      {"distillation_loss",
       [](CaseBuilder& b) {
         const int64_t n = b.size(), c = 1 + b.draw().below(6);
         auto student = b.logits({n, c});
         auto teacher = b.logits({n, c}, false);
         return F::distillation_loss(student, teacher,
                                     F::DistillationLossFuncOptions()
                                         .temperature(b.draw().pick<double>({0.5, 1, 4}))
                                         .reduction(b.reduction()));
       }},
      {"seesaw_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = 1 + b.draw().below(6);
         auto x = b.logits({n, c});
         auto y = b.labels({n}, c, bad, 0);
         return F::seesaw_loss(x, y, b.positive(c) * 20,
                               F::SeesawLossFuncOptions()
                                   .p(b.draw().pick<double>({0, 0.8}))
                                   .q(b.draw().pick<double>({0, 2}))
                                   .reduction(b.reduction()));
       }},
      {"combined_margin_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), c = 1 + b.draw().below(6);
         // Below 1 in every case dtype (1 − 2^-8 is a bfloat16): at a target cosine of exactly
         // 1, ψ'(c) is infinite and the library's finite stand-in is, by its documented
         // definition, the slope at the dtype's nearest cosine below 1, so the float64 reference
         // of a bfloat16 1.0 is another number by design (≈ 20000 times float32's), not a more
         // precise one. test_metric_learning checks c = ±1 on both paths in every dtype.
         auto cos = b.make((b.uniform({n, c}) * 2 - 1).clamp(-1, 1 - 1.0 / 256), true);
         auto y = b.labels({n}, c, bad);
         return F::combined_margin_loss(cos, y,
                                        F::CombinedMarginLossFuncOptions()
                                            .scale(b.draw().pick<double>({1, 64}))
                                            .angular_margin(b.draw().pick<double>({0, 0.5, 3}))
                                            .additive_margin(b.draw().pick<double>({0, 0.35}))
                                            .easy_margin(b.draw().chance(0.3))
                                            .reduction(b.reduction()));
       }},
      {"supervised_contrastive_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), views = 1 + b.draw().below(3), dim = 1 + b.draw().below(4);
         auto features = b.make(b.normal({n, views, dim}) * 0.5, true);
         auto labels = b.draw().chance(0.3) ? torch::Tensor() : b.labels({n}, 3, bad, 0);
         return F::supervised_contrastive_loss(
             features, labels,
             F::SupConLossFuncOptions()
                 .temperature(b.draw().pick<double>({0.07, 1}))
                 .contrast_mode(b.draw().chance(0.5) ? torchloss::ContrastMode::all : torchloss::ContrastMode::one)
                 .reduction(b.reduction()));
       }},
      {"batch_hard_triplet_loss",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), dim = 1 + b.draw().below(4);
         auto x = b.logits({n, dim});
         auto y = b.labels({n}, 3, bad, 0);
         return F::batch_hard_triplet_loss(x, y,
                                           F::BatchHardTripletLossFuncOptions()
                                               .squared(b.draw().chance(0.5))
                                               .soft_margin(b.draw().chance(0.3))
                                               .reduction(b.reduction()));
       }},
      {"linear_cross_entropy",
       [](CaseBuilder& b) {
         const bool bad = b.draw().chance(0.1);
         const int64_t n = b.size(), dim = 1 + b.draw().below(4), c = 1 + b.draw().below(6);
         auto x = b.logits({n, dim});
         auto weight = b.make(b.normal({c, dim}), true);
         const bool cosine = b.draw().chance(0.3);
         auto bias = !cosine && b.draw().chance(0.5) ? b.make(b.normal({c}), true) : torch::Tensor();
         auto y = b.labels({n}, c, bad);
         auto options = F::LinearCrossEntropyFuncOptions()
                            .label_smoothing(b.draw().pick<double>({0, 0.1}))
                            .z_loss(b.draw().pick<double>({0, 1e-4}))
                            .chunk_size(b.draw().pick<int64_t>({0, 1, 3}))
                            .reduction(b.reduction());
         if (cosine) options.cosine(true).scale(16).angular_margin(b.draw().pick<double>({0, 0.5}));
         return F::linear_cross_entropy(x, weight, bias, y, options);
       }},
      {"MultiTaskLoss",
       [](CaseBuilder& b) {
         const int64_t tasks = 1 + b.draw().below(4);
         std::vector<torch::Tensor> task_losses;
         for (int64_t i = 0; i < tasks; ++i) task_losses.push_back(b.logits({}));
         torchloss::MultiTaskLoss combine(torchloss::MultiTaskLossOptions(tasks).learn_uncertainty(b.draw().chance(0.5)));
         if (b.float64() || b.dtype() == torch::kDouble) combine->to(torch::kDouble);
         return combine(task_losses);
       }},
  };
  return table;
}

/// Runs `entry` on the case `d` draws, in one variant. A torchloss error becomes the
/// outcome; anything else (another exception type) propagates and fails the case.
inline Outcome run_variant_with(const LossEntry& entry, Draw& d, const Variant& v) {
  const torchloss::detail::ScopedAtenPath path(v.aten);
  Outcome out;
  try {
    CaseBuilder b(d, v);
    out.dtype = b.dtype();
    out.loss = entry.run(b);
    if (out.loss.requires_grad()) {
      std::vector<torch::Tensor> wanted;
      for (const auto& t : b.inputs()) wanted.push_back(t);
      const auto upstream = torch::ones_like(out.loss);
      const auto grads = torch::autograd::grad({out.loss}, wanted, {upstream}, false, false, /*allow_unused=*/true);
      for (const auto& g : grads) out.grads.push_back(g.defined() ? g.detach().to(torch::kDouble) : g);
    }
    out.loss = out.loss.detach().to(torch::kDouble);
  } catch (const c10::Error& error) {
    out.error = true;
    out.message = error.what_without_backtrace();
  }
  return out;
}

/// Case `id` of `seed` for `entry` in one variant.
inline Outcome run_variant(const LossEntry& entry, uint64_t seed, uint64_t id, const Variant& v) {
  Draw d(seed * 0x9E3779B97F4A7C15ull + id);
  return run_variant_with(entry, d, v);
}

/// Relative tolerance of a result computed in `dtype` against float64.
inline double tolerance(torch::ScalarType dtype, bool same_dtype) {
  if (same_dtype) return dtype == torch::kDouble ? 1e-9 : dtype == torch::kFloat ? 1e-4 : 1e-2;
  return dtype == torch::kDouble ? 1e-9 : dtype == torch::kFloat ? 2e-3 : dtype == torch::kHalf ? 2e-2 : 6e-2;
}

/// The largest finite value of a result computed for input dtype `dtype` (results of the
/// half types are rounded to them).
inline double largest_finite(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kDouble:
      return std::numeric_limits<double>::max();
    case torch::kHalf:
      return 65504.0;
    default:
      return static_cast<double>(std::numeric_limits<float>::max());
  }
}

/// "" when `a` (computed for input dtype `dtype`) agrees with `reference`: non-finite where
/// the reference is, or where the reference lies beyond the dtype's range (an overflow of the
/// narrower dtype, not a disagreement); close elsewhere, relative to the reference's largest
/// magnitude (at least 1). Else what differs.
inline std::string compare(const torch::Tensor& a, const torch::Tensor& reference, double rtol,
                           torch::ScalarType dtype) {
  if (a.defined() != reference.defined()) return "one gradient is undefined";
  if (!a.defined()) return "";
  if (a.sizes() != reference.sizes()) return "shapes differ";
  if (a.numel() == 0) return "";
  const auto finite_a = a.isfinite(), finite_r = reference.isfinite();
  const auto out_of_range = finite_r & (reference.abs() > largest_finite(dtype) * (1 - rtol));
  if ((finite_a & ~finite_r).any().item<bool>()) return "finite where the reference is not";
  if ((~finite_a & finite_r & ~out_of_range).any().item<bool>()) {
    std::ostringstream out;
    out << "non-finite where the reference is finite and in range, e.g. "
        << reference.masked_select(~finite_a & finite_r & ~out_of_range)[0].item<double>();
    return out.str();
  }
  const auto both = finite_a & finite_r;
  const auto fa = a.masked_select(both), fr = reference.masked_select(both);
  if (fa.numel() == 0) return "";
  const double scale = fr.abs().max().item<double>();
  const double worst = (fa - fr).abs().max().item<double>();
  // Relative to the largest magnitude, and absolute below 1: a result that cancels to near 0
  // (a loss of almost 0 from O(1) terms) carries the terms' rounding, not its own.
  if (worst <= rtol * std::max(scale, 1.0)) return "";
  std::ostringstream out;
  out << "max difference " << worst << " against a scale of " << scale << " (rtol " << rtol << ")";
  return out.str();
}

/// Compares the outcomes of the three variants {fused, ATen, fused float64}: "" or what differs.
inline std::string compare_outcomes(const Outcome (&outcomes)[3], const Variant (&variants)[3]) {
  std::ostringstream failure;
  for (int k = 0; k < 3; ++k) {
    if (outcomes[k].error && outcomes[k].message.rfind("torchloss::", 0) != 0) {
      failure << variants[k].name() << ": an error without the torchloss:: prefix: " << outcomes[k].message << "\n";
    }
  }
  const auto dtype = outcomes[0].dtype;
  for (int k = 1; k < 3; ++k) {
    const auto& a = outcomes[k];
    const auto& r = outcomes[0];
    if (a.error != r.error) {
      failure << variants[k].name() << (a.error ? " raised " : " returned ") << "where fused "
              << (r.error ? "raised: " + r.message : std::string("returned"))
              << (a.error ? ": " + a.message : std::string()) << "\n";
      continue;
    }
    if (a.error) continue;
    // float64 is the reference of the fused result; the ATen path is compared with fused.
    const auto& reference = k == 2 ? outcomes[2] : outcomes[0];
    const auto& result = k == 2 ? outcomes[0] : outcomes[1];
    const double rtol = tolerance(dtype, k == 1);
    const std::string loss = compare(result.loss, reference.loss, rtol, dtype);
    if (!loss.empty()) failure << "loss, fused vs " << variants[k].name() << ": " << loss << "\n";
    if (result.grads.size() != reference.grads.size()) {
      failure << "gradient count differs\n";
      continue;
    }
    for (size_t i = 0; i < result.grads.size(); ++i) {
      const std::string grad = compare(result.grads[i], reference.grads[i], rtol, dtype);
      if (!grad.empty()) failure << "gradient " << i << ", fused vs " << variants[k].name() << ": " << grad << "\n";
    }
  }
  return failure.str();
}

/// Prints the three outcomes of case `id` of `seed` (fuzz_battery --case).
inline void describe_case(const LossEntry& entry, uint64_t seed, uint64_t id, std::ostream& out) {
  const Variant variants[3] = {{false, false}, {true, false}, {false, true}};
  for (const auto& v : variants) {
    const Outcome o = run_variant(entry, seed, id, v);
    out << "--- " << entry.name << ", " << v.name() << ", input dtype " << o.dtype << "\n";
    if (o.error) {
      out << "error: " << o.message << "\n";
      continue;
    }
    out << "loss: " << o.loss << "\n";
    for (size_t i = 0; i < o.grads.size(); ++i) out << "gradient " << i << ": " << o.grads[i] << "\n";
  }
}

/// Runs case `id` of `seed` on the three variants and returns "" or what differs.
inline std::string check_case(const LossEntry& entry, uint64_t seed, uint64_t id) {
  const Variant variants[3] = {{false, false}, {true, false}, {false, true}};
  Outcome outcomes[3];
  for (int k = 0; k < 3; ++k) outcomes[k] = run_variant(entry, seed, id, variants[k]);
  return compare_outcomes(outcomes, variants);
}

}  // namespace torchloss_fuzz
