// The focal family and multi-label soft margin against their references (fixtures:
// torchvision's sigmoid_focal_loss, torch's multilabel_soft_margin_loss, the softmax focal
// formula in float64), reductions to CE/BCE at gamma = 0, stability, modules, bad inputs.
#include <torchloss/torchloss.hpp>

#include <sstream>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixture_cases.hpp"
#include "support/gradcheck.hpp"

using torchloss_test::AllClose;
namespace F = torchloss::functional;

TEST_CASE("focal_loss matches the softmax focal formula in value and gradient", "[focal_loss]") {
  torchloss_test::check_fixture_cases(
      "focal_loss.pt", [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
                          const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::focal_loss(x, fx[key + "/target"],
                             F::FocalLossFuncOptions()
                                 .gamma(opt[0].item<double>())
                                 .alpha(torchloss_test::optional_weight(fx, key + "/alpha", dc.dtype))
                                 .reduction(torchloss_test::reduction_from_code(opt[1].item<int64_t>())));
      });
}

TEST_CASE("sigmoid_focal_loss matches torchvision in value and gradient", "[sigmoid_focal_loss]") {
  torchloss_test::check_fixture_cases(
      "sigmoid_focal_loss.pt",
      [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
         const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::sigmoid_focal_loss(x, fx[key + "/target"].to(dc.dtype),
                                     F::SigmoidFocalLossFuncOptions()
                                         .gamma(opt[0].item<double>())
                                         .alpha(opt[1].item<double>())
                                         .reduction(torchloss_test::reduction_from_code(opt[2].item<int64_t>())));
      },
      2e-3, 2e-2);
}

TEST_CASE("multilabel_soft_margin_loss matches LibTorch's in value and gradient", "[multilabel_soft_margin_loss]") {
  torchloss_test::check_fixture_cases(
      "multilabel_soft_margin_loss.pt",
      [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
         const torchloss_test::DtypeCase& dc) {
        return F::multilabel_soft_margin_loss(
            x, fx[key + "/target"].to(dc.dtype),
            F::MultiLabelSoftMarginLossFuncOptions()
                .weight(torchloss_test::optional_weight(fx, key + "/weight", dc.dtype))
                .reduction(torchloss_test::reduction_from_code(fx[key + "/options"][0].item<int64_t>())));
      });
}

TEST_CASE("gamma = 0 reduces focal losses to cross entropy and binary cross entropy", "[focal_loss][sigmoid_focal_loss]") {
  torch::manual_seed(4);
  auto x = torch::randn({9, 4, 3}, torch::kDouble).requires_grad_();
  const auto y = torch::randint(4, {9, 3});
  const auto focal = F::focal_loss(x, y, F::FocalLossFuncOptions().gamma(0));
  const auto ce = torch::nn::functional::cross_entropy(x, y);
  CHECK_THAT(focal, AllClose(ce, 1e-12));
  CHECK_THAT(torch::autograd::grad({focal}, {x})[0], AllClose(torch::autograd::grad({ce}, {x})[0], 1e-12, 1e-14));

  const auto labels = torch::rand({9, 4, 3}, torch::kDouble);
  const auto sigmoid_focal = F::sigmoid_focal_loss(x, labels, F::SigmoidFocalLossFuncOptions().gamma(0).alpha(-1));
  const auto bce = torch::nn::functional::binary_cross_entropy_with_logits(x, labels);
  CHECK_THAT(sigmoid_focal, AllClose(bce, 1e-12));
  CHECK_THAT(torch::autograd::grad({sigmoid_focal}, {x})[0], AllClose(torch::autograd::grad({bce}, {x})[0], 1e-12, 1e-14));
}

