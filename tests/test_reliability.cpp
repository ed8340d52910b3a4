// Reliability (issue #13): the weight-broadcast encoding at its edges, empty inputs on the
// ATen path, one GHM bin definition on every path and dtype, overflow-free GHM-R, defined
// behaviour of the fast exp on NaN and extreme inputs, and loads that refuse to drop a weight.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

using torchloss_test::AllClose;
namespace F = torchloss::functional;
using torchloss::detail::BroadcastWeight;
using torchloss::detail::ScopedAtenPath;

namespace {

/// The weight values element i of the flattened input reads, the slow way: expanded.
torch::Tensor expanded_weight(const torch::Tensor& weight, torch::IntArrayRef input_sizes) {
  return weight.to(torch::kDouble).expand(input_sizes).contiguous().flatten();
}

/// Every element's weight through for_runs, and checks that the runs tile [begin, end).
torch::Tensor weights_by_runs(const BroadcastWeight& b, int64_t n) {
  auto out = torch::full({n}, -1.0, torch::kDouble);
  const double* w = b.defined() ? b.values().data_ptr<double>() : nullptr;
  int64_t next = 0;
  b.for_runs(0, n, w, [&](int64_t begin, int64_t length, const double* wr, auto stride) {
    CHECK(begin == next);
    CHECK(length > 0);
    for (int64_t k = 0; k < length; ++k) out[begin + k] = wr[decltype(stride)::value * k];
    next = begin + length;
  });
  CHECK(next == n);
  return out;
}

}  // namespace

TEST_CASE("BroadcastWeight encodes every broadcast, empty inputs included", "[reliability][weight]") {
  struct Case {
    std::vector<int64_t> input, weight;
  };
  const std::vector<Case> cases = {
      {{6}, {6}},          {{6}, {1}},          {{6}, {}},           {{4, 3}, {3}},        {{4, 3}, {4, 1}},
      {{4, 3}, {1, 1}},    {{2, 3, 5}, {3, 1}}, {{2, 3, 5}, {3, 5}}, {{2, 3, 5}, {2, 1, 5}}, {{2, 3, 5}, {2, 3, 5}},
      {{0}, {1}},          {{0}, {}},           {{0}, {0}},          {{4, 0}, {4, 1}},     {{4, 0}, {1}},
      {{0, 3}, {3}},       {{0, 3}, {0, 1}},    {{2, 0, 5}, {5}},    {{2, 3, 0}, {3, 1}},  {{1, 1}, {1}},
  };
  for (const auto& c : cases) {
    INFO("input " << torch::IntArrayRef(c.input) << ", weight " << torch::IntArrayRef(c.weight));
    const auto weight = torch::rand(c.weight, torch::kDouble) + 0.5;
    const int64_t n = c10::multiply_integers(c.input);
    const BroadcastWeight b(weight, c.input, torch::kDouble);
    REQUIRE(b.defined());
    CHECK(b.inner() >= 1);
    CHECK(b.period() >= 1);
    const auto expected = expanded_weight(weight, c.input);
    for (int64_t i = 0; i < n; ++i) CHECK(b.values().flatten()[b.index(i)].item<double>() == expected[i].item<double>());
    CHECK(torch::equal(weights_by_runs(b, n), expected));
    // The ATen path's form broadcasts to the input without any division.
    const auto input = torch::zeros(c.input, torch::kDouble);
    CHECK(torch::equal(b.expanded(input).flatten(), expected));
    CHECK(torch::equal((b.broadcastable(input.options()) + input).flatten(), expected));
    // The autograd context's round trip.
    const auto rebuilt = BroadcastWeight::from_layout(b.values(), b.layout());
    CHECK(rebuilt.inner() == b.inner());
    CHECK(rebuilt.period() == b.period());
    CHECK(torch::equal(rebuilt.expanded(input), b.expanded(input)));
  }
  // No weight: ones, one run.
  const BroadcastWeight none;
  CHECK_FALSE(none.defined());
  CHECK(torch::equal(weights_by_runs(none, 7), torch::ones({7}, torch::kDouble)));
  CHECK(torch::equal(weights_by_runs(none, 0), torch::ones({0}, torch::kDouble)));
  CHECK(torch::equal(none.expanded(torch::zeros({0, 3})), torch::ones({0, 3})));
}

