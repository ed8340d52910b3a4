#pragma once
/// \file ghm.hpp
/// \brief Shared machinery of the gradient harmonizing losses (GHM-C, GHM-R): the bin edges,
/// the single-pass histogram (fused CPU kernel and ATen path), the per-bin weights with the
/// moving average of the bin counts, and the autograd function with its analytic backward.
///
/// A GHM loss is a sum of per-element terms ℓ(x, y) weighted by a constant that depends on the
/// bin of the element's gradient norm g = |∂ℓ/∂x|. A loss supplies a `Term` policy with
/// `value_and_grad(x, y, params, grad)` (returns ℓ, sets ∂ℓ/∂x) for scalars and tensors,
/// `target_grad(x, grad)` (∂ℓ/∂y), and `kProbabilityTarget` (targets must lie in [0, 1]).
///
/// Forward, in one pass over the elements: each counted element (label_weight > 0) falls in
/// the bin of its g; per bin, the kernel adds up the element count and the sum of ℓ. The
/// per-bin weights then need only [bins] numbers (after an optional all-reduce of the counts
/// and of tot), and the loss is Σ_b weight_b · (Σ ℓ in bin b). Backward recomputes g (it is
/// the gradient itself), so the bin of every element, and scales ∂ℓ/∂x by its bin's weight.

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/elementwise_loss.hpp>
#include <torchloss/detail/kernel_utils.hpp>
#include <torchloss/detail/ops.hpp>
#include <torchloss/detail/reduction.hpp>
#include <torchloss/distributed.hpp>

#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace torchloss {
namespace detail {

/// The largest supported number of bins: edges i / bins are float32 values, as mmdetection
/// builds them, and float32 counts exactly only up to 2^24.
constexpr int64_t kMaxGHMBins = int64_t(1) << 24;

/// mmdetection's bin edges: `torch.arange(bins + 1).float() / bins` (float32), with the last
/// edge raised by 1e-6 (in float32) so that g = 1 falls in the last bin. Bin i is
/// [edge(i), edge(i+1)); `slot` is the bin index, or `bins` for "in no bin" (g NaN or
/// beyond the last edge, and the elements that do not count).
struct GHMEdges {
  int32_t bins = 10;
  float bins_f = 10.0f;
  float last = 1.0f;

  GHMEdges() = default;
  explicit GHMEdges(int64_t bins_)
      : bins(static_cast<int32_t>(bins_)), bins_f(static_cast<float>(bins_)),
        last(1.0f + static_cast<float>(1e-6)) {}

  /// Inner edge i < bins, as the float32 division torch performs, widened to T.
  template <typename T>
  T edge(int32_t i) const {
    return static_cast<T>(static_cast<float>(i) / bins_f);
  }

  /// The slot of g >= 0: the candidate floor(g · bins) is off by at most one from the bin
  /// that the float32 edges define (both round once), and two comparisons settle it.
  /// Branch-free, so the histogram loops vectorise.
  template <typename T>
  int32_t slot(T g) const {
    const T scaled = g * static_cast<T>(bins);
    // NaN fails the comparison and takes bins - 1; the final test sends it to no bin.
    int32_t b = scaled < static_cast<T>(bins - 1) ? static_cast<int32_t>(scaled) : bins - 1;
    b -= g < edge<T>(b) ? 1 : 0;
    const T upper = b + 1 < bins ? edge<T>(b + 1) : static_cast<T>(last);
    b += g >= upper ? 1 : 0;  // from the last bin, this leads to `bins`: beyond the last edge
    return g >= T(0) ? b : bins;
  }

  /// The edges [bins + 1] as a float32 tensor (then in `options`' dtype and device).
  torch::Tensor edges_tensor(const torch::TensorOptions& options) const {
    std::vector<float> values(static_cast<size_t>(bins) + 1);
    for (int32_t i = 0; i < bins; ++i) values[static_cast<size_t>(i)] = edge<float>(i);
    values[static_cast<size_t>(bins)] = last;
    return torch::tensor(values, torch::kFloat).to(options);
  }