TEST_CASE("focal losses are finite at extreme logits for every gamma and dtype", "[focal_loss][sigmoid_focal_loss]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    for (double gamma : {0.0, 0.25, 0.5, 1.0, 2.0, 5.0}) {
      INFO("dtype " << dc.dtype << ", gamma " << gamma);
      // Saturated logits with the target on the winning class and on a losing one.
      auto x = torch::tensor({{1e4, -1e4, 0.0}, {-1e4, 1e4, -1e4}, {1e4, 1e4, -1e4}}).to(dc.dtype).requires_grad_();
      const auto y = torch::tensor({0, 0, 1});
      const auto focal = F::focal_loss(x, y, F::FocalLossFuncOptions().gamma(gamma).reduction(torch::kSum));
      const auto labels = torch::tensor({{1.0, 0.0, 1.0}, {0.0, 1.0, 0.0}, {1.0, 0.0, 0.0}}).to(dc.dtype);
      const auto sigmoid_focal =
          F::sigmoid_focal_loss(x, labels, F::SigmoidFocalLossFuncOptions().gamma(gamma).reduction(torch::kSum));
      const auto grads = torch::autograd::grad({focal + sigmoid_focal}, {x});
      CHECK(std::isfinite(focal.item<double>()));
      CHECK(std::isfinite(sigmoid_focal.item<double>()));
      CHECK(grads[0].isfinite().all().item<bool>());
    }
  }
}

TEST_CASE("focal losses pass float64 finite differences", "[focal_loss][sigmoid_focal_loss]") {
  torch::manual_seed(5);
  const auto y = torch::tensor({0, 2, -100, 1, 2});
  const auto alpha = torch::rand({3}, torch::kDouble);
  const auto labels = torch::rand({5, 3}, torch::kDouble);
  for (double gamma : {0.0, 0.5, 2.0}) {
    INFO("gamma " << gamma);
    const auto focal = [&](const torch::Tensor& x) {
      return F::focal_loss(x, y, F::FocalLossFuncOptions().gamma(gamma).alpha(alpha).reduction(torch::kNone));
    };
    CHECK(torchloss_test::finite_difference_error(focal, torch::randn({5, 3}, torch::kDouble) * 2) <= 1.0);
    const auto sigmoid_focal = [&](const torch::Tensor& x) {
      return F::sigmoid_focal_loss(x, labels, F::SigmoidFocalLossFuncOptions().gamma(gamma).reduction(torch::kNone));
    };
    CHECK(torchloss_test::finite_difference_error(sigmoid_focal, torch::randn({5, 3}, torch::kDouble) * 2) <= 1.0);
  }
  const auto weight = torch::rand({3}, torch::kDouble);
  const auto binary = (torch::rand({5, 3}) > 0.5).to(torch::kDouble);
  const auto margin = [&](const torch::Tensor& x) {
    return F::multilabel_soft_margin_loss(x, binary, F::MultiLabelSoftMarginLossFuncOptions().weight(weight).reduction(torch::kNone));
  };
  CHECK(torchloss_test::finite_difference_error(margin, torch::randn({5, 3}, torch::kDouble)) <= 1.0);
}

TEST_CASE("focal loss modules register alpha/weight and match their functions", "[focal_loss]") {
  torch::manual_seed(6);
  const auto alpha = torch::rand({4});
  const auto x = torch::randn({6, 4});
  const auto y = torch::randint(4, {6});
  torchloss::WeightedFocalLoss weighted(torchloss::WeightedFocalLossOptions(alpha).gamma(1.5));
  CHECK_THAT(weighted(x, y), AllClose(F::focal_loss(x, y, F::FocalLossFuncOptions().gamma(1.5).alpha(alpha))));
  REQUIRE(weighted->named_buffers().contains("alpha"));
  torchloss::FocalLoss plain;
  CHECK(plain->named_buffers().size() == 0);
  CHECK_THAT(plain(x, y), AllClose(F::focal_loss(x, y)));
  auto copy = std::dynamic_pointer_cast<torchloss::WeightedFocalLossImpl>(weighted->clone());
  CHECK(torch::equal(copy->alpha, alpha));
  std::ostringstream printed;
  printed << *weighted;
  CHECK(printed.str() == "torchloss::WeightedFocalLoss(gamma=1.5, ignore_index=-100, reduction=kMean)");

  torchloss::SigmoidFocalLoss sigmoid_focal(torchloss::SigmoidFocalLossOptions().gamma(1.0));
  const auto labels = torch::rand({6, 4});
  CHECK_THAT(sigmoid_focal(x, labels), AllClose(F::sigmoid_focal_loss(x, labels, F::SigmoidFocalLossFuncOptions().gamma(1.0))));

  const auto weight = torch::rand({4});
  torchloss::MultiLabelSoftMarginLoss margin(torchloss::MultiLabelSoftMarginLossOptions().weight(weight));
  const auto binary = (labels > 0.5).to(torch::kFloat);
  CHECK_THAT(margin(x, binary), AllClose(torch::nn::functional::multilabel_soft_margin_loss(
                                   x, binary, torch::nn::functional::MultilabelSoftMarginLossFuncOptions().weight(weight))));
  REQUIRE(margin->named_buffers().contains("weight"));
  auto margin_copy = std::dynamic_pointer_cast<torchloss::MultiLabelSoftMarginLossImpl>(margin->clone());
  CHECK(torch::equal(margin_copy->weight, weight));
  std::ostringstream margin_printed;
  margin_printed << *margin;
  CHECK(margin_printed.str() == "torchloss::MultiLabelSoftMarginLoss(reduction=kMean)");
}

