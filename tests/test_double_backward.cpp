// Second derivatives (issue #13): with create_graph, the gradient of every loss is itself
// differentiable, on the fused CPU path and on the ATen path. Hessian-vector products are
// compared with float64 autograd through plain-ATen references of the published formulas.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"

#include <functional>
#include <string>
#include <vector>

using torchloss_test::AllClose;
namespace F = torchloss::functional;
namespace nnf = torch::nn::functional;

namespace {

using LossFn = std::function<torch::Tensor(const torch::Tensor&)>;

/// One loss: its torchloss form and a plain-ATen reference, both of the input x.
struct DoubleBackwardCase {
  std::string name;
  torch::Tensor x;  ///< float64 input
  LossFn loss, reference;
};

/// H·v of f at x by double backward, and the gradient, as float64.
std::pair<torch::Tensor, torch::Tensor> hessian_vector_product(const LossFn& f, const torch::Tensor& x0,
                                                               const torch::Tensor& v, torch::ScalarType dtype) {
  auto x = x0.detach().to(dtype).requires_grad_();
  const auto loss = f(x);
  const auto grad = torch::autograd::grad({loss.sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  REQUIRE(grad.requires_grad());
  const auto hvp = torch::autograd::grad({(grad * v.to(dtype)).sum()}, {x}, {}, /*retain_graph=*/false,
                                         /*create_graph=*/false, /*allow_unused=*/true)[0];
  REQUIRE(hvp.defined());
  return {hvp.to(torch::kDouble), grad.detach().to(torch::kDouble)};
}

const auto kDouble = torch::TensorOptions().dtype(torch::kDouble);

std::vector<DoubleBackwardCase> cases() {
  torch::manual_seed(7);
  const int64_t n = 6, c = 4;
  const auto logits = torch::randn({n, c}, kDouble) * 2;
  const auto labels = torch::tensor({0, 3, 1, -100, 2, 1}, torch::kLong);
  const auto safe = labels.clamp_min(0);
  const auto valid = (labels != -100).to(torch::kDouble);
  const auto w = torch::tensor({0.5, 2.0, 1.0, 1.5}, kDouble);
  const auto counts = torch::tensor({100.0, 30.0, 10.0, 3.0}, kDouble);
  const auto binary = (torch::rand({n, c}, kDouble) < 0.4).to(torch::kDouble);
  const auto soft = torch::rand({n, c}, kDouble);
  std::vector<DoubleBackwardCase> all;

  all.push_back({"weighted_cross_entropy", logits,
                 [=](const torch::Tensor& x) {
                   return F::weighted_cross_entropy(
                       x, labels, F::WeightedCrossEntropyFuncOptions().weight(w.to(x.scalar_type())).label_smoothing(0.1));
                 },
                 [=](const torch::Tensor& x) {
                   return nnf::cross_entropy(x, labels, nnf::CrossEntropyFuncOptions().weight(w).label_smoothing(0.1));
                 }});
  all.push_back({"focal_loss", logits,
                 [=](const torch::Tensor& x) {
                   return F::focal_loss(x, labels, F::FocalLossFuncOptions().gamma(2.0).alpha(w.to(x.scalar_type())));
                 },
                 [=](const torch::Tensor& x) {
                   const auto logp = x.log_softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1);
                   const auto losses = -w.index_select(0, safe) * (1 - logp.exp()).pow(2) * logp * valid;
                   return losses.sum() / valid.sum();
                 }});
  all.push_back({"focal_loss gamma 0.5", logits,
                 [=](const torch::Tensor& x) { return F::focal_loss(x, labels, F::FocalLossFuncOptions().gamma(0.5)); },
                 [=](const torch::Tensor& x) {
                   const auto logp = x.log_softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1);
                   return (-(1 - logp.exp()).pow(0.5) * logp * valid).sum() / valid.sum();
                 }});
  all.push_back({"logit_adjusted_cross_entropy", logits,
                 [=](const torch::Tensor& x) {
                   return F::logit_adjusted_cross_entropy(
                       x, labels, F::LogitAdjustedCrossEntropyFuncOptions(counts).tau(1.0).weight(w.to(x.scalar_type())));
                 },
                 [=](const torch::Tensor& x) {
                   return nnf::cross_entropy(x + (counts / counts.sum()).log(), labels,
                                             nnf::CrossEntropyFuncOptions().weight(w));
                 }});
  all.push_back({"ldam_loss", logits * 0.2,
                 [=](const torch::Tensor& x) {
                   return F::ldam_loss(x, labels, F::LDAMLossFuncOptions(counts).max_margin(0.5).scale(5.0));
                 },
                 [=](const torch::Tensor& x) {
                   const auto m = counts.pow(-0.25);
                   const auto margin = m * (0.5 / m.max().item<double>());
                   const auto shifted = x - torch::zeros_like(x).scatter(1, safe.unsqueeze(1),
                                                                         margin.index_select(0, safe).unsqueeze(1));
                   return nnf::cross_entropy(5.0 * shifted, labels);
                 }});
  all.push_back({"weighted_binary_cross_entropy", logits,
                 [=](const torch::Tensor& x) {
                   return F::weighted_binary_cross_entropy(
                       x, soft.to(x.scalar_type()), F::WeightedBinaryCrossEntropyFuncOptions(0.3).weight(w.to(x.scalar_type())));
                 },
                 [=](const torch::Tensor& x) {
                   const auto l = -0.3 * soft * nnf::logsigmoid(x) - 0.7 * (1 - soft) * nnf::logsigmoid(-x);
                   return (w * l).mean();
                 }});
  all.push_back({"sigmoid_focal_loss", logits,
                 [=](const torch::Tensor& x) {
                   return F::sigmoid_focal_loss(x, binary.to(x.scalar_type()), F::SigmoidFocalLossFuncOptions().gamma(2).alpha(0.25));
                 },
                 [=](const torch::Tensor& x) {
                   const auto p = x.sigmoid();
                   const auto ce = nnf::binary_cross_entropy_with_logits(
                       x, binary, nnf::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
                   const auto p_t = p * binary + (1 - p) * (1 - binary);
                   const auto alpha_t = 0.25 * binary + 0.75 * (1 - binary);
                   return (alpha_t * ce * (1 - p_t).pow(2)).mean();
                 }});
  all.push_back({"multilabel_soft_margin_loss", logits,
                 [=](const torch::Tensor& x) {
                   return F::multilabel_soft_margin_loss(x, binary.to(x.scalar_type()),
                                                         F::MultiLabelSoftMarginLossFuncOptions().weight(w.to(x.scalar_type())));
                 },
                 [=](const torch::Tensor& x) {
                   return nnf::multilabel_soft_margin_loss(x, binary, nnf::MultilabelSoftMarginLossFuncOptions().weight(w));
                 }});
  all.push_back({"asymmetric_loss", logits,
                 [=](const torch::Tensor& x) {
                   return F::asymmetric_loss(x, binary.to(x.scalar_type()),
                                             F::AsymmetricLossFuncOptions().gamma_pos(1).gamma_neg(4).clip(0.05));
                 },
                 [=](const torch::Tensor& x) {
                   const auto p = x.sigmoid();
                   const auto p_m = (p - 0.05).clamp_min(0);
                   const auto positive = binary * (1 - p).pow(1) * nnf::logsigmoid(x);
                   const auto negative = (1 - binary) * p_m.pow(4) * torch::log1p(-p_m);
                   return -(positive + negative).mean();
                 }});
  // GHM: the bin weights are constants; the reference computes them from g in float64.
  const auto ghm_weights = [](const torch::Tensor& g, int64_t bins) {
    const auto edges = (torch::arange(bins + 1).to(torch::kFloat) / bins).to(torch::kDouble);
    auto weights = torch::zeros_like(g);
    const double tot = static_cast<double>(g.numel());
    int64_t nonempty = 0;
    for (int64_t b = 0; b < bins; ++b) {
      const auto in_bin = (g >= edges[b]) & (b + 1 < bins ? g < edges[b + 1] : g <= 1.0);
      const double count = in_bin.sum().item<double>();
      if (count > 0) {
        ++nonempty;
        weights.masked_fill_(in_bin, tot / count);
      }
    }
    return weights / std::max<int64_t>(nonempty, 1) / tot;
  };
  all.push_back({"ghmc_loss", logits,
                 [=](const torch::Tensor& x) { return F::ghmc_loss(x, binary.to(x.scalar_type())); },
                 [=](const torch::Tensor& x) {
                   const auto weights = ghm_weights((x.detach().sigmoid() - binary).abs(), 10);
                   return (weights * nnf::binary_cross_entropy_with_logits(
                                         x, binary, nnf::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone)))
                       .sum();
                 }});
  all.push_back({"ghmr_loss", logits * 0.05,
                 [=](const torch::Tensor& x) { return F::ghmr_loss(x, soft.to(x.scalar_type()) * 0.05); },
                 [=](const torch::Tensor& x) {
                   const auto d = x - soft * 0.05;
                   const auto root = (d * d + 0.02 * 0.02).sqrt();
                   const auto weights = ghm_weights((d / root).abs().detach(), 10);
                   return (weights * (root - 0.02)).sum();
                 }});
  const auto centers = torch::randn({3, c}, kDouble);
  const auto center_labels = torch::tensor({0, 2, 1, 1, 0, 2}, torch::kLong);
  all.push_back({"center_loss", logits,
                 [=](const torch::Tensor& x) {
                   return F::center_loss(x, center_labels, centers.to(x.scalar_type()),
                                         F::CenterLossFuncOptions().update_centers(false));
                 },
                 [=](const torch::Tensor& x) {
                   return 0.5 * (x - centers.index_select(0, center_labels)).pow(2).sum(1).mean();
                 }});
  return all;
}

}  // namespace

