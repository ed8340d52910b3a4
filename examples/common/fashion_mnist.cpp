#include "common/fashion_mnist.hpp"

#include "common/idx.hpp"

#include <filesystem>
#include <stdexcept>

namespace torchloss::examples {
namespace {

/// Throws unless `targets` is int64 [N] with every label in [0, kFashionMnistNumClasses).
void check_labels(const torch::Tensor& targets, const std::string& source) {
  if (targets.dim() != 1 || targets.scalar_type() != torch::kInt64) {
    throw std::invalid_argument("Fashion-MNIST labels from " + source + " must be int64 [N], got shape " +
                                c10::str(targets.sizes()));
  }
  if (targets.numel() == 0) return;
  const std::int64_t min_label = targets.min().item<std::int64_t>();
  const std::int64_t max_label = targets.max().item<std::int64_t>();
  if (min_label < 0 || max_label >= kFashionMnistNumClasses) {
    throw std::runtime_error("Fashion-MNIST labels from " + source + " hold label " +
                             std::to_string(min_label < 0 ? min_label : max_label) + " outside [0, " +
                             std::to_string(kFashionMnistNumClasses) + ")");
  }
}

}  // namespace

std::string fashion_mnist_file(const std::string& directory, const std::string& stem) {
  const std::filesystem::path base = std::filesystem::path(directory) / stem;
  const std::string gzipped = base.string() + ".gz";
  if (!std::filesystem::exists(gzipped) && std::filesystem::exists(base)) return base.string();
  return gzipped;
}

FashionMnist::FashionMnist(const std::string& directory, Split split, std::int64_t limit) {
  if (limit < 0) {
    throw std::invalid_argument("FashionMnist: limit must be >= 0 (0 = all), got " + std::to_string(limit));
  }
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string images_path = fashion_mnist_file(directory, prefix + "-images-idx3-ubyte");
  const std::string labels_path = fashion_mnist_file(directory, prefix + "-labels-idx1-ubyte");
  torch::Tensor images = read_idx_images(images_path);
  torch::Tensor labels = read_idx_labels(labels_path);
  if (images.size(0) != labels.size(0)) {
    throw std::runtime_error("Fashion-MNIST images/labels count mismatch: '" + images_path + "' holds " +
                             std::to_string(images.size(0)) + " images but '" + labels_path + "' holds " +
                             std::to_string(labels.size(0)) + " labels");
  }
  check_labels(labels, "'" + labels_path + "'");
  if (limit > 0 && limit < images.size(0)) {
    images = images.slice(0, 0, limit);
    labels = labels.slice(0, 0, limit).clone();
  }
  images_ = normalize_images(images, kFashionMnistPixelMean, kFashionMnistPixelStd);
  targets_ = std::move(labels);
}

FashionMnist::FashionMnist(torch::Tensor images, torch::Tensor targets)
    : images_(std::move(images)), targets_(std::move(targets)) {
  if (images_.dim() != 4 || !images_.is_floating_point()) {
    throw std::invalid_argument("FashionMnist: images must be float [N, 1, H, W], got shape " +
                                c10::str(images_.sizes()));
  }
  check_labels(targets_, "a tensor");
  if (images_.size(0) != targets_.size(0)) {
    throw std::invalid_argument("FashionMnist: images/labels count mismatch: " + std::to_string(images_.size(0)) +
                                " images but " + std::to_string(targets_.size(0)) + " labels");
  }
}

torch::data::Example<> FashionMnist::get(std::size_t index) {
  const auto row = static_cast<std::int64_t>(index);
  return {images_[row], targets_[row]};
}

torch::optional<std::size_t> FashionMnist::size() const { return static_cast<std::size_t>(targets_.size(0)); }

FashionMnist FashionMnist::subset(const torch::Tensor& indices) const {
  return FashionMnist(images_.index_select(0, indices), targets_.index_select(0, indices));
}

torch::Tensor FashionMnist::class_counts() const {
  return torch::bincount(targets_, /*weights=*/{}, kFashionMnistNumClasses);
}

}  // namespace torchloss::examples
