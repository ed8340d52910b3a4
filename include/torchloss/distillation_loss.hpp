#pragma once
/// \file distillation_loss.hpp
/// \brief Knowledge distillation (Hinton, Vinyals and Dean, *Distilling the Knowledge in a
/// Neural Network*, 2015): options, functional form and module DistillationLoss.

#include <torchloss/detail/row_loss.hpp>

#include <cmath>
#include <ostream>

namespace torchloss {

/// Options of DistillationLoss and functional::distillation_loss.
///
/// \code
/// torchloss::DistillationLoss distill(torchloss::DistillationLossOptions().temperature(4.0));
/// auto loss = 0.1 * ce(student, labels) + 0.9 * distill(student, teacher);
/// \endcode
struct DistillationLossOptions {
  /// Temperature \f$T > 0\f$ of both softmaxes; the loss is scaled by \f$T^2\f$ so its gradient
  /// keeps its magnitude as T changes.
  TORCH_ARG(double, temperature) = 4.0;
  /// torch::kNone (the per-sample sums over C, [N]), torch::kMean (their mean over N, i.e.
  /// `kl_div`'s batchmean) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

namespace detail {

/// Distillation rows at temperature T, with \f$a_c = (s_c - \max s)/T\f$, \f$b_c = (t_c - \max t)/T\f$,
/// \f$A = \log\sum_c e^{a_c}\f$, \f$B = \log\sum_c e^{b_c}\f$, \f$q_c = e^{b_c - B}\f$:
/// \f$\ell = T^2\bigl(\sum_c q_c (b_c - a_c) - B + A\bigr)\f$, gradient \f$T\,(p_c - q_c)\f$ with
/// \f$p_c = e^{a_c - A}\f$. CPU: one pass for each row's max, one for the three sums, one for
/// the gradient (which reads the e^{b_c} the sums pass left in the gradient row).
inline RowLossCompute distillation_rows(const torch::Tensor& teacher, double temperature) {
  return [teacher, temperature](const torch::Tensor& x, bool with_grad, double grad_factor) {
    const int64_t rows = x.size(0), classes = x.size(1);
    const auto t = teacher.detach().to(x.scalar_type()).contiguous();
    RowLossOutput out;
    if (x.device().is_cpu() && !force_aten_path) {
      out.losses = torch::empty({rows}, x.options());
      if (with_grad) out.grad = torch::empty_like(x);
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchloss_distillation_loss", [&] {
        const scalar_t* xs = x.data_ptr<scalar_t>();
        const scalar_t* ts = t.data_ptr<scalar_t>();
        scalar_t* losses = out.losses.data_ptr<scalar_t>();
        scalar_t* grad = with_grad ? out.grad.data_ptr<scalar_t>() : nullptr;
        const auto inv_t = static_cast<scalar_t>(1 / temperature);
        const auto t_squared = static_cast<scalar_t>(temperature * temperature);
        const auto grad_scale = static_cast<scalar_t>(grad_factor * temperature);
        for_each_row_cpu<scalar_t>(rows, classes, [&](int64_t i, auto width) {
          using W = decltype(width);
          const scalar_t* sr = xs + i * classes;
          const scalar_t* tr = ts + i * classes;
          scalar_t* gr = grad ? grad + i * classes : nullptr;
          const scalar_t ms = simd_max<scalar_t, W>(sr, classes), mt = simd_max<scalar_t, W>(tr, classes);
          const auto sums = simd_sums<scalar_t, W, 3>(classes, [&](int64_t c, auto tag) {
            using V = decltype(tag);
            const V a = (load<V>(sr + c) - ms) * inv_t, b = (load<V>(tr + c) - mt) * inv_t;
            const V eb = fast::exp(b);
            if (gr) store(gr + c, eb);
            return std::array<V, 3>{fast::exp(a), eb, eb * (b - a)};
          });
          const scalar_t log_a = std::log(sums[0]), log_b = std::log(sums[1]);
          losses[i] = t_squared * (sums[2] / sums[1] - log_b + log_a);
          if (!gr) return;
          const scalar_t inv_sum_b = 1 / sums[1];
          simd_for<scalar_t, W>(classes, [&](int64_t c, auto tag) {
            using V = decltype(tag);
            const V p = fast::exp((load<V>(sr + c) - ms) * inv_t - log_a);
            store(gr + c, grad_scale * (p - load<V>(gr + c) * inv_sum_b));
          });
        });
      });
      return out;
    }
    const auto log_p = torch::log_softmax(x / temperature, 1), log_q = torch::log_softmax(t / temperature, 1);
    const auto q = log_q.exp();
    out.losses = temperature * temperature * (q * (log_q - log_p)).sum(1);
    if (with_grad) out.grad = (log_p.exp() - q) * (grad_factor * temperature);
    return out;
  };
}

}  // namespace detail

