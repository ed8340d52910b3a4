#include "common/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <vector>

namespace torchloss::examples {
namespace {

/// IDX element type code of unsigned bytes (the third magic byte).
constexpr std::uint32_t kIdxUnsignedByte = 0x08;

std::string hex32(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", value);
  return text;
}

std::uint32_t big_endian_u32(const unsigned char* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::string join_dims(const std::vector<std::int64_t>& dims) {
  std::string text;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    text += (i == 0 ? "" : "x") + std::to_string(dims[i]);
  }
  return text;
}

/// Sequential reader of a gzip or plain file; owns the zlib handle.
class CompressedFileReader {
 public:
  explicit CompressedFileReader(std::string path) : path_(std::move(path)) {
    std::error_code error;
    if (!std::filesystem::exists(path_, error)) {
      throw std::runtime_error("IDX file not found: '" + path_ + "'");
    }
    if (std::filesystem::is_directory(path_, error)) {
      throw std::runtime_error("IDX path is a directory, not a file: '" + path_ + "'");
    }
    file_ = gzopen(path_.c_str(), "rb");
    if (file_ == nullptr) {
      throw std::runtime_error("cannot open IDX file '" + path_ + "': " + std::strerror(errno));
    }
    gzbuffer(file_, 1U << 17);
  }
  ~CompressedFileReader() { gzclose(file_); }
  CompressedFileReader(const CompressedFileReader&) = delete;
  CompressedFileReader& operator=(const CompressedFileReader&) = delete;

  /// Reads up to `size` bytes into `buffer`; returns fewer only at the end of the data.
  /// Throws when zlib reports an error (corrupt data, a gzip stream cut short).
  std::size_t read(void* buffer, std::size_t size) {
    auto* out = static_cast<unsigned char*>(buffer);
    std::size_t total = 0;
    while (total < size) {
      // gzread takes an unsigned count and returns an int: read at most 1 GiB at a time.
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(size - total, 1U << 30));
      const int count = gzread(file_, out + total, chunk);
      if (count <= 0) break;
      total += static_cast<std::size_t>(count);
    }
    throw_if_stream_error();
    return total;
  }

  const std::string& path() const { return path_; }

 private:
  void throw_if_stream_error() {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    if (code != Z_OK) {
      // zlib prefixes its message with the path, which ours already names.
      std::string detail = message;
      if (detail.rfind(path_ + ": ", 0) == 0) detail.erase(0, path_.size() + 2);
      throw std::runtime_error("IDX file '" + path_ + "' is corrupt or truncated (zlib: " + detail + ")");
    }
  }

  std::string path_;
  gzFile file_ = nullptr;
};

/// Reads the dimension sizes that follow the magic number.
std::vector<std::int64_t> read_dims(CompressedFileReader& reader, std::uint32_t num_dims) {
  std::vector<unsigned char> bytes(4 * num_dims);
  if (reader.read(bytes.data(), bytes.size()) != bytes.size()) {
    throw std::runtime_error("IDX file '" + reader.path() + "' is truncated: its header ends before " +
                             std::to_string(num_dims) + " dimension sizes");
  }
  std::vector<std::int64_t> dims(num_dims);
  for (std::uint32_t i = 0; i < num_dims; ++i) {
    dims[i] = big_endian_u32(bytes.data() + 4 * i);
  }
  return dims;
}

}  // namespace

torch::Tensor read_idx(const std::string& path, std::uint32_t expected_magic) {
  if ((expected_magic >> 8) != kIdxUnsignedByte) {
    throw std::invalid_argument("read_idx: only unsigned-byte IDX files are supported, got expected magic " +
                                hex32(expected_magic));
  }
  CompressedFileReader reader(path);

  unsigned char magic_bytes[4];
  if (reader.read(magic_bytes, 4) != 4) {
    throw std::runtime_error("IDX file '" + path + "' is truncated: shorter than its 4-byte magic number");
  }
  const std::uint32_t magic = big_endian_u32(magic_bytes);
  if (magic != expected_magic) {
    throw std::runtime_error("IDX file '" + path + "' has bad magic number " + hex32(magic) + ", expected " +
                             hex32(expected_magic) + " (unsigned bytes, " +
                             std::to_string(expected_magic & 0xFFU) + " dimensions)");
  }

  const std::vector<std::int64_t> dims = read_dims(reader, magic & 0xFFU);
  std::int64_t num_bytes = 1;
  for (const std::int64_t dim : dims) {
    if (dim != 0 && num_bytes > std::numeric_limits<std::int64_t>::max() / dim) {
      throw std::runtime_error("IDX file '" + path + "' declares implausible dimensions " + join_dims(dims));
    }
    num_bytes *= dim;
  }

  torch::Tensor data = torch::empty(dims, torch::kUInt8);
  const std::size_t payload_bytes = reader.read(data.data_ptr<std::uint8_t>(), static_cast<std::size_t>(num_bytes));
  if (payload_bytes != static_cast<std::size_t>(num_bytes)) {
    throw std::runtime_error("IDX file '" + path + "' is truncated: its header declares " + join_dims(dims) +
                             " = " + std::to_string(num_bytes) + " bytes of data but it holds only " +
                             std::to_string(payload_bytes));
  }
  unsigned char extra_byte = 0;
  if (reader.read(&extra_byte, 1) != 0) {
    throw std::runtime_error("IDX file '" + path + "' has a size mismatch: it holds more than the " +
                             std::to_string(num_bytes) + " bytes of data its header declares (" +
                             join_dims(dims) + ")");
  }
  return data;
}

torch::Tensor read_idx_images(const std::string& path) { return read_idx(path, kIdxImagesMagic); }

torch::Tensor read_idx_labels(const std::string& path) {
  return read_idx(path, kIdxLabelsMagic).to(torch::kInt64);
}

torch::Tensor normalize_images(const torch::Tensor& images, double mean, double std) {
  if (images.dim() != 3 || images.scalar_type() != torch::kUInt8) {
    throw std::invalid_argument("normalize_images: expected uint8 images [N, H, W], got " +
                                std::string(images.toString()) + " of shape " +
                                c10::str(images.sizes()));
  }
  return images.unsqueeze(1).to(torch::kFloat32).div_(255.0).sub_(mean).div_(std);
}

}  // namespace torchloss::examples
