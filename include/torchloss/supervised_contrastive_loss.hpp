#pragma once
/// \file supervised_contrastive_loss.hpp
/// \brief Supervised contrastive loss (Khosla et al., NeurIPS 2020) exactly as the authors'
/// `SupConLoss` (HobbitLong/SupContrast) computes it, SimCLR's loss when labels are undefined,
/// and its distributed form over a process group. Options, functional form and module.
///
/// \code
/// torchloss::SupConLoss supcon(torchloss::SupConLossOptions().temperature(0.1));
/// auto z = torch::stack({project(view1), project(view2)}, 1);   // [N, 2, D]
/// auto loss = supcon(torch::nn::functional::normalize(z, torch::nn::functional::NormalizeFuncOptions().dim(2)),
///                    labels);                                   // labels [N]; {} for SimCLR
/// \endcode

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/fast_math.hpp>
#include <torchloss/detail/kernel_utils.hpp>
#include <torchloss/detail/reduction.hpp>
#include <torchloss/distributed.hpp>

#include <ATen/Parallel.h>

#include <cmath>
#include <ostream>

namespace torchloss {

/// Which views are anchors (the authors' `contrast_mode`).
enum class ContrastMode {
  all,  ///< every view of every sample ('all', the default)
  one,  ///< the first view of every sample only ('one')
};

/// Options of SupConLoss and functional::supervised_contrastive_loss.
///
/// \code
/// torchloss::SupConLoss loss(torchloss::SupConLossOptions().temperature(0.1).contrast_mode(torchloss::ContrastMode::one));
/// \endcode
struct SupConLossOptions {
  /// Temperature \f$\tau > 0\f$ dividing the dot products.
  TORCH_ARG(double, temperature) = 0.07;
  /// Base temperature \f$\tau_b > 0\f$: the loss is multiplied by \f$\tau / \tau_b\f$.
  TORCH_ARG(double, base_temperature) = 0.07;
  /// Anchors: every view (ContrastMode::all) or the first view (ContrastMode::one).
  TORCH_ARG(ContrastMode, contrast_mode) = ContrastMode::all;
  /// torch::kMean (the authors': mean over the anchors), torch::kSum, or torch::kNone
  /// (per anchor, shape [N, V] for ContrastMode::all, [N, 1] for ContrastMode::one).
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  /// Contrast against every rank's features (see supervised_contrastive_loss()); empty:
  /// one process.
  TORCH_ARG(Collectives, process_group) = {};
};

namespace detail {

/// Public name of the functional form, the prefix of its error messages.
constexpr const char* kSupConFn = "torchloss::supervised_contrastive_loss";

/// The options of one call, and what backward needs to map gradients back to the features;
/// travels in the autograd context as a capsule (an IValue cannot hold the collectives).
struct SupConState : torch::CustomClassHolder {
  double temperature = 0.07, base_temperature = 0.07;
  bool first_view_only = false;  ///< ContrastMode::one
  int64_t reduction = 1;         ///< at::Reduction code
  Collectives group;             ///< empty: one process
  int64_t batch = 0, views = 0;  ///< N and V of this rank
  int64_t global_batch = 0;      ///< N summed over the ranks
  int64_t offset = 0;            ///< first row of this rank's samples in the gathered batch
  torch::ScalarType features_dtype = torch::kFloat;
  std::vector<int64_t> features_sizes;
  bool fused = true;  ///< the fused CPU row pass (else ATen ops)
  /// The saved gradient of the dot products is Ĝ + Ĝᵀ (anchors = contrast set, scalar upstream
  /// gradient): backward is then one matmul.
  bool symmetric = false;
};

/// a ← a + aᵀ for a square matrix [n, n], in place, by 16×16 tile pairs: tile (J, I) is copied
/// row by row into a small transposed buffer, added to tile (I, J), and written back row by row
/// (a column walk through a row-major matrix with a power-of-two stride would map every row to
/// the same cache set). Each tile pair belongs to one task.
template <typename T>
void add_transpose_in_place(torch::Tensor& matrix) {
  constexpr int64_t tile = 16;
  const int64_t n = matrix.size(0), tiles = (n + tile - 1) / tile;
  T* a = matrix.data_ptr<T>();
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    T mirror[tile][tile];  // mirror[c][r] = a[(j0 + r), (i0 + c)]: tile (J, I) transposed
    for (int64_t ti = begin; ti < end; ++ti) {
      const int64_t i0 = ti * tile, rows = std::min(tile, n - i0);
      for (int64_t tj = ti; tj < tiles; ++tj) {
        const int64_t j0 = tj * tile, columns = std::min(tile, n - j0);
        for (int64_t r = 0; r < columns; ++r) {
          for (int64_t c = 0; c < rows; ++c) mirror[c][r] = a[(j0 + r) * n + i0 + c];
        }
        for (int64_t c = 0; c < rows; ++c) {
          for (int64_t r = 0; r < columns; ++r) {
            if (ti == tj && r < c) continue;  // a diagonal tile: each pair once
            const T sum = a[(i0 + c) * n + j0 + r] + mirror[c][r];
            a[(i0 + c) * n + j0 + r] = sum;
            mirror[c][r] = sum;
          }
        }
        if (ti == tj) {
          for (int64_t c = 0; c < rows; ++c) {
            for (int64_t r = 0; r < c; ++r) a[(i0 + c) * n + j0 + r] = mirror[r][c];
          }
          continue;
        }
        for (int64_t r = 0; r < columns; ++r) {
          for (int64_t c = 0; c < rows; ++c) a[(j0 + r) * n + i0 + c] = mirror[c][r];
        }
      }
    }
  });
}

