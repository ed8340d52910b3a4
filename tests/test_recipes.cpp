// The losses of modern training recipes against their references (fixtures: timm's
// SoftTargetCrossEntropy and mixup_target, Poly-1's formula, T² kl_div batchmean, mmpretrain's
// SeesawLoss step by step), their identities (mixup = soft target at timm's target = two index
// cross entropies; Poly-1 at ε = 0 and Seesaw at p = q = 0 are cross entropy), stability,
// empty batches, finite differences, module state, and bad inputs.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixture_cases.hpp"
#include "support/gradcheck.hpp"

#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>
#include <unistd.h>

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {

torch::Tensor grad_of(const torch::Tensor& loss, const torch::Tensor& x) {
  return torch::autograd::grad({loss}, {x}, {}, /*retain_graph=*/true)[0];
}

/// timm's mixup_target for any pair of label vectors: λ·s(a) + (1−λ)·s(b), s(y) the smoothed one-hot.
torch::Tensor mixup_target(const torch::Tensor& y_a, const torch::Tensor& y_b, int64_t classes, double lam,
                           double smoothing, torch::ScalarType dtype) {
  const double off = smoothing / classes, on = 1 - smoothing + off;
  const auto smoothed = [&](const torch::Tensor& y) {
    return torch::full({y.size(0), classes}, off, dtype).scatter_(1, y.unsqueeze(1), on);
  };
  return lam * smoothed(y_a) + (1 - lam) * smoothed(y_b);
}

/// A Seesaw module in training mode whose counts start at `counts`.
torchloss::SeesawLoss seesaw_module(const torch::Tensor& counts, double p, double q, double eps,
                                    torchloss::reduction_t reduction) {
  torchloss::SeesawLoss loss(torchloss::SeesawLossOptions(counts.size(0)).p(p).q(q).eps(eps).reduction(reduction));
  loss->cum_samples.copy_(counts);
  return loss;
}

}  // namespace

TEST_CASE("soft_target_cross_entropy matches timm's SoftTargetCrossEntropy", "[soft_target]") {
  torchloss_test::check_fixture_cases(
      "soft_target_cross_entropy.pt", [](const torchloss_test::Fixture& fx, const std::string& key,
                                         const torch::Tensor& x, const torchloss_test::DtypeCase& dc) {
        const auto target = fx[key + "/target"].to(torchloss_test::weight_dtype_for(dc.dtype));
        return F::soft_target_cross_entropy(
            x, target,
            F::SoftTargetCrossEntropyFuncOptions().reduction(
                torchloss_test::reduction_from_code(fx[key + "/options"][0].item<int64_t>())));
      });
}

TEST_CASE("mixup_cross_entropy matches timm's loss at timm's mixup target", "[mixup]") {
  torchloss_test::check_fixture_cases(
      "mixup_cross_entropy.pt", [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
                                   const torchloss_test::DtypeCase&) {
        const auto opt = fx[key + "/options"];
        return F::mixup_cross_entropy(
            x, fx[key + "/y_a"], fx[key + "/y_b"], opt[0].item<double>(),
            F::MixupCrossEntropyFuncOptions()
                .label_smoothing(opt[1].item<double>())
                .reduction(torchloss_test::reduction_from_code(opt[2].item<int64_t>())));
      });
}

TEST_CASE("poly1_cross_entropy matches the Poly-1 formula", "[poly]") {
  torchloss_test::check_fixture_cases(
      "poly1_cross_entropy.pt", [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
                                   const torchloss_test::DtypeCase&) {
        const auto opt = fx[key + "/options"];
        return F::poly1_cross_entropy(x, fx[key + "/target"],
                                      F::Poly1CrossEntropyFuncOptions()
                                          .epsilon(opt[0].item<double>())
                                          .ignore_index(opt[1].item<int64_t>())
                                          .reduction(torchloss_test::reduction_from_code(opt[2].item<int64_t>())));
      });
}

TEST_CASE("distillation_loss matches T^2 kl_div batchmean", "[distillation]") {
  torchloss_test::check_fixture_cases(
      "distillation_loss.pt", [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
                                 const torchloss_test::DtypeCase& dc) {
        const auto opt = fx[key + "/options"];
        return F::distillation_loss(x, fx[key + "/teacher"].to(dc.dtype),
                                    F::DistillationLossFuncOptions()
                                        .temperature(opt[0].item<double>())
                                        .reduction(torchloss_test::reduction_from_code(opt[1].item<int64_t>())));
      });
}

