#pragma once
/// \file linear_cross_entropy.hpp
/// \brief A classifier head whose logits never exist: linear layer + cross entropy fused over
/// chunks of rows (options, functional form and module LinearCrossEntropyLoss).
///
/// With C classes and a batch of N, the unfused head `cross_entropy(linear(x, W, b), y)` holds
/// N×C logits, as many log-probabilities and N×C of their gradient: at C = 131 072 and N = 4096
/// that is 2 GiB each in float32. Here the rows go through in chunks of R: the chunk's logits
/// [R, C] come from one `addmm`, the softmax kernels of softmax_loss.hpp turn them into the
/// chunk's losses and, when the loss is reduced, at once into their gradient G [R, C], which
/// two more products turn into the chunk's input gradient G·W and its share Gᵀ·x of the weight
/// gradient. Forward + backward then cost the unfused version's three matrix products, and
/// the extra memory is O(R·C + N·D + C·D) instead of O(N·C).

#include <torchloss/combined_margin_loss.hpp>
#include <torchloss/logit_adjusted_cross_entropy.hpp>

#include <cmath>
#include <utility>

namespace torchloss {

/// Options of LinearCrossEntropyLoss and functional::linear_cross_entropy.
///
/// The sizes and `bias` are read by the module only (the functional form takes the tensors).
///
/// \code
/// // A 512 → 100 000 classifier head, trained without materialising the logits.
/// torchloss::LinearCrossEntropyLoss head(
///     torchloss::LinearCrossEntropyLossOptions(512, 100000).label_smoothing(0.1).z_loss(1e-4));
/// auto loss = head(features, labels);         // forward + backward: no [N, C] tensor
/// auto predicted = head->logits(features).argmax(1);  // inference
/// // ArcFace on the same head: cosine logits, s = 64, m2 = 0.5.
/// torchloss::LinearCrossEntropyLoss arcface(torchloss::LinearCrossEntropyLossOptions(512, 100000)
///     .cosine(true).scale(64).angular_margin(0.5));
/// \endcode
struct LinearCrossEntropyLossOptions {
  /// Options for the functional form (no sizes).
  LinearCrossEntropyLossOptions() = default;
  /// Options for the module: \f$D\f$ = `in_features`, \f$C\f$ = `out_features`.
  LinearCrossEntropyLossOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  /// Feature size \f$D\f$ of the module's weight [C, D] (module only; \f$\ge 1\f$).
  TORCH_ARG(int64_t, in_features) = 0;
  /// Number of classes \f$C\f$ of the module's weight [C, D] (module only; \f$\ge 1\f$).
  TORCH_ARG(int64_t, out_features) = 0;
  /// Whether the module holds a bias [C] (module only; never with `cosine`).
  TORCH_ARG(bool, bias) = true;
  /// Per-class weights \f$w\f$ of the cross entropy, shape [C]; undefined means all ones.
  TORCH_ARG(torch::Tensor, class_weight) = {};
  /// Target value that contributes neither loss nor gradient nor kMean count.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// Label smoothing \f$\varepsilon \in [0, 1]\f$, as in cross_entropy.
  TORCH_ARG(double, label_smoothing) = 0.0;
  /// Weight \f$\zeta \ge 0\f$ of PaLM's auxiliary loss \f$\zeta\,\mathrm{lse}_i^2\f$ per counted sample.
  TORCH_ARG(double, z_loss) = 0.0;
  /// torch::kNone, torch::kMean or torch::kSum (see functional::linear_cross_entropy).
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  /// Rows per chunk \f$R \ge 0\f$; 0 picks \f$R\f$ so that a chunk's logits hold about \f$2^{25}\f$ entries.
  TORCH_ARG(int64_t, chunk_size) = 0;
  /// Cosine logits \f$\hat x_i \cdot \hat W_c\f$ of unit vectors (NormedLinear's form) instead of \f$x_i \cdot W_c + b_c\f$.
  TORCH_ARG(bool, cosine) = false;
  /// \f$\epsilon\f$ of the cosine form's normalisation: vectors are divided by \f$\max(\lVert v \rVert, \epsilon)\f$.
  TORCH_ARG(double, cosine_eps) = 1e-12;
  /// Scale \f$s > 0\f$ of every logit (ArcFace's s; 1: none).
  TORCH_ARG(double, scale) = 1.0;
  /// Angular margin \f$m_2 \in [0, \pi]\f$ added to the target's angle (ArcFace; needs `cosine`).
  TORCH_ARG(double, angular_margin) = 0.0;
  /// Additive margin \f$m_3\f$ taken off the target logit before scaling (CosFace).
  TORCH_ARG(double, additive_margin) = 0.0;
  /// Per-class training counts \f$n_c > 0\f$ [C] for logit adjustment; undefined: none.
  TORCH_ARG(torch::Tensor, class_counts) = {};
  /// \f$\tau \ge 0\f$ of the logit adjustment \f$+\tau \log \pi_c\f$, \f$\pi_c = n_c / \sum_k n_k\f$.
  TORCH_ARG(double, tau) = 1.0;
};

namespace detail {

/// The options of one linear_cross_entropy call, as its autograd function carries them.
struct LinearCrossEntropyConfig {
  const char* fn = "torchloss::linear_cross_entropy";
  int64_t ignore_index = -100;
  double label_smoothing = 0;
  int64_t reduction = at::Reduction::Mean;
  double z_loss = 0;
  double scale = 1;
  double angular_margin = 0;
  double additive_margin = 0;
  int64_t chunk_rows = 1;  ///< R, resolved (≥ 1)
  bool grad_input = false, grad_weight = false, grad_bias = false;  ///< the gradients wanted

