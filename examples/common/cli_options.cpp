#include "common/cli_options.hpp"

#include "common/cli_checks.hpp"

namespace torchloss::examples {

void add_trainer_options(CLI::App& app, TrainerOptions& options, const TrainerOptionsHelp& help) {
  app.add_option(help.data_dir_names, options.data_dir, help.data_dir)->capture_default_str();
  app.add_option("--epochs", options.epochs, help.epochs)->capture_default_str()->check(at_least(1));
  app.add_option("--batch-size", options.batch_size, help.batch_size)->capture_default_str()->check(at_least(1));
  app.add_option("--lr", options.learning_rate, help.learning_rate)->capture_default_str()->check(greater_than(0));
  app.add_option("--limit", options.train_limit, help.train_limit)->capture_default_str()->check(at_least(0));
  app.add_option("--test-limit", options.test_limit, "Use only the first K test images (0 = all)")
      ->capture_default_str()
      ->check(at_least(0));
  if (!help.seed.empty()) app.add_option("--seed", options.seed, help.seed)->capture_default_str();
  app.add_option("--threads", options.threads, help.threads)->capture_default_str()->check(at_least(0));
  app.add_option(help.output_dir_names, options.output_dir, help.output_dir)->capture_default_str();
  app.add_flag("--no-progress", options.no_progress, "Do not draw the progress bar");
  if (!options.plot_script.empty()) {
    app.add_option("--plot-script", options.plot_script, "The matplotlib script that draws the plots")
        ->capture_default_str();
  }
}

}  // namespace torchloss::examples
