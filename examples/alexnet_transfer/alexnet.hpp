#pragma once
/// @file alexnet.hpp
/// AlexNet exactly as torchvision builds it (same layers, same parameter names), so the
/// state dict of `torchvision.models.alexnet(weights="IMAGENET1K_V1")` loads into it, and the
/// loader of such state dicts.
///
///     features    0 Conv2d(3, 64, 11, stride 4, pad 2)  1 ReLU  2 MaxPool(3, 2)
///                 3 Conv2d(64, 192, 5, pad 2)           4 ReLU  5 MaxPool(3, 2)
///                 6 Conv2d(192, 384, 3, pad 1)          7 ReLU
///                 8 Conv2d(384, 256, 3, pad 1)          9 ReLU
///                10 Conv2d(256, 256, 3, pad 1)         11 ReLU 12 MaxPool(3, 2)
///     avgpool     AdaptiveAvgPool2d((6, 6)), then flatten        -> "pooled" [N, 9216]
///     classifier  0 Dropout  1 Linear(9216, 4096)  2 ReLU
///                 3 Dropout  4 Linear(4096, 4096)  5 ReLU        -> "penultimate" [N, 4096]
///                 6 Linear(4096, num_classes)                    -> logits
///
/// Inputs of at least 63×63 pixels work (the adaptive pooling makes the classifier's input
/// 9216 wide at any size); ImageNet weights expect 224×224.

#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace torchloss::examples::alexnet {

/// Width of the pooled convolutional features (256 channels × 6 × 6).
inline constexpr std::int64_t kPooledFeatures = 256 * 6 * 6;
/// Width of the penultimate features (the input of classifier.6).
inline constexpr std::int64_t kPenultimateFeatures = 4096;
/// Smallest input height and width AlexNet's convolutions and max pools accept.
inline constexpr std::int64_t kMinImageSize = 63;

/// The classifier block: children named "0" … "6" as in torchvision's `nn.Sequential`, with
/// access to the intermediate results (a Sequential cannot give the penultimate features,
/// nor swap its last layer).
class ClassifierImpl : public torch::nn::Module {
 public:
  ClassifierImpl(std::int64_t num_classes, double dropout);

  /// Maps pooled features [N, 9216] to the penultimate features [N, 4096] (classifier.0–5).
  torch::Tensor penultimate(const torch::Tensor& pooled);

  /// Maps pooled features [N, 9216] to logits [N, num_classes].
  torch::Tensor forward(const torch::Tensor& pooled) { return last->forward(penultimate(pooled)); }

  /// Replaces classifier.6 by a freshly initialised Linear(4096, num_classes).
  void replace_last(std::int64_t num_classes);

  torch::nn::Dropout dropout0{nullptr};
  torch::nn::Linear linear1{nullptr};
  torch::nn::ReLU relu2{nullptr};
  torch::nn::Dropout dropout3{nullptr};
  torch::nn::Linear linear4{nullptr};
  torch::nn::ReLU relu5{nullptr};
  torch::nn::Linear last{nullptr};
};
TORCH_MODULE(Classifier);

/// torchvision's AlexNet (`torchvision/models/alexnet.py`), in three stages so that a
/// transfer-learning loop can run (and cache) part of it: `pooled_features` (features +
/// avgpool + flatten), `classifier->penultimate` (classifier.0–5), `classifier->last`.
class AlexNetImpl : public torch::nn::Module {
 public:
  /// AlexNet with `num_classes` outputs and dropout probability `dropout` (torchvision: 0.5).
  /// Initialised with LibTorch's defaults; load real weights with `load_state_dict_file`.
  explicit AlexNetImpl(std::int64_t num_classes = 1000, double dropout = 0.5);

  /// Images [N, 3, H, W] (H, W >= 63) to pooled convolutional features [N, 9216].
  torch::Tensor pooled_features(const torch::Tensor& images);

  /// Images [N, 3, H, W] to logits [N, num_classes].
  torch::Tensor forward(const torch::Tensor& images) { return classifier->forward(pooled_features(images)); }

  /// Number of outputs of classifier.6.
  std::int64_t num_classes() const { return classifier->last->options.out_features(); }

  torch::nn::Sequential features{nullptr};
  torch::nn::AdaptiveAvgPool2d avgpool{nullptr};
  Classifier classifier{nullptr};
};
TORCH_MODULE(AlexNet);

/// Loads a state dict saved by Python's `torch.save(dict(model.state_dict()), path)` (a
/// plain dict of name -> tensor; `tools/export_torchvision_weights.py` writes one) into
/// `model`'s parameters and buffers.
///
/// Every name and shape is checked before anything is copied; the error names the first
/// mismatch, in this order: a parameter or buffer of the model missing from the file (in the
/// model's order), then a key of the file the model does not have (in the file's order), then
/// a shape that differs. Throws `std::runtime_error` for those, for a missing or unreadable
/// file, and for a file that is not a dict of string -> tensor. Values are converted to the
/// parameter's dtype and device; the model is left untouched when anything is wrong.
void load_state_dict_file(torch::nn::Module& model, const std::string& path);

/// Writes `model`'s parameters and buffers as a dict of name -> tensor with
/// `torch::pickle_save` (Python reads it with `torch.load`; `load_state_dict_file` reads it).
void save_state_dict_file(const torch::nn::Module& model, const std::string& path);

}  // namespace torchloss::examples::alexnet