  /// The options as the shared softmax kernels take them.
  SoftmaxLossConfig softmax() const {
    return {fn, ignore_index, label_smoothing, reduction, /*weighted_mean=*/true, scale};
  }
  bool transforms_target() const { return angular_margin != 0 || additive_margin != 0; }
};

/// Entries of a chunk's logits the automatic chunk size aims at (128 MiB in float32): large
/// enough that Gᵀ·x, which reads and writes the whole [C, D] weight gradient per chunk, stays
/// compute-bound (R/4 flops per byte), small next to the N×C logits of large-C heads.
inline constexpr int64_t kAutoChunkEntries = int64_t{1} << 25;

/// The rows per chunk: `chunk_size`, or the automatic choice for C classes, at most N.
inline int64_t resolve_chunk_rows(int64_t chunk_size, int64_t rows, int64_t classes) {
  const int64_t automatic = std::max<int64_t>(16, kAutoChunkEntries / std::max<int64_t>(classes, 1));
  return std::max<int64_t>(1, std::min(chunk_size > 0 ? chunk_size : automatic, rows));
}

/// The tensors of one call, in the compute dtype: input [N, D] (unit rows in the cosine
/// form), weight [C, D], bias [C] or undefined, target [N], class weight [C] or undefined, and
/// the logit adjustment as the softmax kernels' offset b = τ log π / s (so that s·(l + b) =
/// s·l + τ log π), or undefined.
struct LinearCrossEntropyInputs {
  torch::Tensor input, weight, bias, target, class_weight, offset;
};

/// What one pass over the row chunks produces.
struct LinearCrossEntropyPass {
  torch::Tensor losses;                          ///< [N] per row: CE + ζ·lse² (0 where ignored); kNone only
  torch::Tensor ce_sum, z_sum;                   ///< Σ_i CE_i, Σ_i lse_i² over counted rows (scalars)
  torch::Tensor grad_input, grad_weight, grad_bias;  ///< of Σ_i ce_scale_i CE_i + ζ z_scale_i lse_i²
};

/// One pass over the rows in chunks of R: per chunk, logits = x·Wᵀ + b [R, C], the target
/// logit's margins, the cross entropy's losses and row statistics from the fused softmax
/// kernel (CPU) or the ATen path (other devices); with `grads`, the chunk's logit gradient
/// G [R, C] of Σ ce_scale·CE + ζ·z_scale·lse² (per-row scales [N] or one scalar), then G·W,
/// Gᵀ·x and Σ_rows G. The z-loss gradient is ∂(ζ lse²)/∂l_c = 2ζ·lse·s·p_c.
inline LinearCrossEntropyPass linear_cross_entropy_pass(const LinearCrossEntropyInputs& in,
                                                        const LinearCrossEntropyConfig& cfg, bool keep_losses,
                                                        bool grads, const torch::Tensor& ce_scale = {},
                                                        const torch::Tensor& z_scale = {}) {
  const int64_t n = in.input.size(0), classes = in.weight.size(0);
  const auto options = in.input.options();
  LinearCrossEntropyPass out;
  out.ce_sum = torch::zeros({}, options);
  out.z_sum = torch::zeros({}, options);
  if (keep_losses) out.losses = torch::zeros({n}, options);
  const bool grad_input = grads && cfg.grad_input, grad_weight = grads && cfg.grad_weight;
  const bool grad_bias = grads && cfg.grad_bias && in.bias.defined();
  if (grad_input) out.grad_input = torch::empty_like(in.input);
  if (grad_weight) out.grad_weight = torch::zeros_like(in.weight);
  if (grad_bias) out.grad_bias = torch::zeros({classes}, options);
  const bool cpu_kernel = in.input.device().is_cpu() && !force_aten_path;
  const SoftmaxLossConfig softmax_cfg = cfg.softmax();
  const auto weight_t = in.weight.t();
  const auto chunk_scale = [](const torch::Tensor& scale, int64_t begin, int64_t rows) {
    return scale.numel() == 1 ? scale.reshape({1}) : scale.narrow(0, begin, rows);
  };
  for (int64_t begin = 0; begin < n; begin += cfg.chunk_rows) {
    const int64_t rows = std::min(cfg.chunk_rows, n - begin);
    const auto x = in.input.narrow(0, begin, rows);
    SoftmaxRows r;
    r.x = in.bias.defined() ? at::addmm(in.bias, x, weight_t) : at::mm(x, weight_t);
    r.target = in.target.narrow(0, begin, rows);
    r.weight = in.class_weight;
    r.offset = in.offset;
    r.rows = rows;
    r.classes = classes;
    const auto valid = r.target != cfg.ignore_index;
    const auto safe_target = r.target.masked_fill(~valid, 0).unsqueeze(1);
    torch::Tensor target_slope;  // ψ'(l_y) [R, 1] where the target logit carries margins
    if (cfg.transforms_target()) {
      const auto target_logit = r.x.gather(1, safe_target);
      // CombinedMarginLoss's target transform: the margined logit l − μ and its slope ψ'(l).
      const CombinedMarginTransform transform(
          combined_margin(cfg.angular_margin, cfg.additive_margin, /*easy=*/false, r.x.scalar_type()));
      auto [margin, slope] = transform.at(target_logit);
      r.x.scatter_(1, safe_target, torch::where(valid.unsqueeze(1), target_logit - margin, target_logit));
      target_slope = std::move(slope);
    }
    SoftmaxForward f;
    if (cpu_kernel) {
      AT_DISPATCH_FLOATING_TYPES(r.x.scalar_type(), "torchloss_linear_cross_entropy_forward", [&] {
        f = softmax_forward_cpu<CrossEntropyTerm, scalar_t>(r, softmax_cfg, {});
      });
    } else {
      f = softmax_forward_aten<CrossEntropyTerm>(r, softmax_cfg, {});
    }
    // lse of the logits z = s·(u) with u = l + b: s·max u + log Σ e^{s (u − max u)}.
    const auto row_max = f.stats.select(1, 0), log_sum = f.stats.select(1, 1);
    const auto lse = row_max * cfg.scale + log_sum;
    const auto lse_squared = torch::where(valid, lse.square(), torch::zeros_like(lse));
    out.ce_sum += f.losses.sum();
    out.z_sum += lse_squared.sum();
    if (keep_losses) {
      out.losses.narrow(0, begin, rows).copy_(cfg.z_loss > 0 ? f.losses + cfg.z_loss * lse_squared : f.losses);
    }
    if (!grads) continue;
    torch::Tensor grad_logits;
    const auto ce_rows = chunk_scale(ce_scale, begin, rows);
    if (cpu_kernel) {
      // In place over the chunk's logits (one [R, C] buffer, not two), unless the z-loss
      // still needs them below.
      const torch::Tensor in_place = cfg.z_loss > 0 ? torch::Tensor() : r.x;
      AT_DISPATCH_FLOATING_TYPES(r.x.scalar_type(), "torchloss_linear_cross_entropy_backward", [&] {
        grad_logits = softmax_backward_cpu<CrossEntropyTerm, scalar_t>(r, f.stats, ce_rows, softmax_cfg, {}, in_place);
      });
    } else {
      grad_logits = softmax_backward_aten<CrossEntropyTerm>(r, f.stats, ce_rows, softmax_cfg, {});
    }
    if (cfg.z_loss > 0) {
      // The chunk's logits are spent: turn them into 2ζ·lse·s·z_scale·p in place.
      const auto coef = torch::where(valid, lse * chunk_scale(z_scale, begin, rows), torch::zeros_like(lse))
                            .mul_(2 * cfg.z_loss * cfg.scale);
      auto& p = r.x;
      if (r.offset.defined()) p.add_(r.offset);
      p.sub_(row_max.unsqueeze(1)).mul_(cfg.scale).sub_(log_sum.unsqueeze(1)).exp_().mul_(coef.unsqueeze(1));
      // The CPU kernel leaves ignored rows' statistics at 0: their e^{s u} may overflow (0·inf).
      p.masked_fill_(~valid.unsqueeze(1), 0);
      grad_logits.add_(p);
    }
    if (target_slope.defined()) {
      grad_logits.scatter_(1, safe_target, grad_logits.gather(1, safe_target).mul_(target_slope));
    }
    if (grad_input) {
      auto grad_rows = out.grad_input.narrow(0, begin, rows);
      at::mm_out(grad_rows, grad_logits, in.weight);
    }
    if (grad_weight) out.grad_weight.addmm_(grad_logits.t(), x);
    if (grad_bias) out.grad_bias.add_(grad_logits.sum(0));
  }
  return out;
}

/// The kMean denominators: Σ w_y over counted rows (the cross entropy's) and their number
/// (the z-loss's).
inline std::pair<double, double> linear_cross_entropy_denominators(const LinearCrossEntropyInputs& in,
                                                                   int64_t ignore_index) {
  const auto valid = in.target != ignore_index;
  const double counted = valid.sum().item<double>();
  if (!in.class_weight.defined()) return {counted, counted};
  const auto safe_target = in.target.masked_fill(~valid, 0);
  const auto weight_sum = (in.class_weight.index_select(0, safe_target) * valid.to(in.class_weight.scalar_type())).sum();
  return {weight_sum.item<double>(), counted};
}

/// What backward needs besides the saved tensors (a capsule in the autograd context).
struct LinearCrossEntropyState : torch::CustomClassHolder {
  LinearCrossEntropyConfig cfg;
  std::string fn;  ///< owns cfg.fn's text
  /// Reduced losses: the gradient each row's CE and z-loss terms get per unit of the loss
  /// (1/denominator for kMean, 1 for kSum), scalars.
  torch::Tensor ce_scale, z_scale;
  /// Reduced losses: the gradients of the loss itself, computed in the forward pass and handed
  /// over by the first backward (a second one, with retain_graph, recomputes them).
  torch::Tensor grad_input, grad_weight, grad_bias;
};

/// The autograd function: one chunked pass in forward (with the gradients when the loss is
/// reduced: backward then only scales them by the incoming scalar); kNone recomputes the
/// chunks in backward with the per-row incoming gradient.
struct LinearCrossEntropyFunction : public torch::autograd::Function<LinearCrossEntropyFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                                                const torch::Tensor& weight, const optional<torch::Tensor>& bias,
                                                const torch::Tensor& target,
                                                const optional<torch::Tensor>& class_weight,
                                                const optional<torch::Tensor>& offset, LinearCrossEntropyConfig cfg) {
    const LinearCrossEntropyInputs in{input, weight, bias.value_or(torch::Tensor()), target,
                                      class_weight.value_or(torch::Tensor()), offset.value_or(torch::Tensor())};
    auto state = c10::make_intrusive<LinearCrossEntropyState>();
    state->fn = cfg.fn;
    state->cfg = cfg;
    state->cfg.fn = state->fn.c_str();
    const bool any_grad = cfg.grad_input || cfg.grad_weight || cfg.grad_bias;
    torch::Tensor loss;
    if (cfg.reduction == at::Reduction::None) {
      loss = linear_cross_entropy_pass(in, cfg, /*keep_losses=*/true, /*grads=*/false).losses;
    } else {
      const bool mean = cfg.reduction == at::Reduction::Mean;
      const auto denominators = mean ? linear_cross_entropy_denominators(in, cfg.ignore_index)
                                     : std::pair<double, double>{1.0, 1.0};
      const auto inverse = [&](double d) { return torch::full({}, d > 0 ? 1.0 / d : 0.0, input.options()); };
      state->ce_scale = inverse(denominators.first);
      state->z_scale = inverse(denominators.second);
      auto pass = linear_cross_entropy_pass(in, cfg, /*keep_losses=*/false, any_grad, state->ce_scale,
                                            state->z_scale);
      loss = pass.ce_sum * state->ce_scale;
      if (cfg.z_loss > 0) loss = loss + cfg.z_loss * pass.z_sum * state->z_scale;
      state->grad_input = std::move(pass.grad_input);
      state->grad_weight = std::move(pass.grad_weight);
      state->grad_bias = std::move(pass.grad_bias);
    }
    // References to the inputs (no copies): kNone's backward, or a second backward, recomputes.
    if (any_grad) ctx->save_for_backward({input, weight, in.bias, target, in.class_weight, in.offset});
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return {loss};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto state = c10::static_intrusive_pointer_cast<LinearCrossEntropyState>(
        ctx->saved_data["state"].toCapsule());
    const auto& cfg = state->cfg;
    check_no_double_backward(cfg.fn);
    const bool reduced = cfg.reduction != at::Reduction::None;
    const bool computed = state->grad_input.defined() || state->grad_weight.defined() || state->grad_bias.defined();
    torch::Tensor grad_input, grad_weight, grad_bias;
    if (reduced && computed) {
      // Scaled in place and handed over (the state lets go of them): a [C, D] weight gradient
      // is not copied, and AccumulateGrad can keep it as the parameter's .grad.
      const auto scale = grad_outputs[0];
      const auto scaled = [&](torch::Tensor& grad) {
        torch::Tensor out = std::move(grad);
        return out.defined() ? out.mul_(scale) : out;
      };
      grad_input = scaled(state->grad_input);
      grad_weight = scaled(state->grad_weight);
      grad_bias = scaled(state->grad_bias);
    } else {
      const auto saved = ctx->get_saved_variables();
      const LinearCrossEntropyInputs in{saved[0], saved[1], saved[2], saved[3], saved[4], saved[5]};
      const auto upstream = grad_outputs[0].to(in.input.scalar_type()).contiguous().view({-1});
      const auto ce_scale = reduced ? upstream * state->ce_scale : upstream;
      const auto z_scale = reduced ? upstream * state->z_scale : upstream;
      auto pass = linear_cross_entropy_pass(in, cfg, /*keep_losses=*/false, /*grads=*/true, ce_scale, z_scale);
      grad_input = std::move(pass.grad_input);
      grad_weight = std::move(pass.grad_weight);
      grad_bias = std::move(pass.grad_bias);
    }
    return {grad_input, grad_weight, grad_bias, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// The cosine form's unit vectors along the last dimension, v / max(‖v‖, ε) as
/// `torch::nn::functional::normalize`, in two ways better conditioned:
/// - the norm is taken of v / max|v| and scaled back, so it neither overflows (‖v‖² of a
///   float32 row beyond 1.8e19 is inf, and the row became 0 instead of ±unit) nor underflows;
/// - the backward is the projection (g − v̂ (v̂·g)) / ‖v‖ of the incoming gradient on the
///   sphere's tangent, computed from the unit vector, instead of autograd's
///   g/‖v‖ − v (v·g)/‖v‖³, whose two terms cancel only up to rounding. With D = 1 (v̂ = ±1
///   exactly) the projection is exactly 0, the true Jacobian; autograd's form left rounding
///   noise there, which ArcFace's slope ψ'(c), about 1/√(2·ulp) at c = ±1, amplified to
///   gradients of 4e-3 (float32) where the exact one is 0.
/// Where ‖v‖ < ε the vector is v / ε and the gradient g / ε, as normalize's.
struct UnitRowsFunction : public torch::autograd::Function<UnitRowsFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& v, double eps) {
    torch::Tensor out, norm, unclamped;
    if (v.numel() == 0) {
      out = v.clone();
      norm = torch::zeros_like(v);
      unclamped = torch::zeros_like(v, v.options().dtype(torch::kBool));
    } else {
      const auto largest = v.abs().amax(-1, /*keepdim=*/true);
      const auto positive = largest > 0;
      const auto y = torch::where(positive, v / largest, torch::zeros_like(v));
      const auto y_norm = y.norm(2, -1, /*keepdim=*/true);
      // ‖v‖ ≥ ε ⇔ ‖y‖ ≥ ε / max|v| (ε / 0 = inf: a zero row is clamped).
      const auto floor = eps / largest;
      unclamped = y_norm >= floor;
      out = torch::where(unclamped, y / y_norm, v / eps);
      norm = largest * y_norm;  // ‖v‖, used where unclamped only
    }
    ctx->saved_data["eps"] = eps;
    ctx->save_for_backward({out, norm, unclamped});
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& unit = saved[0];
    const double eps = ctx->saved_data["eps"].toDouble();
    const auto& g = grad_outputs[0];
    if (g.numel() == 0) return {g.clone(), torch::Tensor()};
    const auto tangent = g - unit * (unit * g).sum(-1, /*keepdim=*/true);
    return {torch::where(saved[2], tangent / saved[1], g / eps), torch::Tensor()};
  }
};

/// Unit vectors of `v` along its last dimension (UnitRowsFunction).
inline torch::Tensor unit_rows(const torch::Tensor& v, double eps) { return UnitRowsFunction::apply(v, eps); }

/// Whether autograd will want the gradient of `t`.
inline bool wants_grad(const torch::Tensor& t) {
  return t.defined() && t.requires_grad() && torch::GradMode::is_enabled();
}

}  // namespace detail

