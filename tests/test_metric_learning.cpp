// The metric-learning losses against their references (fixtures: insightface's combined margin
// formula, the SupContrast authors' SupConLoss, Hermans et al.'s batch-hard triplet loss, all
// in float64), their special cases (CosFace, plain scaled CE, SimCLR), finite gradients at
// cos = ±1 and coinciding embeddings, finite differences, modules and bad inputs.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixture_cases.hpp"
#include "support/gradcheck.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {

torch::Tensor grad_of(const torch::Tensor& loss, const torch::Tensor& x) {
  return torch::autograd::grad({loss}, {x}, {}, /*retain_graph=*/true)[0];
}

bool all_finite(const torch::Tensor& t) { return t.isfinite().all().item<bool>(); }

/// Cross entropy of s·(cos − m3·onehot(y)), composed from LibTorch's own function.
torch::Tensor cosface_by_hand(const torch::Tensor& cos, const torch::Tensor& y, double s, double m3) {
  const auto onehot = torch::one_hot(y, cos.size(1)).to(cos.scalar_type());
  return torch::nn::functional::cross_entropy(s * (cos - m3 * onehot), y);
}

}  // namespace

TEST_CASE("combined_margin_loss matches insightface's combined margin in value and gradient", "[combined_margin]") {
  torchloss_test::check_fixture_cases(
      "combined_margin_loss.pt",
      [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
         const torchloss_test::DtypeCase&) {
        const auto opt = fx[key + "/options"];
        return F::combined_margin_loss(x, fx[key + "/target"],
                                       F::CombinedMarginLossFuncOptions()
                                           .scale(opt[0].item<double>())
                                           .angular_margin(opt[1].item<double>())
                                           .additive_margin(opt[2].item<double>())
                                           .easy_margin(opt[3].item<double>() != 0)
                                           .ignore_index(opt[4].item<int64_t>())
                                           .reduction(torchloss_test::reduction_from_code(opt[5].item<int64_t>())));
      },
      0, 0, /*scale_grad_atol=*/true);
}

TEST_CASE("supervised_contrastive_loss matches the SupContrast authors' SupConLoss", "[supcon]") {
  torchloss_test::check_fixture_cases(
      "supervised_contrastive_loss.pt",
      [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
         const torchloss_test::DtypeCase&) {
        const auto opt = fx[key + "/options"];
        return F::supervised_contrastive_loss(
            x, fx.get_or_undefined(key + "/target"),
            F::SupConLossFuncOptions()
                .temperature(opt[0].item<double>())
                .base_temperature(opt[1].item<double>())
                .contrast_mode(opt[2].item<double>() != 0 ? torchloss::ContrastMode::one : torchloss::ContrastMode::all)
                .reduction(torchloss_test::reduction_from_code(opt[3].item<int64_t>())));
      },
      0, 0, /*scale_grad_atol=*/true);
}

TEST_CASE("batch_hard_triplet_loss matches the batch-hard formula", "[batch_hard_triplet]") {
  torchloss_test::check_fixture_cases(
      "batch_hard_triplet_loss.pt",
      [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
         const torchloss_test::DtypeCase&) {
        const auto opt = fx[key + "/options"];
        return F::batch_hard_triplet_loss(x, fx[key + "/target"],
                                          F::BatchHardTripletLossFuncOptions()
                                              .margin(opt[0].item<double>())
                                              .squared(opt[1].item<double>() != 0)
                                              .soft_margin(opt[2].item<double>() != 0)
                                              .reduction(torchloss_test::reduction_from_code(opt[3].item<int64_t>())));
      },
      0, 0, /*scale_grad_atol=*/true);
}