TEST_CASE("SeesawLoss matches mmpretrain's SeesawLoss, counts included", "[seesaw]") {
  torchloss_test::check_fixture_cases(
      "seesaw_loss.pt", [](const torchloss_test::Fixture& fx, const std::string& key, const torch::Tensor& x,
                           const torchloss_test::DtypeCase&) {
        const auto opt = fx[key + "/options"];
        const auto reduction = torchloss_test::reduction_from_code(opt[3].item<int64_t>());
        auto module = seesaw_module(fx[key + "/cum_samples"], opt[0].item<double>(), opt[1].item<double>(),
                                    opt[2].item<double>(), reduction);
        const auto loss = module(x, fx[key + "/target"]);
        CHECK(torch::equal(module->cum_samples, fx[key + "/cum_after"].to(torch::kFloat)));
        // The functional form at the updated counts is the same loss.
        const auto functional = F::seesaw_loss(x, fx[key + "/target"], module->cum_samples,
                                               F::SeesawLossFuncOptions()
                                                   .p(opt[0].item<double>())
                                                   .q(opt[1].item<double>())
                                                   .eps(opt[2].item<double>())
                                                   .reduction(reduction));
        CHECK(torch::equal(functional, loss));
        return loss;
      });
}

TEST_CASE("mixup_cross_entropy equals the dense soft target and two index cross entropies", "[mixup]") {
  torch::manual_seed(21);
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (auto dtype : {torch::kDouble, torch::kFloat}) {
      INFO("aten path " << aten_path << ", dtype " << dtype);
      const double tol = dtype == torch::kDouble ? 1e-12 : 2e-6;
      auto x = (torch::randn({9, 7}, dtype) * 3).requires_grad_();
      const auto y_a = torch::randint(7, {9});
      const auto y_b = y_a.flip(0);
      for (double smoothing : {0.0, 0.2}) {
        for (double lam : {0.0, 0.35, 1.0}) {
          INFO("smoothing " << smoothing << ", lam " << lam);
          const auto options = F::MixupCrossEntropyFuncOptions().label_smoothing(smoothing);
          const auto pair = F::mixup_cross_entropy(x, y_a, y_b, lam, options);
          const auto dense = F::soft_target_cross_entropy(x, mixup_target(y_a, y_b, 7, lam, smoothing, dtype));
          CHECK_THAT(pair, AllClose(dense, tol, tol));
          CHECK_THAT(grad_of(pair, x), AllClose(grad_of(dense, x), tol, tol));
          // The usual workaround: λ·CE(x, a) + (1−λ)·CE(x, b), with the same smoothing.
          const auto ce_options = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing);
          const auto two = lam * torch::nn::functional::cross_entropy(x, y_a, ce_options) +
                           (1 - lam) * torch::nn::functional::cross_entropy(x, y_b, ce_options);
          CHECK_THAT(pair, AllClose(two, tol, tol));
          CHECK_THAT(grad_of(pair, x), AllClose(grad_of(two, x), tol, tol));
        }
      }
    }
  }
}

TEST_CASE("Poly-1 at epsilon 0 and Seesaw at p = q = 0 are cross entropy; Poly-1 adds eps (1 - p_y)", "[poly][seesaw]") {
  torch::manual_seed(22);
  auto x = (torch::randn({10, 6}, torch::kDouble) * 2).requires_grad_();
  auto y = torch::randint(6, {10});
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const auto ce = torch::nn::functional::cross_entropy(x, y);
    const auto poly = F::poly1_cross_entropy(x, y, F::Poly1CrossEntropyFuncOptions().epsilon(0));
    CHECK_THAT(poly, AllClose(ce, 1e-13));
    CHECK_THAT(grad_of(poly, x), AllClose(grad_of(ce, x), 1e-12, 1e-15));
    const auto p_y = torch::softmax(x, 1).gather(1, y.unsqueeze(1)).squeeze(1);
    const auto negative = F::poly1_cross_entropy(x, y, F::Poly1CrossEntropyFuncOptions().epsilon(-0.5));
    const auto manual = (torch::nn::functional::cross_entropy(
                             x, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone)) -
                         0.5 * (1 - p_y))
                            .mean();
    CHECK_THAT(negative, AllClose(manual, 1e-12));
    CHECK_THAT(grad_of(negative, x), AllClose(grad_of(manual, x), 1e-12, 1e-15));
    auto seesaw = seesaw_module(torch::tensor({100.0, 3.0, 0.0, 40.0, 7.0, 1.0}), 0, 0, 1e-2, torch::kMean);
    const auto plain = seesaw(x, y);
    CHECK_THAT(plain, AllClose(ce, 1e-13));
    CHECK_THAT(grad_of(plain, x), AllClose(grad_of(ce, x), 1e-12, 1e-15));
  }
}

