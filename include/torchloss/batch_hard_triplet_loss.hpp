#pragma once
/// \file batch_hard_triplet_loss.hpp
/// \brief Batch-hard triplet loss (Hermans, Beyer and Leibe, *In Defense of the Triplet Loss
/// for Person Re-Identification*, 2017): options, functional form and module.
///
/// \code
/// auto loss = torchloss::functional::batch_hard_triplet_loss(
///     embeddings, labels, torchloss::functional::BatchHardTripletLossFuncOptions().margin(0.3));
/// \endcode

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/kernel_utils.hpp>
#include <torchloss/detail/ops.hpp>
#include <torchloss/detail/reduction.hpp>

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <ostream>

namespace torchloss {

/// Options of BatchHardTripletLoss and functional::batch_hard_triplet_loss.
///
/// \code
/// torchloss::BatchHardTripletLoss loss(torchloss::BatchHardTripletLossOptions().soft_margin(true));
/// \endcode
struct BatchHardTripletLossOptions {
  /// Margin \f$\alpha \ge 0\f$ of the hinge \f$[d_{ap} - d_{an} + \alpha]_+\f$ (unused with soft_margin).
  TORCH_ARG(double, margin) = 0.3;
  /// Squared Euclidean distances instead of Euclidean ones.
  TORCH_ARG(bool, squared) = false;
  /// The soft margin \f$\log(1 + e^{d_{ap} - d_{an}})\f$ instead of the hinge.
  TORCH_ARG(bool, soft_margin) = false;
  /// torch::kNone (per anchor, 0 for anchors left out), torch::kMean (mean over the anchors
  /// that have a positive and a negative) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// Public name of the functional form, the prefix of its error messages.
constexpr const char* kBatchHardTripletFn = "torchloss::batch_hard_triplet_loss";

/// The mined triplets: per anchor the hardest positive and negative (the anchor itself, with
/// `valid` false, when it has none).
struct HardestPairs {
  torch::Tensor positive, negative, valid;
};

/// The Gram matrix [N, N] and squared norms [N] the mining reads: in the compute dtype, or,
/// where a squared norm would overflow it (float32 rows beyond about 1e19), in float64 with
/// the embeddings scaled by a power of two (exact, so the order of the distances is that of
/// float64's). A row with a NaN or ±Inf entry gets a NaN norm, so each of its distances is
/// NaN, on every path alike (the Gram matrix alone gives NaN or ±Inf by the signs involved).
struct MiningInputs {
  torch::Tensor gram, norms;
};
inline MiningInputs mining_inputs(const torch::Tensor& x) {
  auto norms = (x * x).sum(1);
  const auto row_finite = x.isfinite().all(1);
  auto mined = x;
  if (x.size(0) > 0) {
    // n_i + n_j − 2 g_ij reaches 4 max n: keep that within the dtype's range.
    const double limit = (x.scalar_type() == torch::kDouble ? std::numeric_limits<double>::max()
                                                            : static_cast<double>(std::numeric_limits<float>::max())) / 8;
    const double largest = norms.masked_fill(~row_finite, 0).max().item<double>();
    if (!(largest <= limit)) {
      const double big = x.abs().masked_fill(~x.isfinite(), 0).max().item<double>();
      mined = x.to(torch::kDouble) * std::ldexp(1.0, -std::ilogb(big));
      norms = (mined * mined).sum(1);
    }
  }
  norms = norms.masked_fill(~row_finite, std::numeric_limits<double>::quiet_NaN());
  return {mined.mm(mined.t()), norms};
}

/// Fused CPU mining over the squared distances \f$\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2 x_i \cdot x_j\f$
/// of the Gram matrix [N, N] (one matmul), one pass per row: the farthest positive and the
/// nearest negative. The rule both paths share: a NaN distance is the hardest (the first NaN
/// candidate is chosen, as torch.max would pick a NaN), else the first of the largest
/// (positives) or smallest (negatives) distances; so NaN embeddings reach the loss.
template <typename T>
HardestPairs mine_hardest_cpu(const torch::Tensor& gram_t, const torch::Tensor& norms_t, const torch::Tensor& labels_t) {
  const int64_t n = gram_t.size(0);
  HardestPairs out;
  out.positive = torch::empty({n}, labels_t.options());
  out.negative = torch::empty({n}, labels_t.options());
  out.valid = torch::empty({n}, labels_t.options().dtype(torch::kBool));
  const T* gram = gram_t.data_ptr<T>();
  const T* norms = norms_t.data_ptr<T>();
  const int64_t* labels = labels_t.data_ptr<int64_t>();
  int64_t* positive = out.positive.data_ptr<int64_t>();
  int64_t* negative = out.negative.data_ptr<int64_t>();
  bool* valid = out.valid.data_ptr<bool>();
  at::parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* row = gram + i * n;
      const int64_t label = labels[i];
      int64_t best_positive = -1, best_negative = -1;
      T farthest = 0, nearest = 0;
      for (int64_t j = 0; j < n; ++j) {
        const T squared = norms[i] + norms[j] - 2 * row[j];
        if (labels[j] == label) {
          if (j != i && (best_positive < 0 ||
                         (!std::isnan(farthest) && (std::isnan(squared) || squared > farthest)))) {
            best_positive = j;
            farthest = squared;
          }
        } else if (best_negative < 0 || (!std::isnan(nearest) && (std::isnan(squared) || squared < nearest))) {
          best_negative = j;
          nearest = squared;
        }
      }
      valid[i] = best_positive >= 0 && best_negative >= 0;
      positive[i] = valid[i] ? best_positive : i;
      negative[i] = valid[i] ? best_negative : i;
    }
  });
  return out;
}

