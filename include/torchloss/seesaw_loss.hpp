#pragma once
/// \file seesaw_loss.hpp
/// \brief Seesaw loss (Wang et al., *Seesaw Loss for Long-Tailed Instance Segmentation*,
/// CVPR 2021) in mmpretrain's softmax form, with its cumulative class counts in a registered
/// buffer, optionally kept identical across the ranks of a process group.

#include <torchloss/detail/row_loss.hpp>
#include <torchloss/detail/state_lock.hpp>
#include <torchloss/distributed.hpp>

#include <cmath>
#include <limits>
#include <ostream>
#include <vector>

namespace torchloss {

/// Options of SeesawLoss.
///
/// \code
/// torchloss::SeesawLoss loss(torchloss::SeesawLossOptions(num_classes).p(0.8).q(2.0));
/// \endcode
struct SeesawLossOptions {
  /// Builds the options from the number of classes C (required).
  /* implicit */ SeesawLossOptions(int64_t num_classes) : num_classes_(num_classes) {}
  /// Number of classes \f$C \ge 1\f$ (the size of `cum_samples` and of the logit rows).
  TORCH_ARG(int64_t, num_classes);
  /// Exponent \f$p \ge 0\f$ of the mitigation factor (0: none).
  TORCH_ARG(double, p) = 0.8;
  /// Exponent \f$q \ge 0\f$ of the compensation factor (0: none).
  TORCH_ARG(double, q) = 2.0;
  /// Floor \f$\epsilon > 0\f$ of the target's probability in the compensation factor.
  TORCH_ARG(double, eps) = 1e-2;
  /// torch::kNone, torch::kMean (mean over the N samples) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  /// Sums each batch's label counts over the ranks of a process group before they are added
  /// to `cum_samples`, so every rank holds the same counts (see AllReduceFn; a
  /// `c10::intrusive_ptr<c10d::ProcessGroup>` converts to it). Empty: one process.
  TORCH_ARG(AllReduceFn, process_group) = {};
};

namespace functional {

/// Options of functional::seesaw_loss (SeesawLossOptions without the state's size and group).
struct SeesawLossFuncOptions {
  /// Exponent \f$p \ge 0\f$ of the mitigation factor.
  TORCH_ARG(double, p) = 0.8;
  /// Exponent \f$q \ge 0\f$ of the compensation factor.
  TORCH_ARG(double, q) = 2.0;
  /// Floor \f$\epsilon > 0\f$ of the target's probability in the compensation factor.
  TORCH_ARG(double, eps) = 1e-2;
  /// torch::kNone, torch::kMean or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

}  // namespace functional

namespace detail {

/// Validates p, q and eps.
inline void check_seesaw_options(const char* fn, double p, double q, double eps) {
  TORCH_CHECK(p >= 0 && std::isfinite(p), fn, ": p must be a finite number >= 0, got ", p);
  TORCH_CHECK(q >= 0 && std::isfinite(q), fn, ": q must be a finite number >= 0, got ", q);
  TORCH_CHECK(eps > 0 && std::isfinite(eps), fn, ": eps must be a finite number > 0, got ", eps);
}

/// The counts as log max(n_c, 1) [C] in `dtype`, contiguous.
inline torch::Tensor seesaw_log_counts(const torch::Tensor& cum_samples, torch::ScalarType dtype) {
  return cum_samples.to(torch::kDouble).clamp_min(1).log().to(dtype).contiguous();
}

/// Seesaw rows. For sample i of class y, with \f$\log\sigma_c = x_c - \mathrm{lse}(x)\f$ (detached),
/// \f$h = \max(\log\sigma_y, \log\epsilon)\f$ and \f$\lambda_c = \log\max(n_c, 1)\f$, the adjusted
/// logits are \f$z_c = x_c + p\min(0, \lambda_c - \lambda_y) + q\max(0, \log\sigma_c - h)\f$ for
/// \f$c \ne y\f$ (\f$z_y = x_y\f$; both terms vanish at c = y), and
/// \f$\ell = \mathrm{lse}(z) - z_y\f$, gradient \f$\mathrm{softmax}(z) - \mathrm{onehot}(y)\f$ (the
/// factors are constants). O(C) per row; the CPU kernel keeps z in the gradient row (or a
/// per-task scratch row) between its passes.
inline RowLossCompute seesaw_rows(const char* fn, const torch::Tensor& target, const torch::Tensor& cum_samples,
                                  double p, double q, double eps) {
  return [=](const torch::Tensor& x, bool with_grad, double grad_factor) {
    const int64_t rows = x.size(0), classes = x.size(1);
    const auto log_counts = seesaw_log_counts(cum_samples, x.scalar_type());
    const double log_eps = std::log(eps);
    RowLossOutput out;
    if (x.device().is_cpu() && !force_aten_path) {
      out.losses = torch::empty({rows}, x.options());
      if (with_grad) out.grad = torch::empty_like(x);
      const auto labels = target.contiguous();
      std::atomic<bool> bad_label{false};
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchloss_seesaw_loss", [&] {
        using T = scalar_t;
        const T* xs = x.data_ptr<T>();
        const int64_t* ys = labels.data_ptr<int64_t>();
        const T* log_n = log_counts.data_ptr<T>();
        T* losses = out.losses.data_ptr<T>();
        T* grad = with_grad ? out.grad.data_ptr<T>() : nullptr;
        const auto p_t = static_cast<T>(p), q_t = static_cast<T>(q), factor = static_cast<T>(grad_factor);
        at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / classes), [&](int64_t begin, int64_t end) {
          const ScopedFlushDenormals flush(std::is_same<T, float>::value);
          // Where z lives between the passes: the gradient row, or this task's scratch row.
          std::vector<T> scratch(grad ? 0 : static_cast<size_t>(classes));
          dispatch_simd<T>([&](auto width) {
            using W = decltype(width);
            for (int64_t i = begin; i < end; ++i) {
              const int64_t y = ys[i];
              if (y < 0 || y >= classes) {
                bad_label = true;
                losses[i] = 0;
                continue;
              }
              const T* xr = xs + i * classes;
              T* zr = grad ? grad + i * classes : scratch.data();
              const RowSoftmax<T> s = row_softmax<T, W>(xr, classes);
              // log σ_c = (x_c − max) − log_sum (max + log_sum would round at large |max|).
              const T floor = std::max((xr[y] - s.max) - s.log_sum, static_cast<T>(log_eps));
              const T log_n_y = log_n[y];
              const T z_max = simd_max_of<T, W>(classes, [&](int64_t c, auto tag) {
                using V = decltype(tag);
                const V v = load<V>(xr + c);
                const V mitigation = load<V>(log_n + c) - log_n_y;
                const V compensation = ((v - s.max) - s.log_sum) - floor;
                const V z = v + p_t * select(mitigation < 0, mitigation, V{}) +
                            q_t * select(compensation > 0, compensation, V{});
                store(zr + c, z);
                return z;
              });
              zr[y] = xr[y];  // the target keeps its logit exactly
              // Σ e^{z − max z}, each term left in place of z for the gradient pass.
              const T z_sum = simd_sum<T, W>(classes, [&](int64_t c, auto tag) {
                using V = decltype(tag);
                const V e = fast::exp(load<V>(zr + c) - z_max);
                store(zr + c, e);
                return e;
              });
              losses[i] = std::log(z_sum) - (xr[y] - z_max);
              if (!grad) continue;
              const T p_coef = factor / z_sum;
              simd_for<T, W>(classes, [&](int64_t c, auto tag) {
                using V = decltype(tag);
                store(zr + c, p_coef * load<V>(zr + c));
              });
              zr[y] -= factor;
            }
          });
        });
      });
      if (bad_label) check_labels(fn, target, classes, "target");
      return out;
    }
    check_labels(fn, target, classes, "target");
    const auto index = target.unsqueeze(1);
    const auto log_sigma = torch::log_softmax(x, 1);
    const auto floor = log_sigma.gather(1, index).clamp_min(log_eps);
    const auto mitigation = (log_counts.unsqueeze(0) - log_counts.index_select(0, target).unsqueeze(1)).clamp_max(0);
    const auto compensation = (log_sigma - floor).clamp_min(0);
    const auto offset = (p * mitigation + q * compensation).scatter(1, index, 0.0);
    const auto log_p = torch::log_softmax(x + offset, 1);
    out.losses = -log_p.gather(1, index).squeeze(1);
    if (with_grad) {
      out.grad = (log_p.exp() * grad_factor).scatter_add(1, index, torch::full({rows, 1}, -grad_factor, x.options()));
    }
    return out;
  };
}