TEST_CASE("distillation_loss: the teacher gets no gradient; T^2 keeps the gradient's scale", "[distillation]") {
  torch::manual_seed(23);
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    auto student = torch::randn({5, 8}, torch::kDouble).requires_grad_();
    auto teacher = torch::randn({5, 8}, torch::kDouble).requires_grad_();
    const auto loss = F::distillation_loss(student, teacher, F::DistillationLossFuncOptions().temperature(3));
    loss.backward();
    CHECK_FALSE(teacher.grad().defined());
    const auto p = torch::softmax(student / 3, 1), q = torch::softmax(teacher / 3, 1);
    CHECK_THAT(student.grad(), AllClose((p - q) * 3 / 5, 1e-12, 1e-15));
    // Equal logits: zero loss and gradient.
    const auto same = F::distillation_loss(student, student.detach());
    CHECK(same.item<double>() == 0.0);
  }
}

TEST_CASE("recipe losses are finite at extreme logits for every dtype", "[soft_target][mixup][poly][distillation][seesaw]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    for (bool aten_path : {false, true}) {
      torchloss::detail::ScopedAtenPath path(aten_path);
      INFO("dtype " << dc.dtype << ", aten path " << aten_path);
      // Losses here reach about 2e4: beyond float16's range once summed, so kMean.
      auto x = torch::tensor({{1e4, -1e4, 0.0, 5.0, -3.0}, {-1e4, 1e4, -1e4, 1e4, 0.0}, {1e4, 1e4, -1e4, -1e4, 1e4}})
                   .to(dc.dtype)
                   .requires_grad_();
      const auto y = torch::tensor({1, 0, 2});
      const auto target = torch::softmax(torch::tensor({{0.0, 1.0, 2.0, 0.0, 0.0}}), 1).expand({3, 5}).contiguous();
      const auto teacher = x.detach().flip(0);
      std::vector<torch::Tensor> losses{
          F::soft_target_cross_entropy(x, target),
          F::mixup_cross_entropy(x, y, y.flip(0), 0.3, F::MixupCrossEntropyFuncOptions().label_smoothing(0.1)),
          F::poly1_cross_entropy(x, y, F::Poly1CrossEntropyFuncOptions().epsilon(-1)),
          F::distillation_loss(x, teacher),
          F::seesaw_loss(x, y, torch::tensor({1000.0, 1.0, 0.0, 30.0, 2.0})),
      };
      for (size_t k = 0; k < losses.size(); ++k) {
        INFO("loss " << k);
        if (dc.dtype != torch::kHalf) CHECK(losses[k].isfinite().item<bool>());
        CHECK(grad_of(losses[k], x).isfinite().all().item<bool>());
      }
    }
  }
}

TEST_CASE("NaN logits propagate through the recipe losses", "[soft_target][mixup][distillation][seesaw]") {
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  const auto x = torch::tensor({{0.5, nan, -1.0}, {0.1, 0.2, 0.3}});
  const auto y = torch::tensor({0, 1});
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const auto none_soft = F::soft_target_cross_entropy(x, torch::full({2, 3}, 1.0 / 3),
                                                        F::SoftTargetCrossEntropyFuncOptions().reduction(torch::kNone));
    const auto none_mixup = F::mixup_cross_entropy(x, y, y, 0.5, F::MixupCrossEntropyFuncOptions().reduction(torch::kNone));
    const auto none_distill =
        F::distillation_loss(x, torch::zeros({2, 3}), F::DistillationLossFuncOptions().reduction(torch::kNone));
    const auto none_seesaw = F::seesaw_loss(x, y, torch::ones({3}), F::SeesawLossFuncOptions().reduction(torch::kNone));
    for (const auto& values : std::vector<torch::Tensor>{none_soft, none_mixup, none_distill, none_seesaw}) {
      CHECK(std::isnan(values[0].item<double>()));
      CHECK(std::isfinite(values[1].item<double>()));
    }
  }
}