namespace functional {

/// Options of functional::linear_cross_entropy (the module's, whose sizes and `bias` it ignores).
using LinearCrossEntropyFuncOptions = LinearCrossEntropyLossOptions;

/// Cross entropy of a linear classifier head without its logits: for features \f$x\f$ [N, D],
/// weight \f$W\f$ [C, D], bias \f$b\f$ [C] (or undefined) and int64 targets \f$y\f$ [N], exactly
/// `cross_entropy(linear(x, W, b), y, class_weight, ignore_index, label_smoothing)` plus PaLM's
/// auxiliary z-loss,
/// \f[ \ell_i = \mathrm{CE}_i(z_i) + \zeta\, \mathrm{lse}_i^2, \qquad
///     \mathrm{lse}_i = \log \textstyle\sum_c e^{z_{i,c}}, \qquad z_{i,c} = x_i \cdot W_c + b_c, \f]
/// where \f$\mathrm{CE}_i\f$ is weighted_cross_entropy()'s per-sample loss (class weights,
/// label smoothing), and \f$\ell_i = 0\f$ where \f$y_i\f$ is `ignore_index`. kNone returns
/// \f$\ell\f$ [N], kSum \f$\sum_i \ell_i\f$, kMean
/// \f$\sum_i \mathrm{CE}_i / \sum_{i\ \text{counted}} w_{y_i} + \zeta \sum_i \mathrm{lse}_i^2 / |\{i\ \text{counted}\}|\f$
/// (the z-loss is not class-weighted), and 0 with zero gradients when every target is ignored.
///
/// The options extend the logits to the margin heads of face recognition and to logit
/// adjustment:
/// \f[ z_{i,c} = s\, l_{i,c} + \tau \log \pi_c \;(c \ne y_i), \qquad
///     z_{i,y_i} = s\,(\psi(l_{i,y_i}) - m_3) + \tau \log \pi_{y_i}, \f]
/// with \f$l = x W^\top + b\f$, or with `cosine` \f$l_{i,c} = \hat x_i \cdot \hat W_c\f$ (unit
/// vectors, NormedLinear's form, no bias), \f$\psi(c) = \cos(\arccos c + m_2)\f$ where
/// \f$\arccos c + m_2 \le \pi\f$ and \f$c - m_2 \sin m_2\f$ else (ArcFace; \f$m_2 = 0\f$: \f$\psi(c) = c\f$,
/// CosFace with \f$m_3\f$), and \f$\pi_c = n_c / \sum_k n_k\f$ from `class_counts` (Menon et al.).
///
/// Gradients reach `input`, `weight` and `bias`. The rows go through in chunks of
/// `chunk_size` (see the file comment): extra memory O(chunk·C + N·D + C·D), never [N, C].
/// A reduced loss computes its gradients in the forward pass (the same three matrix products
/// as the unfused head); kNone recomputes the chunks in backward. CPU tensors run the fused
/// softmax kernels on each chunk, other devices the same chunks through ATen ops.
/// float16/bfloat16 are computed in float32; the result has the input's dtype.
///
/// Errors: input not [N, D] floating, weight not [C, D] with C ≥ 1, bias not [C], weight or
/// bias of another dtype or device than input, target not int64 [N], labels outside [0, C)
/// that are not `ignore_index`, class_weight not [C], label_smoothing outside [0, 1], z_loss
/// < 0, chunk_size < 0, scale ≤ 0, angular_margin outside [0, π] or without `cosine`, a bias
/// with `cosine`, bad class_counts, τ < 0.
inline torch::Tensor linear_cross_entropy(const torch::Tensor& input, const torch::Tensor& weight,
                                          const torch::Tensor& bias, const torch::Tensor& target,
                                          const LinearCrossEntropyFuncOptions& options = {}) {
  const char* fn = "torchloss::linear_cross_entropy";
  detail::check_logits(fn, input);
  TORCH_CHECK(input.dim() == 2, fn, ": input must have shape [N, D], got ", detail::shape_str(input));
  TORCH_CHECK(weight.defined(), fn, ": weight is an undefined tensor");
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) >= 1 && weight.size(1) == input.size(1), fn,
              ": weight must have shape [C, ", input.size(1), "] (C >= 1 classes, D of input ",
              detail::shape_str(input), "), got ", detail::shape_str(weight));
  TORCH_CHECK(weight.scalar_type() == input.scalar_type(), fn, ": weight has dtype ", weight.scalar_type(),
              " but input has dtype ", input.scalar_type());
  detail::check_same_device(fn, input, weight, "weight");
  const int64_t classes = weight.size(0);
  if (bias.defined()) {
    TORCH_CHECK(!options.cosine(), fn, ": bias must be undefined with cosine logits (NormedLinear has none)");
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == classes, fn, ": bias must have shape [", classes,
                "] (one entry per class of weight), got ", detail::shape_str(bias));
    TORCH_CHECK(bias.scalar_type() == input.scalar_type(), fn, ": bias has dtype ", bias.scalar_type(),
                " but input has dtype ", input.scalar_type());
    detail::check_same_device(fn, input, bias, "bias");
  }
  TORCH_CHECK(target.defined(), fn, ": target is an undefined tensor");
  TORCH_CHECK(target.scalar_type() == torch::kLong, fn, ": target must hold int64 class indices, got ",
              target.scalar_type());
  TORCH_CHECK(target.dim() == 1 && target.size(0) == input.size(0), fn, ": target must have shape [",
              input.size(0), "] (one label per row of input), got ", detail::shape_str(target));
  detail::check_same_device(fn, input, target, "target");
  detail::check_class_vector(fn, input, options.class_weight(), classes, "class_weight");
  detail::check_range(fn, "label_smoothing", options.label_smoothing(), 0.0, 1.0);
  TORCH_CHECK(options.z_loss() >= 0 && std::isfinite(options.z_loss()), fn,
              ": z_loss must be a finite number >= 0, got ", options.z_loss());
  TORCH_CHECK(options.chunk_size() >= 0, fn, ": chunk_size must be >= 0 (0: automatic), got ",
              options.chunk_size());
  TORCH_CHECK(options.scale() > 0 && std::isfinite(options.scale()), fn, ": scale must be a finite number > 0, got ",
              options.scale());
  detail::check_range(fn, "angular_margin", options.angular_margin(), 0.0, detail::kPi);
  TORCH_CHECK(options.angular_margin() == 0 || options.cosine(), fn, ": angular_margin ",
              options.angular_margin(), " needs cosine logits (set cosine(true))");
  TORCH_CHECK(std::isfinite(options.additive_margin()), fn, ": additive_margin must be finite, got ",
              options.additive_margin());
  TORCH_CHECK(options.cosine_eps() > 0, fn, ": cosine_eps must be > 0, got ", options.cosine_eps());
  TORCH_CHECK(options.tau() >= 0 && std::isfinite(options.tau()), fn, ": tau must be a finite number >= 0, got ",
              options.tau());
  detail::check_labels_in_range(fn, target, classes, options.ignore_index());

  const auto dtype = detail::compute_dtype(input.scalar_type());
  torch::Tensor x = input.to(dtype), w = weight.to(dtype);
  if (options.cosine()) {
    x = detail::unit_rows(x, options.cosine_eps());
    w = detail::unit_rows(w, options.cosine_eps());
  }
  const torch::Tensor b = bias.defined() ? bias.to(dtype) : torch::Tensor();
  const torch::Tensor class_weight =
      options.class_weight().defined() ? options.class_weight().to(dtype).contiguous() : torch::Tensor();
  torch::Tensor offset;
  if (options.class_counts().defined()) {
    detail::check_same_device(fn, input, options.class_counts(), "class_counts");
    const auto log_prior = detail::log_class_prior(fn, options.class_counts(), classes);
    if (options.tau() > 0) offset = (log_prior * (options.tau() / options.scale())).to(dtype).contiguous();
  }
  detail::LinearCrossEntropyConfig cfg;
  cfg.fn = fn;
  cfg.ignore_index = options.ignore_index();
  cfg.label_smoothing = options.label_smoothing();
  cfg.reduction = detail::reduction_code(options.reduction());
  cfg.z_loss = options.z_loss();
  cfg.scale = options.scale();
  cfg.angular_margin = options.angular_margin();
  cfg.additive_margin = options.additive_margin();
  cfg.chunk_rows = detail::resolve_chunk_rows(options.chunk_size(), input.size(0), classes);
  cfg.grad_input = detail::wants_grad(x);
  cfg.grad_weight = detail::wants_grad(w);
  cfg.grad_bias = detail::wants_grad(b);
  const auto loss = detail::LinearCrossEntropyFunction::apply(
      x.contiguous(), w.contiguous(), detail::optional_tensor(b), target.contiguous(),
      detail::optional_tensor(class_weight), detail::optional_tensor(offset), cfg)[0];
  return loss.to(input.scalar_type());
}

}  // namespace functional

