// The long-tail and multi-task losses against their references (fixtures: PyTorch's
// cross_entropy of the adjusted logits, the LDAM-DRW authors' LDAMLoss, the asymmetric-loss
// formula checked against Alibaba-MIIL's code), their special cases (balanced softmax,
// scaled CE, BCE), stability, modules (NormedLinear, deferred weights, MultiTaskLoss), bad inputs.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixture_cases.hpp"
#include "support/gradcheck.hpp"

#include <cstdio>
#include <filesystem>
#include <unistd.h>

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {

torch::Tensor grad_of(const torch::Tensor& loss, const torch::Tensor& x) {
  return torch::autograd::grad({loss}, {x}, {}, /*retain_graph=*/true)[0];
}

const torch::Tensor& counts5() {
  static const torch::Tensor counts = torch::tensor({900, 12, 250, 3, 60});
  return counts;
}

}  // namespace

TEST_CASE("logit_adjusted_cross_entropy matches cross entropy of the adjusted logits", "[logit_adjusted]") {
  torchloss_test::check_fixture_cases(
      "logit_adjusted_cross_entropy.pt", [](const torchloss_test::Fixture& fx, const std::string& key,
                                            const torch::Tensor& x, const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::logit_adjusted_cross_entropy(
            x, fx[key + "/target"],
            F::LogitAdjustedCrossEntropyFuncOptions(fx[key + "/counts"])
                .tau(opt[0].item<double>())
                .ignore_index(opt[1].item<int64_t>())
                .label_smoothing(opt[2].item<double>())
                .weight(torchloss_test::optional_weight(fx, key + "/weight", dc.dtype))
                .reduction(torchloss_test::reduction_from_code(opt[3].item<int64_t>())));
      });
}

TEST_CASE("ldam_loss matches the LDAM-DRW reference in value and gradient", "[ldam]") {
  torchloss_test::check_fixture_cases(
      "ldam_loss.pt", [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
                         const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::ldam_loss(x, fx[key + "/target"],
                            F::LDAMLossFuncOptions(fx[key + "/counts"])
                                .max_margin(opt[0].item<double>())
                                .scale(opt[1].item<double>())
                                .ignore_index(opt[2].item<int64_t>())
                                .weight(torchloss_test::optional_weight(fx, key + "/weight", dc.dtype))
                                .reduction(torchloss_test::reduction_from_code(opt[3].item<int64_t>())));
      },
      0, 0, /*scale_grad_atol=*/true);
}

TEST_CASE("asymmetric_loss matches the asymmetric-loss formula in value and gradient", "[asymmetric]") {
  torchloss_test::check_fixture_cases(
      "asymmetric_loss.pt",
      [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
         const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::asymmetric_loss(x, fx[key + "/target"].to(dc.dtype),
                                  F::AsymmetricLossFuncOptions()
                                      .gamma_pos(opt[0].item<double>())
                                      .gamma_neg(opt[1].item<double>())
                                      .clip(opt[2].item<double>())
                                      .detach_focusing(opt[3].item<double>() != 0)
                                      .reduction(torchloss_test::reduction_from_code(opt[4].item<int64_t>())));
      },
      2e-3, 2e-2);
}

TEST_CASE("logit adjustment with tau = 1 is the balanced softmax", "[logit_adjusted]") {
  torch::manual_seed(11);
  const auto counts = counts5();
  auto x = torch::randn({7, 5}, torch::kDouble).requires_grad_();
  const auto y = torch::randint(5, {7});
  // Ren et al.'s form, written with exponentials: -log(n_y e^{x_y} / sum_c n_c e^{x_c}).
  const auto n = counts.to(torch::kDouble);
  const auto scores = n * x.exp();
  const auto balanced = -(scores.gather(1, y.unsqueeze(1)).squeeze(1) / scores.sum(1)).log();
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const auto adjusted = F::logit_adjusted_cross_entropy(
        x, y, F::LogitAdjustedCrossEntropyFuncOptions(counts).tau(1.0).reduction(torch::kNone));
    CHECK_THAT(adjusted, AllClose(balanced, 1e-12));
    CHECK_THAT(grad_of(adjusted.sum(), x), AllClose(grad_of(balanced.sum(), x), 1e-12, 1e-14));
    // tau = 0 is plain cross entropy; float counts work like integer ones.
    const auto plain = F::logit_adjusted_cross_entropy(
        x, y, F::LogitAdjustedCrossEntropyFuncOptions(counts.to(torch::kFloat)).tau(0.0));
    CHECK_THAT(plain, AllClose(torch::nn::functional::cross_entropy(x, y), 1e-12));
  }
}