TEST_CASE("focal family rejects bad inputs with named errors", "[focal_loss][errors]") {
  const auto x = torch::randn({4, 3});
  const auto y = torch::tensor({0, 1, 2, 1});
  const char* focal = "torchloss::focal_loss";
  TORCHLOSS_CHECK_ERROR(F::focal_loss(x, y, F::FocalLossFuncOptions().gamma(-0.5)), focal, "gamma must be >= 0, got -0.5");
  TORCHLOSS_CHECK_ERROR(F::focal_loss(x, y, F::FocalLossFuncOptions().alpha(torch::ones({2}))), focal, "alpha must have shape [3]");
  TORCHLOSS_CHECK_ERROR(F::focal_loss(x, y, F::FocalLossFuncOptions().alpha(torch::tensor({1.0, -1.0, 1.0}))), focal,
                        "alpha must be non-negative");
  TORCHLOSS_CHECK_ERROR(F::focal_loss(x, torch::tensor({0, 1, 5, 1})), focal, "target label 5");
  TORCHLOSS_CHECK_ERROR(F::focal_loss(x.to(torch::kInt), y), focal, "input must be a floating-point");
  TORCHLOSS_CHECK_ERROR(F::focal_loss(x, y.view({2, 2})), focal, "does not match input shape");
  TORCHLOSS_CHECK_ERROR(F::focal_loss(x, y.to(torch::kMeta)), focal, "target is on meta");
  TORCHLOSS_CHECK_ERROR(torchloss::WeightedFocalLoss(torchloss::WeightedFocalLossOptions(torch::Tensor())),
                        "torchloss::WeightedFocalLoss", "alpha is required");

  const char* sigmoid = "torchloss::sigmoid_focal_loss";
  const auto labels = torch::rand({4, 3});
  TORCHLOSS_CHECK_ERROR(F::sigmoid_focal_loss(x, labels, F::SigmoidFocalLossFuncOptions().gamma(-1)), sigmoid, "gamma must be >= 0");
  TORCHLOSS_CHECK_ERROR(F::sigmoid_focal_loss(x, labels, F::SigmoidFocalLossFuncOptions().alpha(1.5)), sigmoid, "alpha must be at most 1");
  TORCHLOSS_CHECK_ERROR(F::sigmoid_focal_loss(x, labels * 3), sigmoid, "outside [0, 1]");
  TORCHLOSS_CHECK_ERROR(F::sigmoid_focal_loss(x, labels.t()), sigmoid, "target shape [3, 4]");

  const char* margin = "torchloss::multilabel_soft_margin_loss";
  TORCHLOSS_CHECK_ERROR(F::multilabel_soft_margin_loss(torch::randn({2, 3, 4}), torch::rand({2, 3, 4})), margin,
                        "input must have shape [N, C]");
  TORCHLOSS_CHECK_ERROR(F::multilabel_soft_margin_loss(x, labels, F::MultiLabelSoftMarginLossFuncOptions().weight(torch::ones({4}))),
                        margin, "weight must have shape [3]");
  TORCHLOSS_CHECK_ERROR(F::multilabel_soft_margin_loss(x, labels - 1), margin, "outside [0, 1]");
}
