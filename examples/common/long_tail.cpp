#include "common/long_tail.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace torchloss::examples {

std::vector<std::int64_t> exponential_profile_counts(std::int64_t n_max, double imbalance,
                                                     std::int64_t num_classes) {
  if (n_max < 1) throw std::invalid_argument("exponential_profile_counts: n_max must be >= 1");
  if (!(imbalance >= 1.0) || !std::isfinite(imbalance)) {
    throw std::invalid_argument("exponential_profile_counts: the imbalance factor must be a finite number >= 1");
  }
  if (num_classes < 1) throw std::invalid_argument("exponential_profile_counts: num_classes must be >= 1");
  std::vector<std::int64_t> counts;
  for (std::int64_t c = 0; c < num_classes; ++c) {
    const double exponent = num_classes == 1 ? 0.0 : -static_cast<double>(c) / static_cast<double>(num_classes - 1);
    // Cui et al.'s code: int(img_max * (1 / IF) ** (c / (C - 1))); the small epsilon keeps
    // exact products (6000 / 100 = 60) from flooring to one less through rounding.
    const auto count = static_cast<std::int64_t>(std::floor(static_cast<double>(n_max) * std::pow(imbalance, exponent) + 1e-9));
    counts.push_back(std::max<std::int64_t>(count, 1));
  }
  return counts;
}

torch::Tensor long_tailed_indices(const torch::Tensor& targets, const std::vector<std::int64_t>& counts) {
  if (targets.dim() != 1 || targets.scalar_type() != torch::kInt64) {
    throw std::invalid_argument("long_tailed_indices: targets must be int64 [N]");
  }
  const torch::Tensor labels = targets.cpu().contiguous();
  const auto* label = labels.data_ptr<std::int64_t>();
  std::vector<std::int64_t> kept(counts.size(), 0);
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    const std::int64_t c = label[i];
    if (c < 0 || c >= static_cast<std::int64_t>(counts.size())) {
      throw std::invalid_argument("long_tailed_indices: label " + std::to_string(c) + " outside [0, " +
                                  std::to_string(counts.size()) + ")");
    }
    if (kept[c] < counts[c]) {
      ++kept[c];
      indices.push_back(i);
    }
  }
  return torch::tensor(indices, torch::kInt64);
}

std::vector<std::int64_t> rarest_classes(const torch::Tensor& class_counts, std::int64_t k) {
  const torch::Tensor counts = class_counts.to(torch::kCPU, torch::kInt64).contiguous();
  const std::int64_t num_classes = counts.numel();
  if (k < 0 || k > num_classes) {
    throw std::invalid_argument("rarest_classes: k must be in [0, " + std::to_string(num_classes) + "]");
  }
  const auto* count = counts.data_ptr<std::int64_t>();
  std::vector<std::int64_t> order(static_cast<std::size_t>(num_classes));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [count](std::int64_t a, std::int64_t b) {
    return count[a] != count[b] ? count[a] < count[b] : a > b;
  });
  order.resize(static_cast<std::size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace torchloss::examples
