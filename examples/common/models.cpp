#include "common/models.hpp"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <stdexcept>

namespace torchloss::examples {

ConvFeaturesImpl::ConvFeaturesImpl(const ConvFeaturesOptions& options) : options_(options) {
  if (options.conv1_channels < 1 || options.conv2_channels < 1 || options.feature_dim < 1) {
    throw std::invalid_argument("ConvFeatures: channels and feature_dim must be >= 1");
  }
  if (!(options.dropout >= 0.0 && options.dropout < 1.0)) {
    throw std::invalid_argument("ConvFeatures: dropout must be in [0, 1)");
  }
  namespace nn = torch::nn;
  // The layers that draw random initial weights are built last to first, in named statements:
  // the order is then fixed by the language, not by a compiler's choice of argument evaluation
  // order (GCC's right-to-left, which the recorded results were trained with), and the PyTorch
  // twin examples/long_tail/reference.py draws the same weights from the same seed.
  nn::Linear fc(options.conv2_channels * 7 * 7, options.feature_dim);
  nn::Conv2d conv2(nn::Conv2dOptions(options.conv1_channels, options.conv2_channels, 3).padding(1).bias(false));
  nn::Conv2d conv1(nn::Conv2dOptions(1, options.conv1_channels, 3).padding(1).bias(false));
  nn::Sequential layers(conv1, nn::BatchNorm2d(options.conv1_channels), nn::ReLU(), nn::MaxPool2d(2), conv2,
                        nn::BatchNorm2d(options.conv2_channels), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), fc);
  switch (options.activation) {
    case FeatureActivation::kNone:
      break;
    case FeatureActivation::kReLU:
      layers->push_back(nn::ReLU());
      break;
    case FeatureActivation::kPReLU:
      layers->push_back(nn::PReLU());
      break;
  }
  if (options.dropout > 0.0) layers->push_back(nn::Dropout(options.dropout));
  layers_ = register_module("layers", layers);
}

torch::Tensor ConvFeaturesImpl::forward(const torch::Tensor& images) { return layers_->forward(images); }

}  // namespace torchloss::examples
