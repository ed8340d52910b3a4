// Forward+backward of the metric-learning losses against what a LibTorch user writes without
// torchloss, float32 on CPU.
//
//   BM_ArcFace/torchloss      torchloss::functional::combined_margin_loss (s 64, m2 0.5) on
//                             cosine logits [N, C] uniform in [-1, 1]
//   BM_ArcFace/composed       insightface's ArcFace in ATen ops: gather the target cosine,
//                             sqrt(1 - c^2), cos(theta + m), where(c > cos(pi - m), ., fallback),
//                             scatter it back, cross_entropy(s * logits)
//   BM_CosFace/torchloss      combined_margin_loss (s 64, m3 0.35)
//   BM_CosFace/composed       cross_entropy(s * (cos - m3 * one_hot(y)))
//   BM_CopyFloor/clone        cos.clone(): the memory floor of the margin losses
//   BM_SupCon/torchloss       torchloss::functional::supervised_contrastive_loss, features
//                             [N, 2, D] L2-normalised, 10 classes, tau 0.07 (rows: N/D)
//   BM_SupCon/composed        the SupContrast authors' SupConLoss in ATen ops
//   BM_SupConFloor/matmul     the one [2N, 2N] matmul of the dot products (no loss, no backward)
//   BM_BatchHard/torchloss    torchloss::functional::batch_hard_triplet_loss (margin 0.3),
//                             embeddings [N, D], 16 classes
//   BM_BatchHard/composed     the batch-hard loss in ATen ops: cdist, label masks, masked
//                             max / min, relu(d_ap - d_an + margin).mean()
//   BM_BatchHardFloor/matmul  the [N, N] Gram matmul (no loss, no backward)
#include "bench_common.hpp"

#include <torchloss/torchloss.hpp>

#include <cmath>

