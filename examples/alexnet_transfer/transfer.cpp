#include "alexnet_transfer/transfer.hpp"

#include "alexnet_transfer/cifar10.hpp"

#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/utils.h>

#include <algorithm>
#include <stdexcept>

namespace torchloss::examples::transfer {
namespace {

namespace F = torch::nn::functional;

/// Pixels of black border the random crop may shift in (as torchvision's RandomCrop(32, padding=4)).
constexpr std::int64_t kCropPadding = 4;

/// Random crop of the zero-padded images and random horizontal flip, per image.
torch::Tensor random_crop_and_flip(const torch::Tensor& images) {
  const std::int64_t batch = images.size(0);
  const std::int64_t height = images.size(2);
  const std::int64_t width = images.size(3);
  const torch::Tensor padded =
      F::pad(images, F::PadFuncOptions({kCropPadding, kCropPadding, kCropPadding, kCropPadding}));
  const torch::Tensor offsets = torch::randint(0, 2 * kCropPadding + 1, {batch, 2}, torch::kInt64);
  const torch::Tensor flips = torch::rand({batch}) < 0.5;
  const auto offset = offsets.accessor<std::int64_t, 2>();
  const auto flip = flips.accessor<bool, 1>();
  std::vector<torch::Tensor> crops;
  crops.reserve(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) {
    torch::Tensor crop =
        padded[i].slice(1, offset[i][0], offset[i][0] + height).slice(2, offset[i][1], offset[i][1] + width);
    crops.push_back(flip[i] ? crop.flip({2}) : crop);
  }
  return torch::stack(crops);
}

/// The index batches of an epoch: a random permutation of [0, n) cut into `batch_size` pieces.
std::vector<torch::Tensor> shuffled_batches(std::int64_t n, std::int64_t batch_size) {
  const torch::Tensor order = torch::randperm(n, torch::kInt64);
  std::vector<torch::Tensor> batches;
  for (std::int64_t start = 0; start < n; start += batch_size) {
    batches.push_back(order.slice(0, start, std::min(start + batch_size, n)));
  }
  return batches;
}

/// The model's output for a batch of `data` (images are preprocessed and run through the frozen part).
TransferOutput forward_batch(TransferAlexNet& model, const InputSet& data, const torch::Tensor& batch_inputs,
                             const BatchOptions& options) {
  torch::Tensor inputs = batch_inputs.to(options.device);
  if (!data.cached) inputs = model->frozen_forward(preprocess(inputs, options.preprocessing));
  return model->trainable_forward(inputs);
}

void check_batch_size(std::int64_t batch_size) {
  if (batch_size < 1) throw std::invalid_argument("batch_size must be >= 1, got " + std::to_string(batch_size));
}

}  // namespace

Trainable parse_trainable(const std::string& name) {
  if (name == "head") return Trainable::kHead;
  if (name == "classifier") return Trainable::kClassifier;
  if (name == "all") return Trainable::kAll;
  throw std::invalid_argument("unknown trainable part '" + name + "' (head, classifier or all)");
}

std::string to_string(Trainable trainable) {
  switch (trainable) {
    case Trainable::kHead:
      return "head";
    case Trainable::kClassifier:
      return "classifier";
    case Trainable::kAll:
      return "all";
  }
  return "?";
}

torch::Tensor preprocess(const torch::Tensor& images, const Preprocessing& preprocessing) {
  if (images.dim() != 4 || images.size(1) != 3 || images.scalar_type() != torch::kUInt8) {
    throw std::invalid_argument("preprocess: images must be uint8 [B, 3, H, W], got " +
                                std::string(c10::toString(images.scalar_type())) + " " + c10::str(images.sizes()));
  }
  if (preprocessing.image_size < alexnet::kMinImageSize) {
    throw std::invalid_argument("preprocess: image_size must be >= " + std::to_string(alexnet::kMinImageSize) +
                                " for AlexNet, got " + std::to_string(preprocessing.image_size));
  }
  torch::Tensor x = images.to(torch::kFloat).div_(255.0);
  if (preprocessing.augment) x = random_crop_and_flip(x);
  const auto options = x.options();
  const torch::Tensor mean =
      torch::tensor({cifar10::kChannelMean[0], cifar10::kChannelMean[1], cifar10::kChannelMean[2]}, options)
          .view({1, 3, 1, 1});
  const torch::Tensor std =
      torch::tensor({cifar10::kChannelStd[0], cifar10::kChannelStd[1], cifar10::kChannelStd[2]}, options)
          .view({1, 3, 1, 1});
  // Standardising commutes with bilinear resizing (an average with weights summing to 1), so
  // it runs on the small image.
  x = (x - mean) / std;
  if (x.size(2) != preprocessing.image_size || x.size(3) != preprocessing.image_size) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<std::int64_t>{preprocessing.image_size, preprocessing.image_size})
                              .mode(torch::kBilinear)
                              .align_corners(false));
  }
  return x;
}