TEST_CASE("ldam_loss with max_margin 0 is cross entropy of the scaled logits", "[ldam]") {
  torch::manual_seed(12);
  auto x = (torch::rand({8, 5}, torch::kDouble) * 2 - 1).requires_grad_();
  const auto y = torch::randint(5, {8});
  const auto weight = torch::rand({5}, torch::kDouble) + 0.1;
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const auto ldam = F::ldam_loss(x, y, F::LDAMLossFuncOptions(counts5()).max_margin(0).scale(16).weight(weight));
    const auto ce = torch::nn::functional::cross_entropy(
        16 * x, y, torch::nn::functional::CrossEntropyFuncOptions().weight(weight));
    CHECK_THAT(ldam, AllClose(ce, 1e-12));
    CHECK_THAT(grad_of(ldam, x), AllClose(grad_of(ce, x), 1e-12, 1e-14));
    // The margins: m_c = M (min n / n_c)^{1/4}, on the target logit only.
    const auto margins = 0.5 * (3.0 / counts5().to(torch::kDouble)).pow(0.25);
    const auto shifted = x - torch::one_hot(y, 5).to(torch::kDouble) * margins.index_select(0, y).unsqueeze(1);
    const auto expected = torch::nn::functional::cross_entropy(30 * shifted, y);
    CHECK_THAT(F::ldam_loss(x, y, F::LDAMLossFuncOptions(counts5())), AllClose(expected, 1e-12));
  }
}

TEST_CASE("asymmetric_loss with zero gammas and no clip is binary cross entropy", "[asymmetric]") {
  torch::manual_seed(13);
  auto x = (torch::randn({6, 7}, torch::kDouble) * 3).requires_grad_();
  const auto labels = (torch::rand({6, 7}) > 0.6).to(torch::kDouble);
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const auto asl = F::asymmetric_loss(x, labels, F::AsymmetricLossFuncOptions().gamma_pos(0).gamma_neg(0).clip(0));
    const auto bce = torch::nn::functional::binary_cross_entropy_with_logits(x, labels);
    CHECK_THAT(asl, AllClose(bce, 1e-12));
    CHECK_THAT(grad_of(asl, x), AllClose(grad_of(bce, x), 1e-12, 1e-14));
    // The defaults: gamma+ 0, gamma- 4, clip 0.05, mean over all elements.
    const auto p = x.sigmoid();
    const auto shifted = (p - 0.05).clamp_min(0);
    const auto manual = (-labels * p.log() - (1 - labels) * shifted.pow(4) * (1 - shifted).log()).mean();
    CHECK_THAT(F::asymmetric_loss(x, labels), AllClose(manual, 1e-12));
  }
}

TEST_CASE("long-tail losses are finite at extreme logits for every dtype and gamma", "[logit_adjusted][ldam][asymmetric]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    for (bool aten_path : {false, true}) {
      torchloss::detail::ScopedAtenPath path(aten_path);
      INFO("dtype " << dc.dtype << ", aten path " << aten_path);
      auto x = torch::tensor({{1e4, -1e4, 0.0, 5.0, -3.0}, {-1e4, 1e4, -1e4, 1e4, 0.0}, {1e4, 1e4, -1e4, -1e4, 1e4}})
                   .to(dc.dtype)
                   .requires_grad_();
      const auto y = torch::tensor({0, 0, 1});
      const auto la = F::logit_adjusted_cross_entropy(x, y, F::LogitAdjustedCrossEntropyFuncOptions(counts5()).tau(2));
      // A large margin (s·m_y = 150 > float's exp range) with scale 1, so even float16 holds the loss.
      const auto ldam = F::ldam_loss(x, y, F::LDAMLossFuncOptions(counts5()).max_margin(150).scale(1));
      CHECK(la.isfinite().item<bool>());
      CHECK(ldam.isfinite().item<bool>());
      CHECK(grad_of(la + ldam, x).isfinite().all().item<bool>());
      const auto labels = torch::tensor({{1.0, 0.0, 1.0, 0.0, 1.0}, {0.0, 1.0, 0.0, 0.0, 1.0}, {1.0, 0.0, 0.0, 1.0, 0.0}})
                              .to(dc.dtype);
      for (double gamma : {0.0, 0.25, 0.5, 1.0, 4.0}) {
        for (double clip : {0.0, 0.05}) {
          INFO("gamma " << gamma << ", clip " << clip);
          const auto asl = F::asymmetric_loss(
              x, labels, F::AsymmetricLossFuncOptions().gamma_pos(gamma).gamma_neg(gamma).clip(clip));
          CHECK(asl.isfinite().item<bool>());
          CHECK(grad_of(asl, x).isfinite().all().item<bool>());
        }
      }
    }
  }
}