/// Lanes of `ids` [k, k + lanes of V) equal to `id`: a −1/0 int32 mask for the vector types, a
/// bool for scalars.
template <typename V>
inline auto equal_ids(const int32_t* ids, int32_t id) {
  if constexpr (is_simd_v<V>) {
    return load<int_vector_t<V>>(ids) == id;
  } else {
    return *ids == id;
  }
}

/// The fused CPU row pass over the dot products \f$d_{ij}\f$ [A, M] of anchor i with contrast
/// sample j. With \f$l_{ij} = d_{ij} / \tau\f$, \f$s_i\f$ the anchor's own column, \f$P_i\f$ its
/// positives (same class, \f$j \ne s_i\f$) and \f$m_i = \max_{j \ne s_i} d_{ij}\f$:
/// \f[ \ell_i = -\frac{\tau}{\tau_b}\Big(\frac{1}{|P_i|}\sum_{j \in P_i} l_{ij}
///      - \log \sum_{j \ne s_i} e^{l_{ij}}\Big), \qquad \ell_i = 0 \text{ when } P_i = \emptyset, \f]
/// and, when `with_grad`, \f$\partial \ell_i / \partial d_{ij} = \frac{1}{\tau_b}\big(\mathrm{softmax}_{j \ne s_i}(l_i)_j
///      - [j \in P_i] / |P_i|\big)\f$ written in place of \f$d_{ij}\f$ (0 at \f$s_i\f$, and a zero row
/// when \f$P_i = \emptyset\f$). Classes are compact int32 ids, compared a vector at a time.
/// Three vector passes per row while it sits in L1: the maximum with the positives' count and
/// sum, the exponentials, the gradient.
template <typename T>
torch::Tensor supcon_rows_cpu(torch::Tensor& dots_t, const int64_t* self_index, const int32_t* anchor_class,
                              const int32_t* contrast_class, double temperature, double base_temperature,
                              bool with_grad) {
  const int64_t anchors = dots_t.size(0), contrast = dots_t.size(1);
  auto losses_t = torch::empty({anchors}, dots_t.options());
  T* dots = dots_t.data_ptr<T>();
  T* losses = losses_t.data_ptr<T>();
  const T inv_temperature = static_cast<T>(1.0 / temperature);
  const T loss_scale = static_cast<T>(temperature / base_temperature);
  const T grad_scale = static_cast<T>(1.0 / base_temperature);
  constexpr T kLowest = -std::numeric_limits<T>::infinity();
  at::parallel_for(0, anchors, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, contrast)), [&](int64_t begin,
                                                                                                   int64_t end) {
    const ScopedFlushDenormals flush(std::is_same<T, float>::value);
    dispatch_simd<T>([&](auto width) {
      using W = decltype(width);
      for (int64_t i = begin; i < end; ++i) {
        T* row = dots + i * contrast;
        const int64_t self = self_index[i];
        const int32_t label = anchor_class[i];
        // Pass 1, on both sides of the anchor's own column: max_{j ≠ s} d_ij, and the count and
        // sum of the positives (vector lanes, then the scalar tails).
        W max_lanes = splat<W>(kLowest), sum_lanes{};
        int_vector_t<W> count_lanes{};
        T max_tail = kLowest, sum_tail = 0;
        int64_t count_tail = 0;
        const auto scan = [&](int64_t begin_column, int64_t end_column) {
          simd_for<T, W>(end_column - begin_column, [&](int64_t k, auto tag) {
            using V = decltype(tag);
            const int64_t c = begin_column + k;
            const V d = load<V>(row + c);
            const auto same = equal_ids<V>(contrast_class + c, label);
            if constexpr (is_simd_v<V>) {  // V = W
              max_lanes = select(d > max_lanes, d, max_lanes);  // skips NaN, as simd_max
              sum_lanes += select(same, d, V{});
              count_lanes -= same;  // −1 lanes
            } else {
              max_tail = d > max_tail ? d : max_tail;
              sum_tail += same ? d : T(0);
              count_tail += same;
            }
          });
        };
        scan(0, self);
        scan(self + 1, contrast);
        T m = max_tail, positive_sum = sum_tail + lane_sum(sum_lanes);
        int64_t positives = count_tail;
        if constexpr (is_simd_v<W>) {
          for (int j = 0; j < lanes_v<W>; ++j) {
            m = max_lanes[j] > m ? max_lanes[j] : m;
            positives += count_lanes[j];
          }
        }
        if (positives == 0) {
          losses[i] = 0;
          if (with_grad) std::fill(row, row + contrast, T(0));
          continue;
        }
        // Pass 2: e^{(d − m)/τ}, stored over the dot products (the softmax numerators) and summed.
        const auto exp_in_place = [&](T* base) {
          return [&, base](int64_t c, auto tag) {
            using V = decltype(tag);
            const V e = fast::exp((load<V>(base + c) - m) * inv_temperature);
            store(base + c, e);
            return e;
          };
        };
        const T sum_exp = simd_sum<T, W>(self, exp_in_place(row)) +
                          simd_sum<T, W>(contrast - self - 1, exp_in_place(row + self + 1));
        const T mean_positive = positive_sum / static_cast<T>(positives);
        losses[i] = -loss_scale * ((mean_positive - m) * inv_temperature - std::log(sum_exp));
        if (!with_grad) continue;
        // Pass 3: the gradient, softmax minus the positives' share.
        const T softmax_scale = grad_scale / sum_exp;
        const T positive_grad = grad_scale / static_cast<T>(positives);
        simd_for<T, W>(contrast, [&](int64_t c, auto tag) {
          using V = decltype(tag);
          const V share = select(equal_ids<V>(contrast_class + c, label), splat<V>(positive_grad), V{});
          store(row + c, load<V>(row + c) * softmax_scale - share);
        });
        row[self] = 0;
      }
    });
  });
  return losses_t;
}