// ---------------------------------------------------------------------------------------------

bool TransferAlexNetImpl::is_head(const std::string& name) { return name.rfind("classifier.6", 0) == 0; }

bool TransferAlexNetImpl::is_frozen(const std::string& name) const {
  switch (trainable_) {
    case Trainable::kHead:
      return !is_head(name);
    case Trainable::kClassifier:
      return name.rfind("classifier.", 0) != 0;
    case Trainable::kAll:
      return false;
  }
  return false;
}

void TransferAlexNetImpl::prepare(std::int64_t num_classes, Trainable trainable) {
  if (num_classes < 1) throw std::invalid_argument("prepare: num_classes must be >= 1");
  classifier->replace_last(num_classes);
  trainable_ = trainable;
  for (auto& item : named_parameters(/*recurse=*/true)) item.value().set_requires_grad(!is_frozen(item.key()));
  train(is_training());
}

void TransferAlexNetImpl::train(bool on) {
  AlexNetImpl::train(on);
  // Only the leaves: a container such as "classifier" may hold frozen and trainable layers.
  for (const auto& item : named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (item.value()->children().empty() && is_frozen(item.key())) item.value()->eval();
  }
}

torch::Tensor TransferAlexNetImpl::frozen_forward(const torch::Tensor& images) {
  if (trainable_ == Trainable::kAll) return images;
  const torch::NoGradGuard no_grad;
  const torch::Tensor pooled = pooled_features(images);
  return trainable_ == Trainable::kHead ? classifier->penultimate(pooled) : pooled;
}

TransferOutput TransferAlexNetImpl::trainable_forward(const torch::Tensor& frozen_output) {
  TransferOutput output;
  switch (trainable_) {
    case Trainable::kHead:
      output.penultimate = frozen_output;
      break;
    case Trainable::kClassifier:
      output.penultimate = classifier->penultimate(frozen_output);
      break;
    case Trainable::kAll:
      output.penultimate = classifier->penultimate(pooled_features(frozen_output));
      break;
  }
  output.logits = classifier->last->forward(output.penultimate);
  return output;
}

std::vector<torch::Tensor> TransferAlexNetImpl::head_parameters() const {
  std::vector<torch::Tensor> parameters;
  for (const auto& item : named_parameters(true)) {
    if (is_head(item.key())) parameters.push_back(item.value());
  }
  return parameters;
}

std::vector<torch::Tensor> TransferAlexNetImpl::pretrained_trainable_parameters() const {
  std::vector<torch::Tensor> parameters;
  for (const auto& item : named_parameters(true)) {
    if (!is_head(item.key()) && !is_frozen(item.key())) parameters.push_back(item.value());
  }
  return parameters;
}

std::vector<torch::Tensor> TransferAlexNetImpl::frozen_parameters() const {
  std::vector<torch::Tensor> parameters;
  for (const auto& item : named_parameters(true)) {
    if (is_frozen(item.key())) parameters.push_back(item.value());
  }
  return parameters;
}

std::int64_t TransferAlexNetImpl::frozen_output_features() const {
  switch (trainable_) {
    case Trainable::kHead:
      return alexnet::kPenultimateFeatures;
    case Trainable::kClassifier:
      return alexnet::kPooledFeatures;
    case Trainable::kAll:
      return 0;
  }
  return 0;
}

TransferAlexNet make_transfer_model(const std::string& weights_path, std::int64_t num_classes, Trainable trainable) {
  TransferAlexNet model;
  if (!weights_path.empty()) alexnet::load_state_dict_file(*model, weights_path);
  model->prepare(num_classes, trainable);
  return model;
}