TEST_CASE("combined margin presets: CosFace, ArcFace and plain scaled cross entropy", "[combined_margin]") {
  torch::manual_seed(21);
  auto cos = (torch::rand({9, 6}, torch::kDouble) * 2 - 1).requires_grad_();
  const auto y = torch::randint(6, {9});
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const auto cosface = F::combined_margin_loss(cos, y, torchloss::CombinedMarginLossOptions::cosface(30, 0.35));
    const auto expected_cosface = cosface_by_hand(cos, y, 30, 0.35);
    CHECK_THAT(cosface, AllClose(expected_cosface, 1e-12));
    CHECK_THAT(grad_of(cosface, cos), AllClose(grad_of(expected_cosface, cos), 1e-12, 1e-14));
    const auto plain = F::combined_margin_loss(cos, y, F::CombinedMarginLossFuncOptions().angular_margin(0).scale(8));
    CHECK_THAT(plain, AllClose(torch::nn::functional::cross_entropy(8 * cos, y), 1e-12));
    // The defaults are ArcFace's: s = 64, m2 = 0.5, and arcface() spells them.
    const auto arcface = F::combined_margin_loss(cos, y, torchloss::CombinedMarginLossOptions::arcface());
    CHECK_THAT(arcface, AllClose(F::combined_margin_loss(cos, y), 1e-15));
    const auto theta = torch::acos(cos.detach().gather(1, y.unsqueeze(1)));
    const auto psi = torch::where(theta + 0.5 <= M_PI, torch::cos(theta + 0.5),
                                  cos.detach().gather(1, y.unsqueeze(1)) - 0.5 * std::sin(0.5));
    const auto by_hand = torch::nn::functional::cross_entropy(64 * cos.detach().scatter(1, y.unsqueeze(1), psi), y);
    CHECK_THAT(arcface, AllClose(by_hand, 1e-12));
  }
}

TEST_CASE("combined margin has a finite gradient at cos = +-1, where autograd's is not", "[combined_margin]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    for (bool aten_path : {false, true}) {
      for (bool easy : {false, true}) {
        INFO("dtype " << dc.dtype << ", aten path " << aten_path << ", easy margin " << easy);
        torchloss::detail::ScopedAtenPath path(aten_path);
        auto cos = torch::tensor({{1.0, 0.2, -0.3}, {-0.5, -1.0, 0.1}, {0.3, 0.4, 1.0}, {-1.0, 1.0, 0.0}})
                       .to(dc.dtype)
                       .requires_grad_();
        const auto y = torch::tensor({0, 1, 2, 0});
        const auto options = F::CombinedMarginLossFuncOptions().easy_margin(easy).reduction(torch::kSum);
        const auto loss = F::combined_margin_loss(cos, y, options);
        CHECK(all_finite(loss));
        const auto grad = grad_of(loss, cos);
        CHECK(all_finite(grad));
        // At cos = 1 the slope of psi is its value at the nearest cosine below 1.
        if (dc.dtype == torch::kDouble) {
          const double below = std::nextafter(1.0, 0.0);
          auto near = torch::tensor({{below, 0.2, -0.3}}, torch::kDouble).requires_grad_();
          const auto near_grad = grad_of(F::combined_margin_loss(near, torch::tensor({0}), options), near);
          CHECK_THAT(grad[0], AllClose(near_grad[0], 1e-6));
        }
      }
    }
  }
  // Through NormedLinear: a feature on its class's weight row (cos = 1) gets a finite
  // gradient, where autograd through sqrt(1 - cos^2) makes it NaN.
  torch::manual_seed(22);
  torchloss::NormedLinear head(4, 3);
  auto features = head->weight.detach().clone().requires_grad_();
  const auto y = torch::tensor({0, 1, 2});
  const auto logits = head(features);
  const auto ours = F::combined_margin_loss(logits, y);
  CHECK(all_finite(grad_of(ours, features)));
  const auto c = logits.gather(1, y.unsqueeze(1)).clamp(-1, 1);
  const auto composed_psi = c * std::cos(0.5) - torch::sqrt(1 - c * c) * std::sin(0.5);
  const auto composed = torch::nn::functional::cross_entropy(64 * logits.scatter(1, y.unsqueeze(1), composed_psi), y);
  CHECK_FALSE(all_finite(grad_of(composed, features)));
}

