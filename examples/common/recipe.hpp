#pragma once
/// @file recipe.hpp
/// The two training recipes of the Fashion-MNIST trainers (`--recipe quick|reference`): the
/// network widths, the optimizer and its learning-rate schedule, chosen in one place so that
/// every trainer, and the PyTorch twin `examples/long_tail/reference.py`, train alike.

#include "common/cli_options.hpp"
#include "common/models.hpp"
#include "common/training.hpp"

#include <CLI/CLI.hpp>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torchloss::examples {

/// The reference recipe (#17), also written out in `examples/long_tail/reference.py`:
/// conv 3x3 32 -> pool -> conv 3x3 64 -> pool -> fc 128 -> head, SGD with momentum 0.9 and
/// weight decay 5e-4 on every parameter, peak learning rate 0.05 with a per-step cosine
/// schedule \f$\eta_t = \tfrac12 \eta_0 (1 + \cos(\pi t / T))\f$ over the T steps of the run,
/// batch 128, 12 epochs.
struct ReferenceRecipe {
  static constexpr std::int64_t kConv1Channels = 32;
  static constexpr std::int64_t kConv2Channels = 64;
  static constexpr std::int64_t kFeatureDim = 128;
  static constexpr double kLearningRate = 0.05;
  static constexpr double kMomentum = 0.9;
  static constexpr double kWeightDecay = 5e-4;
  static constexpr std::int64_t kBatchSize = 128;
  static constexpr std::int64_t kEpochs = 12;
};

/// The recipe's name for tables and file headers: "quick" or "reference".
std::string recipe_name(Recipe recipe);

/// The budget in words for a results table: "batch B, quick recipe: Adam lr X" or "batch B,
/// reference recipe: SGD momentum 0.9, weight decay 5e-4, cosine lr from X".
std::string recipe_description(const TrainerOptions& options);

/// Registers `--recipe quick|reference` on `app`, bound to `options.recipe`; its help names
/// `reference_learning_rate`, the peak rate of the trainer's reference recipe.
void add_recipe_option(CLI::App& app, TrainerOptions& options,
                       double reference_learning_rate = ReferenceRecipe::kLearningRate);

/// After parsing: under the reference recipe, sets --epochs, --batch-size and --lr to the
/// recipe's values (the peak rate `reference_learning_rate`: a trainer whose network needs a
/// smaller step passes its own) unless the command line gave them.
void apply_recipe_defaults(const CLI::App& app, TrainerOptions& options,
                           double reference_learning_rate = ReferenceRecipe::kLearningRate);

/// The ConvFeatures widths of the recipe (quick: 16, 32 channels, 64 features; reference:
/// 32, 64, 128). Trainers with their own feature size (2-D embeddings) override feature_dim.
ConvFeaturesOptions recipe_network(const TrainerOptions& options);

/// The learning rate of step `step` (0-based) of `total_steps` under the per-step cosine
/// schedule: \f$\tfrac12 \eta_0 (1 + \cos(\pi\, \mathrm{step} / \mathrm{total})\f$.
double cosine_learning_rate(double peak, std::int64_t step, std::int64_t total_steps);

/// The optimizer of a recipe and its schedule: Adam at a constant rate (quick), or SGD with
/// momentum, weight decay and the per-step cosine schedule (reference). Call before_step()
/// before every optimizer step (TrainEpochOptions::before_step).
class RecipeOptimizer {
 public:
  /// Builds the optimizer over `parameters` for a run of `total_steps` optimizer steps.
  RecipeOptimizer(std::vector<torch::Tensor> parameters, const TrainerOptions& options, std::int64_t total_steps);

  /// Not movable: epoch_options() hands out a callback bound to this object.
  RecipeOptimizer(RecipeOptimizer&&) = delete;
  RecipeOptimizer& operator=(RecipeOptimizer&&) = delete;

  /// The optimizer to step.
  torch::optim::Optimizer& optimizer() { return *optimizer_; }

  /// Sets the learning rate of the coming step and counts it.
  void before_step();

  /// train_one_epoch's options for this run: `batch_size`, and before_step() before every step.
  TrainEpochOptions epoch_options(std::int64_t batch_size);

  /// The learning rate the last before_step() set (the constant rate under the quick recipe).
  double learning_rate() const { return learning_rate_; }

 private:
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  Recipe recipe_;
  double peak_;
  double learning_rate_;
  std::int64_t step_ = 0;
  std::int64_t total_steps_;
};

}  // namespace torchloss::examples