std::unique_ptr<torch::optim::SGD> make_optimizer(const TransferAlexNet& model, double learning_rate,
                                                  double backbone_lr_scale, double momentum, double weight_decay) {
  const auto options = [&](double lr) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(lr).momentum(momentum).weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(model->head_parameters(), options(learning_rate));
  const std::vector<torch::Tensor> pretrained = model->pretrained_trainable_parameters();
  if (!pretrained.empty()) groups.emplace_back(pretrained, options(learning_rate * backbone_lr_scale));
  return std::make_unique<torch::optim::SGD>(
      std::move(groups), torch::optim::SGDOptions(learning_rate).momentum(momentum).weight_decay(weight_decay));
}

// ---------------------------------------------------------------------------------------------

const std::vector<std::string>& loss_names() {
  static const std::vector<std::string> names = {"ce", "weighted-ce", "focal", "weighted-focal", "ghmc", "ce+center"};
  return names;
}

LossKind parse_loss(const std::string& name) {
  const auto& names = loss_names();
  const auto found = std::find(names.begin(), names.end(), name);
  if (found == names.end()) throw std::invalid_argument("unknown loss '" + name + "'");
  return static_cast<LossKind>(found - names.begin());
}

std::string to_string(LossKind kind) { return loss_names().at(static_cast<std::size_t>(kind)); }

TrainingLossImpl::TrainingLossImpl(LossSettings settings, const torch::Tensor& class_counts)
    : settings_(std::move(settings)) {
  const bool weighted = settings_.kind == LossKind::kWeightedCrossEntropy || settings_.kind == LossKind::kWeightedFocal;
  if (weighted) {
    if (settings_.class_weights == "effective") {
      class_weights_ = class_weights::effective_number(class_counts, settings_.beta);
    } else if (settings_.class_weights == "inverse") {
      class_weights_ = class_weights::inverse_frequency(class_counts);
    } else {
      throw std::invalid_argument("unknown class weights '" + settings_.class_weights + "' (effective or inverse)");
    }
  }
  switch (settings_.kind) {
    case LossKind::kCrossEntropy:
    case LossKind::kCrossEntropyCenter:
      cross_entropy_ = register_module("cross_entropy", WeightedCrossEntropyLoss());
      break;
    case LossKind::kWeightedCrossEntropy:
      cross_entropy_ = register_module(
          "cross_entropy", WeightedCrossEntropyLoss(WeightedCrossEntropyLossOptions().weight(class_weights_)));
      break;
    case LossKind::kFocal:
      focal_ = register_module("focal", FocalLoss(FocalLossOptions().gamma(settings_.gamma)));
      break;
    case LossKind::kWeightedFocal:
      weighted_focal_ = register_module(
          "weighted_focal", WeightedFocalLoss(WeightedFocalLossOptions(class_weights_).gamma(settings_.gamma)));
      break;
    case LossKind::kGhmc:
      ghmc_ = register_module("ghmc",
                              GHMCLoss(GHMCLossOptions().bins(settings_.ghm_bins).momentum(settings_.ghm_momentum)));
      break;
  }
  if (settings_.kind == LossKind::kCrossEntropyCenter) {
    if (!(settings_.center_lambda >= 0)) throw std::invalid_argument("center_lambda must be >= 0");
    center_ = register_module(
        "center",
        CenterLoss(
            CenterLossOptions(class_counts.numel(), alexnet::kPenultimateFeatures).alpha(settings_.center_alpha)));
  }
}

torch::Tensor TrainingLossImpl::forward(const TransferOutput& output, const torch::Tensor& targets) {
  switch (settings_.kind) {
    case LossKind::kCrossEntropy:
    case LossKind::kWeightedCrossEntropy:
      return cross_entropy_(output.logits, targets);
    case LossKind::kFocal:
      return focal_(output.logits, targets);
    case LossKind::kWeightedFocal:
      return weighted_focal_(output.logits, targets);
    case LossKind::kGhmc:
      return ghmc_(output.logits, targets);
    case LossKind::kCrossEntropyCenter:
      return cross_entropy_(output.logits, targets) + settings_.center_lambda * center_(output.penultimate, targets);
  }
  throw std::logic_error("TrainingLoss: unhandled loss kind");
}

// ---------------------------------------------------------------------------------------------