TEST_CASE("a large LDAM margin keeps float accuracy", "[ldam]") {
  // s·m_y far beyond float's exp range: the fused kernel takes the target apart from the
  // row max and sum, so float agrees with float64.
  torch::manual_seed(14);
  const auto x = torch::rand({16, 5}, torch::kDouble) * 2 - 1;
  const auto y = torch::randint(5, {16});
  const auto options = F::LDAMLossFuncOptions(counts5()).max_margin(8).scale(30).reduction(torch::kNone);
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    auto x64 = x.clone().requires_grad_();
    auto x32 = x.to(torch::kFloat).requires_grad_();
    const auto l64 = F::ldam_loss(x64, y, options);
    const auto l32 = F::ldam_loss(x32, y, options);
    CHECK_THAT(l32, AllClose(l64, 1e-5, 1e-4));
    CHECK_THAT(grad_of(l32.sum(), x32), AllClose(grad_of(l64.sum(), x64), 1e-4, 1e-5));
  }
}

TEST_CASE("NaN logits propagate through the long-tail losses", "[logit_adjusted][ldam][asymmetric]") {
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  const auto x = torch::tensor({{0.5, nan, -1.0, 0.0, 2.0}, {0.1, 0.2, 0.3, 0.4, 0.5}});
  const auto y = torch::tensor({0, 1});
  const auto none_la = F::logit_adjusted_cross_entropy(
      x, y, F::LogitAdjustedCrossEntropyFuncOptions(counts5()).reduction(torch::kNone));
  CHECK(std::isnan(none_la[0].item<double>()));
  CHECK(std::isfinite(none_la[1].item<double>()));
  const auto none_ldam = F::ldam_loss(x, y, F::LDAMLossFuncOptions(counts5()).reduction(torch::kNone));
  CHECK(std::isnan(none_ldam[0].item<double>()));
  const auto asl = F::asymmetric_loss(x, torch::zeros_like(x), F::AsymmetricLossFuncOptions().reduction(torch::kNone));
  CHECK(std::isnan(asl[0][1].item<double>()));
  CHECK(asl[1].isfinite().all().item<bool>());
}

TEST_CASE("long-tail losses pass float64 finite differences", "[logit_adjusted][ldam][asymmetric]") {
  torch::manual_seed(15);
  const auto y = torch::tensor({0, 3, -100, 1, 4, 3});
  const auto weight = torch::rand({5}, torch::kDouble) + 0.1;
  const auto la = [&](const torch::Tensor& x) {
    return F::logit_adjusted_cross_entropy(
        x, y,
        F::LogitAdjustedCrossEntropyFuncOptions(counts5()).tau(1.5).weight(weight).label_smoothing(0.1).reduction(
            torch::kNone));
  };
  CHECK(torchloss_test::finite_difference_error(la, torch::randn({6, 5}, torch::kDouble) * 2) <= 1.0);
  const auto ldam = [&](const torch::Tensor& x) {
    return F::ldam_loss(x, y, F::LDAMLossFuncOptions(counts5()).scale(10).weight(weight).reduction(torch::kNone));
  };
  CHECK(torchloss_test::finite_difference_error(ldam, torch::rand({6, 5}, torch::kDouble) * 2 - 1) <= 1.0);
  // Away from the clip's kink at p = clip.
  const auto labels = (torch::rand({6, 5}) > 0.5).to(torch::kDouble);
  auto x0 = torch::randn({6, 5}, torch::kDouble) * 3;
  const auto near_kink = (x0.sigmoid() - 0.05).abs() < 1e-3;
  x0 = x0.masked_fill(near_kink, 1.0);
  for (double gamma : {0.0, 0.5, 2.0}) {
    for (double clip : {0.0, 0.05}) {
      for (bool detach : {false, true}) {
        INFO("gamma " << gamma << ", clip " << clip << ", detach " << detach);
        const auto asl = [&](const torch::Tensor& x) {
          return F::asymmetric_loss(x, labels,
                                    F::AsymmetricLossFuncOptions()
                                        .gamma_pos(gamma)
                                        .gamma_neg(gamma + 1)
                                        .clip(clip)
                                        .reduction(torch::kNone));
        };
        if (!detach) CHECK(torchloss_test::finite_difference_error(asl, x0) <= 1.0);
        // Detached focusing: the gradient of the loss with the focusing factors frozen at x0.
        auto x = x0.clone().requires_grad_();
        const auto options = F::AsymmetricLossFuncOptions().gamma_pos(gamma).gamma_neg(gamma + 1).clip(clip);
        const auto detached = F::asymmetric_loss(x, labels, F::AsymmetricLossFuncOptions(options).detach_focusing(true));
        const auto p = x.sigmoid();
        const auto shifted = (p - clip).clamp_min(0);
        const auto frozen_pos = (1 - p).pow(gamma).detach();
        const auto frozen_neg = shifted.pow(gamma + 1).detach();
        const auto manual = (-labels * frozen_pos * torch::log_sigmoid(x) -
                             (1 - labels) * frozen_neg * torch::log1p(-shifted)).mean();
        CHECK_THAT(detached, AllClose(F::asymmetric_loss(x, labels, options), 1e-12));
        CHECK_THAT(grad_of(detached, x), AllClose(grad_of(manual, x), 1e-10, 1e-14));
      }
    }
  }
}

