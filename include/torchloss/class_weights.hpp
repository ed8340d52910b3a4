#pragma once
/// \file class_weights.hpp
/// \brief Class weights from per-class sample counts, ready for the `weight` / `alpha` options.

#include <torchloss/detail/checks.hpp>

#include <cmath>

namespace torchloss {
/// Class-weight helpers: each takes per-class counts \f$n_c\f$ (a 1-D tensor [C], integer or
/// floating, every entry \f$> 0\f$) and returns float weights [C] on the counts' device.
namespace class_weights {

namespace detail {
/// Validates counts and returns them as float64.
inline torch::Tensor checked_counts(const char* fn, const torch::Tensor& counts) {
  TORCH_CHECK(counts.defined() && counts.dim() == 1 && counts.numel() >= 1, fn,
              ": counts must be a non-empty 1-D tensor [C], got ",
              counts.defined() ? torchloss::detail::shape_str(counts) : std::string("an undefined tensor"));
  const auto as_double = counts.to(torch::kDouble);
  const auto bad = ~(as_double > 0);
  TORCH_CHECK(!bad.any().item<bool>(), fn, ": every class count must be positive, got ",
              as_double.masked_select(bad)[0].item<double>(), " at class ", bad.nonzero()[0][0].item<int64_t>());
  return as_double;
}

/// Validates a loss's `class_counts` option (shape [num_classes], integer or floating, every
/// entry positive and finite) and returns it as float64 on its device. CPU counts are checked
/// in a plain loop, without ATen launches: the losses call this on every step.
inline torch::Tensor checked_class_counts(const char* fn, const torch::Tensor& counts, int64_t num_classes) {
  TORCH_CHECK(counts.defined(), fn, ": class_counts is an undefined tensor (it is required)");
  TORCH_CHECK(counts.dim() == 1 && counts.size(0) == num_classes, fn, ": class_counts must have shape [",
              num_classes, "] (one count per class), got ", torchloss::detail::shape_str(counts));
  TORCH_CHECK(!counts.is_complex() && counts.scalar_type() != torch::kBool, fn,
              ": class_counts must be an integer or floating-point tensor, got ", counts.scalar_type());
  if (!counts.device().is_cpu()) return checked_counts(fn, counts);
  const auto n = counts.to(torch::kDouble).contiguous();
  const double* count = n.data_ptr<double>();
  for (int64_t c = 0; c < num_classes; ++c) {
    TORCH_CHECK(count[c] > 0 && std::isfinite(count[c]), fn, ": every class count must be positive and finite, got ",
                count[c], " at class ", c);
  }
  return n;
}
}  // namespace detail

/// Inverse-frequency weights, normalised to sum to C:
/// \f[ w_c = \frac{C \, n_c^{-1}}{\sum_k n_k^{-1}} \f]
/// (equivalently \f$N / (C\, n_c)\f$ up to that normalisation).
inline torch::Tensor inverse_frequency(const torch::Tensor& counts) {
  const auto n = detail::checked_counts("torchloss::class_weights::inverse_frequency", counts);
  const auto inverse = n.reciprocal();
  return (inverse * (static_cast<double>(n.numel()) / inverse.sum())).to(torch::kFloat);
}

/// Class-balanced weights by the effective number of samples (Cui et al., CVPR 2019),
/// normalised to sum to C:
/// \f[ w_c \propto \frac{1-\beta}{1-\beta^{n_c}}, \qquad \sum_c w_c = C, \qquad \beta \in [0, 1). \f]
/// \f$\beta = 0\f$ gives equal weights; \f$\beta \to 1\f$ approaches inverse frequency.
inline torch::Tensor effective_number(const torch::Tensor& counts, double beta = 0.999) {
  const char* fn = "torchloss::class_weights::effective_number";
  TORCH_CHECK(beta >= 0 && beta < 1, fn, ": beta must be in [0, 1), got ", beta);
  const auto n = detail::checked_counts(fn, counts);
  // 1 - beta^n computed as -expm1(n log beta): exact when beta^n is close to 1.
  const auto effective = beta == 0 ? torch::ones_like(n) : -torch::expm1(n * std::log(beta)) / (1 - beta);
  const auto inverse = effective.reciprocal();
  return (inverse * (static_cast<double>(n.numel()) / inverse.sum())).to(torch::kFloat);
}

/// Deferred re-weighting (DRW, Cao et al., NeurIPS 2019): all ones before `switch_epoch`,
/// the class-balanced weights effective_number(counts, beta) from it on,
/// \f[ w_c(e) = \begin{cases} 1 & e < e_s \\ \dfrac{C\,(1-\beta)/(1-\beta^{n_c})}{\sum_k (1-\beta)/(1-\beta^{n_k})} & e \ge e_s \end{cases} \f]
/// (the reference trains CIFAR with \f$e_s = 160\f$ of 200 epochs and \f$\beta = 0.9999\f$).
/// Pass the result as the `weight` of LDAMLoss or any other weighted loss each epoch.
/// Errors: epoch or switch_epoch negative, \f$\beta \notin [0, 1)\f$, bad counts.
inline torch::Tensor deferred(int64_t epoch, int64_t switch_epoch, const torch::Tensor& counts, double beta = 0.9999) {
  const char* fn = "torchloss::class_weights::deferred";
  TORCH_CHECK(epoch >= 0, fn, ": epoch must be >= 0, got ", epoch);
  TORCH_CHECK(switch_epoch >= 0, fn, ": switch_epoch must be >= 0, got ", switch_epoch);
  TORCH_CHECK(beta >= 0 && beta < 1, fn, ": beta must be in [0, 1), got ", beta);
  const auto n = detail::checked_counts(fn, counts);
  if (epoch < switch_epoch) return torch::ones({n.numel()}, n.options().dtype(torch::kFloat));
  return effective_number(counts, beta);
}

}  // namespace class_weights
}  // namespace torchloss
