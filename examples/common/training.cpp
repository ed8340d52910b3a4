#include "common/training.hpp"

#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>

namespace torchloss::examples {

int configure_threads(int requested) {
  const int threads = requested > 0 ? requested : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  return torch::get_num_threads();
}

std::int64_t num_batches(std::int64_t num_examples, std::int64_t batch_size) {
  if (batch_size < 1) throw std::invalid_argument("num_batches: batch_size must be >= 1");
  return (std::max<std::int64_t>(num_examples, 0) + batch_size - 1) / batch_size;
}

EpochStats train_one_epoch(torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                           const BatchLossFunction& batch_loss, const torch::Tensor& inputs,
                           const torch::Tensor& targets, const TrainEpochOptions& options, ProgressBar* progress) {
  if (options.batch_size < 1) throw std::invalid_argument("train_one_epoch: batch_size must be >= 1");
  if (inputs.size(0) != targets.size(0)) {
    throw std::invalid_argument("train_one_epoch: " + std::to_string(inputs.size(0)) + " inputs but " +
                                std::to_string(targets.size(0)) + " targets");
  }
  const auto start = std::chrono::steady_clock::now();
  model.train();
  const std::int64_t num_examples = inputs.size(0);
  // One gather per batch from the in-memory tensors: much cheaper than a DataLoader that
  // stacks examples one by one.
  const torch::Tensor order = options.shuffle ? torch::randperm(num_examples, torch::kInt64)
                                             : torch::arange(num_examples, torch::kInt64);
  EpochStats stats;
  double loss_sum = 0.0;
  for (std::int64_t begin = 0; begin < num_examples; begin += options.batch_size) {
    const torch::Tensor indices = order.slice(0, begin, std::min(begin + options.batch_size, num_examples));
    const torch::Tensor batch_inputs = inputs.index_select(0, indices).to(options.device);
    const torch::Tensor batch_targets = targets.index_select(0, indices).to(options.device);
    optimizer.zero_grad();
    const torch::Tensor loss = batch_loss(batch_inputs, batch_targets);
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      throw std::runtime_error("train_one_epoch: the loss of batch " + std::to_string(stats.num_batches + 1) +
                               " is " + std::to_string(loss_value) + " (diverged; try a smaller learning rate)");
    }
    loss.backward();
    if (options.before_step) options.before_step();
    optimizer.step();

    const std::int64_t batch_size = indices.size(0);
    loss_sum += loss_value * static_cast<double>(batch_size);
    stats.num_examples += batch_size;
    ++stats.num_batches;
    if (progress != nullptr) {
      progress->update(stats.num_batches, loss_sum / static_cast<double>(stats.num_examples), stats.num_examples);
    }
  }
  if (progress != nullptr) progress->finish();
  stats.mean_loss = stats.num_examples == 0 ? 0.0 : loss_sum / static_cast<double>(stats.num_examples);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace torchloss::examples
