// Forward+backward of the focal family and multi-label soft margin against what a LibTorch
// user writes without torchloss, float32 on CPU.
//
//   BM_SigmoidFocal/torchloss   torchloss::functional::sigmoid_focal_loss (gamma 2, alpha 0.25)
//   BM_SigmoidFocal/composed    torchvision.ops.sigmoid_focal_loss written in ATen ops
//   BM_SoftmaxFocal/torchloss   torchloss::functional::focal_loss (gamma 2)
//   BM_SoftmaxFocal/composed    kornia's focal_loss written in ATen ops (softmax, log_softmax,
//                               one_hot, pow, sum over classes)
//   BM_MultiLabelSoftMargin/torchloss, /builtin   class-weighted, binary targets
//   BM_CopyFloor/clone          x.clone(): the memory floor
#include "bench_common.hpp"

#include <torchloss/torchloss.hpp>

namespace {

namespace F = torch::nn::functional;
using torchloss_bench::Shape;

constexpr double kGamma = 2.0;
constexpr double kAlpha = 0.25;

torch::Tensor sigmoid_focal_composed(const torch::Tensor& x, const torch::Tensor& y) {
  const auto p = torch::sigmoid(x);
  const auto ce = F::binary_cross_entropy_with_logits(x, y, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  const auto p_t = p * y + (1 - p) * (1 - y);
  const auto loss = ce * (1 - p_t).pow(kGamma);
  const auto alpha_t = kAlpha * y + (1 - kAlpha) * (1 - y);
  return (alpha_t * loss).mean();
}

torch::Tensor softmax_focal_composed(const torch::Tensor& x, const torch::Tensor& target) {
  const auto p = torch::softmax(x, 1);
  const auto log_p = torch::log_softmax(x, 1);
  const auto one_hot = F::one_hot(target, x.size(1)).to(x.scalar_type());
  const auto focal = -(1 - p).pow(kGamma) * log_p;
  return (one_hot * focal).sum(1).mean();
}

torchloss_bench::WeightedTarget binary_targets_and_weights(const Shape& shape) {
  return {torchloss_bench::make_binary_targets(shape), torchloss_bench::make_class_weights(shape)};
}

const benchmark::internal::Benchmark* const registered[] = {
    torchloss_bench::register_loss_step(
        "BM_SigmoidFocal/torchloss", [](const Shape& s) { return torchloss_bench::make_binary_targets(s); },
        [](const torch::Tensor& x, const torch::Tensor& y) {
          return torchloss::functional::sigmoid_focal_loss(
              x, y, torchloss::functional::SigmoidFocalLossFuncOptions().gamma(kGamma).alpha(kAlpha));
        }),
    torchloss_bench::register_loss_step(
        "BM_SigmoidFocal/composed", [](const Shape& s) { return torchloss_bench::make_binary_targets(s); },
        sigmoid_focal_composed),
    torchloss_bench::register_loss_step(
        "BM_SoftmaxFocal/torchloss", [](const Shape& s) { return torchloss_bench::make_class_targets(s); },
        [](const torch::Tensor& x, const torch::Tensor& t) {
          return torchloss::functional::focal_loss(x, t, torchloss::functional::FocalLossFuncOptions().gamma(kGamma));
        }),
    torchloss_bench::register_loss_step(
        "BM_SoftmaxFocal/composed", [](const Shape& s) { return torchloss_bench::make_class_targets(s); },
        softmax_focal_composed),
    torchloss_bench::register_loss_step(
        "BM_MultiLabelSoftMargin/torchloss", binary_targets_and_weights,
        [](const torch::Tensor& x, const torchloss_bench::WeightedTarget& in) {
          return torchloss::functional::multilabel_soft_margin_loss(
              x, in.target, torchloss::functional::MultiLabelSoftMarginLossFuncOptions().weight(in.weight));
        }),
    torchloss_bench::register_loss_step(
        "BM_MultiLabelSoftMargin/builtin", binary_targets_and_weights,
        [](const torch::Tensor& x, const torchloss_bench::WeightedTarget& in) {
          return F::multilabel_soft_margin_loss(x, in.target, F::MultilabelSoftMarginLossFuncOptions().weight(in.weight));
        }),
    torchloss_bench::register_copy_floor(),
};

}  // namespace

BENCHMARK_MAIN();
