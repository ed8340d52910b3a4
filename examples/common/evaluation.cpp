#include "common/evaluation.hpp"

#include <torch/utils.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace torchloss::examples {
ClassificationMetrics classification_metrics(const torch::Tensor& predictions, const torch::Tensor& targets,
                                             std::int64_t num_classes) {
  if (predictions.dim() != 1 || targets.dim() != 1 || predictions.size(0) != targets.size(0)) {
    throw std::invalid_argument("classification_metrics: predictions " + c10::str(predictions.sizes()) +
                                " and targets " + c10::str(targets.sizes()) + " must both be [N]");
  }
  const torch::Tensor labels = targets.to(torch::kCPU, torch::kInt64);
  const torch::Tensor predicted = predictions.to(torch::kCPU, torch::kInt64);
  if (labels.numel() > 0 && (labels.min().item<std::int64_t>() < 0 ||
                             labels.max().item<std::int64_t>() >= num_classes)) {
    throw std::invalid_argument("classification_metrics: targets must lie in [0, " +
                                std::to_string(num_classes) + ")");
  }
  const torch::Tensor correct = predicted.eq(labels);
  const torch::Tensor class_count = torch::bincount(labels, {}, num_classes);
  const torch::Tensor class_correct = torch::bincount(labels.masked_select(correct), {}, num_classes);

  ClassificationMetrics metrics;
  metrics.num_examples = labels.numel();
  metrics.accuracy = metrics.num_examples == 0 ? 0.0 : correct.to(torch::kDouble).mean().item<double>();
  double recall_sum = 0.0;
  std::int64_t classes_present = 0;
  for (std::int64_t c = 0; c < num_classes; ++c) {
    const auto count = class_count[c].item<std::int64_t>();
    metrics.per_class_count.push_back(count);
    if (count == 0) {
      metrics.per_class_accuracy.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    const double recall = static_cast<double>(class_correct[c].item<std::int64_t>()) / static_cast<double>(count);
    metrics.per_class_accuracy.push_back(recall);
    recall_sum += recall;
    ++classes_present;
  }
  metrics.balanced_accuracy = classes_present == 0 ? 0.0 : recall_sum / static_cast<double>(classes_present);
  return metrics;
}

ClassificationMetrics evaluate_classifier(torch::nn::Module& model, const ForwardFunction& forward,
                                          const torch::Tensor& inputs, const torch::Tensor& targets,
                                          std::int64_t num_classes, const EvaluationOptions& options) {
  if (options.batch_size < 1) {
    throw std::invalid_argument("evaluate_classifier: batch_size must be >= 1");
  }
  if (inputs.size(0) != targets.size(0)) {
    throw std::invalid_argument("evaluate_classifier: " + std::to_string(inputs.size(0)) + " inputs but " +
                                std::to_string(targets.size(0)) + " targets");
  }
  const EvalModeGuard eval_mode(model);
  const torch::NoGradGuard no_grad;

  const std::int64_t num_examples = inputs.size(0);
  std::vector<torch::Tensor> predictions;
  double loss_sum = 0.0;
  for (std::int64_t start = 0; start < num_examples; start += options.batch_size) {
    const std::int64_t end = std::min(start + options.batch_size, num_examples);
    const torch::Tensor batch_targets = targets.slice(0, start, end).to(options.device);
    const torch::Tensor logits = forward(inputs.slice(0, start, end).to(options.device));
    if (options.loss) {
      loss_sum += options.loss(logits, batch_targets).item<double>() * static_cast<double>(end - start);
    }
    predictions.push_back(logits.argmax(1).cpu());
  }

  const torch::Tensor all_predictions =
      predictions.empty() ? torch::empty({0}, torch::kInt64) : torch::cat(predictions);
  ClassificationMetrics metrics = classification_metrics(all_predictions, targets, num_classes);
  if (options.loss && num_examples > 0) metrics.loss = loss_sum / static_cast<double>(num_examples);
  return metrics;
}

}  // namespace torchloss::examples
