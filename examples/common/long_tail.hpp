#pragma once
/// @file long_tail.hpp
/// Long-tailed subsets of a balanced dataset, with the exponential profile of Cui et al.
/// ("Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019).

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace torchloss::examples {

/// Per-class sizes of the exponential profile: class c keeps
/// n_c = floor(n_max · IF^(−c/(C−1))) examples (at least 1), so class 0 keeps n_max and
/// class C−1 keeps n_max / IF. `imbalance` (IF) must be >= 1; IF = 1 keeps every class at n_max.
/// Throws `std::invalid_argument` for n_max < 1, imbalance < 1 or num_classes < 1.
std::vector<std::int64_t> exponential_profile_counts(std::int64_t n_max, double imbalance,
                                                     std::int64_t num_classes);

/// Indices (int64 [K], ascending) that keep the first `counts[c]` examples of each class c
/// of `targets` (int64 [N]) in their stored order, or all of them when the class has fewer.
/// Deterministic, so every loss and seed of a comparison sees the same training set.
torch::Tensor long_tailed_indices(const torch::Tensor& targets, const std::vector<std::int64_t>& counts);

/// The `k` classes with the fewest examples in `class_counts` (int64 [C]), ties broken
/// towards the higher class index, in ascending order of class index.
std::vector<std::int64_t> rarest_classes(const torch::Tensor& class_counts, std::int64_t k);

}  // namespace torchloss::examples