TEST_CASE("metric-learning losses are finite at extreme inputs", "[combined_margin][supcon][batch_hard_triplet]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    for (bool aten_path : {false, true}) {
      INFO("dtype " << dc.dtype << ", aten path " << aten_path);
      torchloss::detail::ScopedAtenPath path(aten_path);
      // Cosines far outside [-1, 1] (a head that is not normalised).
      auto cos = torch::tensor({{1e4, -1e4, 0.0}, {-1e4, 1e4, 3.0}}).to(dc.dtype).requires_grad_();
      const auto y = torch::tensor({1, 0});
      const auto margin = F::combined_margin_loss(cos, y, F::CombinedMarginLossFuncOptions().scale(1));
      CHECK(all_finite(margin));
      CHECK(all_finite(grad_of(margin, cos)));
      // Features that are not normalised: dot products of 1e4 / 0.07.
      torch::manual_seed(23);
      auto features = (torch::randn({6, 2, 3}) * 100).to(dc.dtype).requires_grad_();
      const auto labels = torch::tensor({0, 1, 0, 2, 1, 0});
      const auto supcon = F::supervised_contrastive_loss(features, labels);
      if (dc.dtype != torch::kHalf) CHECK(all_finite(supcon));  // losses of 1e5 overflow float16's range
      CHECK(all_finite(grad_of(supcon, features)));
      auto embeddings = (torch::randn({6, 3}) * 1e4).to(dc.dtype).requires_grad_();
      const auto triplet = F::batch_hard_triplet_loss(embeddings, labels, F::BatchHardTripletLossFuncOptions().soft_margin(true));
      if (dc.dtype != torch::kHalf) CHECK(all_finite(triplet));  // distances of 1e4 overflow float16's range
      CHECK(all_finite(grad_of(triplet, embeddings)));
    }
  }
}

TEST_CASE("batch-hard triplet gradient is finite when embeddings coincide", "[batch_hard_triplet]") {
  for (bool aten_path : {false, true}) {
    for (bool squared : {false, true}) {
      INFO("aten path " << aten_path << ", squared " << squared);
      torchloss::detail::ScopedAtenPath path(aten_path);
      // Anchor 0's only positive is itself duplicated, and its nearest negative coincides too.
      auto x = torch::tensor({{1.0, 2.0}, {1.0, 2.0}, {1.0, 2.0}, {3.0, -1.0}}, torch::kDouble).requires_grad_();
      const auto y = torch::tensor({0, 0, 1, 1});
      const auto loss = F::batch_hard_triplet_loss(
          x, y, F::BatchHardTripletLossFuncOptions().margin(0.3).squared(squared).reduction(torch::kNone));
      // Anchors 0, 1: positive and negative both at distance 0; anchor 2: positive x3, negative
      // at 0; anchor 3: positive x2 and negative x0 both at sqrt(13).
      const double far = squared ? 13.0 : std::sqrt(13.0);
      CHECK_THAT(loss.detach(), AllClose(torch::tensor({0.3, 0.3, far + 0.3, 0.3}, torch::kDouble), 1e-12));
      CHECK(all_finite(grad_of(loss.sum(), x)));
    }
  }
}

/// Hermans et al.'s batch-hard triplet loss (hinge, kNone) and its gradient for a kSum of it,
/// by brute force in float64 over 1-D or 2-D embeddings: exact distances (std::hypot), the
/// farthest positive and nearest negative of each anchor (the first on ties).
std::pair<torch::Tensor, torch::Tensor> triplet_by_hand(const torch::Tensor& x_in, const std::vector<int64_t>& y,
                                                        double margin) {
  const auto x = x_in.to(torch::kDouble).contiguous();
  const int64_t n = x.size(0), dims = x.size(1);
  const auto a = x.accessor<double, 2>();
  const auto dist = [&](int64_t i, int64_t j) { return std::hypot(a[i][0] - a[j][0], dims > 1 ? a[i][1] - a[j][1] : 0.0); };
  auto loss = torch::zeros({n}, torch::kDouble);
  auto grad = torch::zeros({n, dims}, torch::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    int64_t p = -1, q = -1;
    for (int64_t j = 0; j < n; ++j) {
      if (y[j] == y[i] && j != i && (p < 0 || dist(i, j) > dist(i, p))) p = j;
      if (y[j] != y[i] && (q < 0 || dist(i, j) < dist(i, q))) q = j;
    }
    if (p < 0 || q < 0) continue;
    const double gap = dist(i, p) - dist(i, q) + margin;
    if (gap <= 0) continue;
    loss[i] = gap;
    for (int64_t k = 0; k < dims; ++k) {
      const double up = (a[i][k] - a[p][k]) / dist(i, p), un = (a[i][k] - a[q][k]) / dist(i, q);
      grad[i][k] += up - un;
      grad[p][k] -= up;
      grad[q][k] += un;
    }
  }
  return {loss, grad};
}

