// Input dtypes that LibTorch 2.x counts as floating (at::isFloatingType) but no torchloss kernel
// computes in: the Float8 and Float4 variants. Every loss refuses them with its own error,
// not ATen's unprefixed dispatch error. (LibTorch 1.13 has none of these types.)
#include <torchloss/torchloss.hpp>

#include "support/error_matchers.hpp"

namespace F = torchloss::functional;

#if TORCH_VERSION_MAJOR >= 2

namespace {

/// Every low-precision float type of this LibTorch that isFloatingType accepts and torchloss refuses.
std::vector<c10::ScalarType> unsupported_float_types() {
  std::vector<c10::ScalarType> types;
  for (int code = 0; code < static_cast<int>(c10::ScalarType::NumOptions); ++code) {
    const auto dtype = static_cast<c10::ScalarType>(code);
    if (at::isFloatingType(dtype) && !torchloss::detail::is_supported_float(dtype)) types.push_back(dtype);
  }
  return types;
}

}  // namespace

TEST_CASE("Float8 / Float4 inputs get a torchloss error from every loss", "[dtypes]") {
  const auto types = unsupported_float_types();
  REQUIRE(types.size() >= 4);  // 2.x has at least four Float8 variants
  const auto labels = torch::zeros({2}, torch::kLong);
  const auto counts = torch::tensor({3.0, 2.0, 1.0});
  for (const auto dtype : types) {
    INFO("dtype " << dtype);
    const auto x = torch::empty({2, 3}, torch::TensorOptions().dtype(dtype));
    const auto probabilities = torch::zeros({2, 3});
    TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, labels), "torchloss::weighted_cross_entropy", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::focal_loss(x, labels), "torchloss::focal_loss", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, labels, F::LogitAdjustedCrossEntropyFuncOptions(counts)),
                          "torchloss::logit_adjusted_cross_entropy", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::ldam_loss(x, labels, F::LDAMLossFuncOptions(counts)), "torchloss::ldam_loss",
                          "floating-point");
    TORCHLOSS_CHECK_ERROR(F::sigmoid_focal_loss(x, probabilities), "torchloss::sigmoid_focal_loss", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, probabilities, F::WeightedBinaryCrossEntropyFuncOptions(0.25)),
                          "torchloss::weighted_binary_cross_entropy", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::multilabel_soft_margin_loss(x, probabilities), "torchloss::multilabel_soft_margin_loss",
                          "floating-point");
    TORCHLOSS_CHECK_ERROR(F::asymmetric_loss(x, probabilities), "torchloss::asymmetric_loss", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::ghmc_loss(x, probabilities, torch::ones({2, 3})), "torchloss::ghmc_loss", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::ghmr_loss(x, probabilities, torch::ones({2, 3})), "torchloss::ghmr_loss", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::center_loss(x, labels, torch::zeros({3, 3})), "torchloss::center_loss", "floating-point");
    TORCHLOSS_CHECK_ERROR(F::center_loss(torch::zeros({2, 3}), labels, torch::empty({3, 3}, x.options())),
                          "torchloss::center_loss", "floating-point");
  }
}

#else

TEST_CASE("LibTorch 1.x has no Float8 / Float4 types", "[dtypes]") {
  for (int code = 0; code < static_cast<int>(c10::ScalarType::NumOptions); ++code) {
    const auto dtype = static_cast<c10::ScalarType>(code);
    CHECK(at::isFloatingType(dtype) == torchloss::detail::is_supported_float(dtype));
  }
}

#endif