TEST_CASE("Empty inputs with a size-1 weight run on both paths (issue #13 reproducers)", "[reliability][empty]") {
  for (bool aten : {false, true}) {
    INFO("ATen path " << aten);
    const ScopedAtenPath path(aten);
    for (auto reduction : {0, 1, 2}) {
      const auto pick = [&](auto options) {
        return reduction == 0 ? options.reduction(torch::kNone)
                              : reduction == 1 ? options.reduction(torch::kMean) : options.reduction(torch::kSum);
      };
      auto x = torch::zeros({0}).requires_grad_();
      auto loss = F::weighted_binary_cross_entropy(
          x, torch::zeros({0}), pick(F::WeightedBinaryCrossEntropyFuncOptions(0.25).weight(torch::ones({1}))));
      loss.sum().backward();
      CHECK(x.grad().numel() == 0);
      if (reduction != 0) CHECK(loss.item<double>() == 0);

      auto xm = torch::zeros({0, 1}).requires_grad_();
      auto mlsm = F::multilabel_soft_margin_loss(xm, torch::zeros({0, 1}),
                                                 pick(F::MultiLabelSoftMarginLossFuncOptions().weight(torch::ones({1}))));
      mlsm.sum().backward();
      CHECK(xm.grad().sizes() == xm.sizes());
      if (reduction != 0) CHECK(mlsm.item<double>() == 0);
    }
    auto xg = torch::zeros({4, 0}).requires_grad_();
    auto ghm = F::ghmc_loss(xg, torch::zeros({4}, torch::kLong), torch::ones({4}));
    ghm.backward();
    CHECK(ghm.item<double>() == 0);
    CHECK(xg.grad().sizes() == xg.sizes());
    // Other empty layouts with broadcast weights.
    CHECK(F::weighted_binary_cross_entropy(torch::zeros({0, 3}), torch::zeros({0, 3}),
                                           F::WeightedBinaryCrossEntropyFuncOptions(-1).weight(torch::ones({3})))
              .item<double>() == 0);
    CHECK(F::weighted_binary_cross_entropy(torch::zeros({2, 0, 3}), torch::zeros({2, 0, 3}),
                                           F::WeightedBinaryCrossEntropyFuncOptions(0.5).weight(torch::ones({2, 1, 1})))
              .item<double>() == 0);
    CHECK(F::ghmr_loss(torch::zeros({0, 4}), torch::zeros({0, 4}), torch::ones({0, 4})).item<double>() == 0);
  }
}

namespace {

/// GHM-C's loss and input gradient for x, y on one path.
std::pair<torch::Tensor, torch::Tensor> ghmc_value_and_grad(const torch::Tensor& x, const torch::Tensor& y,
                                                            int64_t bins, bool aten) {
  const ScopedAtenPath path(aten);
  auto input = x.detach().clone().requires_grad_();
  auto loss = F::ghmc_loss(input, y.to(x.scalar_type()), {}, {}, F::GHMCFuncOptions().bins(bins));
  loss.backward();
  return {loss.detach().to(torch::kDouble), input.grad().to(torch::kDouble)};
}

/// Checks that fused float32, ATen float32, fused float64 and ATen float64 give one answer.
void check_ghmc_one_answer(const torch::Tensor& x, const torch::Tensor& y, int64_t bins) {
  const auto reference = ghmc_value_and_grad(x.to(torch::kDouble), y, bins, false);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    for (bool aten : {false, true}) {
      INFO("bins " << bins << ", dtype " << dtype << ", ATen path " << aten);
      const auto result = ghmc_value_and_grad(x.to(dtype), y, bins, aten);
      const double tolerance = dtype == torch::kFloat ? 1e-5 : 1e-12;
      CHECK_THAT(result.first, AllClose(reference.first, tolerance, tolerance));
      // The weights differ by a whole bin's share when one element changes bin: the
      // gradients then differ by far more than the tolerance.
      CHECK_THAT(result.second, AllClose(reference.second, tolerance, tolerance * 1e-3));
    }
  }
}

}  // namespace

TEST_CASE("GHM-C bins g = 0.5 (logits at and near 0) the same on every path and dtype", "[reliability][ghm]") {
  // x = 0 gives g = 0.5 exactly, an edge for even bin counts; its neighbours within 1e-6
  // land on either side.
  std::vector<float> logits = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, -1e-38f};
  for (float step : {1e-8f, 1e-7f, 3e-7f, 1e-6f}) logits.insert(logits.end(), {step, -step});
  for (float v = 0; v < 20; ++v) logits.push_back(std::nextafter(0.0f, v < 10 ? 1.0f : -1.0f) * (1 + v));
  const auto x0 = torch::tensor(logits);
  const int64_t n = x0.numel();
  // Both targets, plus a few ordinary elements so several bins are occupied.
  const auto x = torch::cat({x0, x0, torch::linspace(-4, 4, 16)});
  const auto y = torch::cat({torch::zeros({n}), torch::ones({n}), (torch::arange(16) % 2).to(torch::kFloat)});
  for (int64_t bins : {2, 4, 10, 30, 1000}) check_ghmc_one_answer(x, y, bins);
}