TEST_CASE("batch-hard triplet loss does not overflow float32 at embeddings of 1e30", "[batch_hard_triplet]") {
  // Distances of 1e30 (squares of 1e60, beyond float32): the loss and gradient are in range.
  const std::vector<int64_t> labels{0, 1, 0, 1, 1};
  const auto y = torch::tensor(labels);
  const auto values = torch::tensor({{0.0, 0.0}, {1e30, 0.0}, {3e30, 1.0}, {4e30, -2.0}, {2.0, 3e29}}, torch::kFloat);
  const auto [expected_loss, expected_grad] = triplet_by_hand(values, labels, 0.3);
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    auto x = values.clone().requires_grad_();
    const auto loss = F::batch_hard_triplet_loss(x, y, F::BatchHardTripletLossFuncOptions().reduction(torch::kNone));
    CHECK(loss.scalar_type() == torch::kFloat);
    CHECK(all_finite(loss));
    CHECK_THAT(loss.detach().to(torch::kDouble), AllClose(expected_loss, 1e-6));
    const auto grad = grad_of(loss.sum(), x);
    CHECK(all_finite(grad));
    CHECK_THAT(grad.to(torch::kDouble), AllClose(expected_grad, 1e-6, 1e-6));
  }
}

TEST_CASE("batch-hard triplet mining: a NaN distance is the hardest on both paths", "[batch_hard_triplet]") {
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  const auto inf = std::numeric_limits<double>::infinity();
  // Row 4 (NaN or Inf) comes after finite candidates of every anchor; row 5 has no positive.
  for (double bad : {nan, inf, -inf}) {
    const auto values = torch::tensor({{0.0, 0.0}, {1.0, 0.0}, {5.0, 0.0}, {7.0, 0.0}, {bad, 0.0}, {9.0, 9.0}});
    const auto y = torch::tensor({0, 0, 1, 1, 1, 2});
    torch::Tensor first_grad;
    for (bool aten_path : {false, true}) {
      INFO("bad value " << bad << ", aten path " << aten_path);
      torchloss::detail::ScopedAtenPath path(aten_path);
      auto x = values.clone().requires_grad_();
      const auto loss = F::batch_hard_triplet_loss(x, y, F::BatchHardTripletLossFuncOptions().reduction(torch::kNone));
      // Anchors 0 to 4 all have row 4 as a candidate: NaN; anchor 5 is left out.
      CHECK(loss.detach().slice(0, 0, 5).isnan().all().item<bool>());
      CHECK(loss[5].item<double>() == 0);
      const auto grad = grad_of(loss.sum(), x);
      // Row 5 is nobody's hardest negative (row 4 is): its gradient is 0.
      CHECK(torch::equal(grad[5], torch::zeros({2})));
      // Rows 0 to 4 (the anchors and the rows they chose) carry NaN.
      CHECK(grad.slice(0, 0, 5).isnan().any(1).all().item<bool>());
      if (!first_grad.defined()) {
        first_grad = grad;
      } else {
        CHECK(torch::equal(grad.isnan(), first_grad.isnan()));
      }
    }
  }
}

TEST_CASE("SimCLR is SupCon with each sample its own class", "[supcon]") {
  torch::manual_seed(24);
  auto features = torch::nn::functional::normalize(torch::randn({6, 2, 4}, torch::kDouble),
                                                   torch::nn::functional::NormalizeFuncOptions().dim(2))
                      .requires_grad_();
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const auto simclr = F::supervised_contrastive_loss(features, torch::Tensor());
    const auto own_class = F::supervised_contrastive_loss(features, torch::arange(6) * 7);
    CHECK_THAT(simclr, AllClose(own_class, 1e-14));
    CHECK_THAT(grad_of(simclr, features), AllClose(grad_of(own_class, features), 1e-12, 1e-14));
    // Dimensions after the second are flattened, as the authors do.
    const auto as_4d = F::supervised_contrastive_loss(features.view({6, 2, 2, 2}), torch::Tensor());
    CHECK_THAT(as_4d, AllClose(simclr, 1e-14));
  }
}

