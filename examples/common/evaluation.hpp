#pragma once
/// @file evaluation.hpp
/// Accuracy, per-class accuracy and balanced accuracy of a classifier.

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace torchloss::examples {

/// Puts a module in eval mode for a scope and restores its training mode after, even on throw.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& model) : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& model_;
  bool was_training_;
};

/// Metrics of a classifier over a labelled set.
struct ClassificationMetrics {
  std::int64_t num_examples = 0;
  /// Mean loss: per-batch losses averaged with batch-size weights; NaN when no loss was given.
  double loss = std::numeric_limits<double>::quiet_NaN();
  /// Fraction of examples classified correctly.
  double accuracy = 0.0;
  /// Mean of `per_class_accuracy` over the classes present in the targets.
  double balanced_accuracy = 0.0;
  /// Recall of each class; NaN for a class absent from the targets.
  std::vector<double> per_class_accuracy;
  /// Number of examples of each class.
  std::vector<std::int64_t> per_class_count;
};

/// Maps a batch of inputs to logits [B, C].
using ForwardFunction = std::function<torch::Tensor(const torch::Tensor& inputs)>;
/// Maps logits [B, C] and targets [B] to a scalar loss.
using LossFunction = std::function<torch::Tensor(const torch::Tensor& logits, const torch::Tensor& targets)>;

/// How `evaluate_classifier` runs.
struct EvaluationOptions {
  /// Examples per forward pass.
  std::int64_t batch_size = 1024;
  /// Device the batches are moved to (where the model lives).
  torch::Device device = torch::kCPU;
  /// Optional loss to average over the set (fills `ClassificationMetrics::loss`).
  LossFunction loss;
};

/// Computes the metrics of `predictions` against `targets` (both int64 [N], values in [0, num_classes)).
ClassificationMetrics classification_metrics(const torch::Tensor& predictions, const torch::Tensor& targets,
                                             std::int64_t num_classes);

/// Runs `forward` over `inputs` [N, ...] in batches and scores the arg-max against `targets` [N].
/// `model` is put in eval mode under `torch::NoGradGuard` and its training mode restored after.
ClassificationMetrics evaluate_classifier(torch::nn::Module& model, const ForwardFunction& forward,
                                          const torch::Tensor& inputs, const torch::Tensor& targets,
                                          std::int64_t num_classes, const EvaluationOptions& options = {});

/// Evaluates a module holder (`model->forward(x)` gives logits) over a dataset that
/// exposes `images()` and `targets()`, such as `FashionMnist`.
template <typename ModuleHolder, typename LabelledDataset>
ClassificationMetrics evaluate_classifier(ModuleHolder& model, const LabelledDataset& dataset,
                                          std::int64_t num_classes, const EvaluationOptions& options = {}) {
  return evaluate_classifier(
      *model, [&model](const torch::Tensor& inputs) { return model->forward(inputs); }, dataset.images(),
      dataset.targets(), num_classes, options);
}

}  // namespace torchloss::examples
