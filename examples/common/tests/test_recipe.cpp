// Tests of the training recipes (--recipe quick|reference): the defaults they fill in, the
// network widths, the optimizer and the per-step cosine schedule, whose expected values are
// the closed form 0.5 * peak * (1 + cos(pi * t / T)) evaluated by hand.

#include "common/recipe.hpp"
#include "common/training.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace ex = torchloss::examples;

namespace {

/// Parses `args` with the shared options and --recipe, then applies the recipe's defaults.
/// `reference_learning_rate` is the trainer's peak rate under the reference recipe.
ex::TrainerOptions parse(std::vector<const char*> args,
                         double reference_learning_rate = ex::ReferenceRecipe::kLearningRate) {
  CLI::App app;
  ex::TrainerOptions options;
  options.epochs = 5;
  ex::add_trainer_options(app, options);
  ex::add_recipe_option(app, options, reference_learning_rate);
  args.insert(args.begin(), "trainer");
  app.parse(static_cast<int>(args.size()), const_cast<char**>(args.data()));
  ex::apply_recipe_defaults(app, options, reference_learning_rate);
  return options;
}

double sgd_learning_rate(torch::optim::Optimizer& optimizer) {
  return static_cast<torch::optim::SGDOptions&>(optimizer.param_groups().front().options()).lr();
}

}  // namespace

TEST_CASE("The reference recipe fills in its budget unless the command line gives one", "[recipe]") {
  const ex::TrainerOptions quick = parse({});
  CHECK(quick.recipe == ex::Recipe::kQuick);
  CHECK(quick.epochs == 5);
  CHECK(quick.learning_rate == 1e-3);

  const ex::TrainerOptions reference = parse({"--recipe", "reference"});
  CHECK(reference.recipe == ex::Recipe::kReference);
  CHECK(reference.epochs == 12);
  CHECK(reference.learning_rate == 0.05);
  CHECK(reference.batch_size == 128);

  const ex::TrainerOptions overridden = parse({"--recipe", "reference", "--epochs", "2", "--lr", "0.1"});
  CHECK(overridden.epochs == 2);
  CHECK(overridden.learning_rate == 0.1);

  // A trainer with its own peak rate (center_loss_embedding's 2-D network: 0.01).
  CHECK(parse({"--recipe", "reference"}, 0.01).learning_rate == 0.01);
  CHECK(parse({"--recipe", "reference", "--lr", "0.1"}, 0.01).learning_rate == 0.1);
  CHECK(parse({}, 0.01).learning_rate == 1e-3);

  CHECK_THROWS_AS(parse({"--recipe", "fast"}), CLI::ValidationError);
}

TEST_CASE("recipe_network widens the CNN under the reference recipe", "[recipe]") {
  ex::TrainerOptions options;
  CHECK(ex::recipe_network(options).conv1_channels == 16);
  CHECK(ex::recipe_network(options).feature_dim == 64);
  options.recipe = ex::Recipe::kReference;
  const ex::ConvFeaturesOptions network = ex::recipe_network(options);
  CHECK(network.conv1_channels == 32);
  CHECK(network.conv2_channels == 64);
  CHECK(network.feature_dim == 128);
  ex::ConvFeatures features(network);
  CHECK(features->forward(torch::zeros({2, 1, 28, 28})).sizes() == torch::IntArrayRef({2, 128}));
}

TEST_CASE("cosine_learning_rate follows the closed form and checks its step", "[recipe]") {
  CHECK(ex::cosine_learning_rate(0.05, 0, 100) == Approx(0.05).epsilon(1e-15));
  CHECK(ex::cosine_learning_rate(0.05, 50, 100) == Approx(0.025).epsilon(1e-15));
  CHECK(ex::cosine_learning_rate(0.05, 25, 100) == Approx(0.025 * (1 + std::sqrt(0.5))).epsilon(1e-15));
  CHECK(ex::cosine_learning_rate(0.05, 99, 100) == Approx(0.025 * (1 + std::cos(M_PI * 0.99))).epsilon(1e-15));
  CHECK_THROWS_AS(ex::cosine_learning_rate(0.05, 100, 100), std::invalid_argument);
  CHECK_THROWS_AS(ex::cosine_learning_rate(0.05, -1, 100), std::invalid_argument);
  CHECK_THROWS_AS(ex::cosine_learning_rate(0.05, 0, 0), std::invalid_argument);
}