TEST_CASE("long-tail loss modules register their tensors and match their functions", "[logit_adjusted][ldam][asymmetric]") {
  torch::manual_seed(16);
  const auto x = torch::randn({6, 5});
  const auto y = torch::randint(5, {6});
  const auto weight = torch::rand({5}) + 0.1;

  torchloss::LogitAdjustedCrossEntropyLoss la(
      torchloss::LogitAdjustedCrossEntropyLossOptions(counts5()).tau(0.7).weight(weight));
  CHECK_THAT(la(x, y), AllClose(F::logit_adjusted_cross_entropy(
                           x, y, F::LogitAdjustedCrossEntropyFuncOptions(counts5()).tau(0.7).weight(weight))));
  REQUIRE(la->named_buffers().contains("class_counts"));
  REQUIRE(la->named_buffers().contains("weight"));
  auto la_copy = std::dynamic_pointer_cast<torchloss::LogitAdjustedCrossEntropyLossImpl>(la->clone());
  CHECK(torch::equal(la_copy->class_counts, counts5()));
  std::ostringstream printed;
  printed << *la;
  CHECK(printed.str() ==
        "torchloss::LogitAdjustedCrossEntropyLoss(classes=5, tau=0.7, ignore_index=-100, label_smoothing=0, "
        "reduction=kMean)");

  torchloss::LDAMLoss ldam(torchloss::LDAMLossOptions(counts5()).max_margin(0.4).scale(20));
  REQUIRE(ldam->named_buffers().contains("class_counts"));
  REQUIRE(ldam->named_buffers().contains("weight"));
  CHECK(torch::equal(ldam->weight, torch::ones({5})));
  const auto cosine = torch::rand({6, 5}) * 2 - 1;
  CHECK_THAT(ldam(cosine, y),
             AllClose(F::ldam_loss(cosine, y, F::LDAMLossFuncOptions(counts5()).max_margin(0.4).scale(20))));
  // Deferred re-weighting: one in-place copy per epoch.
  ldam->weight.copy_(torchloss::class_weights::deferred(/*epoch=*/5, /*switch_epoch=*/3, counts5()));
  CHECK_THAT(ldam(cosine, y),
             AllClose(F::ldam_loss(cosine, y,
                                   F::LDAMLossFuncOptions(counts5()).max_margin(0.4).scale(20).weight(
                                       torchloss::class_weights::effective_number(counts5(), 0.9999)))));

  torchloss::AsymmetricLoss asl(torchloss::AsymmetricLossOptions().gamma_pos(1).clip(0.1));
  const auto labels = (torch::rand({6, 5}) > 0.5).to(torch::kFloat);
  CHECK_THAT(asl(x, labels),
             AllClose(F::asymmetric_loss(x, labels, F::AsymmetricLossFuncOptions().gamma_pos(1).clip(0.1))));
  CHECK(asl->named_buffers().size() == 0);
  std::ostringstream printed_asl;
  printed_asl << *asl;
  CHECK(printed_asl.str() ==
        "torchloss::AsymmetricLoss(gamma_pos=1, gamma_neg=4, clip=0.1, detach_focusing=false, reduction=kMean)");
}

