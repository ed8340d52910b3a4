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
/// and of tot), and the loss is Σ_b factor_b · (Σ ℓ in bin b). The fused CPU forward also
/// writes ∂ℓ/∂x and each element's slot, so its backward is one gather-multiply pass; the
/// ATen path (other devices) recomputes them in backward instead.

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/elementwise_loss.hpp>
#include <torchloss/detail/kernel_utils.hpp>
#include <torchloss/detail/ops.hpp>
#include <torchloss/detail/reduction.hpp>
#include <torchloss/detail/simd.hpp>
#include <torchloss/detail/state_lock.hpp>
#include <torchloss/distributed.hpp>

#include <ATen/Parallel.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

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

/// int32 lanes of the kernels' type V: vint/vint8 for the float vectors, int32_t for float
/// and double.
template <typename V>
using slot_t = std::conditional_t<is_simd_v<V>, int_vector_t<V>, int32_t>;

/// Per-lane mask ? a : b on int32 lanes (vector masks are -1/0, scalar masks bool).
template <typename Mask, typename S>
inline S select_slot(Mask mask, S a, S b) {
  if constexpr (std::is_integral<S>::value) {
    return mask ? a : b;
  } else {
    return (mask & a) | (~mask & b);
  }
}

/// Whether a scalar mask is set.
inline bool any_lane(bool mask) { return mask; }
/// Whether a scalar mask computed with `&`/`|` (an int) is set.
inline bool any_lane(int mask) { return mask != 0; }
/// Whether any lane of a vector mask is set.
inline bool any_lane(vint mask) {
#if defined(__SSE__)
  return _mm_movemask_ps((__m128)mask) != 0;
#else
  return (mask[0] | mask[1] | mask[2] | mask[3]) != 0;
#endif
}