/// The same mining with ATen ops (any device), the same rule written with selections that
/// leave no tie to the device: per row, the first candidate whose distance is NaN, else the
/// first whose key (the distance for positives, minus it for negatives) is the row's largest.
inline HardestPairs mine_hardest_aten(const torch::Tensor& gram, const torch::Tensor& norms,
                                      const torch::Tensor& labels) {
  const int64_t n = gram.size(0);
  const auto rows = torch::arange(n, labels.options());
  HardestPairs out;
  if (n == 0) return {rows, rows, rows.to(torch::kBool)};
  const auto squared = norms.unsqueeze(1) + norms.unsqueeze(0) - 2 * gram;
  const auto same = labels.unsqueeze(1) == labels.unsqueeze(0);
  const auto self = torch::eye(n, labels.options().dtype(torch::kBool));
  const double inf = std::numeric_limits<double>::infinity();
  const auto is_nan = squared.isnan();
  // n − j at the true entries of `hit` (unique per row), so max picks the first true column.
  const auto first_rank = (n - rows).unsqueeze(0);
  const auto hardest = [&](const torch::Tensor& candidates, const torch::Tensor& key) {
    const auto nan_hit = candidates & is_nan;
    const auto finite_key = key.masked_fill(~candidates | is_nan, -inf);
    const auto best = std::get<0>(finite_key.max(1, /*keepdim=*/true));
    const auto hit = torch::where(nan_hit.any(1, true), nan_hit, candidates & (finite_key == best));
    return std::get<1>((hit.to(torch::kLong) * first_rank).max(1));
  };
  const auto is_positive = same & ~self;
  out.valid = is_positive.any(1) & (~same).any(1);
  out.positive = torch::where(out.valid, hardest(is_positive, squared), rows);
  out.negative = torch::where(out.valid, hardest(~same, -squared), rows);
  return out;
}

/// What backward needs, by name (saved tensors go through the context).
struct TripletState : torch::CustomClassHolder {
  int64_t reduction = 1;
  double denominator = 0;  ///< anchors counted by kMean
  torch::ScalarType dtype = torch::kFloat;
};