  /// slot() on a tensor of gradient norms (the ATen path): int64 of g's shape.
  torch::Tensor slot(const torch::Tensor& g) const {
    const auto table = edges_tensor(g.options());
    const auto scaled = g * static_cast<double>(bins);
    auto b = scaled.masked_fill(~(scaled < static_cast<double>(bins - 1)), bins - 1).to(torch::kLong);
    b = b - (g < table.take(b)).to(torch::kLong);
    b = b + (g >= table.take(b + 1)).to(torch::kLong);
    return b.masked_fill_(~(g >= 0), bins);
  }
};

/// Everything a GHM forward needs besides its tensor inputs.
struct GHMCall {
  const char* fn = "";          ///< public name for error messages
  GHMEdges edges;               ///< the bins
  double momentum = 0;          ///< moving-average factor of the bin counts (0: none)
  double loss_weight = 1;       ///< factor of the whole loss
  bool tot_is_weight_sum = false;  ///< tot = Σ label_weight (GHM-R) instead of #{label_weight > 0} (GHM-C)
  torch::Tensor acc_sum;        ///< running bin counts [bins], updated in place when momentum > 0
  AllReduceFn all_reduce;       ///< sums the bin counts and tot over ranks (empty: one process)
};

/// Per-slot statistics of a forward pass. `stats` [bins + 1] holds the counts of the bins and
/// the raw tot (before max(·, 1)): the numbers that are all-reduced. `sums` [bins + 1] holds
/// Σ ℓ per bin and, in the last slot, over the elements in no bin (multiplied by a zero
/// weight, it carries their NaN or Inf into the loss, as the reference does).
struct GHMHistogram {
  torch::Tensor stats, sums;
  bool bad_target = false;
};

/// Elements per block of the fused loops: one vectorised pass fills the block's losses and
/// slots, one scalar pass scatters them into the histogram.
constexpr int64_t kGHMBlock = 256;

/// Fused CPU forward: the histogram of counts and loss sums in one pass over x, y, label_weight.
/// Deterministic: chunk boundaries depend only on the sizes, partial results are combined in
/// chunk order, whatever the thread count.
template <class Term, typename T>
GHMHistogram ghm_histogram_cpu(const torch::Tensor& x_t, const torch::Tensor& y_t, const BroadcastWeight& lw,
                               const GHMEdges& edges, const typename Term::Params& params, bool tot_is_weight_sum) {
  const T* x = x_t.data_ptr<T>();
  const T* y = y_t.data_ptr<T>();
  const T one = 1;
  const T* w = lw.values.defined() ? lw.values.template data_ptr<T>() : &one;
  const BroadcastWeight unweighted{torch::Tensor(), x_t.numel(), 1};
  const BroadcastWeight& layout = lw.values.defined() ? lw : unweighted;
  const int64_t n = x_t.numel();
  const int32_t bins = edges.bins;
  const int64_t slots = int64_t(bins) + 1;
  // Several interleaved histograms break the add-to-same-bin dependency chains (most
  // elements of a detector batch share the first bin); one for many bins.
  const int64_t lanes = bins <= 64 ? 8 : 1;
  // Chunks of at least 64 elements per slot keep the per-chunk histograms small next to the data.
  const int64_t chunk_size = std::max<int64_t>(kElementGrain, 64 * slots);
  const int64_t chunks = (n + chunk_size - 1) / chunk_size;
  std::vector<double> chunk_sums(static_cast<size_t>(chunks * slots), 0.0);
  std::vector<int64_t> chunk_counts(static_cast<size_t>(chunks * slots), 0);
  std::vector<double> chunk_tot(static_cast<size_t>(chunks), 0.0);
  std::atomic<bool> bad{false};

  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<double> lane_sums(static_cast<size_t>(lanes * slots));
    std::vector<int64_t> lane_counts(static_cast<size_t>(lanes * slots));
    T values[kGHMBlock];
    int32_t slot[kGHMBlock];
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      std::fill(lane_sums.begin(), lane_sums.end(), 0.0);
      std::fill(lane_counts.begin(), lane_counts.end(), 0);
      const int64_t begin = chunk * chunk_size, end = std::min(n, begin + chunk_size);
      double tot = 0;
      int64_t bad_count = 0;
      for_weight_runs(begin, end, layout, w, [&](int64_t i0, int64_t length, const T* wr, auto w_stride) {
        constexpr int stride = decltype(w_stride)::value;
        for (int64_t s = 0; s < length; s += kGHMBlock) {
          const int64_t m = std::min(kGHMBlock, length - s);
          const T* xb = x + i0 + s;
          const T* yb = y + i0 + s;
          const T* wb = wr + s * stride;
          T block_weight = 0;
          int32_t block_counted = 0, block_bad = 0;
          for (int64_t k = 0; k < m; ++k) {
            T grad;
            values[k] = Term::value_and_grad(xb[k], yb[k], params, grad);
            const T wk = wb[k * stride];
            const bool counted = wk > T(0);
            const int32_t b = edges.slot(std::abs(grad));
            slot[k] = counted ? b : bins;
            block_counted += counted ? 1 : 0;
            block_weight += wk;
            if (Term::kProbabilityTarget) block_bad += (!(yb[k] >= T(0) && yb[k] <= T(1)) && yb[k] == yb[k]) ? 1 : 0;
          }
          for (int64_t k = 0; k < m; ++k) {
            const int64_t at = (k & (lanes - 1)) * slots + slot[k];
            lane_sums[static_cast<size_t>(at)] += static_cast<double>(values[k]);
            lane_counts[static_cast<size_t>(at)] += 1;
          }
          tot += tot_is_weight_sum ? static_cast<double>(block_weight) : static_cast<double>(block_counted);
          bad_count += block_bad;
        }
      });
      double* sums_out = chunk_sums.data() + chunk * slots;
      int64_t* counts_out = chunk_counts.data() + chunk * slots;
      for (int64_t lane = 0; lane < lanes; ++lane) {
        for (int64_t b = 0; b < slots; ++b) {
          sums_out[b] += lane_sums[static_cast<size_t>(lane * slots + b)];
          counts_out[b] += lane_counts[static_cast<size_t>(lane * slots + b)];
        }
      }
      chunk_tot[static_cast<size_t>(chunk)] = tot;
      if (bad_count) bad = true;
    }
  });

  GHMHistogram h;
  h.stats = torch::zeros({slots}, torch::kDouble);
  h.sums = torch::zeros({slots}, torch::kDouble);
  double* stats = h.stats.data_ptr<double>();
  double* sums = h.sums.data_ptr<double>();
  std::vector<int64_t> counts(static_cast<size_t>(slots), 0);
  double tot = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (int64_t b = 0; b < slots; ++b) {
      sums[b] += chunk_sums[static_cast<size_t>(chunk * slots + b)];
      counts[static_cast<size_t>(b)] += chunk_counts[static_cast<size_t>(chunk * slots + b)];
    }
    tot += chunk_tot[static_cast<size_t>(chunk)];
  }
  for (int32_t b = 0; b < bins; ++b) stats[b] = static_cast<double>(counts[static_cast<size_t>(b)]);
  stats[bins] = tot;
  h.bad_target = bad;
  return h;
}