/// Seesaw loss at the counts `cum_samples`, after validation; `fn` names the caller.
inline torch::Tensor seesaw_loss(const char* fn, const torch::Tensor& input, const torch::Tensor& target,
                                 const torch::Tensor& cum_samples, double p, double q, double eps,
                                 const reduction_t& reduction) {
  check_seesaw_options(fn, p, q, eps);
  check_row_logits(fn, input);
  check_row_labels(fn, input, target, "target");
  TORCH_CHECK(cum_samples.defined(), fn, ": cum_samples is an undefined tensor");
  check_class_vector(fn, input, cum_samples, input.size(1), "cum_samples");
  return row_loss(fn, input, seesaw_rows(fn, target, cum_samples, p, q, eps), reduction_code(reduction));
}

}  // namespace detail

namespace functional {

/// Seesaw loss (Wang et al., CVPR 2021; mmpretrain's softmax `seesaw_ce_loss`) of logits
/// \f$x\f$ [N, C] and int64 labels \f$y\f$ [N], at the class counts \f$n\f$ = `cum_samples`
/// [C] (read, not updated: SeesawLoss owns the counting). For sample i of class \f$y_i\f$ and
/// \f$j \ne y_i\f$, the logit \f$x_{i,j}\f$ is raised by \f$\log(M_{ij} C_{ij})\f$:
/// \f[ M_{ij} = \begin{cases} (n_j / n_{y_i})^p & n_j < n_{y_i} \\ 1 & \text{else} \end{cases}, \qquad
///     C_{ij} = \begin{cases} (\sigma_{i,j} / \hat\sigma_{i})^q & \sigma_{i,j} > \hat\sigma_i \\ 1 & \text{else} \end{cases}, \f]
/// with counts clamped to \f$\ge 1\f$, \f$\sigma_i = \mathrm{softmax}(x_i)\f$ detached and
/// \f$\hat\sigma_i = \max(\sigma_{i,y_i}, \epsilon)\f$; then
/// \f$\ell_i = -\log \mathrm{softmax}(z_i)_{y_i}\f$ of the raised logits z, whose gradient is
/// \f$\mathrm{softmax}(z_i) - \mathrm{onehot}(y_i)\f$ (the factors carry no gradient).
/// The factors are computed in log space (no overflow, no log of 0), in O(N·C).
/// kMean averages over N (an empty batch gives 0). Errors (prefix `torchloss::seesaw_loss: `):
/// input not a floating [N, C], labels not int64 [N] or outside [0, C), cum_samples not a
/// floating [C] on the input's device, p or q negative, eps not > 0.
inline torch::Tensor seesaw_loss(const torch::Tensor& input, const torch::Tensor& target,
                                 const torch::Tensor& cum_samples, const SeesawLossFuncOptions& options = {}) {
  return detail::seesaw_loss("torchloss::seesaw_loss", input, target, cum_samples, options.p(), options.q(),
                             options.eps(), options.reduction());
}

}  // namespace functional

