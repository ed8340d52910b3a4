// weighted_binary_cross_entropy against the float64 formula and, with alpha < 0, against
// torch's binary_cross_entropy_with_logits (fixtures); extreme logits and bad inputs.
#include <torchloss/torchloss.hpp>

#include <functional>
#include <sstream>
#include <vector>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixture_cases.hpp"
#include "support/gradcheck.hpp"

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {
const char* kFn = "torchloss::weighted_binary_cross_entropy";
}

TEST_CASE("weighted_binary_cross_entropy matches the reference in value and gradient",
          "[weighted_binary_cross_entropy]") {
  // Targets are rounded to the dtype too; the reference used float64 targets.
  torchloss_test::check_fixture_cases(
      "weighted_binary_cross_entropy.pt",
      [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
         const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::weighted_binary_cross_entropy(
            x, fx[key + "/target"].to(dc.dtype),
            F::WeightedBinaryCrossEntropyFuncOptions(opt[0].item<double>())
                .weight(torchloss_test::optional_weight(fx, key + "/weight", dc.dtype))
                .reduction(torchloss_test::reduction_from_code(opt[1].item<int64_t>())));
      },
      2e-3, 2e-2);
}

TEST_CASE("weighted_binary_cross_entropy module carries its weight buffer", "[weighted_binary_cross_entropy]") {
  const auto weight = torch::rand({5}) + 0.5;
  torchloss::WeightedBinaryCrossEntropyLoss loss(torchloss::WeightedBinaryCrossEntropyLossOptions(-1).weight(weight));
  const auto x = torch::randn({6, 5});
  const auto y = torch::rand({6, 5});
  CHECK_THAT(loss(x, y), AllClose(torch::nn::functional::binary_cross_entropy_with_logits(
                             x, y, torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().weight(weight))));
  REQUIRE(loss->named_buffers().contains("weight"));
  auto copy = std::dynamic_pointer_cast<torchloss::WeightedBinaryCrossEntropyLossImpl>(loss->clone());
  CHECK(torch::equal(copy->weight, weight));
  std::ostringstream printed;
  printed << *loss;
  CHECK(printed.str() == "torchloss::WeightedBinaryCrossEntropyLoss(alpha=-1, reduction=kMean)");
}

TEST_CASE("weighted_binary_cross_entropy: empty input gives 0 under kMean", "[weighted_binary_cross_entropy]") {
  auto x = torch::zeros({0, 3}).requires_grad_();
  const auto loss = F::weighted_binary_cross_entropy(x, torch::zeros({0, 3}), {0.25});
  CHECK(loss.item<float>() == 0.0f);
}

TEST_CASE("weighted_binary_cross_entropy stays finite at extreme logits and propagates NaN",
          "[weighted_binary_cross_entropy]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    INFO("dtype " << dc.dtype);
    auto x = torch::tensor({-1e4, 1e4, -1e4, 1e4}).to(dc.dtype).requires_grad_();
    const auto y = torch::tensor({0.0, 1.0, 1.0, 0.0}).to(dc.dtype);
    const auto loss = F::weighted_binary_cross_entropy(
        x, y, F::WeightedBinaryCrossEntropyFuncOptions(0.25).reduction(torch::kNone));
    loss.sum().backward();
    CHECK_THAT(loss, AllClose(torch::tensor({0.0, 0.0, 0.25e4, 0.75e4}), std::max(1e-3, dc.rtol), 1e-6));
    CHECK_THAT(x.grad(), AllClose(torch::tensor({0.0, 0.0, -0.25, 0.75}), 1e-2, 1e-6));
  }
  auto x = torch::tensor({0.5f, std::numeric_limits<float>::quiet_NaN()});
  const auto loss = F::weighted_binary_cross_entropy(
      x, torch::tensor({1.0f, 1.0f}), F::WeightedBinaryCrossEntropyFuncOptions(0.5).reduction(torch::kNone));
  CHECK(std::isfinite(loss[0].item<float>()));
  CHECK(std::isnan(loss[1].item<float>()));
}