/// Batch-hard triplet loss as a custom autograd function. Forward mines the pairs (no
/// gradient flows through the choice), then computes the two distances of each anchor
/// exactly from the embeddings, \f$d = \lVert x_i - x_j \rVert\f$ (not from the Gram matrix,
/// whose cancellation would spoil small distances), and their gradients, saved for backward:
/// \f$\partial d / \partial x_i = (x_i - x_j)/d\f$, 0 where \f$d = 0\f$ (the subgradient of smallest
/// norm, finite when embeddings coincide), or \f$2 (x_i - x_j)\f$ when squared.
struct BatchHardTripletFunction : public torch::autograd::Function<BatchHardTripletFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& embeddings,
                                                const torch::Tensor& labels, double margin, bool squared,
                                                bool soft_margin, int64_t reduction) {
    const auto x = to_compute(embeddings, embeddings.scalar_type());
    const auto y = labels.contiguous();
    const auto mining = mining_inputs(x);
    HardestPairs pairs;
    if (x.device().is_cpu() && !force_aten_path) {
      AT_DISPATCH_FLOATING_TYPES(mining.gram.scalar_type(), "torchloss_batch_hard_mining",
                                 [&] { pairs = mine_hardest_cpu<scalar_t>(mining.gram, mining.norms, y); });
    } else {
      pairs = mine_hardest_aten(mining.gram, mining.norms, y);
    }
    // The two distances per anchor, the loss and its gradient in float64: O(N·D), and a
    // distance of 1e30 (a squared one of 1e60) is in range there.
    const auto wide = x.to(torch::kDouble);
    const auto valid = pairs.valid.to(torch::kDouble);
    // Distances and their gradients with respect to the anchor; the Euclidean one scaled by
    // the row's largest |x_i − x_j| (no overflow of the squares at any magnitude).
    const auto distance = [&](const torch::Tensor& other) {
      const auto diff = wide - wide.index_select(0, other);
      if (squared) return std::make_pair((diff * diff).sum(1), 2 * diff);
      const auto largest = diff.abs().amax(1, /*keepdim=*/true);
      const auto unit_scale = torch::where(largest > 0, largest, torch::ones_like(largest));
      const auto scaled = diff / unit_scale;
      const auto norm = (scaled * scaled).sum(1).sqrt();
      const auto unit = scaled / torch::where(norm > 0, norm, torch::ones_like(norm)).unsqueeze(1);
      return std::make_pair(norm * unit_scale.squeeze(1), unit);
    };
    const auto [positive_distance, positive_slope] = distance(pairs.positive);
    const auto [negative_distance, negative_slope] = distance(pairs.negative);
    const auto gap = positive_distance - negative_distance;
    torch::Tensor losses, gap_slope;
    if (soft_margin) {
      losses = ops::softplus(gap);
      gap_slope = gap.sigmoid();
    } else {
      losses = ops::relu(gap + margin);
      gap_slope = ops::step(gap + margin);
    }
    losses = losses * valid;
    auto state = c10::make_intrusive<TripletState>();
    state->reduction = reduction;
    state->denominator = valid.sum().item<double>();
    state->dtype = embeddings.scalar_type();
    ctx->save_for_backward({positive_slope, negative_slope, gap_slope * valid, pairs.positive, pairs.negative});
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return {reduce_loss(losses, reduction, state->denominator).to(embeddings.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    check_no_double_backward(kBatchHardTripletFn);
    const auto saved = ctx->get_saved_variables();
    const auto& positive_slope = saved[0];
    const auto& negative_slope = saved[1];
    const auto state = c10::static_intrusive_pointer_cast<TripletState>(ctx->saved_data["state"].toCapsule());
    const auto scale = element_grad_scale(grad_outputs[0].to(positive_slope.scalar_type()), state->reduction,
                                          state->denominator);
    // ∂ℓ_i/∂(d_ap − d_an), times the incoming gradient.
    const auto coef = (saved[2] * scale).unsqueeze(1);
    const auto from_positive = positive_slope * coef;
    const auto from_negative = negative_slope * coef;
    auto grad = from_positive - from_negative;
    grad.index_add_(0, saved[3], -from_positive);
    grad.index_add_(0, saved[4], from_negative);
    return {grad.to(state->dtype), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Checks the arguments of a batch-hard triplet call (messages start with `fn`).
inline void check_triplet_args(const char* fn, const torch::Tensor& embeddings, const torch::Tensor& labels,
                               double margin) {
  check_logits(fn, embeddings, "embeddings");
  TORCH_CHECK(embeddings.dim() == 2, fn, ": embeddings must have shape [N, D], got ", shape_str(embeddings));
  TORCH_CHECK(labels.defined(), fn, ": labels is an undefined tensor");
  TORCH_CHECK(labels.scalar_type() == torch::kLong, fn, ": labels must hold int64 class indices, got ",
              labels.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == embeddings.size(0), fn, ": labels must have shape [",
              embeddings.size(0), "] (one per row of embeddings ", shape_str(embeddings), "), got ",
              shape_str(labels));
  check_same_device(fn, embeddings, labels, "labels");
  TORCH_CHECK(margin >= 0 && std::isfinite(margin), fn, ": margin must be a finite number >= 0, got ", margin);
}

}  // namespace detail

namespace functional {

/// Options of functional::batch_hard_triplet_loss (the same as the module's).
using BatchHardTripletLossFuncOptions = BatchHardTripletLossOptions;

/// Batch-hard triplet loss (Hermans, Beyer and Leibe, 2017) of `embeddings` [N, D] with
/// int64 `labels` [N]: for each anchor i, the farthest positive (same label, not i itself)
/// and the nearest negative (another label),
/// \f[ d_{ap} = \max_{j \ne i,\, y_j = y_i} d(x_i, x_j), \qquad d_{an} = \min_{y_j \ne y_i} d(x_i, x_j), \f]
/// \f[ \ell_i = [d_{ap} - d_{an} + \alpha]_+ \quad\text{or, with soft\_margin,}\quad \ell_i = \log(1 + e^{d_{ap} - d_{an}}), \f]
/// with \f$d\f$ the Euclidean distance (squared if `squared`). Anchors without a positive or a
/// negative are left out (\f$\ell_i = 0\f$, not counted by kMean; 0 when none is left). The
/// choice of pairs gets no gradient; the distances' gradient is finite when two embeddings
/// coincide (0 for that pair). Mining costs one [N, N] matmul and one pass over it (float16
/// and bfloat16 in float32; in float64 where the squared norms would overflow, e.g. float32
/// entries of 1e30), the loss and its gradient O(N·D), in float64, so finite inputs give a
/// finite result wherever it is in the dtype's range. An embedding with a NaN or ±Inf entry is
/// at NaN distance from every other: it is the hardest positive or negative of every anchor
/// (the first such row), whose losses become NaN, on every device alike. Errors
/// ("torchloss::batch_hard_triplet_loss: ..."): embeddings not a floating-point [N, D] tensor,
/// labels not int64 [N], tensors on different devices, margin \f$< 0\f$.
inline torch::Tensor batch_hard_triplet_loss(const torch::Tensor& embeddings, const torch::Tensor& labels,
                                             const BatchHardTripletLossFuncOptions& options = {}) {
  detail::check_triplet_args(detail::kBatchHardTripletFn, embeddings, labels, options.margin());
  return detail::BatchHardTripletFunction::apply(embeddings, labels, options.margin(), options.squared(),
                                                 options.soft_margin(), detail::reduction_code(options.reduction()))[0];
}

}  // namespace functional

/// Module form of functional::batch_hard_triplet_loss (no state: the options only).
class BatchHardTripletLossImpl : public torch::nn::Cloneable<BatchHardTripletLossImpl> {
 public:
  /// Builds the loss from its options (margin 0.3, Euclidean distances, hinge).
  explicit BatchHardTripletLossImpl(BatchHardTripletLossOptions options_ = {}) : options(std::move(options_)) {
    reset();
  }

  /// Checks the options (messages "torchloss::BatchHardTripletLoss: ..."); nothing to register.
  void reset() override {
    TORCH_CHECK(options.margin() >= 0 && std::isfinite(options.margin()), "torchloss::BatchHardTripletLoss",
                ": margin must be a finite number >= 0, got ", options.margin());
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::BatchHardTripletLoss(margin=" << options.margin()
           << ", squared=" << (options.squared() ? "true" : "false")
           << ", soft_margin=" << (options.soft_margin() ? "true" : "false")
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `embeddings` [N, D] with `labels` [N].
  torch::Tensor forward(const torch::Tensor& embeddings, const torch::Tensor& labels) {
    return functional::batch_hard_triplet_loss(embeddings, labels, options);
  }

  /// The options the module was built with.
  BatchHardTripletLossOptions options;
};

/// Module holder of BatchHardTripletLossImpl.
TORCH_MODULE(BatchHardTripletLoss);

}  // namespace torchloss
