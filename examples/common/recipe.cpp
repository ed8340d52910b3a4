#include "common/recipe.hpp"

#include "common/cli_checks.hpp"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

namespace torchloss::examples {

std::string recipe_name(Recipe recipe) { return recipe == Recipe::kReference ? "reference" : "quick"; }

std::string recipe_description(const TrainerOptions& options) {
  std::string text = "batch " + std::to_string(options.batch_size) + ", ";
  text += options.recipe == Recipe::kReference ? "reference recipe: SGD momentum 0.9, weight decay 5e-4, cosine lr from "
                                               : "quick recipe: Adam lr ";
  return text + format_number(options.learning_rate);
}

void add_recipe_option(CLI::App& app, TrainerOptions& options, double reference_learning_rate) {
  const std::map<std::string, Recipe> names = {{"quick", Recipe::kQuick}, {"reference", Recipe::kReference}};
  app.add_option("--recipe", options.recipe,
                 "Training recipe. quick: 16/32-channel CNN with 64 features, Adam at a constant --lr. "
                 "reference: 32/64 channels, 128 features, SGD (momentum 0.9, weight decay 5e-4) with a "
                 "per-step cosine schedule from --lr " +
                     format_number(reference_learning_rate) +
                     ", batch 128, 12 epochs (explicit --epochs, --lr, --batch-size still win); "
                     "examples/*/reference.py are its PyTorch twins")
      ->transform(CLI::CheckedTransformer(names, CLI::ignore_case))
      ->default_str("quick");
}

void apply_recipe_defaults(const CLI::App& app, TrainerOptions& options, double reference_learning_rate) {
  if (options.recipe != Recipe::kReference) return;
  if (app.count("--epochs") == 0) options.epochs = ReferenceRecipe::kEpochs;
  if (app.count("--lr") == 0) options.learning_rate = reference_learning_rate;
  if (app.count("--batch-size") == 0) options.batch_size = ReferenceRecipe::kBatchSize;
}

ConvFeaturesOptions recipe_network(const TrainerOptions& options) {
  ConvFeaturesOptions network;
  if (options.recipe == Recipe::kReference) {
    network.conv1_channels = ReferenceRecipe::kConv1Channels;
    network.conv2_channels = ReferenceRecipe::kConv2Channels;
    network.feature_dim = ReferenceRecipe::kFeatureDim;
  }
  return network;
}

double cosine_learning_rate(double peak, std::int64_t step, std::int64_t total_steps) {
  if (total_steps < 1) throw std::invalid_argument("cosine_learning_rate: total_steps must be >= 1");
  if (step < 0 || step >= total_steps) {
    throw std::invalid_argument("cosine_learning_rate: step " + std::to_string(step) + " outside [0, " +
                                std::to_string(total_steps) + ")");
  }
  const double pi = std::acos(-1.0);
  return 0.5 * peak * (1.0 + std::cos(pi * static_cast<double>(step) / static_cast<double>(total_steps)));
}

RecipeOptimizer::RecipeOptimizer(std::vector<torch::Tensor> parameters, const TrainerOptions& options,
                                 std::int64_t total_steps)
    : recipe_(options.recipe),
      peak_(options.learning_rate),
      learning_rate_(options.learning_rate),
      total_steps_(total_steps) {
  if (total_steps < 1) throw std::invalid_argument("RecipeOptimizer: total_steps must be >= 1");
  if (recipe_ == Recipe::kReference) {
    optimizer_ = std::make_unique<torch::optim::SGD>(std::move(parameters),
                                                     torch::optim::SGDOptions(peak_)
                                                         .momentum(ReferenceRecipe::kMomentum)
                                                         .weight_decay(ReferenceRecipe::kWeightDecay));
  } else {
    optimizer_ = std::make_unique<torch::optim::Adam>(std::move(parameters), torch::optim::AdamOptions(peak_));
  }
}

TrainEpochOptions RecipeOptimizer::epoch_options(std::int64_t batch_size) {
  TrainEpochOptions options;
  options.batch_size = batch_size;
  options.before_step = [this] { before_step(); };
  return options;
}

void RecipeOptimizer::before_step() {
  if (recipe_ == Recipe::kReference) {
    // Past the planned steps (a resumed or extended run) the rate stays at the last one's.
    learning_rate_ = cosine_learning_rate(peak_, std::min(step_, total_steps_ - 1), total_steps_);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr(learning_rate_);
    }
  }
  ++step_;
}

}  // namespace torchloss::examples