TEST_CASE("weighted_binary_cross_entropy passes float64 finite differences", "[weighted_binary_cross_entropy]") {
  torch::manual_seed(3);
  const auto y = torch::rand({4, 3}, torch::kDouble);
  const auto weight = torch::rand({3}, torch::kDouble);
  for (double alpha : {-1.0, 0.3}) {
    const auto f = [&](const torch::Tensor& x) {
      return F::weighted_binary_cross_entropy(
          x, y, F::WeightedBinaryCrossEntropyFuncOptions(alpha).weight(weight).reduction(torch::kNone));
    };
    CHECK(torchloss_test::finite_difference_error(f, torch::randn({4, 3}, torch::kDouble) * 3) <= 1.0);
  }
}

TEST_CASE("weighted_binary_cross_entropy rejects bad inputs with named errors",
          "[weighted_binary_cross_entropy][errors]") {
  const auto x = torch::randn({4, 3});
  const auto y = torch::rand({4, 3});
  const F::WeightedBinaryCrossEntropyFuncOptions plain(0.25);
  TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x.to(torch::kInt), y, plain), kFn, "input must be a floating-point");
  TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, torch::rand({4, 1}), plain), kFn, "target shape [4, 1]");
  TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, y.to(torch::kLong), plain), kFn, "target must be a floating-point");
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, y + 1.5, plain), kFn, "outside [0, 1]");
    TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, y - 2, plain), kFn, "target value -");
  }
  TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, y, F::WeightedBinaryCrossEntropyFuncOptions(1.5)), kFn,
                        "alpha must be at most 1");
  TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, y, F::WeightedBinaryCrossEntropyFuncOptions(0.2).weight(torch::ones({4}))),
                        kFn, "weight shape [4] does not broadcast");
  TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, y, F::WeightedBinaryCrossEntropyFuncOptions(0.2).weight(torch::ones({2, 4, 3}))),
                        kFn, "does not broadcast");
  TORCHLOSS_CHECK_ERROR(F::weighted_binary_cross_entropy(x, y.to(torch::kMeta), plain), kFn, "target is on meta");
}

TEST_CASE("element-wise losses: the gradient written in the forward scales with the incoming gradient and "
          "survives a retained graph",
          "[weighted_binary_cross_entropy][sigmoid_focal_loss][multilabel_soft_margin_loss]") {
  // The reduced losses' CPU forward writes d(loss)/dx; backward hands that buffer on as it is
  // when the incoming gradient is 1. Against the ATen path, which computes it in backward.
  torch::manual_seed(3);
  const auto x0 = torch::randn({7, 5}, torch::kDouble);
  const auto y = (torch::rand({7, 5}, torch::kDouble) > 0.5).to(torch::kDouble);
  const std::vector<std::function<torch::Tensor(const torch::Tensor&)>> losses{
      [&](const torch::Tensor& x) { return F::weighted_binary_cross_entropy(x, y, {0.25}); },
      [&](const torch::Tensor& x) { return F::sigmoid_focal_loss(x, y, F::SigmoidFocalLossFuncOptions().reduction(torch::kSum)); },
      [&](const torch::Tensor& x) { return F::multilabel_soft_margin_loss(x, y); }};
  for (size_t i = 0; i < losses.size(); ++i) {
    INFO("loss " << i);
    torch::Tensor expected;
    {
      torchloss::detail::ScopedAtenPath path(true);
      auto x = x0.clone().requires_grad_();
      losses[i](x).backward();
      expected = x.grad();
    }
    // Scaled by the incoming gradient.
    auto x = x0.clone().requires_grad_();
    (3 * losses[i](x)).backward();
    CHECK_THAT(x.grad(), AllClose(3 * expected, 1e-12, 1e-14));
    // Three times through a retained graph, with incoming gradients 1, 2 and 1: each step adds
    // its own multiple (a buffer scaled in place, or shared with x.grad, would grow instead).
    auto z = x0.clone().requires_grad_();
    const auto loss = losses[i](z);
    loss.backward({}, /*retain_graph=*/true);
    const auto first = z.grad().clone();
    loss.backward(torch::full({}, 2.0, torch::kDouble), /*retain_graph=*/true);
    loss.backward();
    CHECK_THAT(first, AllClose(expected, 1e-12, 1e-14));
    CHECK_THAT(z.grad(), AllClose(4 * expected, 1e-12, 1e-14));
  }
}
