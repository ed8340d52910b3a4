#pragma once
/// @file models.hpp
/// The small convolutional feature extractor the example trainers share, so that every
/// loss of a comparison trains the same network.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace torchloss::examples {

/// What follows the last linear layer of ConvFeatures.
enum class FeatureActivation {
  kNone,   ///< raw linear features
  kReLU,   ///< ReLU (the usual hidden layer)
  kPReLU,  ///< PReLU, as the center-loss paper's 2-D MNIST features
};

/// Shape of ConvFeatures.
struct ConvFeaturesOptions {
  /// Channels of the first conv block (28x28 -> 14x14).
  std::int64_t conv1_channels = 16;
  /// Channels of the second conv block (14x14 -> 7x7).
  std::int64_t conv2_channels = 32;
  /// Width of the feature vector the heads read.
  std::int64_t feature_dim = 64;
  /// Activation of the feature vector.
  FeatureActivation activation = FeatureActivation::kReLU;
  /// Dropout applied to the features in training mode (0 = none).
  double dropout = 0.0;
};

/// Two conv(3x3)-BatchNorm-ReLU-maxpool(2) blocks on 1x28x28 images, then a linear layer
/// to `feature_dim` units and the chosen activation: images [N, 1, 28, 28] -> features [N, D].
///
/// Small on purpose: the examples compare losses on a shared 2-core CPU, where a bigger
/// network would leave no time for several losses and seeds.
class ConvFeaturesImpl : public torch::nn::Module {
 public:
  explicit ConvFeaturesImpl(const ConvFeaturesOptions& options = {});

  /// Maps images [N, 1, 28, 28] to features [N, feature_dim].
  torch::Tensor forward(const torch::Tensor& images);

  /// The options the extractor was built with.
  const ConvFeaturesOptions& options() const { return options_; }

 private:
  ConvFeaturesOptions options_;
  torch::nn::Sequential layers_{nullptr};
};
TORCH_MODULE(ConvFeatures);

}  // namespace torchloss::examples