/// The same row pass with ATen ops (any device); `dots` is overwritten with the gradient when
/// `with_grad`.
inline torch::Tensor supcon_rows_aten(torch::Tensor& dots, const torch::Tensor& self_index,
                                      const torch::Tensor& anchor_label, const torch::Tensor& contrast_label,
                                      double temperature, double base_temperature, bool with_grad) {
  const int64_t contrast = dots.size(1);
  if (dots.numel() == 0) return torch::zeros({dots.size(0)}, dots.options());
  const auto columns = torch::arange(contrast, self_index.options()).unsqueeze(0);
  const auto self = columns == self_index.unsqueeze(1);
  const auto positive = (contrast_label.unsqueeze(0) == anchor_label.unsqueeze(1)) & ~self;
  const auto count = positive.sum(1).to(dots.scalar_type());
  const auto has_positive = count > 0;
  const auto m = std::get<0>(dots.masked_fill(self, -std::numeric_limits<double>::infinity()).max(1, true));
  const auto logits = (dots - m) / temperature;
  const auto exp_logits = logits.exp().masked_fill(self, 0);
  const auto sum_exp = exp_logits.sum(1);
  const auto safe_count = count.clamp_min(1);
  const auto mean_positive = logits.masked_fill(~positive, 0).sum(1) / safe_count;
  const auto losses = torch::where(has_positive, -(temperature / base_temperature) * (mean_positive - sum_exp.log()),
                                   torch::zeros_like(sum_exp));
  if (with_grad) {
    const auto softmax = exp_logits / torch::where(has_positive, sum_exp, torch::ones_like(sum_exp)).unsqueeze(1);
    const auto grad = (softmax - positive.to(dots.scalar_type()) / safe_count.unsqueeze(1)) / base_temperature;
    dots.copy_(grad.masked_fill(~has_positive.unsqueeze(1), 0));
  }
  return losses;
}

