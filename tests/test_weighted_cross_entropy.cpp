// weighted_cross_entropy against torch.nn.functional.cross_entropy (fixtures), plus the
// cases PyTorch gets wrong or does not cover: all ignored, extreme logits, bad inputs.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixture_cases.hpp"
#include "support/gradcheck.hpp"

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {
const char* kFn = "torchloss::weighted_cross_entropy";
}  // namespace

TEST_CASE("weighted_cross_entropy matches torch cross_entropy in value and gradient", "[weighted_cross_entropy]") {
  torchloss_test::check_fixture_cases(
      "weighted_cross_entropy.pt", [](const torchloss_test::Fixture& fx, const std::string& key,
                                      const torch::Tensor& x, const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::weighted_cross_entropy(
            x, fx[key + "/target"],
            F::WeightedCrossEntropyFuncOptions()
                .weight(torchloss_test::optional_weight(fx, key + "/weight", dc.dtype))
                .ignore_index(opt[0].item<int64_t>())
                .label_smoothing(opt[1].item<double>())
                .reduction(torchloss_test::reduction_from_code(opt[2].item<int64_t>())));
      });
}

TEST_CASE("weighted_cross_entropy module matches the functional form and carries its weight",
          "[weighted_cross_entropy]") {
  torch::manual_seed(1);
  const auto weight = torch::rand({4}) + 0.5;
  torchloss::WeightedCrossEntropyLoss loss(torchloss::WeightedCrossEntropyLossOptions().weight(weight));
  const auto x = torch::randn({8, 4});
  const auto y = torch::randint(4, {8});
  CHECK_THAT(loss(x, y), AllClose(torch::nn::functional::cross_entropy(
                             x, y, torch::nn::functional::CrossEntropyFuncOptions().weight(weight))));
  REQUIRE(loss->named_buffers().contains("weight"));
  auto copy = std::dynamic_pointer_cast<torchloss::WeightedCrossEntropyLossImpl>(loss->clone());
  CHECK(torch::equal(copy->weight, weight));
  loss->to(torch::kDouble);
  CHECK(loss->weight.scalar_type() == torch::kDouble);
  std::ostringstream printed;
  printed << *loss;
  CHECK(printed.str() == "torchloss::WeightedCrossEntropyLoss(ignore_index=-100, label_smoothing=0, reduction=kMean)");
}

TEST_CASE("weighted_cross_entropy: all targets ignored gives 0 with a zero gradient under kMean",
          "[weighted_cross_entropy]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (bool weighted : {false, true}) {
      auto x = torch::randn({5, 3}, torch::kDouble).requires_grad_();
      const auto y = torch::full({5}, -100, torch::kLong);
      const auto loss = F::weighted_cross_entropy(
          x, y, F::WeightedCrossEntropyFuncOptions().weight(weighted ? torch::ones({3}, torch::kDouble) : torch::Tensor()));
      CHECK(loss.item<double>() == 0.0);
      loss.backward();
      CHECK(torch::equal(x.grad(), torch::zeros_like(x)));
    }
  }
}

TEST_CASE("weighted_cross_entropy stays finite at extreme logits in every dtype", "[weighted_cross_entropy]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    INFO("dtype " << dc.dtype);
    auto x = (torch::randint(0, 2, {16, 7}).to(torch::kFloat) * 2e4 - 1e4).to(dc.dtype).requires_grad_();
    const auto y = torch::randint(7, {16});
    const auto loss = F::weighted_cross_entropy(x, y, F::WeightedCrossEntropyFuncOptions().label_smoothing(0.1));
    loss.backward();
    CHECK(std::isfinite(loss.item<double>()));
    CHECK(x.grad().isfinite().all().item<bool>());
  }
}

TEST_CASE("weighted_cross_entropy propagates NaN", "[weighted_cross_entropy]") {
  auto x = torch::randn({3, 4});
  x[1][2] = std::numeric_limits<float>::quiet_NaN();
  const auto loss = F::weighted_cross_entropy(x, torch::tensor({0, 1, 2}),
                                              F::WeightedCrossEntropyFuncOptions().reduction(torch::kNone));
  CHECK(std::isnan(loss[1].item<float>()));
  CHECK(std::isfinite(loss[0].item<float>()));
}

TEST_CASE("weighted_cross_entropy passes float64 finite differences", "[weighted_cross_entropy]") {
  torch::manual_seed(2);
  const auto y = torch::tensor({0, 2, -100, 1, 2}, torch::kLong);
  const auto weight = torch::rand({3}, torch::kDouble) + 0.2;
  for (double smoothing : {0.0, 0.2}) {
    const auto f = [&](const torch::Tensor& x) {
      return F::weighted_cross_entropy(
          x, y, F::WeightedCrossEntropyFuncOptions().weight(weight).label_smoothing(smoothing).reduction(torch::kNone));
    };
    CHECK(torchloss_test::finite_difference_error(f, torch::randn({5, 3}, torch::kDouble)) <= 1.0);
  }
}

TEST_CASE("weighted_cross_entropy rejects bad inputs with named errors", "[weighted_cross_entropy][errors]") {
  const auto x = torch::randn({4, 3});
  const auto y = torch::tensor({0, 1, 2, 1});
  const auto weighted = [](const torch::Tensor& w) { return F::WeightedCrossEntropyFuncOptions().weight(w); };
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(torch::randn({4}), y), kFn, "input must have shape");
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x.to(torch::kLong), y), kFn, "input must be a floating-point");
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, y.to(torch::kInt)), kFn, "target must hold int64");
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, torch::tensor({0, 1})), kFn, "target shape [2]");
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(torch::randn({2, 3, 4}), torch::zeros({2, 5}, torch::kLong)), kFn,
                        "does not match input shape");
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, torch::tensor({0, 3, 1, 1})), kFn, "target label 3");
    TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, torch::tensor({0, -1, 1, 1})), kFn, "target label -1");
  }
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, y, weighted(torch::ones({4}))), kFn, "weight must have shape [3]");
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, y, weighted(torch::ones({3}, torch::kLong))), kFn,
                        "weight must be a floating-point");
  TORCHLOSS_CHECK_ERROR(
      F::weighted_cross_entropy(x, y, F::WeightedCrossEntropyFuncOptions().label_smoothing(1.5)), kFn,
      "label_smoothing must be in [0, 1], got 1.5");
  TORCHLOSS_CHECK_ERROR(F::weighted_cross_entropy(x, y.to(torch::kMeta)), kFn, "target is on meta");
}
