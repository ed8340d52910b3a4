#pragma once
/// @file temporary_directory.hpp
/// A scratch directory for the examples' unit tests.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <system_error>

namespace torchloss::examples::testing {

/// A fresh directory under the system temp dir, removed with its contents at scope exit.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = std::filesystem::temp_directory_path() /
            ("torchloss_examples_test_" + std::to_string(stamp) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

  /// Returns the path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  /// Returns the directory's path.
  const std::filesystem::path& path() const { return path_; }
  /// Returns the directory's path as text.
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace torchloss::examples::testing
