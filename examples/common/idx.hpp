#pragma once
/// @file idx.hpp
/// Reader for the IDX format of MNIST and Fashion-MNIST, gzipped or plain.
///
/// An IDX file is a 4-byte magic number `00 00 TT NN` (TT = element type, NN = number of
/// dimensions), NN big-endian uint32 dimension sizes, then the elements in row-major order.

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace torchloss::examples {

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;

/// Reads an IDX file of unsigned bytes whose magic number must equal `expected_magic`.
///
/// The file may be gzip-compressed or plain (zlib reads both). Returns a uint8 tensor
/// shaped by the header's dimensions. Throws `std::runtime_error` naming the file for a
/// missing file, a corrupt or truncated gzip stream, a wrong magic number, or a payload
/// whose size differs from what the header declares.
torch::Tensor read_idx(const std::string& path, std::uint32_t expected_magic);

/// Reads an IDX image file (magic 0x00000803): uint8 tensor [N, rows, cols].
torch::Tensor read_idx_images(const std::string& path);

/// Reads an IDX label file (magic 0x00000801): int64 tensor [N].
torch::Tensor read_idx_labels(const std::string& path);

/// Converts uint8 images [N, H, W] to float [N, 1, H, W]: scaled to [0, 1], then
/// standardised as (x - mean) / std.
torch::Tensor normalize_images(const torch::Tensor& images, double mean, double std);

}  // namespace torchloss::examples
