#include "common/checkpoint.hpp"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <filesystem>
#include <stdexcept>

namespace torchloss::examples {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModelFile = "model.pt";
constexpr const char* kOptimizerFile = "optimizer.pt";

/// Saves whatever `save` writes into an archive to `path`, via a temporary file.
template <typename Saveable>
void save_atomically(const Saveable& object, const fs::path& path) {
  torch::serialize::OutputArchive archive;
  object.save(archive);
  const fs::path temporary = path.string() + ".tmp";
  archive.save_to(temporary.string());
  fs::rename(temporary, path);
}

/// Loads the archive at `path` into `object`, turning LibTorch's errors into one clear line.
template <typename Loadable>
void load_from(Loadable& object, const fs::path& path) {
  if (!fs::exists(path)) {
    throw std::runtime_error("checkpoint file not found: '" + path.string() + "'");
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string());
    object.load(archive);
  } catch (const c10::Error& error) {
    throw std::runtime_error("cannot load checkpoint '" + path.string() + "': " + error.what_without_backtrace());
  }
}

}  // namespace

void save_checkpoint(const std::string& directory, const torch::nn::Module& model,
                     const torch::optim::Optimizer* optimizer) {
  fs::create_directories(directory);
  save_atomically(model, fs::path(directory) / kModelFile);
  if (optimizer != nullptr) save_atomically(*optimizer, fs::path(directory) / kOptimizerFile);
}

void load_checkpoint(const std::string& directory, torch::nn::Module& model, torch::optim::Optimizer* optimizer) {
  load_from(model, fs::path(directory) / kModelFile);
  if (optimizer != nullptr) load_from(*optimizer, fs::path(directory) / kOptimizerFile);
}

bool has_checkpoint(const std::string& directory) { return fs::exists(fs::path(directory) / kModelFile); }

}  // namespace torchloss::examples
