#include "alexnet_transfer/cifar10.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace torchloss::examples::cifar10 {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBinaryArchiveUrl = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
constexpr const char* kBatchesFolder = "cifar-10-batches-bin";

}  // namespace

Records read_batch_file(const std::string& path, std::int64_t limit) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    throw std::runtime_error("CIFAR-10 file not found: '" + path + "'");
  }
  const auto file_size = static_cast<std::int64_t>(fs::file_size(path, error));
  if (error) throw std::runtime_error("cannot read CIFAR-10 file '" + path + "': " + error.message());
  if (file_size == 0) throw std::runtime_error("CIFAR-10 file '" + path + "' is empty");
  if (file_size % kRecordBytes != 0) {
    throw std::runtime_error("CIFAR-10 file '" + path + "' has " + std::to_string(file_size) +
                             " bytes, not a whole number of " + std::to_string(kRecordBytes) +
                             "-byte records (truncated or not the binary version?)");
  }
  std::int64_t num_records = file_size / kRecordBytes;
  if (limit > 0) num_records = std::min(num_records, limit);

  torch::Tensor raw = torch::empty({num_records, kRecordBytes}, torch::kUInt8);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(raw.data_ptr<std::uint8_t>()), static_cast<std::streamsize>(raw.numel()));
  if (!in) throw std::runtime_error("cannot read CIFAR-10 file '" + path + "'");

  torch::Tensor labels = raw.select(1, 0).to(torch::kInt64);
  if (num_records > 0) {
    const torch::Tensor bad = (labels >= kNumClasses).nonzero();
    if (bad.numel() > 0) {
      const std::int64_t record = bad[0][0].item<std::int64_t>();
      throw std::runtime_error("CIFAR-10 file '" + path + "': record " + std::to_string(record) + " has label " +
                               std::to_string(labels[record].item<std::int64_t>()) + ", outside [0, 9]");
    }
  }
  torch::Tensor images = raw.slice(1, 1).reshape({num_records, 3, kImageSize, kImageSize}).clone();
  return {std::move(images), std::move(labels)};
}

std::string resolve_directory(const std::string& directory) {
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    throw std::runtime_error("CIFAR-10 directory not found: '" + directory + "' (unpack the binary version, " +
                             kBinaryArchiveUrl + ")");
  }
  const fs::path nested = fs::path(directory) / kBatchesFolder;
  if (!fs::exists(fs::path(directory) / kTestFiles.front(), error) && fs::is_directory(nested, error)) {
    return nested.string();
  }
  return directory;
}

Cifar10::Cifar10(const std::string& directory, Split split, std::int64_t limit) {
  if (limit < 0) throw std::invalid_argument("Cifar10: limit must be >= 0 (0 = all), got " + std::to_string(limit));
  const std::string folder = resolve_directory(directory);
  const std::vector<std::string>& names = split == Split::kTrain ? kTrainFiles : kTestFiles;
  std::vector<std::string> paths;
  for (const std::string& name : names) {
    paths.push_back((fs::path(folder) / name).string());
    // Report a missing file now, even when --limit would not need it.
    if (!fs::is_regular_file(paths.back())) throw std::runtime_error("CIFAR-10 file not found: '" + paths.back() + "'");
  }
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> labels;
  std::int64_t loaded = 0;
  for (const std::string& path : paths) {
    Records records = read_batch_file(path, limit > 0 ? limit - loaded : 0);
    loaded += records.labels.size(0);
    images.push_back(std::move(records.images));
    labels.push_back(std::move(records.labels));
    if (limit > 0 && loaded >= limit) break;
  }
  images_ = images.size() == 1 ? images.front() : torch::cat(images);
  targets_ = labels.size() == 1 ? labels.front() : torch::cat(labels);
}

Cifar10::Cifar10(torch::Tensor images, torch::Tensor targets)
    : images_(std::move(images)), targets_(std::move(targets)) {
  if (images_.dim() != 4 || images_.size(1) != 3 || images_.scalar_type() != torch::kUInt8) {
    throw std::invalid_argument("Cifar10: images must be uint8 [N, 3, H, W], got " +
                                std::string(c10::toString(images_.scalar_type())) + " " + c10::str(images_.sizes()));
  }
  if (targets_.dim() != 1 || targets_.scalar_type() != torch::kInt64 || targets_.size(0) != images_.size(0)) {
    throw std::invalid_argument("Cifar10: labels must be int64 [" + std::to_string(images_.size(0)) + "], got " +
                                std::string(c10::toString(targets_.scalar_type())) + " " + c10::str(targets_.sizes()));
  }
  if (targets_.numel() > 0 &&
      (targets_.min().item<std::int64_t>() < 0 || targets_.max().item<std::int64_t>() >= kNumClasses)) {
    throw std::invalid_argument("Cifar10: labels must lie in [0, 9]");
  }
}

torch::data::Example<> Cifar10::get(std::size_t index) {
  const auto row = static_cast<std::int64_t>(index);
  return {images_[row], targets_[row]};
}

torch::optional<std::size_t> Cifar10::size() const { return static_cast<std::size_t>(targets_.size(0)); }

torch::Tensor Cifar10::class_counts() const { return torch::bincount(targets_, /*weights=*/{}, kNumClasses); }

}  // namespace torchloss::examples::cifar10
