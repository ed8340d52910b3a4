#include "alexnet_transfer/alexnet.hpp"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

namespace torchloss::examples::alexnet {
namespace {

namespace nn = torch::nn;

/// First line of a LibTorch error (later lines are call-site details).
std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

/// The model's parameters and buffers, in registration order, under their dotted names.
std::vector<std::pair<std::string, torch::Tensor>> model_entries(const nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> entries;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) entries.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers(/*recurse=*/true)) entries.emplace_back(item.key(), item.value());
  return entries;
}

/// Reads `path` into memory; throws naming the file when it is missing or unreadable.
std::vector<char> read_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw std::runtime_error("weights file not found: '" + path +
                             "' (export it with tools/export_torchvision_weights.py)");
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw std::runtime_error("cannot read weights file '" + path + "'");
  return bytes;
}

/// The file's entries in the file's order, after checking it is a dict of string -> tensor.
std::vector<std::pair<std::string, torch::Tensor>> file_entries(const std::string& path) {
  const std::vector<char> bytes = read_file(path);
  c10::IValue loaded;
  try {
    loaded = torch::pickle_load(bytes);
  } catch (const c10::Error& error) {
    throw std::runtime_error("cannot read '" + path + "' as a pickled dict of tensors (" +
                             first_line(error.what_without_backtrace()) +
                             "); save it with torch.save(dict(model.state_dict()), path)");
  }
  if (!loaded.isGenericDict()) {
    throw std::runtime_error("'" + path + "' holds a " + loaded.tagKind() +
                             ", not a dict of tensors; save it with torch.save(dict(model.state_dict()), path)");
  }
  std::vector<std::pair<std::string, torch::Tensor>> entries;
  for (const auto& item : loaded.toGenericDict()) {
    if (!item.key().isString()) {
      throw std::runtime_error("'" + path + "' has a key of type " + item.key().tagKind() + "; keys must be names");
    }
    const std::string name = item.key().toStringRef();
    if (!item.value().isTensor()) {
      throw std::runtime_error("'" + path + "': entry '" + name + "' is a " + item.value().tagKind() +
                               ", not a tensor");
    }
    entries.emplace_back(name, item.value().toTensor());
  }
  return entries;
}

}  // namespace

ClassifierImpl::ClassifierImpl(std::int64_t num_classes, double dropout) {
  dropout0 = register_module("0", nn::Dropout(dropout));
  linear1 = register_module("1", nn::Linear(kPooledFeatures, kPenultimateFeatures));
  relu2 = register_module("2", nn::ReLU());
  dropout3 = register_module("3", nn::Dropout(dropout));
  linear4 = register_module("4", nn::Linear(kPenultimateFeatures, kPenultimateFeatures));
  relu5 = register_module("5", nn::ReLU());
  last = register_module("6", nn::Linear(kPenultimateFeatures, num_classes));
}

torch::Tensor ClassifierImpl::penultimate(const torch::Tensor& pooled) {
  const torch::Tensor hidden = relu2->forward(linear1->forward(dropout0->forward(pooled)));
  return relu5->forward(linear4->forward(dropout3->forward(hidden)));
}

void ClassifierImpl::replace_last(std::int64_t num_classes) {
  last = replace_module("6", nn::Linear(last->options.in_features(), num_classes));
}

AlexNetImpl::AlexNetImpl(std::int64_t num_classes, double dropout) {
  features =
      register_module("features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(3, 64, 11).stride(4).padding(2)),
                                                 nn::ReLU(), nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)),
                                                 nn::Conv2d(nn::Conv2dOptions(64, 192, 5).padding(2)), nn::ReLU(),
                                                 nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)),
                                                 nn::Conv2d(nn::Conv2dOptions(192, 384, 3).padding(1)), nn::ReLU(),
                                                 nn::Conv2d(nn::Conv2dOptions(384, 256, 3).padding(1)), nn::ReLU(),
                                                 nn::Conv2d(nn::Conv2dOptions(256, 256, 3).padding(1)), nn::ReLU(),
                                                 nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2))));
  avgpool = register_module("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({6, 6})));
  classifier = register_module("classifier", Classifier(num_classes, dropout));
}

torch::Tensor AlexNetImpl::pooled_features(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3, "AlexNet: images must be [N, 3, H, W], got ", images.sizes());
  TORCH_CHECK(images.size(2) >= kMinImageSize && images.size(3) >= kMinImageSize, "AlexNet: images must be at least ",
              kMinImageSize, "x", kMinImageSize, " pixels, got ", images.size(2), "x", images.size(3));
  return torch::flatten(avgpool->forward(features->forward(images)), 1);
}

void load_state_dict_file(nn::Module& model, const std::string& path) {
  const auto expected = model_entries(model);
  const auto found = file_entries(path);
  std::unordered_map<std::string, torch::Tensor> found_by_name(found.begin(), found.end());
  std::unordered_map<std::string, torch::Tensor> expected_by_name(expected.begin(), expected.end());

  for (const auto& [name, tensor] : expected) {
    if (found_by_name.count(name) == 0) {
      throw std::runtime_error("weights file '" + path + "': missing key '" + name + "' (expected shape " +
                               c10::str(tensor.sizes()) + ")");
    }
  }
  for (const auto& [name, tensor] : found) {
    if (expected_by_name.count(name) == 0) {
      throw std::runtime_error("weights file '" + path + "': unexpected key '" + name + "' (shape " +
                               c10::str(tensor.sizes()) + "), not a parameter or buffer of the model");
    }
  }
  for (const auto& [name, tensor] : expected) {
    const torch::Tensor& value = found_by_name.at(name);
    if (value.sizes() != tensor.sizes()) {
      throw std::runtime_error("weights file '" + path + "': shape mismatch for '" + name + "': the file has " +
                               c10::str(value.sizes()) + ", the model expects " + c10::str(tensor.sizes()));
    }
    if (!value.is_floating_point() && tensor.is_floating_point()) {
      throw std::runtime_error("weights file '" + path + "': '" + name + "' has dtype " +
                               std::string(c10::toString(value.scalar_type())) + ", the model expects " +
                               std::string(c10::toString(tensor.scalar_type())));
    }
  }
  const torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : expected) tensor.copy_(found_by_name.at(name));
}

void save_state_dict_file(const nn::Module& model, const std::string& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : model_entries(model)) dict.insert(name, tensor.detach().cpu());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write weights file '" + path + "'");
}

}  // namespace torchloss::examples::alexnet