/// √ per lane, correctly rounded (as std::sqrt on the scalar tail).
inline vfloat square_root_lanes(vfloat v) {
#if defined(__SSE__)
  return (vfloat)_mm_sqrt_ps((__m128)v);
#else
  vfloat r;
  for (int j = 0; j < 4; ++j) r[j] = std::sqrt(v[j]);
  return r;
#endif
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
// The 8-lane twins exist only inside dispatch_simd's AVX2 function, into which they inline.
/// Whether any lane of an 8-lane mask is set.
__attribute__((target("avx2,fma"))) inline bool any_lane(vint8 mask) {
  return _mm256_movemask_ps((__m256)mask) != 0;
}
/// √ per lane of 8.
__attribute__((target("avx2,fma"))) inline vfloat8 square_root_lanes(vfloat8 v) {
  return (vfloat8)_mm256_sqrt_ps((__m256)v);
}
#endif

/// |v| on the kernels' types (NaN stays NaN).
template <typename V>
inline V abs_value(V v) {
  return select(v < 0, -v, v);
}

/// √v on the kernels' types and on tensors.
template <typename V>
inline V square_root(const V& v) {
  if constexpr (is_simd_v<V>) {
    return square_root_lanes(v);
  } else if constexpr (std::is_floating_point<V>::value) {
    return std::sqrt(v);
  } else {
    return v.sqrt();
  }
}

/// mmdetection's bin edges: `torch.arange(bins + 1).float() / bins` (float32), with the last
/// edge raised by 1e-6 (in float32) so that g = 1 falls in the last bin. Bin i is
/// [edge(i), edge(i+1)): a g equal to an edge belongs to the bin above it.
///
/// One definition of an element's bin on every path and in every dtype: the bin of g
/// evaluated in float64 from the element's values (the loss's formula in double; exact at
/// the ties that occur in practice, e.g. GHM-C's g = 0.5 at x = 0), compared with the float32
/// edges. A float32 kernel bins its own float g directly when that g lies farther than
/// 2^-20 from every edge (its error is a few 2^-24, so the bin is then the float64 one too),
/// and recomputes g in float64 otherwise. float32, float64 and the ATen path thus agree
/// unless g lies within a float64 rounding (about 1e-16) of an edge.
///
/// Slots: 0 ... bins-1 are the bins; `bins` holds counted elements in no bin (g NaN or beyond
/// the last edge), `bins + 1` the elements that do not count (label_weight <= 0, or NaN).
struct GHMEdges {
  int32_t bins = 10;
  float bins_f = 10.0f;
  float last = 1.0f;

  GHMEdges() = default;
  explicit GHMEdges(int64_t bins_)
      : bins(static_cast<int32_t>(bins_)), bins_f(static_cast<float>(bins_)),
        last(1.0f + static_cast<float>(1e-6)) {}

  /// Number of slots: the bins and the two sentinels.
  int64_t slots() const { return int64_t(bins) + 2; }

  /// Edge i (< bins, i >= 0) in V, as the float32 division torch performs.
  template <typename V>
  V edge(slot_t<V> i) const {
    if constexpr (is_simd_v<V>) {
      return __builtin_convertvector(i, V) / bins_f;
    } else {
      return static_cast<V>(static_cast<float>(i) / bins_f);
    }
  }

  /// The slot of a gradient norm g given in float64 (>= 0, or NaN): exact comparisons with
  /// the float32 edges.
  int32_t exact_slot(double g) const {
    if (!(g >= 0 && g < static_cast<double>(last))) return bins;
    const double scaled = g * static_cast<double>(bins);
    // The product's rounding and the edges' float32 rounding are each far below one bin.
    int32_t b = scaled < static_cast<double>(bins - 1) ? static_cast<int32_t>(scaled) : bins - 1;
    if (b > 0 && g < static_cast<double>(edge<float>(b))) --b;
    if (b + 1 < bins && g >= static_cast<double>(edge<float>(b + 1))) ++b;
    return b;
  }

  /// The slot of a gradient norm g (>= 0, or NaN) of the kernels' types; `exact_norm(j)`
  /// gives lane j's g in float64 (see the struct comment), asked for only where the float g
  /// lies within 2^-20 of an inner edge. The candidate c = floor(fl(g · bins)) is the bin
  /// otherwise; edge 0 needs no test (g >= 0), and the last bin's upper edge 1 + 1e-6 is one
  /// comparison. V may be a vector: no branch on a lane in the common case.
  template <typename V, typename ExactNorm>
  slot_t<V> slot(V g, ExactNorm exact_norm) const {
    using S = slot_t<V>;
    using L = lane_t<V>;
    if constexpr (std::is_same<V, double>::value) {
      (void)exact_norm;  // g is already the float64 value
      return exact_slot(g);
    } else {
      const V scaled = g * static_cast<L>(bins_f);
      // NaN fails the comparison and takes bins - 1; the final test sends it to no bin.
      const V top = splat<V>(bins - 1);
      const V clamped = select(scaled < top, scaled, top);
      S b;
      V fraction;  // exact (Sterbenz): scaled and b are within a factor 2, or b = 0
      if constexpr (is_simd_v<V>) {
        b = __builtin_convertvector(clamped, S);
        fraction = scaled - __builtin_convertvector(b, V);
      } else {
        b = static_cast<int32_t>(clamped);
        fraction = scaled - static_cast<V>(b);
      }
      // Beyond the last edge (only from the last bin) or NaN: in no bin.
      b = select_slot((g >= 0) & (g < last), b, S{} + bins);
      const L margin = static_cast<L>(bins_f) * static_cast<L>(1.0 / (1 << 20));
      const auto near = ((fraction < margin) & (b > S{}) & (b < S{} + bins)) |
                        ((fraction > 1 - margin) & (b < S{} + (bins - 1)));
      if (any_lane(near)) {
        if constexpr (is_simd_v<V>) {
          for (int j = 0; j < static_cast<int>(lanes_v<V>); ++j) {
            if (near[j]) b[j] = exact_slot(exact_norm(j));
          }
        } else {
          b = exact_slot(exact_norm(0));
        }
      }
      return b;
    }
  }

  /// The slot of a gradient norm g taken as exact (its value, compared with the edges).
  template <typename V>
  slot_t<V> slot(V g) const {
    return slot(g, [&](int j) {
      if constexpr (is_simd_v<V>) {
        return static_cast<double>(g[j]);
      } else {
        (void)j;
        return static_cast<double>(g);
      }
    });
  }

  /// The edges [bins + 1] as a float32 tensor (then in `options`' dtype and device).
  torch::Tensor edges_tensor(const torch::TensorOptions& options) const {
    std::vector<float> values(static_cast<size_t>(bins) + 1);
    for (int32_t i = 0; i < bins; ++i) values[static_cast<size_t>(i)] = edge<float>(i);
    values[static_cast<size_t>(bins)] = last;
    return torch::tensor(values, torch::kFloat).to(options);
  }

  /// exact_slot() on a tensor of gradient norms (the ATen path), compared in float64:
  /// int64 of g's shape.
  torch::Tensor slot(const torch::Tensor& g_in) const {
    const auto g = g_in.to(torch::kDouble);
    const auto table = edges_tensor(g.options());
    const auto scaled = g * static_cast<double>(bins);
    auto b = scaled.masked_fill(~(scaled < static_cast<double>(bins - 1)), bins - 1).to(torch::kLong);
    b = b - (g < table.take(b)).to(torch::kLong);
    b = b + (g >= table.take(b + 1)).to(torch::kLong);
    return b.masked_fill_(~((g >= 0) & (g < table[bins])), bins);
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
/// the raw tot (before max(·, 1)): the numbers that are all-reduced. `sums` [bins + 2] holds
/// Σ ℓ per slot; the sentinels' sums get a zero factor, which carries their NaN or Inf into
/// the loss, as the reference's zero weights do.
struct GHMHistogram {
  torch::Tensor stats, sums;
  bool bad_target = false;
};

/// Elements per block of the fused forward: one SIMD pass fills the block's losses and slots
/// (and writes ∂ℓ/∂x out), one scalar pass scatters the losses into the histogram by slot.
constexpr int64_t kGHMBlock = 256;

/// The chunks of the fused forward: at least kElementGrain elements, and 64 per slot so the
/// per-chunk histograms stay small next to the data.
inline int64_t ghm_chunk_size(const GHMEdges& edges) {
  return std::max<int64_t>(kElementGrain, 64 * edges.slots());
}

/// The dtype of the per-element slots that the forward saves for backward: uint8 while the
/// slots fit (bins <= 254, the usual 10 or 30), int32 beyond.
inline torch::ScalarType ghm_slot_dtype(const GHMEdges& edges) {
  return edges.slots() <= 256 ? torch::kByte : torch::kInt;
}

/// Per element of a block: ℓ into `values`, ∂ℓ/∂x into `grad_out`, the slot into `slot`;
/// SIMD over the block, then its scalar tail. Also adds up the label weights (GHM-R's tot)
/// and flags targets outside [0, 1] (GHM-C).
template <class Term, typename T, typename W, int kStride>
inline void ghm_block(const T* xb, const T* yb, const T* wb, int64_t m, const GHMEdges& edges_in,
                      const typename Term::Params& params_in, T* values, T* grad_out, int32_t* slot,
                      double& weight_sum, bool& bad_target) {
  // Local copies: the stores below could alias the referenced originals, which would force a
  // reload (and a re-broadcast) of every constant in every iteration.
  const GHMEdges edges = edges_in;
  const typename Term::Params params = params_in;
  W weight_vec{};
  slot_t<W> bad_vec{};
  T weight_tail = 0;
  bool bad_tail = false;
  simd_for<T, W>(m, [&](int64_t k, auto tag) {
    using V = decltype(tag);
    using S = slot_t<V>;
    const V x = load<V>(xb + k);
    const V y = load<V>(yb + k);
    const V w = kStride ? load<V>(wb + k) : splat<V>(wb[0]);
    V grad;
    store(values + k, Term::value_and_grad(x, y, params, grad));
    store(grad_out + k, grad);
    // A g near an edge is binned from its float64 value (see GHMEdges).
    const auto exact_norm = [&](int j) {
      double exact_grad;
      (void)Term::value_and_grad(static_cast<double>(xb[k + j]), static_cast<double>(yb[k + j]), params, exact_grad);
      return std::abs(exact_grad);
    };
    store(slot + k, select_slot(w > 0, edges.slot(abs_value(grad), exact_norm), S{} + (edges.bins + 1)));
    if constexpr (is_simd_v<V>) {
      weight_vec += w;
      if (Term::kProbabilityTarget) bad_vec |= ~((y >= 0) & (y <= 1)) & (y == y);
    } else {
      weight_tail += w;
      if (Term::kProbabilityTarget) bad_tail = bad_tail || (!(y >= 0 && y <= 1) && y == y);
    }
  });
  weight_sum += static_cast<double>(lane_sum(weight_vec)) + static_cast<double>(weight_tail);
  if constexpr (is_simd_v<W>) {
    for (int j = 0; j < lanes_v<W>; ++j) bad_target = bad_target || bad_vec[j] != 0;
  }
  bad_target = bad_target || bad_tail;
}

/// One histogram entry: {Σ ℓ, count}, added as one SSE2 pair.
typedef double GHMBin __attribute__((vector_size(16)));

/// Interleaved histograms of the fused forward (for up to 64 bins).
constexpr int64_t kGHMLanes = 8;

/// Adds a block's losses to the histograms by slot (element k to lane k mod `lanes`) and
/// writes the slots out for backward.
template <typename T, typename SlotT>
inline void ghm_scatter(const T* values, const int32_t* slot, int64_t m, GHMBin* lane_bins, int64_t lanes,
                        int64_t slots, SlotT* slot_out) {
  int64_t k = 0;
  if (lanes == kGHMLanes) {
    for (; k + kGHMLanes <= m; k += kGHMLanes) {
      for (int64_t j = 0; j < kGHMLanes; ++j) {
        lane_bins[j * slots + slot[k + j]] += GHMBin{static_cast<double>(values[k + j]), 1.0};
      }
    }
  }
  for (; k < m; ++k) lane_bins[slot[k]] += GHMBin{static_cast<double>(values[k]), 1.0};
  for (k = 0; k < m; ++k) slot_out[k] = static_cast<SlotT>(slot[k]);
}

/// Fused CPU forward, one pass over x, y and label_weight: the histogram of counts and loss
/// sums per slot, and, for backward, ∂ℓ/∂x and the slot of every element (`grad_t`, `slot_t`:
/// x-shaped outputs; the slot dtype from ghm_slot_dtype). Deterministic: chunk boundaries
/// depend only on the sizes, and partial results are combined in chunk order, whatever the
/// thread count.
template <class Term, typename T, typename SlotT, typename Width = void>
GHMHistogram ghm_forward_cpu(const torch::Tensor& x_t, const torch::Tensor& y_t, const BroadcastWeight& lw,
                             const GHMEdges& edges, const typename Term::Params& params, bool tot_is_weight_sum,
                             torch::Tensor& grad_t, torch::Tensor& slot_t) {
  const T* x = x_t.data_ptr<T>();
  const T* y = y_t.data_ptr<T>();
  const T* w = lw.defined() ? lw.values().template data_ptr<T>() : nullptr;
  T* grad = grad_t.data_ptr<T>();
  SlotT* slot_out = slot_t.data_ptr<SlotT>();
  const int64_t n = x_t.numel();
  const int64_t slots = edges.slots();
  // Interleaved histograms break the add-to-the-same-bin dependency chains (most elements of
  // a detector batch share the first bin); one for many bins.
  const int64_t lanes = edges.bins <= 64 ? kGHMLanes : 1;
  const int64_t chunk_size = ghm_chunk_size(edges);
  const int64_t chunks = (n + chunk_size - 1) / chunk_size;
  // Per chunk and slot: {Σ ℓ, count} (the count in a double: exact to 2^53).
  std::vector<GHMBin> chunk_bins(static_cast<size_t>(chunks * slots), GHMBin{0.0, 0.0});
  std::vector<double> chunk_weight(static_cast<size_t>(chunks), 0.0);
  std::atomic<bool> bad{false};

  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<GHMBin> lane_bins(static_cast<size_t>(lanes * slots));
    T values[kGHMBlock];
    int32_t slot[kGHMBlock];
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      std::fill(lane_bins.begin(), lane_bins.end(), GHMBin{0.0, 0.0});
      double weight_sum = 0;
      bool bad_target = false;
      const int64_t begin = chunk * chunk_size, end = std::min(n, begin + chunk_size);
      GHMBin* bins_of_lanes = lane_bins.data();
      const auto run = [&](auto width) {
        using W = decltype(width);
        lw.for_runs(begin, end, w, [&](int64_t i0, int64_t length, const T* wr, auto w_stride) {
          constexpr int stride = decltype(w_stride)::value;
          for (int64_t s = 0; s < length; s += kGHMBlock) {
            const int64_t at0 = i0 + s, m = std::min(kGHMBlock, length - s);
            ghm_block<Term, T, W, stride>(x + at0, y + at0, wr + s * stride, m, edges, params, values, grad + at0,
                                          slot, weight_sum, bad_target);
            ghm_scatter(values, slot, m, bins_of_lanes, lanes, slots, slot_out + at0);
          }
        });
      };
      if constexpr (std::is_void<Width>::value) {
        dispatch_simd<T>(run);  // the widest SIMD this CPU runs (AVX2 or SSE for float; scalar for double)
      } else {
        run(Width{});  // a given width (tests check the SSE kernel on AVX2 machines)
      }
      GHMBin* out = chunk_bins.data() + chunk * slots;
      for (int64_t lane = 0; lane < lanes; ++lane) {
        for (int64_t b = 0; b < slots; ++b) out[b] += lane_bins[static_cast<size_t>(lane * slots + b)];
      }
      chunk_weight[static_cast<size_t>(chunk)] = weight_sum;
      if (bad_target) bad = true;
    }
  });

  GHMHistogram h;
  const int32_t bins = edges.bins;
  h.stats = torch::zeros({bins + 1}, torch::kDouble);
  h.sums = torch::zeros({slots}, torch::kDouble);
  double* stats = h.stats.data_ptr<double>();
  double* sums = h.sums.data_ptr<double>();
  std::vector<GHMBin> total(static_cast<size_t>(slots), GHMBin{0.0, 0.0});
  double weight_sum = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (int64_t b = 0; b < slots; ++b) total[static_cast<size_t>(b)] += chunk_bins[static_cast<size_t>(chunk * slots + b)];
    weight_sum += chunk_weight[static_cast<size_t>(chunk)];
  }
  double counted = 0;  // every slot but "does not count"
  for (int32_t b = 0; b <= bins; ++b) counted += total[static_cast<size_t>(b)][1];
  for (int32_t b = 0; b < bins; ++b) stats[b] = total[static_cast<size_t>(b)][1];
  for (int64_t b = 0; b < slots; ++b) sums[b] = total[static_cast<size_t>(b)][0];
  stats[bins] = tot_is_weight_sum ? weight_sum : counted;
  h.bad_target = bad;
  return h;
}