TEST_CASE("SupCon tells apart labels that share their low 32 bits", "[supcon]") {
  // The fused pass compares compact int32 class ids: labels 0 and 2^32 (equal after a
  // truncating cast), negative and huge labels must stay distinct classes.
  torch::manual_seed(26);
  auto features = torch::nn::functional::normalize(torch::randn({20, 2, 6}),
                                                   torch::nn::functional::NormalizeFuncOptions().dim(2))
                      .requires_grad_();
  const int64_t big = int64_t{1} << 32;
  const auto wide = torch::tensor({0L, big, 2L, -5L, big * 7 + 2, 0L, big, 2L, -5L, big * 7 + 2,
                                   0L, big, 2L, -5L, big * 7 + 2, 0L, 0L, 2L, -5L, 9L});
  const auto compact = torch::tensor({0L, 1L, 2L, 3L, 4L, 0L, 1L, 2L, 3L, 4L, 0L, 1L, 2L, 3L, 4L, 0L, 0L, 2L, 3L, 5L});
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (auto mode : {torchloss::ContrastMode::all, torchloss::ContrastMode::one}) {
      const auto options = F::SupConLossFuncOptions().temperature(0.1).contrast_mode(mode);
      const auto with_wide = F::supervised_contrastive_loss(features, wide, options);
      const auto with_compact = F::supervised_contrastive_loss(features, compact, options);
      CHECK_THAT(with_wide, AllClose(with_compact, 0, 0));
      CHECK_THAT(grad_of(with_wide, features), AllClose(grad_of(with_compact, features), 0, 0));
    }
  }
}

TEST_CASE("metric-learning losses pass float64 finite differences", "[combined_margin][supcon][batch_hard_triplet]") {
  torch::manual_seed(25);
  const auto y = torch::tensor({0, 3, -100, 1, 4, 3});
  for (bool easy : {false, true}) {
    for (double m2 : {0.0, 0.5, 1.2}) {
      INFO("easy " << easy << ", m2 " << m2);
      const auto margin = [&](const torch::Tensor& x) {
        return F::combined_margin_loss(
            x, y,
            F::CombinedMarginLossFuncOptions().scale(4).angular_margin(m2).additive_margin(0.1).easy_margin(easy).reduction(
                torch::kNone));
      };
      auto cos0 = torch::rand({6, 5}, torch::kDouble) * 1.8 - 0.9;
      // Away from the kinks at the branch thresholds.
      cos0 = cos0.masked_fill((cos0 - std::cos(M_PI - m2)).abs() < 1e-3 | cos0.abs() < 1e-3, 0.5);
      CHECK(torchloss_test::finite_difference_error(margin, cos0) <= 1.0);
    }
  }
  const auto labels = torch::tensor({0, 1, 0, 2, 1, 0});
  for (bool one : {false, true}) {
    INFO("contrast mode one " << one);
    const auto supcon = [&](const torch::Tensor& x) {
      return F::supervised_contrastive_loss(
          x, labels,
          F::SupConLossFuncOptions().temperature(0.5).contrast_mode(one ? torchloss::ContrastMode::one
                                                                        : torchloss::ContrastMode::all).reduction(torch::kNone));
    };
    CHECK(torchloss_test::finite_difference_error(supcon, torch::randn({6, 2, 3}, torch::kDouble)) <= 1.0);
  }
  for (bool soft : {false, true}) {
    for (bool squared : {false, true}) {
      INFO("soft " << soft << ", squared " << squared);
      const auto triplet = [&](const torch::Tensor& x) {
        return F::batch_hard_triplet_loss(
            x, labels, F::BatchHardTripletLossFuncOptions().margin(2.0).soft_margin(soft).squared(squared).reduction(torch::kNone));
      };
      CHECK(torchloss_test::finite_difference_error(triplet, torch::randn({6, 3}, torch::kDouble)) <= 1.0);
    }
  }
}