/// Fused CPU backward: grad_i = table[slot_i] · ∂ℓ/∂x_i, the table holding each bin's weight
/// times the incoming gradient (and 0 for "in no bin").
template <class Term, typename T>
torch::Tensor ghm_backward_cpu(const torch::Tensor& x_t, const torch::Tensor& y_t, const BroadcastWeight& lw,
                               const GHMEdges& edges, const T* table, const typename Term::Params& params) {
  auto grad_t = torch::empty_like(x_t);
  const T* x = x_t.data_ptr<T>();
  const T* y = y_t.data_ptr<T>();
  const T one = 1;
  const T* w = lw.values.defined() ? lw.values.template data_ptr<T>() : &one;
  const BroadcastWeight unweighted{torch::Tensor(), x_t.numel(), 1};
  const BroadcastWeight& layout = lw.values.defined() ? lw : unweighted;
  T* out = grad_t.template data_ptr<T>();
  const int32_t bins = edges.bins;
  at::parallel_for(0, x_t.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
    T derivative[kGHMBlock];
    int32_t slot[kGHMBlock];
    for_weight_runs(begin, end, layout, w, [&](int64_t i0, int64_t length, const T* wr, auto w_stride) {
      constexpr int stride = decltype(w_stride)::value;
      for (int64_t s = 0; s < length; s += kGHMBlock) {
        const int64_t m = std::min(kGHMBlock, length - s);
        const T* xb = x + i0 + s;
        const T* yb = y + i0 + s;
        const T* wb = wr + s * stride;
        for (int64_t k = 0; k < m; ++k) {
          T grad;
          (void)Term::value_and_grad(xb[k], yb[k], params, grad);  // the value is dead code
          const int32_t b = edges.slot(std::abs(grad));
          slot[k] = wb[k * stride] > T(0) ? b : bins;
          derivative[k] = grad;
        }
        T* ob = out + i0 + s;
        for (int64_t k = 0; k < m; ++k) ob[k] = table[slot[k]] * derivative[k];
      }
    });
  });
  return grad_t;
}

/// The slots of the ATen path: the bin of |∂ℓ/∂x|, or `bins` for elements that do not count.
inline torch::Tensor ghm_slots_aten(const torch::Tensor& grad, const BroadcastWeight& lw, const torch::Tensor& x,
                                    const GHMEdges& edges) {
  auto slot = edges.slot(grad.abs());
  if (lw.values.defined()) slot.masked_fill_(~(aten_weight(lw, x) > 0), edges.bins);
  return slot;
}

