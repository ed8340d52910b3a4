#pragma once
/// \file compat.hpp
/// \brief The few names that differ between LibTorch 1.13 and 2.x, behind one alias each.

#include <torch/torch.h>

namespace torchloss {

/// Optional value (c10::optional in LibTorch 1.13, an alias of std::optional in 2.x).
template <typename T>
using optional = c10::optional<T>;

/// The reduction choice `torch::kNone`, `torch::kMean` or `torch::kSum`.
/// Borrowed from LibTorch's own options so the variant's namespace (c10 in 1.13, std in
/// 2.x) is never spelled out here.
using reduction_t = torch::nn::CrossEntropyLossOptions::reduction_t;

namespace detail {

/// The reduction as ATen's enum (`at::Reduction::None/Mean/Sum`), which autograd
/// functions can carry as an int64_t.
inline int64_t reduction_code(const reduction_t& reduction) {
  return static_cast<int64_t>(torch::enumtype::reduction_get_enum(reduction));
}

}  // namespace detail
}  // namespace torchloss
