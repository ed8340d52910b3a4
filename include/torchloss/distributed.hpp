#pragma once
/// \file distributed.hpp
/// \brief The all-reduce hook through which stateful losses share their statistics across
/// ranks, and its adapter for a c10d process group.
///
/// The losses hold a plain AllReduceFn, so their headers need no c10d header; the adapter
/// all_reduce_with() is a template, so this header needs none either (the caller, who made
/// the process group, has included its header already).

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

namespace torchloss {

/// A collective that sums a tensor element-wise over every rank of a group, in place (or by
/// assigning the summed tensor to its argument). Every rank must call it the same number
/// of times, in the same order, with tensors of the same shape and dtype. An empty
/// AllReduceFn means "one process": the statistics stay local.
///
/// It converts implicitly from a c10d process group (`c10::intrusive_ptr` of
/// c10d::ProcessGroup or a subclass), so an option of this type reads as the group itself:
///
/// \code
/// #include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>  // made the group: has the header
/// #include <torchloss/torchloss.hpp>
/// auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, gloo_options);
/// torchloss::GHMCLoss loss(torchloss::GHMCLossOptions().momentum(0.75).process_group(group));
/// \endcode
///
/// and from any callable `void(torch::Tensor&)` (another communication library, or a test).
/// The tensor is reduced on its own device, so use a backend that serves it (Gloo for CPU
/// tensors, NCCL for CUDA ones).
class AllReduceFn {
 public:
  /// No reduction (one process).
  AllReduceFn() = default;

  /// From a callable `void(torch::Tensor&)` that sums its argument over the ranks.
  template <typename Function,
            typename = std::enable_if_t<std::is_invocable<Function&, torch::Tensor&>::value &&
                                        !std::is_same<std::decay_t<Function>, AllReduceFn>::value>>
  /* implicit */ AllReduceFn(Function function) : function_(std::move(function)) {}

  /// From a c10d process group: `group->allreduce({tensor})->wait()` with the default (sum)
  /// reduction. A template, so this header needs no c10d header; the returned function keeps
  /// the group alive.
  template <typename ProcessGroup>
  /* implicit */ AllReduceFn(c10::intrusive_ptr<ProcessGroup> group) {
    TORCH_CHECK(group, "torchloss::AllReduceFn: the process group is null");
    function_ = [group = std::move(group)](torch::Tensor& tensor) {
      std::vector<at::Tensor> tensors{tensor};
      group->allreduce(tensors)->wait();
    };
  }

  /// Whether a reduction is set (false: one process).
  explicit operator bool() const { return static_cast<bool>(function_); }

  /// Sums `tensor` over the ranks; does nothing when no reduction is set.
  void operator()(torch::Tensor& tensor) const {
    if (function_) function_(tensor);
  }

 private:
  std::function<void(torch::Tensor&)> function_;
};

/// The AllReduceFn of a c10d process group (the same as converting the group implicitly;
/// spelled out for readers and for `auto`).
template <typename ProcessGroup>
AllReduceFn all_reduce_with(c10::intrusive_ptr<ProcessGroup> group) {
  return AllReduceFn(std::move(group));
}

/// The collectives of a loss that computes over every rank's batch (SupConLoss): this rank,
/// the number of ranks, an all-gather and a summing all-reduce. Like AllReduceFn it converts
/// implicitly from a c10d process group, so an option of this type reads as the group:
///
/// \code
/// torchloss::SupConLoss loss(torchloss::SupConLossOptions().process_group(group));
/// \endcode
///
/// and it can be built from callables (another communication library, or a test). Every
/// rank must call the collectives the same number of times, in the same order. A
/// default-constructed Collectives is one process: all_gather returns its argument alone.
class Collectives {
 public:
  /// Gathers a tensor of the same shape and dtype from every rank, in rank order.
  using AllGatherFn = std::function<std::vector<torch::Tensor>(const torch::Tensor&)>;

  /// One process.
  Collectives() = default;

  /// From callables: rank `rank` of `world_size`, an all-gather and a summing all-reduce.
  Collectives(int64_t rank, int64_t world_size, AllGatherFn all_gather, AllReduceFn all_reduce)
      : rank_(rank), world_size_(world_size), all_gather_(std::move(all_gather)), all_reduce_(std::move(all_reduce)) {
    TORCH_CHECK(world_size_ >= 1 && rank_ >= 0 && rank_ < world_size_,
                "torchloss::Collectives: rank must be in [0, world_size), got rank ", rank_, " of ", world_size_);
    TORCH_CHECK(all_gather_ && all_reduce_, "torchloss::Collectives: all_gather and all_reduce must both be set");
  }

  /// From a c10d process group: its rank and size, `allgather` and `allreduce` (sum). A
  /// template, so this header needs no c10d header; the functions keep the group alive.
  template <typename ProcessGroup>
  /* implicit */ Collectives(c10::intrusive_ptr<ProcessGroup> group) : all_reduce_(group) {
    rank_ = group->getRank();
    world_size_ = group->getSize();
    all_gather_ = [group, world_size = world_size_](const torch::Tensor& tensor) {
      std::vector<std::vector<at::Tensor>> outputs(1);
      for (int64_t r = 0; r < world_size; ++r) outputs[0].push_back(torch::empty_like(tensor));
      std::vector<at::Tensor> inputs{tensor};
      group->allgather(outputs, inputs)->wait();
      return outputs[0];
    };
  }

  /// Whether collectives are set (false: one process).
  explicit operator bool() const { return static_cast<bool>(all_gather_); }
  /// This process's rank (0 for one process).
  int64_t rank() const { return rank_; }
  /// The number of ranks (1 for one process).
  int64_t world_size() const { return world_size_; }

  /// Every rank's `tensor` (same shape and dtype on each), in rank order.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor) const {
    if (!all_gather_) return {tensor};
    return all_gather_(tensor.contiguous());
  }

  /// Sums `tensor` over the ranks in place.
  void all_reduce(torch::Tensor& tensor) const { all_reduce_(tensor); }

  /// The rows of every rank's `tensor` concatenated in rank order, where the ranks' tensors
  /// may differ in their first dimension (and agree in the others): the sizes are gathered
  /// first, then the tensors padded to the largest. Also returns the offset of this rank's rows.
  std::pair<torch::Tensor, int64_t> all_gather_rows(const torch::Tensor& tensor) const {
    if (!all_gather_) return {tensor, 0};
    const auto sizes = all_gather(torch::full({1}, tensor.size(0), tensor.options().dtype(torch::kLong)));
    std::vector<int64_t> rows;
    for (const auto& size : sizes) rows.push_back(size.item<int64_t>());
    const int64_t largest = *std::max_element(rows.begin(), rows.end());
    auto padded_sizes = tensor.sizes().vec();
    padded_sizes[0] = largest;
    auto padded = torch::zeros(padded_sizes, tensor.options());
    padded.narrow(0, 0, tensor.size(0)).copy_(tensor);
    const auto gathered = all_gather(padded);
    std::vector<torch::Tensor> parts;
    int64_t offset = 0;
    for (int64_t r = 0; r < static_cast<int64_t>(gathered.size()); ++r) {
      parts.push_back(gathered[r].narrow(0, 0, rows[r]));
      if (r < rank_) offset += rows[r];
    }
    return {torch::cat(parts, 0), offset};
  }

 private:
  int64_t rank_ = 0, world_size_ = 1;
  AllGatherFn all_gather_;
  AllReduceFn all_reduce_;
};

}  // namespace torchloss
