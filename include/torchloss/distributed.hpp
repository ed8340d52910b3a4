#pragma once
/// \file distributed.hpp
/// \brief The all-reduce hook through which stateful losses share their statistics across
/// ranks, and its adapter for a c10d process group.
///
/// The losses hold a plain AllReduceFn, so their headers need no c10d header; the adapter
/// all_reduce_with() is a template, so this header needs none either (the caller, who made
/// the process group, has included its header already).

#include <torch/torch.h>

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

}  // namespace torchloss