TEST_CASE("mixup_cross_entropy: a -inf logit of a class without target mass leaves the loss finite", "[mixup]") {
  // Regression (fuzz seed 13, case 3309): the ATen path multiplied the smoothing term
  // ε/C·Σ_c (x_c − m) by ε = 0 and got 0·(−inf) = NaN where the CPU kernel skipped it. A target
  // of mass 0 (no smoothing; λ = 0 or 1 for the other label) contributes nothing: the loss is
  // log Σ_c e^{x_c} − λ x_a − (1 − λ) x_b over the finite logits, the gradient p − t.
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> row{-inf, -2.5, 3.0, 0.75};
  double max_finite = -inf;
  for (double v : row) max_finite = std::max(max_finite, v);
  double sum_exp = 0;
  for (double v : row) sum_exp += std::exp(v - max_finite);
  const double lse = max_finite + std::log(sum_exp);
  struct Pair {
    int64_t a, b;
    double lam;
  };
  // (a, b, λ): the −inf class 0 is never a label of positive mass.
  for (const Pair& pair : {Pair{3, 1, 0.3}, Pair{2, 0, 1.0}, Pair{0, 1, 0.0}}) {
    double expected = lse;  // terms of weight 0 left out (0·(−inf) is not 0 in IEEE)
    if (pair.lam != 0) expected -= pair.lam * row[pair.a];
    if (pair.lam != 1) expected -= (1 - pair.lam) * row[pair.b];
    std::vector<double> expected_grad(4);
    for (size_t c = 0; c < 4; ++c) expected_grad[c] = std::exp(row[c] - lse);
    expected_grad[pair.a] -= pair.lam;
    expected_grad[pair.b] -= 1 - pair.lam;
    for (const auto dtype : {torch::kFloat, torch::kDouble}) {
      for (bool aten_path : {false, true}) {
        INFO("a " << pair.a << ", b " << pair.b << ", lambda " << pair.lam << ", dtype " << dtype << ", aten path "
                  << aten_path);
        torchloss::detail::ScopedAtenPath path(aten_path);
        const auto x = torch::tensor(row, torch::kDouble).reshape({1, 4}).to(dtype).requires_grad_();
        const auto loss = F::mixup_cross_entropy(x, torch::tensor({pair.a}), torch::tensor({pair.b}), pair.lam,
                                                 F::MixupCrossEntropyFuncOptions().reduction(torch::kNone));
        REQUIRE(loss.isfinite().all().item<bool>());
        CHECK_THAT(loss.to(torch::kDouble), AllClose(torch::tensor({expected}, torch::kDouble), 1e-5, 1e-5));
        const auto grad = grad_of(loss.sum(), x).to(torch::kDouble);
        CHECK_THAT(grad, AllClose(torch::tensor(expected_grad, torch::kDouble).reshape({1, 4}), 1e-5, 1e-5));
      }
    }
  }
}

TEST_CASE("recipe losses of an empty batch are 0 with an empty gradient", "[soft_target][mixup][poly][distillation][seesaw]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (auto reduction : {torchloss::reduction_t(torch::kMean), torchloss::reduction_t(torch::kSum),
                           torchloss::reduction_t(torch::kNone)}) {
      INFO("aten path " << aten_path << ", reduction " << torch::enumtype::get_enum_name(reduction));
      auto x = torch::zeros({0, 4}).requires_grad_();
      const auto y = torch::zeros({0}, torch::kLong);
      auto seesaw = seesaw_module(torch::ones({4}), 0.8, 2, 1e-2, reduction);
      std::vector<torch::Tensor> losses{
          F::soft_target_cross_entropy(x, torch::zeros({0, 4}), F::SoftTargetCrossEntropyFuncOptions().reduction(reduction)),
          F::mixup_cross_entropy(x, y, y, 0.5, F::MixupCrossEntropyFuncOptions().reduction(reduction)),
          F::poly1_cross_entropy(x, y, F::Poly1CrossEntropyFuncOptions().reduction(reduction)),
          F::distillation_loss(x, torch::zeros({0, 4}), F::DistillationLossFuncOptions().reduction(reduction)),
          seesaw(x, y),
      };
      for (const auto& loss : losses) {
        if (torchloss::detail::reduction_code(reduction) == at::Reduction::None) {
          CHECK(loss.sizes() == torch::IntArrayRef{0});
        } else {
          CHECK(loss.item<double>() == 0.0);
        }
        const auto grad = torch::autograd::grad({loss.sum()}, {x}, {}, true)[0];
        CHECK(grad.sizes() == x.sizes());
      }
      CHECK(torch::equal(seesaw->cum_samples, torch::ones({4})));
    }
  }
}

