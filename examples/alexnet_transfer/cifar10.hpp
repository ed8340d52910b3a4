#pragma once
/// @file cifar10.hpp
/// CIFAR-10 (Krizhevsky, 2009), binary version, as a `torch::data` dataset held in memory.
///
/// The binary version (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) unpacks to
/// `cifar-10-batches-bin/` with `data_batch_1.bin` … `data_batch_5.bin` (training, 10000
/// images each) and `test_batch.bin`. Each file is a sequence of 3073-byte records: one label
/// byte in [0, 9], then the 32×32 red, green and blue planes (row-major, one byte a pixel).

#include <torch/data/datasets/base.h>
#include <torch/data/example.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace torchloss::examples::cifar10 {

/// Number of classes.
inline constexpr std::int64_t kNumClasses = 10;
/// Image side, pixels.
inline constexpr std::int64_t kImageSize = 32;
/// Bytes of one record: the label, then 3 × 32 × 32 pixel bytes.
inline constexpr std::int64_t kRecordBytes = 1 + 3 * kImageSize * kImageSize;
/// Class names, indexed by label.
inline constexpr std::array<const char*, kNumClasses> kClassNames = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
/// Per-channel mean and standard deviation of the training pixels scaled to [0, 1].
inline constexpr std::array<double, 3> kChannelMean = {0.4914, 0.4822, 0.4465};
inline constexpr std::array<double, 3> kChannelStd = {0.2470, 0.2435, 0.2616};
/// Files of each split.
inline const std::vector<std::string> kTrainFiles = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                                     "data_batch_4.bin", "data_batch_5.bin"};
inline const std::vector<std::string> kTestFiles = {"test_batch.bin"};

/// Images and labels of one or more batch files.
struct Records {
  /// uint8 [N, 3, 32, 32].
  torch::Tensor images;
  /// int64 [N], values in [0, 9].
  torch::Tensor labels;
};

/// Reads one CIFAR-10 binary batch file, keeping at most `limit` records when `limit > 0`.
/// Throws `std::runtime_error` naming the file when it is missing or unreadable, empty, not a
/// whole number of 3073-byte records, or holds a label above 9 (naming the record).
Records read_batch_file(const std::string& path, std::int64_t limit = 0);

/// The directory holding the batch files: `directory` itself, or its `cifar-10-batches-bin`
/// subfolder when `directory` is the folder the archive was unpacked in. Throws
/// `std::runtime_error` when `directory` does not exist.
std::string resolve_directory(const std::string& directory);

/// One split of CIFAR-10: uint8 images [N, 3, 32, 32] and int64 labels [N]. The images stay
/// bytes in memory (150 MB for the training set); the trainer converts each batch.
///
/// Each example is `{image uint8 [3, 32, 32], label []}`; batch it with
/// `dataset.map(torch::data::transforms::Stack<>())`.
class Cifar10 : public torch::data::datasets::Dataset<Cifar10> {
 public:
  enum class Split { kTrain, kTest };

  /// Loads `split` from `directory` (see resolve_directory), keeping the first `limit`
  /// examples when `limit > 0` (later files are then not read, but must exist). Throws
  /// `std::runtime_error` naming the folder or file for missing or malformed data.
  Cifar10(const std::string& directory, Split split, std::int64_t limit = 0);

  /// Wraps tensors already loaded: images uint8 [N, 3, 32, 32], labels int64 [N] in [0, 10).
  Cifar10(torch::Tensor images, torch::Tensor targets);

  /// Returns example `index` (image uint8 [3, 32, 32], label []).
  torch::data::Example<> get(std::size_t index) override;

  /// Returns the number of examples.
  torch::optional<std::size_t> size() const override;

  /// Returns all images, uint8 [N, 3, 32, 32].
  const torch::Tensor& images() const { return images_; }

  /// Returns all labels, int64 [N].
  const torch::Tensor& targets() const { return targets_; }

  /// Returns the number of examples of each class, int64 [10].
  torch::Tensor class_counts() const;

 private:
  torch::Tensor images_;
  torch::Tensor targets_;
};

}  // namespace torchloss::examples::cifar10