/// Module form of functional::linear_cross_entropy: a classifier head [D → C] and its loss in
/// one, whose logits exist only at inference (logits()). It holds the parameters `weight`
/// [C, D] and `bias` [C] (when `bias` is set and the head is not `cosine`), initialised like
/// `torch::nn::Linear` (Kaiming-uniform weight, bias uniform in \f$\pm 1/\sqrt{D}\f$), and the
/// buffers `class_weight` and `class_counts` when those options are given, so `->to(device)`,
/// `clone()` and `torch::save` carry them.
class LinearCrossEntropyLossImpl : public torch::nn::Cloneable<LinearCrossEntropyLossImpl> {
 public:
  /// Builds the head for `in_features` inputs and `out_features` classes.
  LinearCrossEntropyLossImpl(int64_t in_features, int64_t out_features)
      : LinearCrossEntropyLossImpl(LinearCrossEntropyLossOptions(in_features, out_features)) {}
  /// Builds the head from its options.
  explicit LinearCrossEntropyLossImpl(LinearCrossEntropyLossOptions options_) : options(std::move(options_)) {
    reset();
  }

  /// Checks the sizes, registers the parameters and buffers, and initialises the parameters.
  void reset() override {
    const char* fn = "torchloss::LinearCrossEntropyLoss";
    TORCH_CHECK(options.in_features() >= 1, fn, ": in_features must be >= 1, got ", options.in_features());
    TORCH_CHECK(options.out_features() >= 1, fn, ": out_features must be >= 1, got ", options.out_features());
    weight = register_parameter("weight", torch::empty({options.out_features(), options.in_features()}));
    bias = options.bias() && !options.cosine() ? register_parameter("bias", torch::empty({options.out_features()}))
                                               : torch::Tensor();
    class_weight = options.class_weight().defined()
                       ? register_buffer("class_weight", options.class_weight().clone())
                       : torch::Tensor();
    class_counts = options.class_counts().defined()
                       ? register_buffer("class_counts", options.class_counts().clone())
                       : torch::Tensor();
    reset_parameters();
  }