TEST_CASE("Double backward: Hessian-vector products match float64 autograd on both paths", "[double_backward]") {
  for (const auto& c : cases()) {
    const auto v = torch::randn(c.x.sizes(), kDouble);
    const auto expected = hessian_vector_product(c.reference, c.x, v, torch::kDouble);
    for (bool aten : {false, true}) {
      const torchloss::detail::ScopedAtenPath path(aten);
      for (auto dtype : {torch::kDouble, torch::kFloat}) {
        INFO(c.name << ", ATen path " << aten << ", dtype " << dtype);
        const auto result = hessian_vector_product(c.loss, c.x, v, dtype);
        const double tolerance = dtype == torch::kDouble ? 1e-9 : 2e-4;
        CHECK_THAT(result.second, AllClose(expected.second, tolerance, tolerance * 1e-2));
        CHECK_THAT(result.first, AllClose(expected.first, tolerance, tolerance * 1e-2));
      }
    }
  }
}

TEST_CASE("Double backward with per-element outputs and learnable centers", "[double_backward]") {
  torch::manual_seed(3);
  const auto x0 = torch::randn({5, 3}, kDouble);
  const auto y = torch::tensor({0, 2, 1, 2, 0}, torch::kLong);
  for (bool aten : {false, true}) {
    INFO("ATen path " << aten);
    const torchloss::detail::ScopedAtenPath path(aten);
    // kNone: a gradient penalty Σ‖∂(Σ v_i ℓ_i)/∂x‖² through focal loss equals the reference's.
    const auto v = torch::rand({5}, kDouble);
    const auto penalty_grad = [&](bool reference) {
      auto x = x0.clone().requires_grad_();
      const auto losses = reference
                              ? -(1 - x.log_softmax(1).gather(1, y.unsqueeze(1)).squeeze(1).exp()).pow(2) *
                                    x.log_softmax(1).gather(1, y.unsqueeze(1)).squeeze(1)
                              : F::focal_loss(x, y, F::FocalLossFuncOptions().reduction(torch::kNone));
      const auto g = torch::autograd::grad({(losses * v).sum()}, {x}, {}, true, true)[0];
      g.pow(2).sum().backward();
      return x.grad();
    };
    CHECK_THAT(penalty_grad(false), AllClose(penalty_grad(true), 1e-9, 1e-12));
    // Learnable centers: the mixed second derivative reaches the centers.
    auto centers = torch::randn({3, 3}, kDouble).requires_grad_();
    auto x = x0.clone().requires_grad_();
    const auto loss = F::center_loss(x, y, centers, F::CenterLossFuncOptions().update_centers(false));
    const auto g = torch::autograd::grad({loss}, {x}, {}, true, true)[0];
    g.pow(2).sum().backward();
    auto x_ref = x0.clone().requires_grad_();
    auto centers_ref = centers.detach().clone().requires_grad_();
    const auto ref_loss = 0.5 * (x_ref - centers_ref.index_select(0, y)).pow(2).sum(1).mean();
    const auto g_ref = torch::autograd::grad({ref_loss}, {x_ref}, {}, true, true)[0];
    g_ref.pow(2).sum().backward();
    CHECK_THAT(x.grad(), AllClose(x_ref.grad(), 1e-12, 1e-14));
    CHECK_THAT(centers.grad(), AllClose(centers_ref.grad(), 1e-12, 1e-14));
  }
}

