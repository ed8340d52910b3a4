// Forward+backward of the long-tail losses against what a LibTorch user writes without
// torchloss, float32 on CPU.
//
//   BM_LogitAdjustedCE/torchloss  torchloss::functional::logit_adjusted_cross_entropy (tau 1)
//   BM_LogitAdjustedCE/composed   F::cross_entropy(x + tau * log_prior, y), log_prior precomputed
//   BM_LDAM/torchloss             torchloss::functional::ldam_loss (max_margin 0.5, s 30)
//   BM_LDAM/composed              the LDAM-DRW reference (kaidic/LDAM-DRW losses.py) in ATen ops:
//                                 one-hot index, batch margins by matmul, where, cross_entropy(s * .)
//   BM_ASL/torchloss              torchloss::functional::asymmetric_loss (gamma+ 0, gamma- 4, clip
//                                 0.05, kSum: the reference's scale)
//   BM_ASL/composed               Alibaba-MIIL's AsymmetricLoss formula in ATen ops (sigmoid, clip,
//                                 clamp, log, pow with per-element gamma, sum), focusing weight
//                                 under autograd (the same gradient as torchloss's default)
//   BM_CopyFloor/clone            x.clone(): the memory floor
//
// Class counts fall exponentially from 1000 to 10 over the C classes (imbalance 100).
#include "bench_common.hpp"

#include <torchloss/torchloss.hpp>

#include <cmath>

namespace {

namespace F = torch::nn::functional;
using torchloss_bench::Shape;

constexpr double kTau = 1.0;
constexpr double kMaxMargin = 0.5;
constexpr double kScale = 30.0;
constexpr double kGammaPos = 0.0;
constexpr double kGammaNeg = 4.0;
constexpr double kClip = 0.05;

/// Class targets with what each loss precomputes from the class counts.
struct LongTailInputs {
  torch::Tensor target, counts, log_prior, margins;
};

LongTailInputs long_tail_inputs(const Shape& shape) {
  LongTailInputs in;
  in.target = torchloss_bench::make_class_targets(shape);
  const auto c = torch::arange(shape.classes, torch::kDouble);
  const double denominator = std::max<double>(1.0, static_cast<double>(shape.classes - 1));
  in.counts = torch::round(1000.0 * torch::pow(100.0, -c / denominator)).to(torch::kLong);
  const auto n = in.counts.to(torch::kFloat);
  in.log_prior = (n / n.sum()).log();
  // The reference: m = 1 / n^(1/4), scaled so that the largest is max_margin.
  const auto m = 1.0 / n.sqrt().sqrt();
  in.margins = m * (kMaxMargin / m.max());
  return in;
}

torch::Tensor logit_adjusted_composed(const torch::Tensor& x, const LongTailInputs& in) {
  return F::cross_entropy(x + kTau * in.log_prior, in.target);
}

torch::Tensor ldam_composed(const torch::Tensor& x, const LongTailInputs& in) {
  const auto index = torch::zeros_like(x, torch::kBool).scatter_(1, in.target.view({-1, 1}), true);
  const auto batch_m = torch::matmul(in.margins.unsqueeze(0), index.to(torch::kFloat).t()).view({-1, 1});
  const auto output = torch::where(index, x - batch_m, x);
  return F::cross_entropy(kScale * output, in.target);
}

torch::Tensor asymmetric_composed(const torch::Tensor& x, const torch::Tensor& y) {
  const auto xs_pos = torch::sigmoid(x);
  const auto xs_neg = (1 - xs_pos + kClip).clamp_max(1);
  const auto loss = y * torch::log(xs_pos.clamp_min(1e-8)) + (1 - y) * torch::log(xs_neg.clamp_min(1e-8));
  const auto pt = xs_pos * y + xs_neg * (1 - y);
  const auto one_sided_gamma = kGammaPos * y + kGammaNeg * (1 - y);
  return -(loss * torch::pow(1 - pt, one_sided_gamma)).sum();
}

const benchmark::internal::Benchmark* const registered[] = {
    torchloss_bench::register_loss_step(
        "BM_LogitAdjustedCE/torchloss", long_tail_inputs,
        [](const torch::Tensor& x, const LongTailInputs& in) {
          return torchloss::functional::logit_adjusted_cross_entropy(
              x, in.target, torchloss::functional::LogitAdjustedCrossEntropyFuncOptions(in.counts).tau(kTau));
        }),
    torchloss_bench::register_loss_step("BM_LogitAdjustedCE/composed", long_tail_inputs, logit_adjusted_composed),
    torchloss_bench::register_loss_step(
        "BM_LDAM/torchloss", long_tail_inputs,
        [](const torch::Tensor& x, const LongTailInputs& in) {
          return torchloss::functional::ldam_loss(
              x, in.target, torchloss::functional::LDAMLossFuncOptions(in.counts).max_margin(kMaxMargin).scale(kScale));
        }),
    torchloss_bench::register_loss_step("BM_LDAM/composed", long_tail_inputs, ldam_composed),
    torchloss_bench::register_loss_step(
        "BM_ASL/torchloss", [](const Shape& s) { return torchloss_bench::make_binary_targets(s); },
        [](const torch::Tensor& x, const torch::Tensor& y) {
          return torchloss::functional::asymmetric_loss(x, y,
                                                        torchloss::functional::AsymmetricLossFuncOptions()
                                                            .gamma_pos(kGammaPos)
                                                            .gamma_neg(kGammaNeg)
                                                            .clip(kClip)
                                                            .reduction(torch::kSum));
        }),
    torchloss_bench::register_loss_step(
        "BM_ASL/composed", [](const Shape& s) { return torchloss_bench::make_binary_targets(s); },
        asymmetric_composed),
    torchloss_bench::register_copy_floor(),
};

}  // namespace

BENCHMARK_MAIN();