TEST_CASE("metric-learning losses take empty batches and propagate NaN", "[combined_margin][supcon][batch_hard_triplet]") {
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    auto cos = torch::zeros({0, 4}).requires_grad_();
    const auto empty_labels = torch::zeros({0}, torch::kLong);
    const auto margin = F::combined_margin_loss(cos, empty_labels);
    CHECK(margin.item<double>() == 0);
    CHECK(grad_of(margin, cos).sizes() == cos.sizes());
    auto features = torch::zeros({0, 2, 3}).requires_grad_();
    const auto supcon = F::supervised_contrastive_loss(features, empty_labels);
    CHECK(supcon.item<double>() == 0);
    CHECK(grad_of(supcon, features).sizes() == features.sizes());
    auto embeddings = torch::zeros({0, 3}).requires_grad_();
    const auto triplet = F::batch_hard_triplet_loss(embeddings, empty_labels);
    CHECK(triplet.item<double>() == 0);
    CHECK(grad_of(triplet, embeddings).sizes() == embeddings.sizes());
    // All anchors left out / all targets ignored: 0 with a zero gradient.
    auto lone = torch::randn({3, 2}).requires_grad_();
    const auto no_pairs = F::batch_hard_triplet_loss(lone, torch::tensor({0, 1, 2}));
    CHECK(no_pairs.item<double>() == 0);
    CHECK(torch::equal(grad_of(no_pairs, lone), torch::zeros_like(lone)));
    auto some_cos = torch::rand({3, 4}).requires_grad_();
    const auto ignored = F::combined_margin_loss(some_cos, torch::full({3}, -100, torch::kLong));
    CHECK(ignored.item<double>() == 0);
    CHECK(torch::equal(grad_of(ignored, some_cos), torch::zeros_like(some_cos)));

    const auto nan = std::numeric_limits<double>::quiet_NaN();
    const auto nan_cos = torch::tensor({{0.5, nan, -0.2}, {0.1, 0.2, 0.3}});
    const auto per_sample = F::combined_margin_loss(nan_cos, torch::tensor({1, 0}),
                                                    F::CombinedMarginLossFuncOptions().reduction(torch::kNone));
    CHECK(std::isnan(per_sample[0].item<double>()));
    CHECK(std::isfinite(per_sample[1].item<double>()));
    auto nan_features = torch::randn({4, 2, 3});
    nan_features[1][0][2] = nan;
    CHECK(std::isnan(F::supervised_contrastive_loss(nan_features, torch::tensor({0, 1, 0, 1})).item<double>()));
    auto nan_embeddings = torch::randn({4, 3});
    nan_embeddings[2][1] = nan;
    CHECK(std::isnan(F::batch_hard_triplet_loss(nan_embeddings, torch::tensor({0, 1, 0, 1})).item<double>()));
  }
}

TEST_CASE("metric-learning modules match their functions", "[combined_margin][supcon][batch_hard_triplet]") {
  torch::manual_seed(26);
  const auto cos = torch::rand({5, 4}) * 2 - 1;
  const auto y = torch::tensor({0, 3, 1, 1, 2});
  torchloss::CombinedMarginLoss cosface(torchloss::CombinedMarginLossOptions::cosface());
  CHECK_THAT(cosface(cos, y), AllClose(F::combined_margin_loss(cos, y, torchloss::CombinedMarginLossOptions::cosface())));
  CHECK(cosface->parameters().empty());
  CHECK(cosface->buffers().empty());
  std::ostringstream printed;
  printed << *cosface;
  CHECK(printed.str() ==
        "torchloss::CombinedMarginLoss(scale=64, angular_margin=0, additive_margin=0.35, easy_margin=false, "
        "ignore_index=-100, reduction=kMean)");
  auto cloned = std::dynamic_pointer_cast<torchloss::CombinedMarginLossImpl>(cosface->clone());
  CHECK(cloned->options.additive_margin() == 0.35);

  const auto features = torch::randn({5, 2, 3});
  torchloss::SupConLoss supcon(torchloss::SupConLossOptions().temperature(0.2).contrast_mode(torchloss::ContrastMode::one));
  CHECK_THAT(supcon(features, y),
             AllClose(F::supervised_contrastive_loss(
                 features, y, F::SupConLossFuncOptions().temperature(0.2).contrast_mode(torchloss::ContrastMode::one))));
  std::ostringstream printed_supcon;
  printed_supcon << *supcon;
  CHECK(printed_supcon.str() ==
        "torchloss::SupConLoss(temperature=0.2, base_temperature=0.07, contrast_mode=one, reduction=kMean, "
        "distributed=false)");

  const auto embeddings = torch::randn({5, 3});
  torchloss::BatchHardTripletLoss triplet(torchloss::BatchHardTripletLossOptions().margin(0.5).squared(true));
  CHECK_THAT(triplet(embeddings, y),
             AllClose(F::batch_hard_triplet_loss(embeddings, y, F::BatchHardTripletLossFuncOptions().margin(0.5).squared(true))));
  std::ostringstream printed_triplet;
  printed_triplet << *triplet;
  CHECK(printed_triplet.str() ==
        "torchloss::BatchHardTripletLoss(margin=0.5, squared=true, soft_margin=false, reduction=kMean)");
}