TEST_CASE("class_weights::deferred switches from ones to class-balanced weights", "[ldam][class_weights]") {
  const auto counts = counts5();
  CHECK(torch::equal(torchloss::class_weights::deferred(0, 160, counts), torch::ones({5})));
  CHECK(torch::equal(torchloss::class_weights::deferred(159, 160, counts), torch::ones({5})));
  CHECK_THAT(torchloss::class_weights::deferred(160, 160, counts),
             AllClose(torchloss::class_weights::effective_number(counts, 0.9999)));
  CHECK_THAT(torchloss::class_weights::deferred(200, 160, counts, 0.99),
             AllClose(torchloss::class_weights::effective_number(counts, 0.99)));
  CHECK(torchloss::class_weights::deferred(200, 160, counts).scalar_type() == torch::kFloat);
}

TEST_CASE("NormedLinear gives cosine logits from unit-norm weight rows", "[normed_linear]") {
  torch::manual_seed(17);
  torchloss::NormedLinear head(8, 5);
  REQUIRE(head->named_parameters().contains("weight"));
  CHECK(head->weight.sizes() == torch::IntArrayRef({5, 8}));
  CHECK_THAT(head->weight.norm(2, {1}), AllClose(torch::ones({5}), 1e-5));
  auto features = torch::randn({4, 8}, torch::requires_grad());
  const auto out = head(features);
  CHECK(out.sizes() == torch::IntArrayRef({4, 5}));
  const auto expected = torch::mm(features / features.norm(2, {1}, true), (head->weight / head->weight.norm(2, {1}, true)).t());
  CHECK_THAT(out, AllClose(expected, 1e-5, 1e-6));
  CHECK((out.abs() <= 1 + 1e-6).all().item<bool>());
  out.sum().backward();
  CHECK(features.grad().defined());
  CHECK(head->weight.grad().defined());
  // Leading dims pass through.
  CHECK(head(torch::randn({2, 3, 8})).sizes() == torch::IntArrayRef({2, 3, 5}));
  std::ostringstream printed;
  printed << *head;
  CHECK(printed.str() == "torchloss::NormedLinear(in_features=8, out_features=5)");
}

TEST_CASE("MultiTaskLoss combines task losses with fixed weights", "[multi_task]") {
  auto a = torch::tensor(1.5, torch::requires_grad());
  auto b = torch::tensor(0.25, torch::requires_grad());
  torchloss::MultiTaskLoss plain(2);
  CHECK(plain->parameters().empty());
  CHECK_THAT(plain->forward({a, b}), AllClose(torch::tensor(1.75)));
  torchloss::MultiTaskLoss weighted(torchloss::MultiTaskLossOptions(2).weights(torch::tensor({0.3, 2.0})));
  REQUIRE(weighted->named_buffers().contains("weights"));
  const auto total = weighted->forward({a, b});
  CHECK_THAT(total, AllClose(torch::tensor(0.3 * 1.5 + 2.0 * 0.25)));
  const auto grads = torch::autograd::grad({total}, {a, b});
  CHECK_THAT(grads[0], AllClose(torch::tensor(0.3)));
  CHECK_THAT(grads[1], AllClose(torch::tensor(2.0)));
  CHECK_THAT(weighted->task_weights(), AllClose(torch::tensor({0.3, 2.0})));
}