namespace functional {

/// Options of functional::distillation_loss (the same as the module's).
using DistillationLossFuncOptions = DistillationLossOptions;

/// Knowledge distillation loss (Hinton et al., 2015) of student logits \f$s\f$ [N, C] against
/// teacher logits \f$t\f$ [N, C] at temperature \f$T\f$:
/// \f[ \ell_i = T^2 \sum_c q_{i,c} \left(\log q_{i,c} - \log p_{i,c}\right), \qquad
///     q_i = \mathrm{softmax}(t_i / T),\ p_i = \mathrm{softmax}(s_i / T), \f]
/// \f[ \frac{\partial \ell_i}{\partial s_{i,k}} = T\,(p_{i,k} - q_{i,k}). \f]
/// kMean averages over the N rows: \f$T^2\f$ `kl_div(log_softmax(s/T), softmax(t/T), batchmean)`;
/// kNone gives the per-sample sums [N]. The teacher gets no gradient (it is detached, even if
/// it requires one). One fused pass per row on CPU. Errors (prefix
/// `torchloss::distillation_loss: `): student or teacher not a floating [N, C], their shapes or
/// devices differing, a temperature that is not a finite number > 0.
inline torch::Tensor distillation_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                                       const DistillationLossFuncOptions& options = {}) {
  const char* fn = "torchloss::distillation_loss";
  const double temperature = options.temperature();
  TORCH_CHECK(temperature > 0 && std::isfinite(temperature), fn, ": temperature must be a finite number > 0, got ",
              temperature);
  detail::check_row_logits(fn, student, "student");
  detail::check_row_logits(fn, teacher, "teacher");
  TORCH_CHECK(teacher.sizes() == student.sizes(), fn, ": teacher shape ", detail::shape_str(teacher),
              " must equal student shape ", detail::shape_str(student));
  TORCH_CHECK(teacher.device() == student.device(), fn, ": teacher is on ", teacher.device(), " but student is on ",
              student.device());
  return detail::row_loss(fn, student, detail::distillation_rows(teacher, temperature),
                          detail::reduction_code(options.reduction()));
}

}  // namespace functional

/// Module form of functional::distillation_loss (no state).
class DistillationLossImpl : public torch::nn::Cloneable<DistillationLossImpl> {
 public:
  /// Builds the loss from its options.
  explicit DistillationLossImpl(DistillationLossOptions options_ = {}) : options(std::move(options_)) { reset(); }

  /// Checks the temperature (nothing to register).
  void reset() override {
    TORCH_CHECK(options.temperature() > 0 && std::isfinite(options.temperature()),
                "torchloss::DistillationLoss: temperature must be a finite number > 0, got ", options.temperature());
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::DistillationLoss(temperature=" << options.temperature()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `student` logits against `teacher` logits, both [N, C].
  torch::Tensor forward(const torch::Tensor& student, const torch::Tensor& teacher) {
    return functional::distillation_loss(student, teacher, options);
  }

  /// The options the module was built with.
  DistillationLossOptions options;
};

/// Module holder of DistillationLossImpl.
TORCH_MODULE(DistillationLoss);

}  // namespace torchloss