/// Fused CPU backward from what the forward saved: grad_i = table[slot_i] · ∂ℓ/∂x_i, the
/// table holding each slot's factor times the incoming gradient (0 for the sentinels).
/// One memory-bound pass; nothing is recomputed.
template <typename T, typename SlotT>
torch::Tensor ghm_backward_cpu(const torch::Tensor& derivative_t, const torch::Tensor& slot_t, const T* table) {
  auto grad_t = torch::empty_like(derivative_t);
  const T* derivative = derivative_t.data_ptr<T>();
  const SlotT* slot = slot_t.data_ptr<SlotT>();
  T* out = grad_t.template data_ptr<T>();
  at::parallel_for(0, derivative_t.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = table[slot[i]] * derivative[i];
  });
  return grad_t;
}

/// The slots of the ATen path (see GHMEdges): the bin of |∂ℓ/∂x| evaluated in float64,
/// `bins` for counted elements in no bin, `bins + 1` for the elements that do not count.
template <class Term>
torch::Tensor ghm_slots_aten(const torch::Tensor& x, const torch::Tensor& y, const typename Term::Params& params,
                             const BroadcastWeight& lw, const GHMEdges& edges) {
  torch::NoGradGuard no_grad;  // the bins are constants
  torch::Tensor exact_grad;
  (void)Term::value_and_grad(x.to(torch::kDouble), y.to(torch::kDouble), params, exact_grad);
  auto slot = edges.slot(exact_grad.abs());
  if (lw.defined()) slot.masked_fill_(~(lw.expanded(x) > 0), edges.bins + 1);
  return slot;
}