InputSet InputSet::subset(const torch::Tensor& indices) const {
  const torch::Tensor rows = indices.to(inputs.device());
  return {inputs.index_select(0, rows), targets.index_select(0, indices.to(targets.device())), cached};
}

InputSet cache_frozen_outputs(TransferAlexNet& model, const torch::Tensor& images, const torch::Tensor& targets,
                              const BatchOptions& options, ProgressBar* progress) {
  check_batch_size(options.batch_size);
  if (model->trainable() == Trainable::kAll) {
    throw std::invalid_argument("cannot cache features when every layer trains (nothing is frozen)");
  }
  Preprocessing fixed = options.preprocessing;
  fixed.augment = false;
  const EvalModeGuard eval_mode(*model);
  const torch::NoGradGuard no_grad;
  const std::int64_t n = images.size(0);
  torch::Tensor cache = torch::empty({n, model->frozen_output_features()}, torch::TensorOptions(options.device));
  std::int64_t batches_done = 0;
  for (std::int64_t start = 0; start < n; start += options.batch_size) {
    const std::int64_t end = std::min(start + options.batch_size, n);
    cache.slice(0, start, end)
        .copy_(model->frozen_forward(preprocess(images.slice(0, start, end).to(options.device), fixed)));
    if (progress != nullptr) progress->update(++batches_done, 0.0, end);
  }
  if (progress != nullptr) progress->finish();
  return {cache, targets.to(options.device), /*cached=*/true};
}

EpochResult train_epoch(TransferAlexNet& model, TrainingLoss& loss, torch::optim::Optimizer& optimizer,
                        const InputSet& data, const BatchOptions& options, ProgressBar* progress) {
  check_batch_size(options.batch_size);
  model->train();
  loss->train();
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  EpochResult result;
  std::int64_t batches_done = 0;
  for (const torch::Tensor& indices : shuffled_batches(data.size(), options.batch_size)) {
    const torch::Tensor targets = data.targets.index_select(0, indices.to(data.targets.device())).to(options.device);
    const TransferOutput output =
        forward_batch(model, data, data.inputs.index_select(0, indices.to(data.inputs.device())), options);
    optimizer.zero_grad();
    const torch::Tensor value = loss->forward(output, targets);
    value.backward();
    optimizer.step();

    const std::int64_t batch = targets.size(0);
    loss_sum += value.item<double>() * static_cast<double>(batch);
    correct += output.logits.argmax(1).eq(targets).sum().item<std::int64_t>();
    result.examples += batch;
    if (progress != nullptr) {
      progress->update(++batches_done, loss_sum / static_cast<double>(result.examples), result.examples);
    }
  }
  if (progress != nullptr) progress->finish();
  if (result.examples > 0) {
    result.loss = loss_sum / static_cast<double>(result.examples);
    result.accuracy = static_cast<double>(correct) / static_cast<double>(result.examples);
  }
  return result;
}

Evaluation evaluate(TransferAlexNet& model, const InputSet& data, const BatchOptions& options) {
  check_batch_size(options.batch_size);
  BatchOptions fixed = options;
  fixed.preprocessing.augment = false;
  EvaluationOptions evaluation_options;
  evaluation_options.batch_size = options.batch_size;
  evaluation_options.device = options.device;
  evaluation_options.loss = [](const torch::Tensor& logits, const torch::Tensor& targets) {
    return F::cross_entropy(logits, targets);
  };
  std::vector<torch::Tensor> predictions;
  const auto forward = [&](const torch::Tensor& inputs) {
    torch::Tensor logits = forward_batch(model, data, inputs, fixed).logits;
    predictions.push_back(logits.argmax(1).cpu());
    return logits;
  };
  const std::int64_t num_classes = model->num_classes();
  Evaluation evaluation;
  evaluation.metrics = evaluate_classifier(*model, forward, data.inputs, data.targets, num_classes, evaluation_options);
  const torch::Tensor predicted = predictions.empty() ? torch::empty({0}, torch::kInt64) : torch::cat(predictions);
  evaluation.confusion =
      torch::bincount(data.targets.cpu() * num_classes + predicted, /*weights=*/{}, num_classes * num_classes)
          .view({num_classes, num_classes});
  return evaluation;
}

}  // namespace torchloss::examples::transfer