/// Seesaw loss module (mmpretrain's `SeesawLoss`; see functional::seesaw_loss for the
/// formulas). Its state is the registered buffer `cum_samples` [C] (float32, zeros at the
/// start): in training mode each forward first adds the batch's label counts (summed over the
/// ranks of `process_group` when one is set, so every rank holds the same counts), then
/// computes the loss at the updated counts; in evaluation mode the counts stay as they are.
/// Being a buffer, the counts move with `->to()`, are copied by `clone()`, and are written and
/// read by `torch::save` / `torch::load`.
///
/// \code
/// torchloss::SeesawLoss criterion(torchloss::SeesawLossOptions(1000).process_group(group));
/// auto loss = criterion(logits, labels);  // [N, C], [N]
/// \endcode
class SeesawLossImpl : public torch::nn::Cloneable<SeesawLossImpl> {
 public:
  /// Name in error messages.
  static constexpr const char* kName = "torchloss::SeesawLoss";

  /// Builds the loss and registers `cum_samples`.
  explicit SeesawLossImpl(SeesawLossOptions options_) : options(std::move(options_)) { reset(); }

  /// Validates the options and registers `cum_samples` (zeros [C], float32).
  void reset() override {
    TORCH_CHECK(options.num_classes() >= 1, kName, ": num_classes must be >= 1, got ", options.num_classes());
    detail::check_seesaw_options(kName, options.p(), options.q(), options.eps());
    cum_samples = register_buffer("cum_samples", torch::zeros({options.num_classes()}, torch::kFloat));
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::SeesawLoss(num_classes=" << options.num_classes() << ", p=" << options.p()
           << ", q=" << options.q() << ", eps=" << options.eps()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction())
           << ", distributed=" << (options.process_group() ? "true" : "false") << ")";
  }

  /// The loss of `input` logits [N, C] against `target` labels [N]; in training mode, adds
  /// the batch's label counts to `cum_samples` first.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    detail::check_seesaw_options(kName, options.p(), options.q(), options.eps());
    detail::check_row_logits(kName, input);
    detail::check_row_labels(kName, input, target, "target");
    TORCH_CHECK(input.size(1) == options.num_classes(), kName, ": input has ", input.size(1),
                " classes but num_classes is ", options.num_classes());
    if (is_training()) {
      // Validated before the counts change, so a bad batch leaves the state as it was.
      detail::check_labels(kName, target, options.num_classes(), "target");
      torch::Tensor counts_now;
      {
        torch::NoGradGuard no_grad;  // the counts only, not the loss below
        auto counts = torch::bincount(target, {}, options.num_classes()).to(cum_samples.scalar_type());
        if (options.process_group()) options.process_group()(counts);
        // Several threads may train one module: the update is a locked read-modify-write, and
        // this call computes with the counts as its own update left them.
        const auto lock = detail::state_lock(cum_samples);
        cum_samples.add_(counts);
        counts_now = cum_samples.clone();
      }
      return detail::seesaw_loss(kName, input, target, counts_now, options.p(), options.q(), options.eps(),
                                 options.reduction());
    }
    return detail::seesaw_loss(kName, input, target, cum_samples, options.p(), options.q(), options.eps(),
                               options.reduction());
  }

  /// The options the module was built with.
  SeesawLossOptions options;
  /// Cumulative label counts \f$n\f$ [C] (float32), updated in training mode.
  torch::Tensor cum_samples;
};

/// Module holder of SeesawLossImpl.
TORCH_MODULE(SeesawLoss);

}  // namespace torchloss