TEST_CASE("losses whose backward is not differentiable refuse create_graph with their own error",
          "[double_backward]") {
  // Their backward hands on a gradient computed in the forward (or from constants saved
  // there): a second derivative would silently come out as nothing, so it is refused.
  const auto x0 = torch::randn({6, 4}, kDouble);
  const auto labels = torch::tensor({0, 1, 2, 3, 0, 1});
  const auto soft = torch::softmax(torch::randn({6, 4}, kDouble), 1);
  const auto cosines = torch::rand({6, 4}, kDouble) * 1.8 - 0.9;
  const std::vector<std::pair<std::string, LossFn>> refused{
      {"torchloss::soft_target_cross_entropy", [&](const torch::Tensor& x) { return F::soft_target_cross_entropy(x, soft); }},
      {"torchloss::mixup_cross_entropy",
       [&](const torch::Tensor& x) { return F::mixup_cross_entropy(x, labels, labels.flip(0), 0.3); }},
      {"torchloss::distillation_loss", [&](const torch::Tensor& x) { return F::distillation_loss(x, x0 * 2); }},
      {"torchloss::seesaw_loss",
       [&](const torch::Tensor& x) { return F::seesaw_loss(x, labels, torch::tensor({5.0f, 3.0f, 2.0f, 1.0f})); }},
      {"torchloss::batch_hard_triplet_loss", [&](const torch::Tensor& x) { return F::batch_hard_triplet_loss(x, labels); }},
      {"torchloss::supervised_contrastive_loss",
       [&](const torch::Tensor& x) {
         return F::supervised_contrastive_loss(torch::nn::functional::normalize(x.view({6, 1, 4}),
                                                   torch::nn::functional::NormalizeFuncOptions().dim(2)),
                                               labels);
       }},
      {"torchloss::linear_cross_entropy",
       [&](const torch::Tensor& x) { return F::linear_cross_entropy(x, x0.narrow(0, 0, 4), {}, labels); }},
      {"torchloss::combined_margin_loss",
       [&](const torch::Tensor& x) {
         return F::combined_margin_loss(cosines + 0.01 * x, labels, F::CombinedMarginLossFuncOptions::arcface());
       }},
  };
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (const auto& [fn, loss] : refused) {
      INFO(fn << ", aten path " << aten_path);
      auto x = x0.clone().requires_grad_();
      const auto value = loss(x).sum();
      // A plain backward works...
      CHECK(torch::autograd::grad({value}, {x}, {}, /*retain_graph=*/true)[0].defined());
      // ...create_graph is refused with the loss's own message.
      try {
        torch::autograd::grad({value}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
        FAIL("no error raised");
      } catch (const c10::Error& error) {
        const std::string message = error.what_without_backtrace();
        INFO("message: " << message);
        CHECK(message.find(fn + ": double backward") != std::string::npos);
      }
    }
  }
}