TEST_CASE("GHM-C with 2^24 bins gives one answer on every path and dtype", "[reliability][ghm]") {
  torch::manual_seed(13);
  const auto x = torch::randn({64}) * 3;
  const auto y = (torch::rand({64}) < 0.5).to(torch::kFloat);
  check_ghmc_one_answer(x, y, torchloss::detail::kMaxGHMBins);
  check_ghmc_one_answer(torch::cat({x, torch::zeros({4})}), torch::cat({y, torch::ones({4})}),
                        torchloss::detail::kMaxGHMBins);
}

TEST_CASE("The fused float32 g lies within the GHM bin margin of its float64 value", "[reliability][ghm]") {
  // GHMEdges bins a float g directly only farther than 2^-20 from an edge: the float kernels'
  // g = |σ(x) − y| must be within that of the float64 value.
  const auto x = torch::cat({torch::linspace(-30, 30, 200001), torch::randn({10000}) * 1e-3});
  const float* xs = x.contiguous().data_ptr<float>();
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    for (float y : {0.0f, 1.0f, 0.3f}) {
      float g32;
      double g64;
      (void)torchloss::detail::GHMCTerm::value_and_grad(xs[i], y, {}, g32);
      (void)torchloss::detail::GHMCTerm::value_and_grad(static_cast<double>(xs[i]), static_cast<double>(y), {}, g64);
      worst = std::max(worst, std::abs(std::abs(double(g32)) - std::abs(g64)));
    }
  }
  INFO("worst |g32 - g64| = " << worst);
  CHECK(worst < std::ldexp(1.0, -22));
}

TEST_CASE("GHM-R in float32 is finite wherever float64 is (no overflow in (x - y)^2)", "[reliability][ghm]") {
  const auto x = torch::tensor({3e19f, -1e25f, 1e38f, 0.5f, -2e30f, 1.0f});
  const auto y = torch::tensor({0.0f, 1e20f, -1e38f, 0.0f, 0.0f, 1.0f});
  for (double mu : {0.02, 1e25}) {
    const auto options = F::GHMRFuncOptions().mu(mu);
    auto input64 = x.to(torch::kDouble).requires_grad_();
    const auto expected = F::ghmr_loss(input64, y.to(torch::kDouble), {}, {}, options);
    expected.backward();
    REQUIRE(std::isfinite(expected.item<double>()));
    for (bool aten : {false, true}) {
      INFO("mu " << mu << ", ATen path " << aten);
      const ScopedAtenPath path(aten);
      auto input = x.clone().requires_grad_();
      const auto loss = F::ghmr_loss(input, y, {}, {}, options);
      loss.backward();
      CHECK(std::isfinite(loss.item<float>()));
      CHECK_THAT(loss.to(torch::kDouble), AllClose(expected.detach(), 1e-5));
      CHECK_THAT(input.grad().to(torch::kDouble), AllClose(input64.grad(), 1e-5, 1e-12));
    }
  }
  // Infinite inputs stay non-finite on both paths.
  for (bool aten : {false, true}) {
    const ScopedAtenPath path(aten);
    const float inf = std::numeric_limits<float>::infinity();
    CHECK_FALSE(std::isfinite(F::ghmr_loss(torch::tensor({inf, 1.0f}), torch::tensor({0.0f, 0.0f})).item<float>()));
  }
}

TEST_CASE("fast::exp is defined on NaN, infinities and extreme inputs", "[reliability][fast_math]") {
  namespace fast = torchloss::detail::fast;
  using torchloss::detail::vfloat;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> inputs = {nan, -nan, inf, -inf, 1e30f, -1e30f, 88.0f, -87.0f, 100.0f, -100.0f, 0.0f, 1.0f};
  for (float v : inputs) {
    INFO("x = " << v);
    const float e = fast::exp(v);
    const vfloat lanes = fast::exp(vfloat{v, v, v, v});
    if (std::isnan(v)) {
      CHECK(std::isnan(e));
    } else {
      CHECK(std::isfinite(e));
      CHECK(e > 0);
      // fast::exp clamps its argument to [-87.3365447504, 88.3762626647949] (normal results).
      const double clamped = std::max(std::min(static_cast<double>(v), 88.3762626647949), -87.3365447504);
      CHECK(std::abs(e / std::exp(clamped) - 1) <= 1e-5);
    }
    for (int j = 0; j < 4; ++j) CHECK((std::isnan(e) ? std::isnan(lanes[j]) : lanes[j] == e));
  }
}

namespace {

/// Saves `saved` and loads the state into `target`.
template <typename Saved, typename Target>
void save_and_load(const Saved& saved, Target& target) {
  std::stringstream stream;
  torch::save(saved, stream);
  torch::load(target, stream);
}

}  // namespace