/// The per-slot factors [bins + 2] (float64) of the loss: loss_weight · w_b / tot, where
/// w_b = tot / acc_b (momentum > 0, after the update acc_b ← m·acc_b + (1−m)·count_b of the
/// non-empty bins) or tot / count_b, divided by the number of non-empty bins; 0 for empty
/// bins and for the two sentinel slots. Tensor ops on [bins] values: no host synchronisation.
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
  return torch::cat({weights / tot * loss_weight, torch::zeros({2}, stats.options())});
}

/// The autograd function of the GHM losses. The bin weights are constants (the reference
/// detaches g), so backward is the weighted ∂ℓ/∂x. With grad mode on in backward
/// (`create_graph`) the gradient is computed from the saved input and target through the
/// ATen formulas, so it is itself differentiable.
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
    torch::Tensor stats, sums, values, slot, derivative;
    if (fused) {
      derivative = torch::empty_like(x);
      slot = torch::empty(x.sizes(), x.options().dtype(ghm_slot_dtype(call.edges)));
      GHMHistogram h;
      AT_DISPATCH_FLOATING_TYPES(dtype, "torchloss_ghm_forward", [&] {
        if (slot.scalar_type() == torch::kByte) {
          h = ghm_forward_cpu<Term, scalar_t, uint8_t>(x, y, lw, call.edges, params, call.tot_is_weight_sum, derivative,
                                                       slot);
        } else {
          h = ghm_forward_cpu<Term, scalar_t, int32_t>(x, y, lw, call.edges, params, call.tot_is_weight_sum, derivative,
                                                       slot);
        }
      });
      if (h.bad_target) check_probabilities(call.fn, target);
      stats = h.stats;
      sums = h.sums;
    } else {
      if (Term::kProbabilityTarget) check_probabilities(call.fn, target);
      values = Term::value_and_grad(x, y, params, derivative);
      slot = ghm_slots_aten<Term>(x, y, params, lw, call.edges);
      const auto dopt = x.options().dtype(torch::kDouble);
      const auto counts =
          torch::zeros({bins + 2}, dopt).index_add_(0, slot.flatten(), torch::ones({slot.numel()}, dopt));
      torch::Tensor tot;
      if (!lw.defined()) {
        tot = torch::full({1}, static_cast<double>(x.numel()), dopt);
      } else {
        const auto w = lw.expanded(x);
        tot = (call.tot_is_weight_sum ? w.sum(torch::kDouble) : (w > 0).sum().to(torch::kDouble)).reshape({1});
      }
      stats = torch::cat({counts.narrow(0, 0, bins), tot});
    }
    if (call.all_reduce) call.all_reduce(stats);
    torch::Tensor factors;
    {
      // The moving average is a read-modify-write of acc_sum: one call at a time per buffer.
      const auto lock = call.momentum > 0 ? state_lock(call.acc_sum) : std::unique_lock<std::mutex>();
      factors = ghm_slot_factors(stats, call.acc_sum, call.momentum, call.loss_weight);
    }
    torch::Tensor loss;
    if (fused) {
      loss = (factors * sums).sum();
    } else {
      // In float64, as the fused path's per-bin sums: a float32 total could overflow.
      loss = (factors.take(slot) * values.to(torch::kDouble)).sum();
    }
    // Backward needs ∂ℓ/∂x and the slots (saved by the fused forward; recomputed from x and
    // y on the ATen path, where saving them would cost device memory), and x for GHM-C's
    // target gradient; the input and target themselves for a differentiable backward.
    if (fused) {
      ctx->save_for_backward({x, y, torch::Tensor(), factors, derivative, slot, input, target});
    } else {
      ctx->save_for_backward({x, y, lw.values(), factors, torch::Tensor(), torch::Tensor(), input, target});
    }
    ctx->saved_data["weight_layout"] = lw.layout();
    ctx->saved_data["bins"] = bins;
    ctx->saved_data["input_dtype"] = static_cast<int64_t>(input.scalar_type());
    ctx->saved_data["target_dtype"] = static_cast<int64_t>(target.scalar_type());
    ctx->saved_data["params"] = params.pack();
    return {loss.to(input.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const GHMEdges edges(ctx->saved_data["bins"].toInt());
    const auto input_dtype = static_cast<torch::ScalarType>(ctx->saved_data["input_dtype"].toInt());
    const auto target_dtype = static_cast<torch::ScalarType>(ctx->saved_data["target_dtype"].toInt());
    const auto params = Term::Params::unpack(ctx->saved_data["params"].toDoubleVector());
    const bool differentiable = torch::GradMode::is_enabled();
    // Under create_graph: the saved input and target, their graphs intact.
    const auto x = differentiable ? saved[6].to(saved[0].scalar_type()) : saved[0];
    const auto y = differentiable ? saved[7].to(saved[0].scalar_type()) : saved[1];
    // The loss is a scalar: one incoming gradient scales every slot factor.
    const auto table = (saved[3] * grad_outputs[0].to(torch::kDouble)).to(x.scalar_type()).contiguous();
    torch::Tensor derivative = saved[4], slot = saved[5];
    torch::Tensor grad_input, grad_target;
    if (derivative.defined() && !differentiable) {
      if (ctx->needs_input_grad(0)) {
        AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchloss_ghm_backward", [&] {
          grad_input = slot.scalar_type() == torch::kByte
                           ? ghm_backward_cpu<scalar_t, uint8_t>(derivative, slot, table.data_ptr<scalar_t>())
                           : ghm_backward_cpu<scalar_t, int32_t>(derivative, slot, table.data_ptr<scalar_t>());
        });
      }
    } else {
      (void)Term::value_and_grad(x, y, params, derivative);
      if (!slot.defined()) {
        const auto lw = BroadcastWeight::from_layout(saved[2], ctx->saved_data["weight_layout"].toIntVector());
        slot = ghm_slots_aten<Term>(x, y, params, lw, edges);
      }
      slot = slot.to(torch::kLong);
      if (ctx->needs_input_grad(0)) grad_input = table.take(slot) * derivative;
    }
    // Rarely wanted (a regression target that requires grad): plain ATen ops.
    if (ctx->needs_input_grad(1)) {
      grad_target = (table.take(slot.to(torch::kLong)) * Term::target_grad(x, derivative)).to(target_dtype);
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