TEST_CASE("recipe losses pass float64 finite differences", "[soft_target][mixup][poly][distillation][seesaw]") {
  torch::manual_seed(24);
  const auto x0 = torch::randn({5, 6}, torch::kDouble) * 2;
  const auto y = torch::tensor({0, 3, 5, 1, 3});
  const auto y_b = torch::tensor({2, 3, 0, 4, 1});
  const auto target = torch::rand({5, 6}, torch::kDouble);
  const auto teacher = torch::randn({5, 6}, torch::kDouble) * 2;
  const auto y_ignored = torch::tensor({0, -100, 5, 1, 3});
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    const std::vector<std::function<torch::Tensor(const torch::Tensor&)>> losses{
        [&](const torch::Tensor& x) {
          return F::soft_target_cross_entropy(x, target, F::SoftTargetCrossEntropyFuncOptions().reduction(torch::kNone));
        },
        [&](const torch::Tensor& x) {
          return F::mixup_cross_entropy(x, y, y_b, 0.3,
                                        F::MixupCrossEntropyFuncOptions().label_smoothing(0.1).reduction(torch::kNone));
        },
        [&](const torch::Tensor& x) {
          return F::poly1_cross_entropy(x, y_ignored, F::Poly1CrossEntropyFuncOptions().epsilon(2).reduction(torch::kNone));
        },
        [&](const torch::Tensor& x) {
          return F::distillation_loss(x, teacher, F::DistillationLossFuncOptions().temperature(2).reduction(torch::kNone));
        },
        // q = 0: the compensation factor is a detached function of x, which differences would see.
        [&](const torch::Tensor& x) {
          return F::seesaw_loss(x, y, torch::tensor({50.0, 1.0, 8.0, 0.0, 3.0, 20.0}),
                                F::SeesawLossFuncOptions().q(0).reduction(torch::kNone));
        },
    };
    for (size_t k = 0; k < losses.size(); ++k) {
      INFO("loss " << k);
      CHECK(torchloss_test::finite_difference_error(losses[k], x0) <= 1.0);
    }
  }
}

TEST_CASE("SeesawLoss raises the logits of frequent and confusing classes as mmpretrain does", "[seesaw]") {
  // One sample of class 1 (rare): class 0 (frequent) gets no mitigation, class 2 (rarer)
  // is mitigated by (1/10)^p, and class 0, scored above the target, is compensated by (σ0/σ1)^q.
  const auto x = torch::tensor({{2.0, 0.0, -1.0}}, torch::kDouble);
  const auto counts = torch::tensor({1000.0, 10.0, 1.0});
  const auto sigma = torch::softmax(x, 1)[0];
  const auto s = sigma.accessor<double, 1>();
  const double z0 = 2.0 + 2.0 * std::log(s[0] / s[1]);
  const double z2 = -1.0 + 0.8 * std::log(1.0 / 10.0);
  const double expected = std::log(std::exp(z0) + std::exp(0.0) + std::exp(z2));
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    torchloss::detail::ScopedAtenPath path(aten_path);
    CHECK_THAT(F::seesaw_loss(x, torch::tensor({1}), counts), AllClose(torch::tensor(expected, torch::kDouble), 1e-13));
  }
}