/// The per-slot factors [bins + 1] (float64) of the loss: loss_weight · w_b / tot, where
/// w_b = tot / acc_b (momentum > 0, after the update acc_b ← m·acc_b + (1−m)·count_b of the
/// non-empty bins) or tot / count_b, divided by the number of non-empty bins; 0 for empty
/// bins and for the "no bin" slot. Tensor ops on [bins] values: no host synchronisation.
inline torch::Tensor ghm_slot_factors(const torch::Tensor& stats, const torch::Tensor& acc_sum, double momentum,
                                      double loss_weight) {
  const int64_t bins = stats.numel() - 1;
  const auto counts = stats.narrow(0, 0, bins);
  const auto tot = stats.narrow(0, bins, 1).clamp_min(1.0);
  const auto nonempty = counts > 0;
  auto denominator = counts;
  if (momentum > 0) {
    const auto acc = acc_sum.to(torch::kDouble);
    // Stored in acc_sum's dtype first: the weights use the stored value, so a run resumed
    // from a saved acc_sum continues identically.
    acc_sum.copy_(torch::where(nonempty, acc * momentum + counts * (1 - momentum), acc));
    denominator = acc_sum.to(torch::kDouble);
  }
  const auto nonempty_bins = nonempty.sum().to(torch::kDouble).clamp_min(1.0);
  const auto weights = torch::where(nonempty, tot / denominator, torch::zeros_like(denominator)) / nonempty_bins;
  return torch::cat({weights / tot * loss_weight, torch::zeros({1}, stats.options())});
}