TEST_CASE("metric-learning losses reject bad inputs with named errors", "[errors]") {
  const auto cos = torch::rand({4, 5});
  const auto y = torch::tensor({0, 1, 4, 1});
  const char* margin = "torchloss::combined_margin_loss";
  using MarginOptions = F::CombinedMarginLossFuncOptions;
  TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos, y, MarginOptions().scale(0)), margin,
                        "scale must be a finite number > 0, got 0");
  TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos, y, MarginOptions().angular_margin(-0.1)), margin,
                        "angular_margin must be in [0, 3.14159");
  TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos, y, MarginOptions().additive_margin(-1)), margin,
                        "additive_margin must be a finite number >= 0, got -1");
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos, torch::tensor({0, 1, 7, 1})), margin, "target label 7");
    TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos, torch::tensor({0, -3, 2, 1})), margin, "target label -3");
  }
  TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos, y.to(torch::kInt)), margin, "target must hold int64");
  TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos.view({4, 5, 1}), y.view({4, 1})), margin,
                        "input must have shape [N, C] (cosine logits), got [4, 5, 1]");
  TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(cos, torch::tensor({0, 1})), margin, "target shape [2]");
  TORCHLOSS_CHECK_ERROR(F::combined_margin_loss(y.view({2, 2}), y.narrow(0, 0, 2)), margin,
                        "input must be a floating-point tensor");
  TORCHLOSS_CHECK_ERROR(torchloss::CombinedMarginLoss(torchloss::CombinedMarginLossOptions().scale(-1)),
                        "torchloss::CombinedMarginLoss", "scale must be");

  const char* supcon = "torchloss::supervised_contrastive_loss";
  const auto features = torch::randn({4, 2, 3});
  TORCHLOSS_CHECK_ERROR(F::supervised_contrastive_loss(torch::randn({4, 3}), y), supcon,
                        "features must have shape [N, V, D] (V views; at least 3 dimensions), got [4, 3]");
  TORCHLOSS_CHECK_ERROR(F::supervised_contrastive_loss(features, torch::tensor({0, 1})), supcon,
                        "labels must have shape [4] (one per sample of features [4, 2, 3]), got [2]");
  TORCHLOSS_CHECK_ERROR(F::supervised_contrastive_loss(features, y.to(torch::kFloat)), supcon,
                        "labels must hold int64 class indices, got Float");
  TORCHLOSS_CHECK_ERROR(F::supervised_contrastive_loss(features, y, F::SupConLossFuncOptions().temperature(0)), supcon,
                        "temperature must be a finite number > 0, got 0");
  TORCHLOSS_CHECK_ERROR(F::supervised_contrastive_loss(features, y, F::SupConLossFuncOptions().base_temperature(-1)),
                        supcon, "base_temperature must be a finite number > 0, got -1");
  TORCHLOSS_CHECK_ERROR(F::supervised_contrastive_loss(features.to(torch::kInt), y), supcon,
                        "features must be a floating-point tensor");
  TORCHLOSS_CHECK_ERROR(torchloss::SupConLoss(torchloss::SupConLossOptions().temperature(-2)), "torchloss::SupConLoss",
                        "temperature must be a finite number > 0, got -2");

  const char* triplet = "torchloss::batch_hard_triplet_loss";
  const auto embeddings = torch::randn({4, 3});
  TORCHLOSS_CHECK_ERROR(F::batch_hard_triplet_loss(embeddings.view({4, 3, 1}), y), triplet,
                        "embeddings must have shape [N, D], got [4, 3, 1]");
  TORCHLOSS_CHECK_ERROR(F::batch_hard_triplet_loss(embeddings, torch::tensor({0, 1})), triplet,
                        "labels must have shape [4] (one per row of embeddings [4, 3]), got [2]");
  TORCHLOSS_CHECK_ERROR(F::batch_hard_triplet_loss(embeddings, torch::Tensor()), triplet, "labels is an undefined tensor");
  TORCHLOSS_CHECK_ERROR(F::batch_hard_triplet_loss(embeddings, y, F::BatchHardTripletLossFuncOptions().margin(-0.5)),
                        triplet, "margin must be a finite number >= 0, got -0.5");
  TORCHLOSS_CHECK_ERROR(torchloss::BatchHardTripletLoss(torchloss::BatchHardTripletLossOptions().margin(-1)),
                        "torchloss::BatchHardTripletLoss", "margin must be");
}