TEST_CASE("MultiTaskLoss learns uncertainty weights that save, load and train", "[multi_task]") {
  torchloss::MultiTaskLoss combine(torchloss::MultiTaskLossOptions(3).learn_uncertainty(true));
  REQUIRE(combine->named_parameters().contains("log_vars"));
  CHECK(torch::equal(combine->log_vars, torch::zeros({3})));
  {
    torch::NoGradGuard no_grad;
    combine->log_vars.copy_(torch::tensor({0.5, -1.0, 0.0}));
  }
  const auto losses = torch::tensor({2.0, 0.1, 1.0});
  std::vector<torch::Tensor> task_losses;
  for (int64_t i = 0; i < 3; ++i) task_losses.push_back(losses[i].clone().requires_grad_());
  const auto s = combine->log_vars.detach().clone();
  const auto total = combine->forward(task_losses);
  CHECK_THAT(total, AllClose((torch::exp(-s) * losses + s).sum(), 1e-6));
  // dL/ds_i = 1 - e^{-s_i} L_i; dL/dL_i = e^{-s_i}.
  torch::optim::SGD optimizer(combine->parameters(), torch::optim::SGDOptions(0.1));
  optimizer.zero_grad();
  total.backward();
  const auto expected_grad = 1 - torch::exp(-s) * losses;
  CHECK_THAT(combine->log_vars.grad(), AllClose(expected_grad, 1e-6));
  CHECK_THAT(task_losses[0].grad(), AllClose(torch::exp(-s[0]), 1e-6));
  optimizer.step();
  CHECK_THAT(combine->log_vars, AllClose(s - 0.1 * expected_grad, 1e-6));
  CHECK_THAT(combine->task_weights(), AllClose(torch::exp(-combine->log_vars.detach()), 1e-6));

  // torch::save / torch::load carry the learned log-variances.
  const auto path = (std::filesystem::temp_directory_path() /
                     ("torchloss_multi_task_" + std::to_string(::getpid()) + ".pt")).string();
  torch::save(combine, path);
  torchloss::MultiTaskLoss restored(torchloss::MultiTaskLossOptions(3).learn_uncertainty(true));
  torch::load(restored, path);
  std::remove(path.c_str());
  CHECK(torch::equal(restored->log_vars, combine->log_vars));
  CHECK_THAT(restored->forward(task_losses), AllClose(combine->forward(task_losses)));
}

