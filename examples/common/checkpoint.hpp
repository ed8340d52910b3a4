#pragma once
/// @file checkpoint.hpp
/// Saving and restoring a model and its optimizer in a directory.

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <string>

namespace torchloss::examples {

/// Writes `model` to `directory`/model.pt and, when given, `optimizer` to
/// `directory`/optimizer.pt, creating the directory. Each file is written to a temporary
/// name first and renamed, so an interrupted save never leaves a half-written checkpoint.
void save_checkpoint(const std::string& directory, const torch::nn::Module& model,
                     const torch::optim::Optimizer* optimizer = nullptr);

/// Restores into `model` (and `optimizer`, when given) what `save_checkpoint` wrote.
/// Throws `std::runtime_error` naming the file when it is missing or does not match.
void load_checkpoint(const std::string& directory, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer = nullptr);

/// Returns true when `directory` holds a saved model.
bool has_checkpoint(const std::string& directory);

}  // namespace torchloss::examples
