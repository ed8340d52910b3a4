// Forward+backward of the modern-recipe losses against what a LibTorch user writes without
// torchloss, float32 on CPU.
//
//   BM_SoftTargetCE/torchloss      torchloss::functional::soft_target_cross_entropy
//   BM_SoftTargetCE/composed       timm's SoftTargetCrossEntropy: sum(-t * log_softmax(x), -1).mean()
//   BM_SoftTargetCE/libtorch       F::cross_entropy(x, t) with probability targets
//   BM_MixupCE/torchloss           torchloss::functional::mixup_cross_entropy(x, y, y.flip(0), lam),
//                                  label smoothing 0.1 (timm's default recipe)
//   BM_MixupCE/dense_soft_target   timm's mixup_target (two smoothed one-hots, mixed) then its
//                                  SoftTargetCrossEntropy, the target built every step
//   BM_MixupCE/two_index_ce        lam * F::cross_entropy(x, y) + (1 - lam) * F::cross_entropy(x, y.flip(0)),
//                                  each with label_smoothing 0.1 (the usual workaround)
//   BM_MixupCE/index_ce            one F::cross_entropy(x, y) with label_smoothing 0.1: the floor the
//                                  pair form must not be slower than
//   BM_Seesaw/torchloss            torchloss::SeesawLoss (training mode: counts updated every step)
//   BM_Seesaw/composed             mmpretrain's seesaw_ce_loss in ATen ops (C x C ratio matrix, its
//                                  rows gathered per sample, detached softmax scores, pow, log,
//                                  cross_entropy), counts updated with bincount
//   BM_CopyFloor/clone             x.clone(): the memory floor
#include "bench_common.hpp"

#include <torchloss/torchloss.hpp>