TEST_CASE("RecipeOptimizer: SGD with momentum and weight decay on a per-step cosine schedule", "[recipe]") {
  ex::TrainerOptions options;
  options.recipe = ex::Recipe::kReference;
  options.learning_rate = 0.05;
  const torch::Tensor weight = torch::ones({3}, torch::requires_grad());
  ex::RecipeOptimizer recipe({weight}, options, 4);
  auto* sgd = dynamic_cast<torch::optim::SGD*>(&recipe.optimizer());
  REQUIRE(sgd != nullptr);
  const auto& sgd_options = static_cast<const torch::optim::SGDOptions&>(sgd->param_groups().front().options());
  CHECK(sgd_options.momentum() == 0.9);
  CHECK(sgd_options.weight_decay() == 5e-4);
  const std::vector<double> expected = {0.05, 0.025 * (1 + std::sqrt(0.5)), 0.025, 0.025 * (1 - std::sqrt(0.5))};
  for (const double rate : expected) {
    recipe.before_step();
    CHECK(sgd_learning_rate(recipe.optimizer()) == Approx(rate).epsilon(1e-15));
    CHECK(recipe.learning_rate() == Approx(rate).epsilon(1e-15));
  }
  recipe.before_step();  // past the plan: stays at the last step's rate
  CHECK(recipe.learning_rate() == Approx(expected.back()).epsilon(1e-15));

  // The first step moves the weights by lr * (grad + weight_decay * w), as PyTorch's SGD.
  ex::RecipeOptimizer fresh({weight}, options, 4);
  fresh.optimizer().zero_grad();
  (weight * 2).sum().backward();
  fresh.before_step();
  fresh.optimizer().step();
  CHECK(weight[0].item<double>() == Approx(1 - 0.05 * (2 + 5e-4)).epsilon(1e-7));
}

TEST_CASE("RecipeOptimizer under the quick recipe is Adam at a constant rate", "[recipe]") {
  ex::TrainerOptions options;
  options.learning_rate = 2e-3;
  const torch::Tensor weight = torch::ones({3}, torch::requires_grad());
  ex::RecipeOptimizer recipe({weight}, options, 10);
  CHECK(dynamic_cast<torch::optim::Adam*>(&recipe.optimizer()) != nullptr);
  recipe.before_step();
  recipe.before_step();
  CHECK(recipe.learning_rate() == 2e-3);
  CHECK_THROWS_AS(ex::RecipeOptimizer({weight}, options, 0), std::invalid_argument);
}

TEST_CASE("train_one_epoch calls before_step once per batch, before the step", "[training]") {
  torch::manual_seed(0);
  torch::nn::Linear model(2, 2);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.0));
  ex::TrainEpochOptions options;
  options.batch_size = 3;
  int calls = 0;
  options.before_step = [&] {
    // The gradient already exists when the schedule runs.
    CHECK(model->weight.grad().defined());
    ++calls;
  };
  ex::train_one_epoch(
      *model, optimizer,
      [&model](const torch::Tensor& x, const torch::Tensor& y) {
        return torch::nn::functional::cross_entropy(model->forward(x), y);
      },
      torch::randn({7, 2}), torch::zeros({7}, torch::kInt64), options);
  CHECK(calls == 3);
}

TEST_CASE("ConvFeatures draws its initial weights last layer first, as reference.py", "[models]") {
  // The PyTorch twin builds Linear, then conv2, then conv1 after the same manual_seed; this
  // pins the order (a compiler's argument evaluation order must not decide it).
  ex::ConvFeaturesOptions options;
  torch::manual_seed(7);
  ex::ConvFeatures features(options);
  torch::manual_seed(7);
  torch::nn::Linear fc(options.conv2_channels * 7 * 7, options.feature_dim);
  torch::nn::Conv2d conv2(torch::nn::Conv2dOptions(options.conv1_channels, options.conv2_channels, 3).bias(false));
  torch::nn::Conv2d conv1(torch::nn::Conv2dOptions(1, options.conv1_channels, 3).bias(false));
  const auto parameters = features->parameters();  // conv1, bn1 (2), conv2, bn2 (2), fc (2)
  REQUIRE(parameters.size() == 8);
  CHECK(torch::equal(parameters[0], conv1->weight));
  CHECK(torch::equal(parameters[3], conv2->weight));
  CHECK(torch::equal(parameters[6], fc->weight));
  CHECK(torch::equal(parameters[7], fc->bias));
}