TEST_CASE("SeesawLoss counts only in training mode and carries its counts through to, clone, save and load", "[seesaw]") {
  torch::manual_seed(25);
  torchloss::SeesawLoss loss(torchloss::SeesawLossOptions(4));
  const auto x = torch::randn({6, 4});
  const auto y = torch::tensor({0, 0, 1, 3, 0, 1});
  loss(x, y);
  CHECK(torch::equal(loss->cum_samples, torch::tensor({3.0f, 2.0f, 0.0f, 1.0f})));
  CHECK(loss->cum_samples.scalar_type() == torch::kFloat);
  loss->eval();
  const auto eval_value = loss(x, y);
  CHECK(torch::equal(loss->cum_samples, torch::tensor({3.0f, 2.0f, 0.0f, 1.0f})));
  CHECK_THAT(eval_value, AllClose(F::seesaw_loss(x, y, loss->cum_samples), 1e-7));
  loss->train();
  loss(x, y);
  CHECK(torch::equal(loss->cum_samples, torch::tensor({6.0f, 4.0f, 0.0f, 2.0f})));
  // clone() copies the counts; the copy counts on its own.
  auto copy = std::dynamic_pointer_cast<torchloss::SeesawLossImpl>(loss->clone());
  REQUIRE(copy);
  copy->forward(x, y);
  CHECK(torch::equal(copy->cum_samples, torch::tensor({9.0f, 6.0f, 0.0f, 3.0f})));
  CHECK(torch::equal(loss->cum_samples, torch::tensor({6.0f, 4.0f, 0.0f, 2.0f})));
  // to() converts the buffer; the named buffer is the member.
  copy->to(torch::kDouble);
  CHECK(copy->cum_samples.scalar_type() == torch::kDouble);
  CHECK(copy->named_buffers()["cum_samples"].data_ptr() == copy->cum_samples.data_ptr());
  CHECK(torch::equal(copy->cum_samples, torch::tensor({9.0, 6.0, 0.0, 3.0}, torch::kDouble)));
  // save/load: a resumed loss continues identically.
  const auto path = std::filesystem::temp_directory_path() / ("torchloss_seesaw_" + std::to_string(getpid()) + ".pt");
  torch::save(loss, path.string());
  torchloss::SeesawLoss loaded(torchloss::SeesawLossOptions(4));
  torch::load(loaded, path.string());
  std::filesystem::remove(path);
  CHECK(torch::equal(loaded->cum_samples, loss->cum_samples));
  CHECK(torch::equal(loaded(x, y), loss(x, y)));
  CHECK(torch::equal(loaded->cum_samples, loss->cum_samples));
  std::ostringstream text;
  text << *loss;
  CHECK(text.str() == "torchloss::SeesawLoss(num_classes=4, p=0.8, q=2, eps=0.01, reduction=kMean, distributed=false)");
}

TEST_CASE("SeesawLoss sends each training batch's counts through its process_group before adding them", "[seesaw]") {
  // A stand-in for an all-reduce over 3 ranks that all saw the same labels: it triples the counts.
  std::vector<torch::Tensor> reduced;
  torchloss::AllReduceFn triple([&reduced](torch::Tensor& counts) {
    reduced.push_back(counts.clone());
    counts.mul_(3);
  });
  torchloss::SeesawLoss loss(torchloss::SeesawLossOptions(4).process_group(triple));
  const auto x = torch::randn({5, 4});
  const auto y = torch::tensor({0, 2, 2, 3, 0});
  loss(x, y);
  REQUIRE(reduced.size() == 1);
  CHECK(torch::equal(reduced[0], torch::tensor({2.0f, 0.0f, 2.0f, 1.0f})));
  CHECK(torch::equal(loss->cum_samples, torch::tensor({6.0f, 0.0f, 6.0f, 3.0f})));
  loss->eval();
  loss(x, y);
  CHECK(reduced.size() == 1);  // evaluation neither counts nor communicates
  std::ostringstream text;
  text << *loss;
  CHECK(text.str().find("distributed=true") != std::string::npos);
}

TEST_CASE("recipe loss modules match their functions", "[soft_target][poly][distillation]") {
  torch::manual_seed(26);
  const auto x = torch::randn({6, 5});
  const auto y = torch::randint(5, {6});
  const auto target = torch::softmax(torch::randn({6, 5}), 1);
  const auto teacher = torch::randn({6, 5});
  torchloss::SoftTargetCrossEntropyLoss soft(torchloss::SoftTargetCrossEntropyLossOptions().reduction(torch::kSum));
  CHECK(torch::equal(soft(x, target),
                     F::soft_target_cross_entropy(x, target, F::SoftTargetCrossEntropyFuncOptions().reduction(torch::kSum))));
  torchloss::PolyLoss poly(torchloss::PolyLossOptions().epsilon(2));
  CHECK(torch::equal(poly(x, y), F::poly1_cross_entropy(x, y, F::Poly1CrossEntropyFuncOptions().epsilon(2))));
  torchloss::DistillationLoss distill(torchloss::DistillationLossOptions().temperature(2));
  CHECK(torch::equal(distill(x, teacher), F::distillation_loss(x, teacher, F::DistillationLossFuncOptions().temperature(2))));
  std::ostringstream text;
  text << *soft << "|" << *poly << "|" << *distill;
  CHECK(text.str() ==
        "torchloss::SoftTargetCrossEntropyLoss(reduction=kSum)|torchloss::PolyLoss(epsilon=2, ignore_index=-100, "
        "reduction=kMean)|torchloss::DistillationLoss(temperature=2, reduction=kMean)");
}

