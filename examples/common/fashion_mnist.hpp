#pragma once
/// @file fashion_mnist.hpp
/// Fashion-MNIST (Xiao et al., 2017) as a `torch::data` dataset held in memory.

#include <torch/data/datasets/base.h>
#include <torch/data/example.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>

namespace torchloss::examples {

/// Where Debian's dataset package installs Fashion-MNIST.
inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";
/// Number of Fashion-MNIST classes.
inline constexpr std::int64_t kFashionMnistNumClasses = 10;
/// Class names, indexed by label.
inline constexpr std::array<const char*, kFashionMnistNumClasses> kFashionMnistClassNames = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
/// Mean and standard deviation of the training pixels scaled to [0, 1].
inline constexpr double kFashionMnistPixelMean = 0.2860;
inline constexpr double kFashionMnistPixelStd = 0.3530;

/// One split of Fashion-MNIST: normalised float images [N, 1, 28, 28] and int64 labels [N].
///
/// Each example is `{image [1, 28, 28], label []}`; batch it with
/// `dataset.map(torch::data::transforms::Stack<>())`.
class FashionMnist : public torch::data::datasets::Dataset<FashionMnist> {
 public:
  enum class Split { kTrain, kTest };

  /// Loads `split` from `directory`, which holds `{train,t10k}-{images-idx3,labels-idx1}-ubyte`
  /// gzipped (`.gz`) or plain. Keeps only the first `limit` examples when `limit > 0`.
  /// Throws `std::runtime_error` naming the file for missing or malformed data.
  FashionMnist(const std::string& directory, Split split, std::int64_t limit = 0);

  /// Wraps tensors already loaded: images float [N, 1, H, W], labels int64 [N] in [0, 10).
  FashionMnist(torch::Tensor images, torch::Tensor targets);

  /// Returns example `index` (image [1, H, W], label []).
  torch::data::Example<> get(std::size_t index) override;

  /// Returns the number of examples.
  torch::optional<std::size_t> size() const override;

  /// Returns the examples at `indices` (int64 [K]) as a new dataset, e.g. a long-tailed subset.
  FashionMnist subset(const torch::Tensor& indices) const;

  /// Returns all images, float [N, 1, H, W].
  const torch::Tensor& images() const { return images_; }

  /// Returns all labels, int64 [N].
  const torch::Tensor& targets() const { return targets_; }

  /// Returns the number of examples of each class, int64 [10].
  torch::Tensor class_counts() const;

 private:
  torch::Tensor images_;
  torch::Tensor targets_;
};

/// Returns the path of Fashion-MNIST file `stem` (e.g. "train-images-idx3-ubyte") in
/// `directory`: `stem.gz` if it exists, else `stem` if that exists, else `stem.gz`.
std::string fashion_mnist_file(const std::string& directory, const std::string& stem);

}  // namespace torchloss::examples