namespace {

namespace F = torch::nn::functional;
using torchloss_bench::Shape;

constexpr double kLam = 0.7;
constexpr double kSmoothing = 0.1;
constexpr double kSeesawP = 0.8;
constexpr double kSeesawQ = 2.0;
constexpr double kSeesawEps = 1e-2;

/// Soft targets [N, C]: rows of a softmax (distributions).
torch::Tensor soft_targets(const Shape& shape) {
  return torch::softmax(2 * torchloss_bench::make_probability_targets(shape), 1);
}

torch::Tensor soft_target_composed(const torch::Tensor& x, const torch::Tensor& target) {
  return torch::sum(-target * torch::log_softmax(x, -1), -1).mean();
}

/// timm's mixup_target: lam * smoothed_one_hot(y) + (1 - lam) * smoothed_one_hot(y.flip(0)).
torch::Tensor timm_mixup_target(const torch::Tensor& y, int64_t classes) {
  const double off = kSmoothing / classes, on = 1 - kSmoothing + off;
  const auto y1 = torch::full({y.size(0), classes}, off).scatter_(1, y.view({-1, 1}), on);
  const auto y2 = torch::full({y.size(0), classes}, off).scatter_(1, y.flip(0).view({-1, 1}), on);
  return y1 * kLam + y2 * (1 - kLam);
}

/// Labels with a flipped copy (the batch-mixup pairing).
struct MixupLabels {
  torch::Tensor y, y_flipped;
  int64_t classes;
};

MixupLabels mixup_labels(const Shape& shape) {
  const auto y = torchloss_bench::make_class_targets(shape);
  return {y, y.flip(0), shape.classes};
}

/// Long-tailed labels (class c drawn with weight 0.99^c) and the module's state.
struct SeesawInputs {
  torch::Tensor y;
  torchloss::SeesawLoss module{torchloss::SeesawLossOptions(1)};
  torch::Tensor cum_samples;  // the composed version's counts
};

SeesawInputs seesaw_inputs(const Shape& shape) {
  torch::manual_seed(3);
  SeesawInputs in;
  const auto weights = torch::pow(0.99, torch::arange(shape.classes, torch::kDouble));
  in.y = torch::multinomial(weights, shape.rows, /*replacement=*/true);
  in.module = torchloss::SeesawLoss(torchloss::SeesawLossOptions(shape.classes).p(kSeesawP).q(kSeesawQ).eps(kSeesawEps));
  in.cum_samples = torch::zeros({shape.classes});
  return in;
}

torch::Tensor seesaw_composed(const torch::Tensor& x, const SeesawInputs& in) {
  const int64_t classes = x.size(1);
  auto cum = in.cum_samples;
  cum.add_(torch::bincount(in.y, {}, classes).to(torch::kFloat));
  const auto onehot = F::one_hot(in.y, classes).to(x.scalar_type());
  const auto ratio = cum.clamp_min(1).unsqueeze(0) / cum.clamp_min(1).unsqueeze(1);
  const auto below = (ratio < 1.0).to(x.scalar_type());
  const auto mitigation = (ratio.pow(kSeesawP) * below + (1 - below)).index_select(0, in.y);
  const auto scores = torch::softmax(x.detach(), 1);
  const auto self_scores = scores.gather(1, in.y.unsqueeze(1));
  const auto score_matrix = scores / self_scores.clamp_min(kSeesawEps);
  const auto above = (score_matrix > 1.0).to(x.scalar_type());
  const auto compensation = score_matrix.pow(kSeesawQ) * above + (1 - above);
  const auto adjusted = x + (mitigation * compensation).log() * (1 - onehot);
  return F::cross_entropy(adjusted, in.y);
}

const benchmark::internal::Benchmark* const registered[] = {
    torchloss_bench::register_loss_step("BM_SoftTargetCE/torchloss", soft_targets,
                                        [](const torch::Tensor& x, const torch::Tensor& t) {
                                          return torchloss::functional::soft_target_cross_entropy(x, t);
                                        }),
    torchloss_bench::register_loss_step("BM_SoftTargetCE/composed", soft_targets, soft_target_composed),
    torchloss_bench::register_loss_step("BM_SoftTargetCE/libtorch", soft_targets,
                                        [](const torch::Tensor& x, const torch::Tensor& t) {
                                          return F::cross_entropy(x, t);
                                        }),
    torchloss_bench::register_loss_step(
        "BM_MixupCE/torchloss", mixup_labels,
        [](const torch::Tensor& x, const MixupLabels& in) {
          return torchloss::functional::mixup_cross_entropy(
              x, in.y, in.y_flipped, kLam, torchloss::functional::MixupCrossEntropyFuncOptions().label_smoothing(kSmoothing));
        }),
    torchloss_bench::register_loss_step("BM_MixupCE/dense_soft_target", mixup_labels,
                                        [](const torch::Tensor& x, const MixupLabels& in) {
                                          return soft_target_composed(x, timm_mixup_target(in.y, in.classes));
                                        }),
    torchloss_bench::register_loss_step(
        "BM_MixupCE/two_index_ce", mixup_labels,
        [](const torch::Tensor& x, const MixupLabels& in) {
          const auto options = F::CrossEntropyFuncOptions().label_smoothing(kSmoothing);
          return kLam * F::cross_entropy(x, in.y, options) + (1 - kLam) * F::cross_entropy(x, in.y_flipped, options);
        }),
    torchloss_bench::register_loss_step("BM_MixupCE/index_ce", mixup_labels,
                                        [](const torch::Tensor& x, const MixupLabels& in) {
                                          return F::cross_entropy(
                                              x, in.y, F::CrossEntropyFuncOptions().label_smoothing(kSmoothing));
                                        }),
    torchloss_bench::register_loss_step("BM_Seesaw/torchloss", seesaw_inputs,
                                        [](const torch::Tensor& x, const SeesawInputs& in) {
                                          // The module is a shared handle: its counts grow as in training.
                                          torchloss::SeesawLoss module = in.module;
                                          return module(x, in.y);
                                        }),
    torchloss_bench::register_loss_step("BM_Seesaw/composed", seesaw_inputs, seesaw_composed),
    torchloss_bench::register_copy_floor(),
};

}  // namespace

BENCHMARK_MAIN();