/// SupCon as a custom autograd function: forward gathers the contrast set (over the ranks when
/// a group is set), takes the dot products [A, M] in one matmul, and runs the row pass, which
/// leaves the gradient with respect to the dot products in the same buffer (the one
/// O(A·M) allocation). Backward: two matmuls, the contrast part summed over the ranks.
struct SupConFunction : public torch::autograd::Function<SupConFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& features,
                                                const optional<torch::Tensor>& labels,
                                                c10::intrusive_ptr<SupConState> state) {
    const bool with_grad = features.requires_grad();
    const auto x = to_compute(features, features.scalar_type());  // [N, V, D]
    const int64_t n = x.size(0), views = x.size(1), dim = x.size(2);
    state->batch = n;
    state->views = views;
    state->features_dtype = features.scalar_type();
    state->features_sizes = features.sizes().vec();
    state->fused = x.device().is_cpu() && !force_aten_path;
    const auto index_options = x.options().dtype(torch::kLong);
    // The contrast set: every rank's samples, view-major (row v·N_g + n), as the authors'
    // torch.cat(torch.unbind(features, 1)).
    torch::Tensor gathered = x;
    int64_t offset = 0;
    if (state->group) std::tie(gathered, offset) = state->group.all_gather_rows(x);
    const int64_t global_batch = gathered.size(0);
    state->global_batch = global_batch;
    state->offset = offset;
    const auto contrast = gathered.transpose(0, 1).reshape({views * global_batch, dim});
    // Labels: the given ones (gathered), or each sample its own class (SimCLR).
    torch::Tensor local_labels, global_labels;
    if (labels) {
      local_labels = labels->contiguous();
      global_labels = state->group ? state->group.all_gather_rows(local_labels).first : local_labels;
    } else {
      local_labels = torch::arange(offset, offset + n, index_options);
      global_labels = torch::arange(global_batch, index_options);
    }
    const int64_t anchor_views = state->first_view_only ? 1 : views;
    const auto anchors = state->first_view_only ? x.select(1, 0).contiguous()
                                                : x.transpose(0, 1).reshape({views * n, dim});
    const auto anchor_label = local_labels.repeat({anchor_views});
    const auto contrast_label = global_labels.repeat({views});
    const auto self_index =
        (torch::arange(anchor_views, index_options) * global_batch).repeat_interleave(n) +
        torch::arange(offset, offset + n, index_options).repeat({anchor_views});
    auto dots = anchors.mm(contrast.t());
    torch::Tensor losses;
    if (state->fused) {
      // The classes as compact int32 ids (any int64 labels), for the kernel's vector compares.
      const auto ids = std::get<1>(at::_unique(torch::cat({anchor_label, contrast_label}), true, true)).to(torch::kInt);
      const auto anchor_class = ids.narrow(0, 0, anchor_label.size(0));
      const auto contrast_class = ids.narrow(0, anchor_label.size(0), contrast_label.size(0));
      AT_DISPATCH_FLOATING_TYPES(dots.scalar_type(), "torchloss_supcon_forward", [&] {
        losses = supcon_rows_cpu<scalar_t>(dots, self_index.data_ptr<int64_t>(), anchor_class.data_ptr<int32_t>(),
                                           contrast_class.data_ptr<int32_t>(), state->temperature,
                                           state->base_temperature, with_grad);
      });
    } else {
      losses = supcon_rows_aten(dots, self_index, anchor_label, contrast_label, state->temperature,
                                state->base_temperature, with_grad);
    }
    // Every view is an anchor of one process: the anchors are the contrast set, row for row,
    // and with a scalar upstream gradient ∂L/∂X = g (Ĝ + Ĝᵀ) X, one matmul instead of two.
    state->symmetric = with_grad && state->fused && !state->group && !state->first_view_only &&
                       state->reduction != at::Reduction::None;
    if (state->symmetric) {
      AT_DISPATCH_FLOATING_TYPES(dots.scalar_type(), "torchloss_supcon_symmetrize",
                                 [&] { add_transpose_in_place<scalar_t>(dots); });
    }
    if (with_grad) ctx->save_for_backward({anchors, contrast, dots});
    const double anchors_count = static_cast<double>(anchor_views * n);
    auto loss = reduce_loss(losses, state->reduction, anchors_count);
    // kNone: per anchor as [N, anchor views] (the authors' anchor order is view-major).
    if (state->reduction == at::Reduction::None) loss = loss.view({anchor_views, n}).t();
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return {loss.to(features.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    check_no_double_backward(kSupConFn);
    const auto saved = ctx->get_saved_variables();
    const auto& anchors = saved[0];
    const auto& contrast = saved[1];
    const auto& dots_grad = saved[2];  // ∂ℓ_i/∂d_ij [A, M]
    const auto state = c10::static_intrusive_pointer_cast<SupConState>(ctx->saved_data["state"].toCapsule());
    const int64_t n = state->batch, views = state->views, dim = anchors.size(1);
    const int64_t anchor_views = state->first_view_only ? 1 : views;
    auto grad_output = grad_outputs[0].to(anchors.scalar_type());
    if (state->reduction == at::Reduction::None) grad_output = grad_output.t().reshape({-1});
    const auto scale = element_grad_scale(grad_output, state->reduction, static_cast<double>(anchor_views * n))
                           .reshape({-1, 1});
    if (state->symmetric) {
      const auto grad = (dots_grad.mm(anchors) * scale).view({views, n, dim}).transpose(0, 1);
      return {grad.reshape(state->features_sizes).to(state->features_dtype), torch::Tensor(), torch::Tensor()};
    }
    // ∂L/∂anchors = diag(g) Ĝ C, ∂L/∂contrast = Ĝᵀ diag(g) A: the row scale goes on the [A, D] side.
    const auto grad_anchors = dots_grad.mm(contrast) * scale;
    auto grad_contrast = dots_grad.t().mm(anchors * scale);
    // Every rank's anchors saw this rank's samples in the contrast set: sum over the ranks.
    if (state->group) state->group.all_reduce(grad_contrast);
    auto grad = grad_contrast.view({views, state->global_batch, dim}).narrow(1, state->offset, n).transpose(0, 1)
                    .contiguous();
    if (state->first_view_only) {
      grad.select(1, 0).add_(grad_anchors);
    } else {
      grad.add_(grad_anchors.view({views, n, dim}).transpose(0, 1));
    }
    return {grad.view(state->features_sizes).to(state->features_dtype), torch::Tensor(), torch::Tensor()};
  }
};

/// Checks the arguments of a SupCon call (messages start with `fn`).
inline void check_supcon_args(const char* fn, const torch::Tensor& features, const torch::Tensor& labels,
                              double temperature, double base_temperature) {
  check_logits(fn, features, "features");
  TORCH_CHECK(features.dim() >= 3, fn, ": features must have shape [N, V, D] (V views; at least 3 dimensions), got ",
              shape_str(features));
  TORCH_CHECK(temperature > 0 && std::isfinite(temperature), fn, ": temperature must be a finite number > 0, got ",
              temperature);
  TORCH_CHECK(base_temperature > 0 && std::isfinite(base_temperature), fn,
              ": base_temperature must be a finite number > 0, got ", base_temperature);
  if (!labels.defined()) return;
  TORCH_CHECK(labels.scalar_type() == torch::kLong, fn, ": labels must hold int64 class indices, got ",
              labels.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == features.size(0), fn, ": labels must have shape [",
              features.size(0), "] (one per sample of features ", shape_str(features), "), got ", shape_str(labels));
  check_same_device(fn, features, labels, "labels");
}

}  // namespace detail