namespace {

namespace F = torch::nn::functional;
using torchloss_bench::Shape;

constexpr double kScale = 64.0;
constexpr double kAngularMargin = 0.5;
constexpr double kAdditiveMargin = 0.35;
constexpr double kTemperature = 0.07;
constexpr double kTripletMargin = 0.3;
constexpr int64_t kViews = 2;

// --- Combined margin on the [N, C] grid of the other softmax losses ---------------------------

torch::Tensor arcface_composed(const torch::Tensor& cos, const torch::Tensor& y) {
  const double cos_m = std::cos(kAngularMargin), sin_m = std::sin(kAngularMargin);
  const double threshold = std::cos(M_PI - kAngularMargin), fallback = std::sin(M_PI - kAngularMargin) * kAngularMargin;
  const auto target = cos.gather(1, y.unsqueeze(1));
  const auto sin_theta = torch::sqrt(1.0 - target * target);
  const auto cos_theta_m = target * cos_m - sin_theta * sin_m;
  const auto final_target = torch::where(target > threshold, cos_theta_m, target - fallback);
  return F::cross_entropy(cos.scatter(1, y.unsqueeze(1), final_target) * kScale, y);
}

torch::Tensor cosface_composed(const torch::Tensor& cos, const torch::Tensor& y) {
  const auto onehot = F::one_hot(y, cos.size(1)).to(cos.scalar_type());
  return F::cross_entropy(kScale * (cos - kAdditiveMargin * onehot), y);
}

/// Registers a margin loss on the grid, on cosine logits uniform in [-1, 1].
template <typename Loss>
benchmark::internal::Benchmark* register_margin(const char* name, Loss loss) {
  return torchloss_bench::register_grid(name, [loss](benchmark::State& state) {
    const Shape shape = torchloss_bench::shape_and_threads(state);
    torch::manual_seed(0);
    torch::Tensor cos = (torch::rand({shape.rows, shape.classes}) * 2 - 1).set_requires_grad(true);
    const auto y = torchloss_bench::make_class_targets(shape);
    torchloss_bench::run_forward_backward(state, shape, cos, [&] { return loss(cos, y); });
  });
}

// --- SupCon and batch-hard triplet: N samples of dimension D ----------------------------------

/// Registers `fn` on the pair grid: N = 256 and 1024 samples of D = 10 and 128, 1 and 2 threads.
template <typename Fn>
benchmark::internal::Benchmark* register_pairs(const char* name, Fn fn) {
  benchmark::internal::Benchmark* bench = benchmark::RegisterBenchmark(name, fn);
  torchloss_bench::apply_grid(bench, {Shape{256, 10}, Shape{1024, 128}});
  return bench;
}

torch::Tensor supcon_composed(const torch::Tensor& features, const torch::Tensor& labels) {
  const int64_t batch = features.size(0), views = features.size(1);
  const auto mask = torch::eq(labels.view({-1, 1}), labels.view({1, -1})).to(torch::kFloat);
  const auto contrast = torch::cat(torch::unbind(features, 1), 0);
  const auto anchor_dot_contrast = torch::matmul(contrast, contrast.t()) / kTemperature;
  const auto logits = anchor_dot_contrast - std::get<0>(anchor_dot_contrast.max(1, true)).detach();
  const auto tiled = mask.repeat({views, views});
  const auto logits_mask =
      torch::ones_like(tiled).scatter(1, torch::arange(batch * views).view({-1, 1}), 0.0);
  const auto positives = tiled * logits_mask;
  const auto exp_logits = torch::exp(logits) * logits_mask;
  const auto log_prob = logits - torch::log(exp_logits.sum(1, true));
  const auto pairs = positives.sum(1);
  const auto safe_pairs = torch::where(pairs < 1e-6, torch::ones_like(pairs), pairs);
  const auto mean_log_prob_pos = (positives * log_prob).sum(1) / safe_pairs;
  return (-(kTemperature / kTemperature) * mean_log_prob_pos).mean();
}

torch::Tensor batch_hard_composed(const torch::Tensor& x, const torch::Tensor& labels) {
  const int64_t n = x.size(0);
  const auto dist = torch::cdist(x, x);
  const auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  const auto positive = same & ~torch::eye(n, torch::kBool);
  const auto hardest_positive = std::get<0>(dist.masked_fill(~positive, 0).max(1));
  const auto hardest_negative = std::get<0>(dist.masked_fill(same, std::numeric_limits<float>::infinity()).min(1));
  return F::relu(hardest_positive - hardest_negative + kTripletMargin).mean();
}

/// A training step of a pair loss: `make(N, D)` builds the leaf and labels once.
template <typename Make, typename Loss>
auto pair_step(Make make, Loss loss) {
  return [make, loss](benchmark::State& state) {
    const Shape shape = torchloss_bench::shape_and_threads(state);
    auto [leaf, labels] = make(shape);
    torchloss_bench::run_forward_backward(state, shape, leaf, [&] { return loss(leaf, labels); });
  };
}

std::pair<torch::Tensor, torch::Tensor> supcon_inputs(const Shape& shape) {
  torch::manual_seed(0);
  auto features = F::normalize(torch::randn({shape.rows, kViews, shape.classes}), F::NormalizeFuncOptions().dim(2));
  return {features.set_requires_grad(true), torch::randint(10, {shape.rows}, torch::kLong)};
}

std::pair<torch::Tensor, torch::Tensor> triplet_inputs(const Shape& shape) {
  torch::manual_seed(0);
  return {torch::randn({shape.rows, shape.classes}).set_requires_grad(true),
          torch::randint(16, {shape.rows}, torch::kLong)};
}

/// The matmul the loss cannot avoid: `make(N, D)` gives the rows that are multiplied.
template <typename Rows>
auto matmul_floor(Rows rows) {
  return [rows](benchmark::State& state) {
    const Shape shape = torchloss_bench::shape_and_threads(state);
    const torch::Tensor x = rows(shape);
    for (auto _ : state) {
      torch::Tensor product = x.mm(x.t());
      benchmark::DoNotOptimize(product);
    }
    torchloss_bench::set_throughput(state, shape);
  };
}

const benchmark::internal::Benchmark* const registered[] = {
    register_margin("BM_ArcFace/torchloss",
                    [](const torch::Tensor& cos, const torch::Tensor& y) {
                      return torchloss::functional::combined_margin_loss(
                          cos, y, torchloss::CombinedMarginLossOptions::arcface(kScale, kAngularMargin));
                    }),
    register_margin("BM_ArcFace/composed", arcface_composed),
    register_margin("BM_CosFace/torchloss",
                    [](const torch::Tensor& cos, const torch::Tensor& y) {
                      return torchloss::functional::combined_margin_loss(
                          cos, y, torchloss::CombinedMarginLossOptions::cosface(kScale, kAdditiveMargin));
                    }),
    register_margin("BM_CosFace/composed", cosface_composed),
    torchloss_bench::register_copy_floor(),
    register_pairs("BM_SupCon/torchloss", pair_step(supcon_inputs,
                                                    [](const torch::Tensor& features, const torch::Tensor& labels) {
                                                      return torchloss::functional::supervised_contrastive_loss(
                                                          features, labels,
                                                          torchloss::functional::SupConLossFuncOptions()
                                                              .temperature(kTemperature)
                                                              .base_temperature(kTemperature));
                                                    })),
    register_pairs("BM_SupCon/composed", pair_step(supcon_inputs, supcon_composed)),
    register_pairs("BM_SupConFloor/matmul", matmul_floor([](const Shape& shape) {
                     return torch::cat(torch::unbind(supcon_inputs(shape).first.detach(), 1), 0);
                   })),
    register_pairs("BM_BatchHard/torchloss", pair_step(triplet_inputs,
                                                       [](const torch::Tensor& x, const torch::Tensor& labels) {
                                                         return torchloss::functional::batch_hard_triplet_loss(
                                                             x, labels,
                                                             torchloss::functional::BatchHardTripletLossFuncOptions()
                                                                 .margin(kTripletMargin));
                                                       })),
    register_pairs("BM_BatchHard/composed", pair_step(triplet_inputs, batch_hard_composed)),
    register_pairs("BM_BatchHardFloor/matmul",
                   matmul_floor([](const Shape& shape) { return triplet_inputs(shape).first.detach(); })),
};

}  // namespace

BENCHMARK_MAIN();
