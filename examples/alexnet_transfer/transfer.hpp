#pragma once
/// @file transfer.hpp
/// The transfer-learning recipe of the AlexNet example: preprocessing, the model with a
/// frozen part, the losses, the optimizer, the feature cache, one training epoch and the
/// evaluation. main.cpp wires them to the command line; the tests drive them directly.
///
/// The model is split where the trainable part begins:
///
///     images -> [frozen part] -> frozen output -> [trainable part] -> penultimate [N, 4096] -> logits
///
/// | Trainable    | frozen part                          | frozen output        | trainable part     |
/// | ------------ | ------------------------------------ | -------------------- | ------------------ |
/// | kHead        | features, avgpool, classifier.0–5    | penultimate [N,4096] | new classifier.6   |
/// | kClassifier  | features, avgpool                    | pooled [N, 9216]     | classifier.0–6     |
/// | kAll         | nothing (fine-tuning)                | the images           | everything         |
///
/// The frozen part always runs in eval mode and without autograd: its parameters never
/// change, so its output for an image is a fixed function of the image, which is what makes
/// caching it exact. Dropout therefore acts only where it sits inside the trainable part
/// (classifier.0 and classifier.3 with kClassifier), in training mode, in the cached and the
/// uncached runs alike.

#include "alexnet_transfer/alexnet.hpp"
#include "common/evaluation.hpp"
#include "common/progress_bar.hpp"

#include <torch/nn/module.h>
#include <torch/optim/sgd.h>
#include <torch/types.h>
#include <torchloss/torchloss.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torchloss::examples::transfer {

/// Which parameters train (see the table in the file comment).
enum class Trainable { kHead, kClassifier, kAll };

/// "head", "classifier" or "all"; throws `std::invalid_argument` for anything else.
Trainable parse_trainable(const std::string& name);
/// The name parse_trainable accepts.
std::string to_string(Trainable trainable);

// ---------------------------------------------------------------------------------------------
// Preprocessing

/// How a batch of CIFAR-10 bytes becomes a network input.
struct Preprocessing {
  /// Side the 32×32 images are resized to (bilinear); AlexNet needs at least 63.
  std::int64_t image_size = 224;
  /// Random 32×32 crop of the image padded by 4 black pixels, and a horizontal flip with
  /// probability 1/2 (before resizing), drawn from LibTorch's global generator.
  bool augment = false;
};

/// Converts uint8 images [B, 3, 32, 32] (any device) to float [B, 3, S, S] on the same
/// device: scaled to [0, 1], augmented if asked, standardised with CIFAR-10's channel mean and
/// std, resized to `image_size`.
torch::Tensor preprocess(const torch::Tensor& images, const Preprocessing& preprocessing);

// ---------------------------------------------------------------------------------------------
// The model

/// The output of the trainable part.
struct TransferOutput {
  /// Penultimate features [N, 4096] (the input of classifier.6; center loss acts here).
  torch::Tensor penultimate;
  /// Logits [N, num_classes].
  torch::Tensor logits;
};

/// AlexNet (torchvision's names) with a new classifier.6 and a frozen part.
class TransferAlexNetImpl : public alexnet::AlexNetImpl {
 public:
  /// A 1000-class AlexNet with LibTorch's initialisation; load ImageNet weights into it
  /// (alexnet::load_state_dict_file), then call prepare().
  TransferAlexNetImpl() : AlexNetImpl(1000) {}

  /// Replaces classifier.6 by Linear(4096, `num_classes`) and freezes what `trainable`
  /// leaves out: `requires_grad(false)` on every frozen parameter, and the frozen modules
  /// held in eval mode from now on.
  void prepare(std::int64_t num_classes, Trainable trainable);

  /// Runs the frozen part on preprocessed images [N, 3, S, S] without autograd; returns the
  /// input of the trainable part (see the table above).
  torch::Tensor frozen_forward(const torch::Tensor& images);

  /// Runs the trainable part on what frozen_forward returned.
  TransferOutput trainable_forward(const torch::Tensor& frozen_output);

  /// Logits of preprocessed images.
  torch::Tensor forward(const torch::Tensor& images) { return trainable_forward(frozen_forward(images)).logits; }

  /// Sets training mode like Module::train, but keeps the frozen modules in eval mode.
  void train(bool on = true) override;

  /// Parameters of the new head (classifier.6): these train at the full learning rate.
  std::vector<torch::Tensor> head_parameters() const;
  /// Pretrained parameters that train (classifier.1/4 with kClassifier, all but the head
  /// with kAll): these train at the backbone learning rate.
  std::vector<torch::Tensor> pretrained_trainable_parameters() const;
  /// Parameters that never change.
  std::vector<torch::Tensor> frozen_parameters() const;

  /// What trains.
  Trainable trainable() const { return trainable_; }
  /// Width of frozen_forward's output per example (0 for kAll: images).
  std::int64_t frozen_output_features() const;

 private:
  /// Whether the parameter or module under `name` (a dotted name) belongs to the frozen part.
  bool is_frozen(const std::string& name) const;
  /// Whether `name` belongs to the new head.
  static bool is_head(const std::string& name);

  Trainable trainable_ = Trainable::kAll;
};
TORCH_MODULE(TransferAlexNet);

/// A model ready for training: AlexNet, ImageNet weights from `weights_path` (a state dict of
/// torchvision's 1000-class AlexNet; none when empty), then prepare(`num_classes`, `trainable`).
TransferAlexNet make_transfer_model(const std::string& weights_path, std::int64_t num_classes, Trainable trainable);