namespace functional {

/// Options of functional::supervised_contrastive_loss (the same as the module's).
using SupConLossFuncOptions = SupConLossOptions;

/// Supervised contrastive loss (Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu,
/// Krishnan, *Supervised Contrastive Learning*, NeurIPS 2020), the authors' `SupConLoss`
/// (\f$\mathcal{L}^{sup}_{out}\f$) exactly. `features` [N, V, D] hold V views of N samples,
/// L2-normalised by the caller (dimensions after the second are flattened, as the authors
/// do); `labels` [N] int64, or an undefined tensor for SimCLR's loss (each sample its own
/// class: the positives are its other views). Over the anchors i (every view, or the first
/// with ContrastMode::one) and the contrast set \f$A\f$ of all N·V views,
/// \f[ \ell_i = -\frac{\tau}{\tau_b} \frac{1}{|P(i)|} \sum_{p \in P(i)}
///       \log \frac{e^{z_i \cdot z_p / \tau}}{\sum_{a \in A \setminus \{i\}} e^{z_i \cdot z_a / \tau}}, \f]
/// \f$P(i)\f$ the views of i's class other than i itself; an anchor without positives counts 0
/// (and still counts in the mean, as the authors'). kMean is the mean over the anchors.
///
/// With `process_group` (a c10d process group, or Collectives), the contrast set is every
/// rank's features (gathered; ranks may hold different N) while the anchors stay this rank's,
/// so the mean of the ranks' losses is the loss of the concatenated batch. The gather's
/// backward sums the contrast gradients over the ranks: each rank's feature gradient is that
/// of the sum of the ranks' losses (the concatenated batch's times R), which DDP's averaging
/// of parameter gradients over R ranks turns into the concatenated batch's exactly. Every rank
/// must call the loss and its backward together.
///
/// Cost: one [A, M] matmul and one fused pass per anchor row forward (A anchors, M = N·V
/// contrast views), two matmuls backward; the [A, M] buffer is the only one of that size,
/// allocated once (it holds the gradient of the dot products between forward and backward).
/// float16/bfloat16 are computed in float32. Errors ("torchloss::supervised_contrastive_loss:
/// ..."): features not floating or with fewer than 3 dimensions, labels not int64 [N],
/// temperature or base_temperature \f$\le 0\f$, tensors on different devices.
inline torch::Tensor supervised_contrastive_loss(const torch::Tensor& features, const torch::Tensor& labels,
                                                 const SupConLossFuncOptions& options = {}) {
  detail::check_supcon_args(detail::kSupConFn, features, labels, options.temperature(), options.base_temperature());
  auto state = c10::make_intrusive<detail::SupConState>();
  state->temperature = options.temperature();
  state->base_temperature = options.base_temperature();
  state->first_view_only = options.contrast_mode() == ContrastMode::one;
  state->reduction = detail::reduction_code(options.reduction());
  state->group = options.process_group();
  const auto flat = features.dim() == 3 ? features : features.flatten(2);
  return detail::SupConFunction::apply(flat, labels.defined() ? optional<torch::Tensor>(labels) : optional<torch::Tensor>(),
                                       state)[0];
}

}  // namespace functional