TEST_CASE("Loading a state with a weight into a module without one is refused", "[reliability][serialize]") {
  const auto w = torch::tensor({0.5f, 2.0f, 1.5f});
  {
    torchloss::WeightedCrossEntropyLoss with(torchloss::WeightedCrossEntropyLossOptions().weight(w));
    torchloss::WeightedCrossEntropyLoss without;
    TORCHLOSS_CHECK_ERROR(save_and_load(with, without), "torchloss::WeightedCrossEntropyLoss", "'weight'");
    torchloss::WeightedCrossEntropyLoss same_shape(torchloss::WeightedCrossEntropyLossOptions().weight(torch::ones({3})));
    save_and_load(with, same_shape);
    CHECK(torch::equal(same_shape->weight, w));
  }
  {
    torchloss::WeightedBinaryCrossEntropyLoss with(torchloss::WeightedBinaryCrossEntropyLossOptions(0.25).weight(w));
    torchloss::WeightedBinaryCrossEntropyLoss without(0.25);
    TORCHLOSS_CHECK_ERROR(save_and_load(with, without), "torchloss::WeightedBinaryCrossEntropyLoss", "'weight'");
  }
  {
    torchloss::MultiLabelSoftMarginLoss with(torchloss::MultiLabelSoftMarginLossOptions().weight(w));
    torchloss::MultiLabelSoftMarginLoss without;
    TORCHLOSS_CHECK_ERROR(save_and_load(with, without), "torchloss::MultiLabelSoftMarginLoss", "'weight'");
  }
  {
    torchloss::FocalLoss with(torchloss::FocalLossOptions().alpha(w));
    torchloss::FocalLoss without;
    TORCHLOSS_CHECK_ERROR(save_and_load(with, without), "torchloss::FocalLoss", "'alpha'");
    torchloss::FocalLoss same_shape(torchloss::FocalLossOptions().alpha(torch::ones({3})));
    save_and_load(with, same_shape);
    CHECK(torch::equal(same_shape->alpha, w));
    // WeightedFocalLoss always has α: a plain FocalLoss state without α is LibTorch's error.
    torchloss::WeightedFocalLoss weighted(w);
    CHECK_THROWS(save_and_load(without, weighted));
  }
  {
    const auto counts = torch::tensor({10.0f, 5.0f, 1.0f});
    torchloss::LogitAdjustedCrossEntropyLoss with(torchloss::LogitAdjustedCrossEntropyLossOptions(counts).weight(w));
    torchloss::LogitAdjustedCrossEntropyLoss without(counts);
    TORCHLOSS_CHECK_ERROR(save_and_load(with, without), "torchloss::LogitAdjustedCrossEntropyLoss", "'weight'");
    // LDAM registers its weight always (ones when none was given): a load restores it.
    torchloss::LDAMLoss ldam_with(torchloss::LDAMLossOptions(counts).weight(w));
    torchloss::LDAMLoss ldam_without(counts);
    save_and_load(ldam_with, ldam_without);
    CHECK(torch::equal(ldam_without->weight, w));
  }
  {
    torchloss::MultiTaskLoss with(torchloss::MultiTaskLossOptions(3).learn_uncertainty(true));
    {
      torch::NoGradGuard no_grad;
      with->log_vars.fill_(0.7);
    }
    torchloss::MultiTaskLoss without(torchloss::MultiTaskLossOptions(3));
    TORCHLOSS_CHECK_ERROR(save_and_load(with, without), "torchloss::MultiTaskLoss", "'log_vars'");
    torchloss::MultiTaskLoss learning(torchloss::MultiTaskLossOptions(3).learn_uncertainty(true));
    save_and_load(with, learning);
    CHECK(torch::allclose(learning->log_vars, torch::full({3}, 0.7f)));
  }
}

TEST_CASE("A NaN or Inf in an ignored row stays out of the softmax losses on both paths", "[reliability][softmax]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const auto logits = torch::tensor({{1.0, 2.0, 0.5}, {nan, inf, -inf}, {0.3, -1.0, 2.0}});
  const auto target = torch::tensor({2, -100, 0}, torch::kLong);
  for (bool aten : {false, true}) {
    INFO("ATen path " << aten);
    const ScopedAtenPath path(aten);
    auto x = logits.clone().requires_grad_();
    const auto loss = F::weighted_cross_entropy(x, target) + F::focal_loss(x, target);
    loss.backward();
    CHECK(std::isfinite(loss.item<double>()));
    CHECK(torch::isfinite(x.grad()).all().item<bool>());
    CHECK(torch::equal(x.grad()[1], torch::zeros({3}, torch::kDouble)));
  }
}