/// SGD with momentum on the trainable parameters only: the head at `learning_rate`, the
/// pretrained trainable parameters (if any) at `learning_rate * backbone_lr_scale`.
std::unique_ptr<torch::optim::SGD> make_optimizer(const TransferAlexNet& model, double learning_rate,
                                                  double backbone_lr_scale, double momentum = 0.9,
                                                  double weight_decay = 0.0);

// ---------------------------------------------------------------------------------------------
// Losses

/// The losses --loss chooses from.
enum class LossKind { kCrossEntropy, kWeightedCrossEntropy, kFocal, kWeightedFocal, kGhmc, kCrossEntropyCenter };

/// The names --loss accepts, in LossKind order: ce, weighted-ce, focal, weighted-focal, ghmc, ce+center.
const std::vector<std::string>& loss_names();
/// Parses a name of loss_names(); throws `std::invalid_argument` otherwise.
LossKind parse_loss(const std::string& name);
/// The name of `kind` in loss_names().
std::string to_string(LossKind kind);

/// Settings of the training loss.
struct LossSettings {
  LossKind kind = LossKind::kCrossEntropy;
  /// Per-class weights of weighted-ce and weighted-focal: "effective" (effective number of
  /// samples, `beta`) or "inverse" (inverse frequency), from the training set's class counts.
  std::string class_weights = "effective";
  double beta = 0.999;
  /// Focusing parameter of focal and weighted-focal.
  double gamma = 2.0;
  /// GHM-C bins and moving-average momentum.
  std::int64_t ghm_bins = 10;
  double ghm_momentum = 0.0;
  /// ce+center: loss = CE + center_lambda · center(penultimate, labels); centers move at center_alpha.
  double center_lambda = 0.003;
  double center_alpha = 0.5;
};

/// The training objective: one of the library's losses on the logits (and, for ce+center,
/// the penultimate features). Its state (class weights, GHM-C's `acc_sum`, the centers) is
/// registered, so a checkpoint carries it.
class TrainingLossImpl : public torch::nn::Module {
 public:
  /// Builds the loss of `settings`; `class_counts` int64 [C] gives the weighted losses their weights.
  TrainingLossImpl(LossSettings settings, const torch::Tensor& class_counts);

  /// The loss of `output` against `targets` int64 [N].
  torch::Tensor forward(const TransferOutput& output, const torch::Tensor& targets);

  /// Per-class weights (undefined for the unweighted losses).
  const torch::Tensor& class_weights() const { return class_weights_; }
  /// The settings.
  const LossSettings& settings() const { return settings_; }

 private:
  LossSettings settings_;
  torch::Tensor class_weights_;
  WeightedCrossEntropyLoss cross_entropy_{nullptr};
  FocalLoss focal_{nullptr};
  WeightedFocalLoss weighted_focal_{nullptr};
  GHMCLoss ghmc_{nullptr};
  CenterLoss center_{nullptr};
};
TORCH_MODULE(TrainingLoss);

// ---------------------------------------------------------------------------------------------
// Data, caching, training and evaluation

/// What the model is fed: images, or the frozen part's outputs computed once (the cache).
struct InputSet {
  /// uint8 images [N, 3, 32, 32] (`cached` false) or frozen outputs [N, D] (`cached` true).
  torch::Tensor inputs;
  /// int64 [N].
  torch::Tensor targets;
  bool cached = false;

  std::int64_t size() const { return targets.size(0); }
  /// The examples at `indices` int64 [K].
  InputSet subset(const torch::Tensor& indices) const;
};

/// How batches are formed and where they run.
struct BatchOptions {
  std::int64_t batch_size = 128;
  Preprocessing preprocessing;
  torch::Device device = torch::kCPU;
};

/// Runs the frozen part once over `images` (uint8 [N, 3, 32, 32], preprocessed without
/// augmentation) and returns the cached InputSet, on `options.device`. `progress` (optional)
/// counts batches.
InputSet cache_frozen_outputs(TransferAlexNet& model, const torch::Tensor& images, const torch::Tensor& targets,
                              const BatchOptions& options, ProgressBar* progress = nullptr);

/// Result of one training epoch.
struct EpochResult {
  /// Mean training loss (batches weighted by size).
  double loss = 0.0;
  /// Fraction of training examples classified correctly by the model of the moment (in
  /// training mode: dropout and augmentation on, the model still changing during the epoch).
  double accuracy = 0.0;
  std::int64_t examples = 0;
};

/// One pass over `data` in a random order (LibTorch's global generator), in training mode.
/// Augmentation applies only to uncached images.
EpochResult train_epoch(TransferAlexNet& model, TrainingLoss& loss, torch::optim::Optimizer& optimizer,
                        const InputSet& data, const BatchOptions& options, ProgressBar* progress = nullptr);

/// Metrics of an evaluation in eval mode.
struct Evaluation {
  /// Accuracy, per-class accuracy, balanced accuracy; `metrics.loss` is the cross entropy
  /// (the same measure whatever the training loss, so runs compare).
  ClassificationMetrics metrics;
  /// Confusion matrix int64 [C, C]: row = true class, column = predicted class.
  torch::Tensor confusion;
};

/// Evaluates `model` on `data` in eval mode without autograd, restoring its mode after.
Evaluation evaluate(TransferAlexNet& model, const InputSet& data, const BatchOptions& options);

}  // namespace torchloss::examples::transfer