/// Module form of functional::supervised_contrastive_loss (no state: the options only).
class SupConLossImpl : public torch::nn::Cloneable<SupConLossImpl> {
 public:
  /// Builds the loss from its options (the authors' defaults: τ = τ_b = 0.07, all views).
  explicit SupConLossImpl(SupConLossOptions options_ = {}) : options(std::move(options_)) { reset(); }

  /// Checks the options (messages "torchloss::SupConLoss: ..."); nothing to register.
  void reset() override {
    const char* fn = "torchloss::SupConLoss";
    TORCH_CHECK(options.temperature() > 0 && std::isfinite(options.temperature()), fn,
                ": temperature must be a finite number > 0, got ", options.temperature());
    TORCH_CHECK(options.base_temperature() > 0 && std::isfinite(options.base_temperature()), fn,
                ": base_temperature must be a finite number > 0, got ", options.base_temperature());
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::SupConLoss(temperature=" << options.temperature()
           << ", base_temperature=" << options.base_temperature()
           << ", contrast_mode=" << (options.contrast_mode() == ContrastMode::one ? "one" : "all")
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction())
           << ", distributed=" << (options.process_group() ? "true" : "false") << ")";
  }

  /// The loss of `features` [N, V, D] with `labels` [N] (undefined: SimCLR).
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& labels = {}) {
    return functional::supervised_contrastive_loss(features, labels, options);
  }

  /// The options the module was built with.
  SupConLossOptions options;
};

/// Module holder of SupConLossImpl.
TORCH_MODULE(SupConLoss);

}  // namespace torchloss
