#pragma once
// Catch2 matcher: |actual - expected| <= atol + rtol * |expected| elementwise, compared in
// float64, with NaN matching NaN; failures print the worst element.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <sstream>

namespace torchloss_test {

class AllCloseMatcher : public Catch::MatcherBase<torch::Tensor> {
 public:
  AllCloseMatcher(torch::Tensor expected, double rtol, double atol)
      : expected_(expected.detach().to(torch::kDouble).cpu()), rtol_(rtol), atol_(atol) {}

  bool match(const torch::Tensor& actual_in) const override {
    const auto actual = actual_in.detach().to(torch::kDouble).cpu();
    if (actual.sizes() != expected_.sizes()) {
      detail_ = "shape " + shape(actual) + " != expected " + shape(expected_);
      return false;
    }
    if (actual.numel() == 0) return true;
    const auto both_nan = actual.isnan() & expected_.isnan();
    const auto diff = (actual - expected_).abs();
    const auto excess = (diff - (atol_ + rtol_ * expected_.abs())).masked_fill(both_nan, -1).nan_to_num(1e300);
    const int64_t worst = excess.flatten().argmax().item<int64_t>();
    if (excess.flatten()[worst].item<double>() <= 0) return true;
    std::ostringstream out;
    out << "worst element " << worst << ": actual " << actual.flatten()[worst].item<double>() << ", expected "
        << expected_.flatten()[worst].item<double>() << " (|diff| " << diff.flatten()[worst].item<double>()
        << ", rtol " << rtol_ << ", atol " << atol_ << ")";
    detail_ = out.str();
    return false;
  }

  std::string describe() const override { return "is close to the expected tensor: " + detail_; }

 private:
  static std::string shape(const torch::Tensor& t) {
    std::ostringstream out;
    out << t.sizes();
    return out.str();
  }
  torch::Tensor expected_;
  double rtol_, atol_;
  mutable std::string detail_;
};

inline AllCloseMatcher AllClose(const torch::Tensor& expected, double rtol = 1e-5, double atol = 1e-8) {
  return AllCloseMatcher(expected, rtol, atol);
}

}  // namespace torchloss_test