  /// torch::nn::Linear's initialisation: weight Kaiming-uniform with a = √5, bias uniform in
  /// \f$[-1/\sqrt{D}, 1/\sqrt{D}]\f$.
  void reset_parameters() {
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5));
    if (bias.defined()) {
      const double bound = 1 / std::sqrt(static_cast<double>(options.in_features()));
      torch::nn::init::uniform_(bias, -bound, bound);
    }
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::LinearCrossEntropyLoss(in_features=" << options.in_features()
           << ", out_features=" << options.out_features() << ", bias=" << (bias.defined() ? "true" : "false");
    if (options.cosine()) {
      stream << ", cosine=true, angular_margin=" << options.angular_margin();
    }
    if (options.scale() != 1.0) stream << ", scale=" << options.scale();
    if (options.additive_margin() != 0.0) stream << ", additive_margin=" << options.additive_margin();
    if (class_counts.defined()) stream << ", tau=" << options.tau();
    stream << ", ignore_index=" << options.ignore_index() << ", label_smoothing=" << options.label_smoothing()
           << ", z_loss=" << options.z_loss()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of features `input` [N, D] against class indices `target` [N].
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return functional::linear_cross_entropy(
        input, weight, bias, target,
        LinearCrossEntropyLossOptions(options).class_weight(class_weight).class_counts(class_counts));
  }

  /// The logits [N, C] for inference: \f$s\,(x W^\top + b)\f$, or \f$s\,\hat x \hat W^\top\f$ with
  /// `cosine` (without margins or logit adjustment; at the defaults exactly
  /// `linear(input, weight, bias)`).
  torch::Tensor logits(const torch::Tensor& input) {
    const char* fn = "torchloss::LinearCrossEntropyLoss::logits";
    detail::check_logits(fn, input);
    TORCH_CHECK(input.dim() >= 1 && input.size(-1) == options.in_features(), fn, ": input must have shape [..., ",
                options.in_features(), "] (in_features last), got ", detail::shape_str(input));
    torch::Tensor out;
    if (options.cosine()) {
      out = torch::matmul(detail::unit_rows(input, options.cosine_eps()),
                          detail::unit_rows(weight, options.cosine_eps()).t());
    } else {
      out = torch::nn::functional::linear(input, weight, bias);
    }
    return options.scale() != 1.0 ? out * options.scale() : out;
  }

  /// The options the head was built with.
  LinearCrossEntropyLossOptions options;
  /// Registered weight [out_features, in_features].
  torch::Tensor weight;
  /// Registered bias [out_features] (undefined without one).
  torch::Tensor bias;
  /// Registered class weights [C] (undefined when none).
  torch::Tensor class_weight;
  /// Registered class counts [C] of the logit adjustment (undefined when none).
  torch::Tensor class_counts;
};

/// Module holder of LinearCrossEntropyLossImpl.
TORCH_MODULE(LinearCrossEntropyLoss);

}  // namespace torchloss