TEST_CASE("recipe losses reject bad inputs with named errors", "[errors]") {
  const auto x = torch::randn({4, 5});
  const auto y = torch::tensor({0, 1, 4, 2});
  const auto target = torch::full({4, 5}, 0.2);
  const char* soft = "torchloss::soft_target_cross_entropy";
  TORCHLOSS_CHECK_ERROR(F::soft_target_cross_entropy(x, torch::full({4, 4}, 0.2)), soft, "target shape [4, 4]");
  TORCHLOSS_CHECK_ERROR(F::soft_target_cross_entropy(x, y), soft, "floating-point");
  TORCHLOSS_CHECK_ERROR(F::soft_target_cross_entropy(x.view({2, 2, 5}), target.view({2, 2, 5})), soft,
                        "input must have shape [N, C]");
  TORCHLOSS_CHECK_ERROR(F::soft_target_cross_entropy(x.to(torch::kLong), target), soft, "floating-point");
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    INFO("aten path " << aten_path);
    TORCHLOSS_CHECK_ERROR(F::soft_target_cross_entropy(x, target.clone().index_put_({1, 2}, 1.5)), soft,
                          "target value 1.5 is outside [0, 1]");
    TORCHLOSS_CHECK_ERROR(F::mixup_cross_entropy(x, y, torch::tensor({0, 5, 1, 1}), 0.5), "torchloss::mixup_cross_entropy",
                          "y_b label 5 is outside [0, 5)");
    TORCHLOSS_CHECK_ERROR(F::mixup_cross_entropy(x, torch::tensor({0, -1, 1, 1}), y, 0.5),
                          "torchloss::mixup_cross_entropy", "y_a label -1 is outside [0, 5)");
    TORCHLOSS_CHECK_ERROR(F::seesaw_loss(x, torch::tensor({0, 7, 1, 1}), torch::ones({5})), "torchloss::seesaw_loss",
                          "target label 7 is outside [0, 5)");
    TORCHLOSS_CHECK_ERROR(F::poly1_cross_entropy(x, torch::tensor({0, 7, 1, 1})), "torchloss::poly1_cross_entropy",
                          "target label 7");
  }
  const char* mixup = "torchloss::mixup_cross_entropy";
  TORCHLOSS_CHECK_ERROR(F::mixup_cross_entropy(x, y, y, 1.5), mixup, "lam must be in [0, 1], got 1.5");
  TORCHLOSS_CHECK_ERROR(F::mixup_cross_entropy(x, y, y, -0.1), mixup, "lam must be in [0, 1], got -0.1");
  TORCHLOSS_CHECK_ERROR(F::mixup_cross_entropy(x, y, y, 0.5, F::MixupCrossEntropyFuncOptions().label_smoothing(1.2)),
                        mixup, "label_smoothing must be in [0, 1]");
  TORCHLOSS_CHECK_ERROR(F::mixup_cross_entropy(x, y.narrow(0, 0, 3), y, 0.5), mixup, "y_a must have shape [4]");
  TORCHLOSS_CHECK_ERROR(F::mixup_cross_entropy(x, y, y.to(torch::kInt), 0.5), mixup, "y_b must hold int64");
  const char* poly = "torchloss::poly1_cross_entropy";
  TORCHLOSS_CHECK_ERROR(F::poly1_cross_entropy(x, y, F::Poly1CrossEntropyFuncOptions().epsilon(
                                                         std::numeric_limits<double>::infinity())),
                        poly, "epsilon must be finite");
  TORCHLOSS_CHECK_ERROR(F::poly1_cross_entropy(x, y.narrow(0, 0, 2)), poly, "target shape [2]");
  const char* distill = "torchloss::distillation_loss";
  TORCHLOSS_CHECK_ERROR(F::distillation_loss(x, x, F::DistillationLossFuncOptions().temperature(-1)), distill,
                        "temperature must be a finite number > 0, got -1");
  TORCHLOSS_CHECK_ERROR(F::distillation_loss(x, x, F::DistillationLossFuncOptions().temperature(0)), distill, "got 0");
  TORCHLOSS_CHECK_ERROR(F::distillation_loss(x, torch::randn({4, 6})), distill, "teacher shape [4, 6]");
  TORCHLOSS_CHECK_ERROR(F::distillation_loss(x, y), distill, "teacher must be a floating-point tensor");
  TORCHLOSS_CHECK_ERROR(torchloss::DistillationLoss(torchloss::DistillationLossOptions().temperature(-2)),
                        "torchloss::DistillationLoss", "got -2");
  const char* seesaw = "torchloss::seesaw_loss";
  TORCHLOSS_CHECK_ERROR(F::seesaw_loss(x, y, torch::ones({4})), seesaw, "cum_samples must have shape [5]");
  TORCHLOSS_CHECK_ERROR(F::seesaw_loss(x, y, torch::Tensor()), seesaw, "cum_samples is an undefined tensor");
  TORCHLOSS_CHECK_ERROR(F::seesaw_loss(x, y, torch::ones({5}), F::SeesawLossFuncOptions().p(-1)), seesaw,
                        "p must be a finite number >= 0, got -1");
  TORCHLOSS_CHECK_ERROR(F::seesaw_loss(x, y, torch::ones({5}), F::SeesawLossFuncOptions().q(-2)), seesaw, "q must be");
  TORCHLOSS_CHECK_ERROR(F::seesaw_loss(x, y, torch::ones({5}), F::SeesawLossFuncOptions().eps(0)), seesaw,
                        "eps must be a finite number > 0, got 0");
  const char* module = "torchloss::SeesawLoss";
  TORCHLOSS_CHECK_ERROR(torchloss::SeesawLoss(torchloss::SeesawLossOptions(0)), module, "num_classes must be >= 1, got 0");
  torchloss::SeesawLoss six(torchloss::SeesawLossOptions(6));
  TORCHLOSS_CHECK_ERROR(six(x, y), module, "input has 5 classes but num_classes is 6");
  torchloss::SeesawLoss five(torchloss::SeesawLossOptions(5));
  TORCHLOSS_CHECK_ERROR(five(x, torch::tensor({0, 1, 9, 2})), module, "target label 9 is outside [0, 5)");
  CHECK(torch::equal(five->cum_samples, torch::zeros({5})));  // a bad batch leaves the counts alone
}

