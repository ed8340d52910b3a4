#pragma once
/// @file training.hpp
/// A generic training epoch over tensors held in memory, shared by the example trainers.

#include "common/progress_bar.hpp"

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>

namespace torchloss::examples {

/// Sets LibTorch's intra-op threads: `requested` when > 0, else one per hardware thread
/// (LibTorch's own default is one per physical core, often 1 on small VMs). Returns the count.
int configure_threads(int requested);

/// Number of batches of `batch_size` that cover `num_examples` (the last one may be short).
std::int64_t num_batches(std::int64_t num_examples, std::int64_t batch_size);

/// Computes the scalar loss of one batch (`inputs` and `targets` already on the device).
/// train_one_epoch does the zero_grad / backward / step around it.
using BatchLossFunction = std::function<torch::Tensor(const torch::Tensor& inputs, const torch::Tensor& targets)>;

/// How train_one_epoch runs.
struct TrainEpochOptions {
  /// Examples per optimizer step.
  std::int64_t batch_size = 128;
  /// Device the batches are moved to (where the model lives).
  torch::Device device = torch::kCPU;
  /// Visit the examples in a fresh random order drawn from LibTorch's global generator
  /// (so `torch::manual_seed` makes the order reproducible); false keeps the stored order.
  bool shuffle = true;
  /// Called after the backward pass and before every optimizer step (a learning-rate
  /// schedule, e.g. RecipeOptimizer::before_step); none when empty.
  std::function<void()> before_step;
};

/// What one epoch did.
struct EpochStats {
  /// Mean training loss, batches weighted by their size.
  double mean_loss = 0.0;
  std::int64_t num_examples = 0;
  std::int64_t num_batches = 0;
  /// Wall-clock seconds of the epoch.
  double seconds = 0.0;
};

/// Trains `model` for one pass over `inputs` [N, ...] / `targets` [N]: puts the model in
/// training mode, then for each batch calls `batch_loss`, back-propagates and steps
/// `optimizer`. Updates `progress` (when given) after every batch, with the running loss and
/// the images per second, and finishes it.
/// Throws `std::invalid_argument` for a batch size < 1 or mismatched N, and
/// `std::runtime_error` when a loss is not finite (naming the batch), so a diverging run
/// stops with one clear line instead of training on NaN.
EpochStats train_one_epoch(torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                           const BatchLossFunction& batch_loss, const torch::Tensor& inputs,
                           const torch::Tensor& targets, const TrainEpochOptions& options = {},
                           ProgressBar* progress = nullptr);

}  // namespace torchloss::examples
