#pragma once
/// @file cli_options.hpp
/// The command-line options every example trainer has (data, budget, seed, threads, outputs),
/// registered in one place so their names, checks and help read the same everywhere.

#include "common/fashion_mnist.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace torchloss::examples {

/// Help of --threads for the small Fashion-MNIST networks, which default to one thread.
inline constexpr const char* kSmallNetworkThreadsHelp =
    "CPU threads for LibTorch (0 = one per hardware thread); this small network trains fastest on one, and far "
    "slower on several when other processes share the cores";

/// The training recipe (`--recipe`, see recipe.hpp).
enum class Recipe {
  kQuick,      ///< Adam at a constant rate, the small network (the trainers' original budget)
  kReference,  ///< #17's recipe: wider network, SGD with momentum, per-step cosine schedule
};

/// The settings every trainer reads from the command line. A trainer's `Settings` derives from
/// it, sets its own defaults in its constructor and adds its own fields.
struct TrainerOptions {
  /// --data-dir: where the dataset's files are.
  std::string data_dir = kFashionMnistDefaultDir;
  /// --epochs: training epochs (of each run).
  std::int64_t epochs = 1;
  /// --batch-size: training batch size.
  std::int64_t batch_size = 128;
  /// --lr: learning rate (Adam's, or SGD's peak under the reference recipe).
  double learning_rate = 1e-3;
  /// --recipe: the network widths, optimizer and schedule (registered by add_recipe_option).
  Recipe recipe = Recipe::kQuick;
  /// --limit: use only the first K training images (0 = all).
  std::int64_t train_limit = 0;
  /// --test-limit: use only the first K test images (0 = all).
  std::int64_t test_limit = 0;
  /// --seed: seed of the weights and the batch order (not registered when TrainerOptionsHelp::seed is empty).
  std::uint64_t seed = 42;
  /// --threads: CPU threads for LibTorch (0 = one per hardware thread).
  int threads = 1;
  /// --output-dir: where the results go.
  std::string output_dir;
  /// --no-progress: do not draw the progress bar.
  bool no_progress = false;
  /// --plot-script: the matplotlib script that draws the plots (not registered when empty).
  std::string plot_script;
};

/// The names and help texts of the shared options that differ between trainers; the defaults
/// suit a Fashion-MNIST trainer with Adam.
struct TrainerOptionsHelp {
  /// Names of the data directory option.
  std::string data_dir_names = "--data-dir";
  std::string data_dir = "Directory of the Fashion-MNIST IDX files (.gz or plain)";
  std::string epochs = "Training epochs";
  std::string batch_size = "Training batch size";
  std::string learning_rate = "Learning rate: Adam's (quick recipe) or SGD's peak (reference recipe: 0.05)";
  std::string train_limit = "Use only the first K training images (0 = all)";
  /// Empty: no --seed (the trainer has its own seed option).
  std::string seed = "Seed of the weights and the batch order";
  std::string threads = "CPU threads for LibTorch (0 = one per hardware thread)";
  /// Names of the output directory option.
  std::string output_dir_names = "--output-dir";
  /// What goes into the output directory ("Where ... go").
  std::string output_dir = "Where the results go";
};

/// Registers the options of `options` on `app` (each showing its default in --help), with the
/// names and help texts of `help`.
void add_trainer_options(CLI::App& app, TrainerOptions& options, const TrainerOptionsHelp& help = {});

}  // namespace torchloss::examples