TEST_CASE("fused CPU kernels agree with the ATen path on wide rows split over tasks", "[soft_target][mixup][distillation][seesaw]") {
  // C = 173: 21 full 8-lane vectors and a 5-element tail per row; 700 rows span several tasks.
  torch::manual_seed(27);
  const int64_t rows = 700, classes = 173;
  const auto y = torch::randint(classes, {rows});
  const auto y_b = torch::randint(classes, {rows});
  const auto target = torch::softmax(torch::randn({rows, classes}, torch::kDouble), 1);
  const auto teacher = torch::randn({rows, classes}, torch::kDouble) * 3;
  const auto counts = torch::randint(0, 500, {classes}).to(torch::kFloat);
  const std::vector<std::function<torch::Tensor(const torch::Tensor&)>> losses{
      [&](const torch::Tensor& x) { return F::soft_target_cross_entropy(x, target); },
      [&](const torch::Tensor& x) {
        return F::mixup_cross_entropy(x, y, y_b, 0.6, F::MixupCrossEntropyFuncOptions().label_smoothing(0.1));
      },
      [&](const torch::Tensor& x) { return F::distillation_loss(x, teacher.to(x.scalar_type())); },
      [&](const torch::Tensor& x) { return F::seesaw_loss(x, y, counts); },
  };
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const double tol = dtype == torch::kDouble ? 1e-12 : 1e-5;
    auto x = (torch::randn({rows, classes}, dtype) * 4).requires_grad_();
    for (size_t k = 0; k < losses.size(); ++k) {
      INFO("loss " << k << ", dtype " << dtype);
      const auto fused = losses[k](x);
      const auto fused_grad = grad_of(fused, x);
      torchloss::detail::ScopedAtenPath path;
      const auto aten = losses[k](x);
      CHECK_THAT(fused, AllClose(aten, tol, tol));
      CHECK_THAT(fused_grad, AllClose(grad_of(aten, x), tol, tol * 1e-2));
    }
  }
}