TEST_CASE("long-tail and multi-task losses reject bad inputs with named errors", "[errors]") {
  const auto x = torch::randn({4, 5});
  const auto y = torch::tensor({0, 1, 4, 1});
  const char* la = "torchloss::logit_adjusted_cross_entropy";
  using LAOptions = F::LogitAdjustedCrossEntropyFuncOptions;
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, y, LAOptions(torch::tensor({5, 0, 3, 2, 1}))), la,
                        "every class count must be positive and finite, got 0 at class 1");
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, y, LAOptions(torch::tensor({5, 2, -3, 2, 1}))), la,
                        "got -3 at class 2");
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, y, LAOptions(torch::tensor({5, 2, 3}))), la,
                        "class_counts must have shape [5] (one count per class), got [3]");
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, y, LAOptions(torch::Tensor())), la,
                        "class_counts is an undefined tensor");
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, y, LAOptions(counts5()).tau(-1)), la,
                        "tau must be a finite number >= 0, got -1");
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, y, LAOptions(counts5()).weight(torch::ones({3}))), la,
                        "weight must have shape [5]");
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, torch::tensor({0, 1, 7, 1}), LAOptions(counts5())), la,
                        "target label 7");
  TORCHLOSS_CHECK_ERROR(F::logit_adjusted_cross_entropy(x, y, LAOptions(counts5()).label_smoothing(2)), la,
                        "label_smoothing must be in [0, 1], got 2");
  TORCHLOSS_CHECK_ERROR(torchloss::LogitAdjustedCrossEntropyLoss(
                            torchloss::LogitAdjustedCrossEntropyLossOptions(torch::tensor({1, 0, 2}))),
                        "torchloss::LogitAdjustedCrossEntropyLoss", "got 0 at class 1");

  const char* ldam = "torchloss::ldam_loss";
  using LDAMOptions = F::LDAMLossFuncOptions;
  TORCHLOSS_CHECK_ERROR(F::ldam_loss(x, y, LDAMOptions(counts5()).scale(0)), ldam,
                        "scale must be a finite number > 0, got 0");
  TORCHLOSS_CHECK_ERROR(F::ldam_loss(x, y, LDAMOptions(counts5()).scale(-2)), ldam, "got -2");
  TORCHLOSS_CHECK_ERROR(F::ldam_loss(x, y, LDAMOptions(counts5()).max_margin(-0.1)), ldam,
                        "max_margin must be a finite number >= 0, got -0.1");
  TORCHLOSS_CHECK_ERROR(F::ldam_loss(x, y, LDAMOptions(torch::tensor({5, 2, 3, 0, 1}))), ldam, "got 0 at class 3");
  TORCHLOSS_CHECK_ERROR(F::ldam_loss(x, y, LDAMOptions(torch::tensor({5, 2, 3, 1, 1, 1}))), ldam,
                        "class_counts must have shape [5]");
  TORCHLOSS_CHECK_ERROR(torchloss::LDAMLoss(torchloss::LDAMLossOptions(counts5()).scale(0)), "torchloss::LDAMLoss",
                        "scale must be");
  TORCHLOSS_CHECK_ERROR(torchloss::LDAMLoss(torchloss::LDAMLossOptions(counts5()).weight(torch::ones({2}))),
                        "torchloss::LDAMLoss", "weight must have shape [5]");

  const char* asl = "torchloss::asymmetric_loss";
  const auto labels = (torch::rand({4, 5}) > 0.5).to(torch::kFloat);
  using ASLOptions = F::AsymmetricLossFuncOptions;
  TORCHLOSS_CHECK_ERROR(F::asymmetric_loss(x, labels, ASLOptions().clip(1)), asl, "clip must be in [0, 1), got 1");
  TORCHLOSS_CHECK_ERROR(F::asymmetric_loss(x, labels, ASLOptions().clip(-0.1)), asl, "got -0.1");
  TORCHLOSS_CHECK_ERROR(F::asymmetric_loss(x, labels, ASLOptions().gamma_neg(-1)), asl,
                        "gamma_neg must be a finite number >= 0, got -1");
  TORCHLOSS_CHECK_ERROR(F::asymmetric_loss(x, labels, ASLOptions().gamma_pos(-0.5)), asl,
                        "gamma_pos must be a finite number >= 0, got -0.5");
  TORCHLOSS_CHECK_ERROR(F::asymmetric_loss(x, labels * 2), asl, "outside [0, 1]");
  TORCHLOSS_CHECK_ERROR(F::asymmetric_loss(x, labels.t()), asl, "target shape [5, 4]");
  TORCHLOSS_CHECK_ERROR(torchloss::AsymmetricLoss(torchloss::AsymmetricLossOptions().clip(1.5)),
                        "torchloss::AsymmetricLoss", "clip must be in [0, 1)");

  const char* multi = "torchloss::MultiTaskLoss";
  TORCHLOSS_CHECK_ERROR(torchloss::MultiTaskLoss(0), multi, "num_tasks must be >= 1, got 0");
  TORCHLOSS_CHECK_ERROR(torchloss::MultiTaskLoss(torchloss::MultiTaskLossOptions(2).weights(torch::ones({3}))), multi,
                        "weights must have shape [2] (one per task), got [3]");
  TORCHLOSS_CHECK_ERROR(torchloss::MultiTaskLoss(torchloss::MultiTaskLossOptions(2).weights(torch::tensor({1.0, -1.0}))),
                        multi, "weights must be non-negative, got -1 for task 1");
  torchloss::MultiTaskLoss two(2);
  const auto scalar = torch::tensor(1.0);
  TORCHLOSS_CHECK_ERROR(two->forward({scalar}), multi, "expected 2 task losses (num_tasks), got 1");
  TORCHLOSS_CHECK_ERROR(two->forward({scalar, torch::ones({3})}), multi,
                        "losses[1] must be a scalar (0-dim) tensor, got shape [3]");
  TORCHLOSS_CHECK_ERROR(two->forward({torch::Tensor(), scalar}), multi, "losses[0] is an undefined tensor");
  TORCHLOSS_CHECK_ERROR(two->forward({scalar, torch::tensor(3)}), multi, "losses[1] must be a floating-point tensor");

  TORCHLOSS_CHECK_ERROR(torchloss::NormedLinear(0, 3), "torchloss::NormedLinear", "in_features must be >= 1, got 0");
  TORCHLOSS_CHECK_ERROR(torchloss::NormedLinear(3, 0), "torchloss::NormedLinear", "out_features must be >= 1, got 0");
  torchloss::NormedLinear head(3, 2);
  TORCHLOSS_CHECK_ERROR(head(torch::randn({4, 5})), "torchloss::NormedLinear",
                        "input must have shape [..., 3] (in_features last), got [4, 5]");

  const char* deferred = "torchloss::class_weights::deferred";
  TORCHLOSS_CHECK_ERROR(torchloss::class_weights::deferred(-1, 3, counts5()), deferred, "epoch must be >= 0, got -1");
  TORCHLOSS_CHECK_ERROR(torchloss::class_weights::deferred(1, 3, counts5(), 1.0), deferred,
                        "beta must be in [0, 1), got 1");
  TORCHLOSS_CHECK_ERROR(torchloss::class_weights::deferred(1, 3, torch::tensor({3, 0})), deferred,
                        "every class count must be positive");
}
