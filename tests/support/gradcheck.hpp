#pragma once
// Float64 central-difference gradient check (LibTorch C++ has no gradcheck): compares the
// autograd gradient of sum(f(x) * v), v a fixed random projection, with
// (F(x + h e_i) - F(x - h e_i)) / 2h for every element i.
#include <torch/torch.h>

#include <functional>

namespace torchloss_test {

/// Returns max_i |autograd_i - numeric_i| / (atol + rtol |numeric_i|); <= 1 passes.
inline double finite_difference_error(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                      const torch::Tensor& x0, double h = 1e-6, double rtol = 1e-5,
                                      double atol = 1e-7) {
  auto x = x0.detach().to(torch::kDouble).clone().requires_grad_();
  const auto out = f(x);
  const auto projection = torch::randn(out.sizes(), torch::TensorOptions().dtype(torch::kDouble));
  const auto analytic = torch::autograd::grad({(out * projection).sum()}, {x})[0].flatten();
  auto flat = x.detach().clone().flatten();
  double worst = 0;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double original = flat[i].item<double>();
    auto eval = [&](double value) {
      flat[i] = value;
      torch::NoGradGuard guard;
      return (f(flat.view(x.sizes())) * projection).sum().item<double>();
    };
    const double numeric = (eval(original + h) - eval(original - h)) / (2 * h);
    flat[i] = original;
    const double error = std::abs(analytic[i].item<double>() - numeric) / (atol + rtol * std::abs(numeric));
    worst = std::max(worst, error);
  }
  return worst;
}

}  // namespace torchloss_test