/// The autograd function of the GHM losses. The bin weights are constants (the reference
/// detaches g), so backward is the weighted ∂ℓ/∂x.
template <class Term>
struct GHMLossFunction : public torch::autograd::Function<GHMLossFunction<Term>> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                                                const torch::Tensor& target, const optional<torch::Tensor>& label_weight,
                                                const GHMCall& call, typename Term::Params params) {
    const auto dtype = compute_dtype(input.scalar_type());
    const auto x = input.to(dtype).contiguous();
    const auto y = target.to(dtype).contiguous();
    const auto lw = broadcast_weight(label_weight.value_or(torch::Tensor()), x, dtype);
    const int64_t bins = call.edges.bins;
    const bool fused = x.device().is_cpu() && !force_aten_path;
    torch::Tensor stats, sums, values, slot;
    if (fused) {
      GHMHistogram h;
      AT_DISPATCH_FLOATING_TYPES(dtype, "torchloss_ghm_forward", [&] {
        h = ghm_histogram_cpu<Term, scalar_t>(x, y, lw, call.edges, params, call.tot_is_weight_sum);
      });
      if (h.bad_target) check_probabilities(call.fn, target);
      stats = h.stats;
      sums = h.sums;
    } else {
      if (Term::kProbabilityTarget) check_probabilities(call.fn, target);
      torch::Tensor grad;
      values = Term::value_and_grad(x, y, params, grad);
      slot = ghm_slots_aten(grad, lw, x, call.edges).flatten();
      const auto dopt = x.options().dtype(torch::kDouble);
      const auto counts = torch::zeros({bins + 1}, dopt).index_add_(0, slot, torch::ones({slot.numel()}, dopt));
      torch::Tensor tot;
      if (!lw.values.defined()) {
        tot = torch::full({1}, static_cast<double>(x.numel()), dopt);
      } else {
        const auto w = aten_weight(lw, x);
        tot = (call.tot_is_weight_sum ? w.sum(torch::kDouble) : (w > 0).sum().to(torch::kDouble)).reshape({1});
      }
      stats = torch::cat({counts.narrow(0, 0, bins), tot});
    }
    if (call.all_reduce) call.all_reduce(stats);
    const auto factors = ghm_slot_factors(stats, call.acc_sum, call.momentum, call.loss_weight);
    torch::Tensor loss;
    if (fused) {
      loss = (factors * sums).sum();
    } else {
      loss = (factors.to(dtype).take(slot).view(x.sizes()) * values).sum();
    }
    ctx->save_for_backward({x, y, lw.values, factors});
    ctx->saved_data["layout"] = std::vector<int64_t>{lw.inner, lw.period, bins, static_cast<int64_t>(input.scalar_type()),
                                                     static_cast<int64_t>(target.scalar_type())};
    ctx->saved_data["params"] = params.pack();
    return {loss.to(input.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& y = saved[1];
    const auto layout = ctx->saved_data["layout"].toIntVector();
    const BroadcastWeight lw{saved[2], layout[0], layout[1]};
    const GHMEdges edges(layout[2]);
    const auto input_dtype = static_cast<torch::ScalarType>(layout[3]);
    const auto target_dtype = static_cast<torch::ScalarType>(layout[4]);
    const auto params = Term::Params::unpack(ctx->saved_data["params"].toDoubleVector());
    // The loss is a scalar: one incoming gradient scales every slot factor.
    const auto table = (saved[3] * grad_outputs[0].to(torch::kDouble)).to(x.scalar_type()).contiguous();
    torch::Tensor grad_input, grad_target;
    const bool fused = x.device().is_cpu() && !force_aten_path;
    if (ctx->needs_input_grad(0) && fused) {
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchloss_ghm_backward", [&] {
        grad_input = ghm_backward_cpu<Term, scalar_t>(x, y, lw, edges, table.data_ptr<scalar_t>(), params);
      });
    }
    if ((ctx->needs_input_grad(0) && !fused) || ctx->needs_input_grad(1)) {
      torch::Tensor grad;
      (void)Term::value_and_grad(x, y, params, grad);
      const auto weight = table.take(ghm_slots_aten(grad, lw, x, edges));
      if (!grad_input.defined() && ctx->needs_input_grad(0)) grad_input = weight * grad;
      // Rarely wanted (a regression target that requires grad): plain ATen ops.
      if (ctx->needs_input_grad(1)) grad_target = (weight * Term::target_grad(x, grad)).to(target_dtype);
    }
    if (grad_input.defined()) grad_input = grad_input.to(input_dtype);
    return {grad_input, grad_target, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Validates the options shared by GHM-C and GHM-R.
inline void check_ghm_options(const char* fn, int64_t bins, double momentum, double loss_weight) {
  TORCH_CHECK(bins >= 1 && bins <= kMaxGHMBins, fn, ": bins must be in [1, ", kMaxGHMBins, "], got ", bins);
  TORCH_CHECK(momentum >= 0 && momentum < 1, fn, ": momentum must be in [0, 1), got ", momentum);
  TORCH_CHECK(std::isfinite(loss_weight), fn, ": loss_weight must be finite, got ", loss_weight);
}

/// A label_weight of `shape` on the input's device, of a real (bool, integer or floating) dtype.
inline void check_label_weight(const char* fn, const torch::Tensor& input, const torch::Tensor& label_weight,
                               torch::IntArrayRef shape, const char* expected) {
  if (!label_weight.defined()) return;
  TORCH_CHECK(!at::isComplexType(label_weight.scalar_type()), fn, ": label_weight must be real, got ",
              label_weight.scalar_type());
  TORCH_CHECK(label_weight.sizes() == shape, fn, ": label_weight shape ", shape_str(label_weight), " must be ",
              expected, " ", shape);
  check_same_device(fn, input, label_weight, "label_weight");
}

/// The running bin counts: float32 or float64 [bins] on the input's device; required when
/// momentum > 0, ignored (and may be undefined) otherwise.
inline void check_acc_sum(const char* fn, const torch::Tensor& input, const torch::Tensor& acc_sum, int64_t bins,
                          double momentum) {
  if (momentum == 0) return;
  TORCH_CHECK(acc_sum.defined(), fn, ": acc_sum (the running bin counts, shape [", bins,
              "]) must be given when momentum > 0");
  TORCH_CHECK(acc_sum.scalar_type() == torch::kFloat || acc_sum.scalar_type() == torch::kDouble, fn,
              ": acc_sum must be float32 or float64 (it holds counts), got ", acc_sum.scalar_type());
  TORCH_CHECK(acc_sum.dim() == 1 && acc_sum.size(0) == bins, fn, ": acc_sum shape ", shape_str(acc_sum),
              " must be [bins] = [", bins, "]");
  check_same_device(fn, input, acc_sum, "acc_sum");
}

/// Runs a GHM loss on validated inputs; `label_weight` may be undefined (every element counts)
/// or of a shape broadcast_weight() maps onto the input.
template <class Term>
torch::Tensor ghm_loss(const torch::Tensor& input, const torch::Tensor& target, const torch::Tensor& label_weight,
                       const GHMCall& call, const typename Term::Params& params) {
  const optional<torch::Tensor> maybe_weight =
      label_weight.defined() ? optional<torch::Tensor>(label_weight) : c10::nullopt;
  return GHMLossFunction<Term>::apply(input, target, maybe_weight, call, params)[0];
}

}  // namespace detail
}  // namespace torchloss
