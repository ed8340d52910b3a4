/// @file main.cpp
/// Multi-task training with torchloss::MultiTaskLoss: one backbone, two heads on
/// Fashion-MNIST: the 10-way class, and a coarse 4-way group:
///
///     tops     = {T-shirt/top, Pullover, Dress, Coat, Shirt}
///     bottoms  = {Trouser}
///     footwear = {Sandal, Sneaker, Ankle boot}
///     bags     = {Bag}
///
/// Trained twice from the same initial weights: with fixed task weights (--fixed-weights),
/// and with learned uncertainty weights (Kendall, Gal and Cipolla, CVPR 2018).
///
///     multi_task --epochs 3 --fixed-weights 1,1
///
/// For each run (fixed/, learned/ under --output-dir): metrics.csv (one row per epoch) and
/// checkpoint/; then summary.csv and summary.md with both tasks' test accuracy.

#include "common/checkpoint.hpp"
#include "common/cli_checks.hpp"
#include "common/cli_options.hpp"
#include "common/csv_writer.hpp"
#include "common/evaluation.hpp"
#include "common/fashion_mnist.hpp"
#include "common/models.hpp"
#include "common/progress_bar.hpp"
#include "common/recipe.hpp"
#include "common/run_main.hpp"
#include "common/training.hpp"

#include <CLI/CLI.hpp>
#include <torch/torch.h>
#include <torchloss/torchloss.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace ex = torchloss::examples;
namespace fs = std::filesystem;

constexpr std::int64_t kNumClasses = ex::kFashionMnistNumClasses;
constexpr std::int64_t kNumGroups = 4;
constexpr std::array<const char*, kNumGroups> kGroupNames = {"tops", "bottoms", "footwear", "bags"};
/// Group of each Fashion-MNIST class, indexed by label (see the file comment).
constexpr std::array<std::int64_t, kNumClasses> kGroupOfClass = {0, 1, 0, 0, 0, 2, 0, 2, 3, 2};

/// Everything the command line sets.
struct Settings : ex::TrainerOptions {
  Settings() {
    epochs = 3;
    output_dir = "results/multi_task";
  }
  std::vector<double> fixed_weights = {1.0, 1.0};
};

/// Maps class labels [N] to group labels [N].
torch::Tensor group_of(const torch::Tensor& labels) {
  const torch::Tensor table =
      torch::tensor(std::vector<std::int64_t>(kGroupOfClass.begin(), kGroupOfClass.end()), torch::kInt64);
  return table.to(labels.device()).index_select(0, labels);
}

/// The shared backbone with a class head and a group head.
class TwoHeadNetImpl : public torch::nn::Module {
 public:
  explicit TwoHeadNetImpl(const ex::ConvFeaturesOptions& network) {
    features = register_module("features", ex::ConvFeatures(network));
    const std::int64_t feature_dim = features->options().feature_dim;
    class_head = register_module("class_head", torch::nn::Linear(feature_dim, kNumClasses));
    group_head = register_module("group_head", torch::nn::Linear(feature_dim, kNumGroups));
  }

  /// Returns the class logits [N, 10] and the group logits [N, 4] of images [N, 1, 28, 28].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& images) {
    const torch::Tensor shared = features->forward(images);
    return {class_head->forward(shared), group_head->forward(shared)};
  }

  ex::ConvFeatures features{nullptr};
  torch::nn::Linear class_head{nullptr};
  torch::nn::Linear group_head{nullptr};
};
TORCH_MODULE(TwoHeadNet);

/// Test results of one evaluation.
struct TaskAccuracy {
  double class_accuracy = 0.0;
  double group_accuracy = 0.0;
  /// Accuracy of the groups implied by the class head's predictions (no group head).
  double group_from_class_accuracy = 0.0;
};

TaskAccuracy evaluate(TwoHeadNet& model, const ex::FashionMnist& test_set) {
  torch::Tensor implied_groups;
  std::vector<torch::Tensor> class_predictions;
  const ex::ClassificationMetrics class_metrics = ex::evaluate_classifier(
      *model,
      [&model, &class_predictions](const torch::Tensor& images) {
        torch::Tensor logits = model->forward(images).first;
        class_predictions.push_back(logits.argmax(1).cpu());
        return logits;
      },
      test_set.images(), test_set.targets(), kNumClasses);
  const torch::Tensor groups = group_of(test_set.targets());
  const ex::ClassificationMetrics group_metrics = ex::evaluate_classifier(
      *model, [&model](const torch::Tensor& images) { return model->forward(images).second; }, test_set.images(),
      groups, kNumGroups);
  const ex::ClassificationMetrics implied =
      ex::classification_metrics(group_of(torch::cat(class_predictions)), groups, kNumGroups);
  return {class_metrics.accuracy, group_metrics.accuracy, implied.accuracy};
}

/// The task weights in effect: the fixed ones, or exp(−s_i) of the learned log-variances.
std::vector<double> effective_weights(const torchloss::MultiTaskLoss& loss) {
  const torch::Tensor weights = loss->task_weights().detach().cpu().to(torch::kDouble).contiguous();
  return {weights.data_ptr<double>(), weights.data_ptr<double>() + weights.numel()};
}

/// Results of one run.
struct RunResult {
  std::string name;
  TaskAccuracy accuracy;
  std::vector<double> weights;
  double train_seconds = 0.0;
};

RunResult train_run(const std::string& name, bool learned, const ex::FashionMnist& train_set,
                    const ex::FashionMnist& test_set, const Settings& settings) {
  torch::manual_seed(settings.seed);
  TwoHeadNet model(ex::recipe_network(settings));
  torchloss::MultiTaskLoss multi_task =
      learned ? torchloss::MultiTaskLoss(torchloss::MultiTaskLossOptions(2).learn_uncertainty(true))
              : torchloss::MultiTaskLoss(torchloss::MultiTaskLossOptions(2).weights(
                    torch::tensor(settings.fixed_weights, torch::kFloat)));
  torchloss::WeightedCrossEntropyLoss cross_entropy;
  // The learned log-variances are parameters of the loss: the optimizer moves them too.
  std::vector<torch::Tensor> parameters = model->parameters();
  for (const torch::Tensor& parameter : multi_task->parameters()) parameters.push_back(parameter);

  const fs::path dir = fs::path(settings.output_dir) / name;
  ex::CsvWriter metrics_csv((dir / "metrics.csv").string(),
                            {"epoch", "train_loss", "class_accuracy", "group_accuracy", "group_from_class_accuracy",
                             "class_weight", "group_weight", "epoch_seconds"});
  const std::int64_t batches = ex::num_batches(train_set.targets().size(0), settings.batch_size);
  ex::RecipeOptimizer recipe(parameters, settings, batches * settings.epochs);
  const ex::TrainEpochOptions train_options = recipe.epoch_options(settings.batch_size);
  const ex::BatchLossFunction batch_loss = [&](const torch::Tensor& images, const torch::Tensor& targets) {
    auto [class_logits, group_logits] = model->forward(images);
    return multi_task->forward({cross_entropy(class_logits, targets), cross_entropy(group_logits, group_of(targets))});
  };

  RunResult result{name, {}, {}, 0.0};
  for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
    ex::ProgressBar progress(name + " epoch " + std::to_string(epoch) + "/" + std::to_string(settings.epochs),
                             batches, !settings.no_progress);
    multi_task->train();
    const ex::EpochStats stats = ex::train_one_epoch(*model, recipe.optimizer(), batch_loss, train_set.images(),
                                                     train_set.targets(), train_options, &progress);
    result.train_seconds += stats.seconds;
    result.accuracy = evaluate(model, test_set);
    result.weights = effective_weights(multi_task);
    metrics_csv.write_row({epoch, stats.mean_loss, result.accuracy.class_accuracy, result.accuracy.group_accuracy,
                           result.accuracy.group_from_class_accuracy, result.weights.at(0), result.weights.at(1),
                           stats.seconds});
    std::printf("%-7s epoch %lld/%lld  train_loss %.4f  class_accuracy %.4f  group_accuracy %.4f  "
                "weights %.3f %.3f  %.1f s\n",
                name.c_str(), static_cast<long long>(epoch), static_cast<long long>(settings.epochs), stats.mean_loss,
                result.accuracy.class_accuracy, result.accuracy.group_accuracy, result.weights[0], result.weights[1],
                stats.seconds);
    std::fflush(stdout);
  }
  ex::save_checkpoint((dir / "checkpoint").string(), *model, &recipe.optimizer());
  torch::save(multi_task, (dir / "checkpoint" / "multi_task_loss.pt").string());
  return result;
}

std::string write_summary(const std::vector<RunResult>& runs, const Settings& settings, std::int64_t train_size,
                          std::int64_t test_size) {
  const fs::path dir(settings.output_dir);
  ex::CsvWriter csv((dir / "summary.csv").string(),
                    {"run", "class_accuracy", "group_accuracy", "group_from_class_accuracy", "class_weight",
                     "group_weight", "train_seconds"});
  std::ostringstream md;
  md << "Fashion-MNIST, " << train_size << " training / " << test_size << " test images, " << settings.epochs
     << (settings.epochs == 1 ? " epoch" : " epochs") << ", " << ex::recipe_description(settings) << ", seed "
     << settings.seed
     << ". Groups: tops = {T-shirt/top, Pullover, Dress, Coat, Shirt}, bottoms = {Trouser}, "
        "footwear = {Sandal, Sneaker, Ankle boot}, bags = {Bag}. \"group via class\" maps the class head's "
        "prediction to its group. Weights: the final exp(−s_i) for learned uncertainty.\n\n";
  md << "| task weighting | class accuracy (%) | group accuracy (%) | group via class (%) | final weights "
        "(class, group) | training time (s) |\n";
  md << "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const RunResult& run : runs) {
    csv.write_row({run.name, run.accuracy.class_accuracy, run.accuracy.group_accuracy,
                   run.accuracy.group_from_class_accuracy, run.weights.at(0), run.weights.at(1), run.train_seconds});
    const std::string label = run.name == "learned"
                                  ? "learned (uncertainty)"
                                  : "fixed (" + ex::format_number(settings.fixed_weights[0]) + ", " +
                                        ex::format_number(settings.fixed_weights[1]) + ")";
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %.2f | %.2f | %.2f | %.3f, %.3f | %.0f |\n", label.c_str(),
                  100 * run.accuracy.class_accuracy, 100 * run.accuracy.group_accuracy,
                  100 * run.accuracy.group_from_class_accuracy, run.weights.at(0), run.weights.at(1),
                  run.train_seconds);
    md << line;
  }
  std::ofstream((dir / "summary.md").string()) << md.str();
  return md.str();
}

int train(const Settings& settings) {
  if (settings.fixed_weights.size() != 2) {
    throw std::invalid_argument("--fixed-weights: expected 2 weights (class, group), got " +
                                std::to_string(settings.fixed_weights.size()));
  }
  const int threads = ex::configure_threads(settings.threads);
  const ex::FashionMnist train_set(settings.data_dir, ex::FashionMnist::Split::kTrain, settings.train_limit);
  const ex::FashionMnist test_set(settings.data_dir, ex::FashionMnist::Split::kTest, settings.test_limit);
  const std::int64_t train_size = train_set.targets().size(0);
  const std::int64_t test_size = test_set.targets().size(0);
  std::printf("Fashion-MNIST: %lld training / %lld test images, %d threads; groups:", static_cast<long long>(train_size),
              static_cast<long long>(test_size), threads);
  for (std::int64_t group = 0; group < kNumGroups; ++group) {
    std::printf("%s %s = {", group == 0 ? "" : ",", kGroupNames[static_cast<std::size_t>(group)]);
    const char* separator = "";
    for (std::int64_t c = 0; c < kNumClasses; ++c) {
      if (kGroupOfClass[static_cast<std::size_t>(c)] != group) continue;
      std::printf("%s%s", separator, ex::kFashionMnistClassNames[static_cast<std::size_t>(c)]);
      separator = ", ";
    }
    std::printf("}");
  }
  std::printf("\n");
  std::fflush(stdout);

  std::vector<RunResult> runs;
  runs.push_back(train_run("fixed", false, train_set, test_set, settings));
  runs.push_back(train_run("learned", true, train_set, test_set, settings));
  const std::string table = write_summary(runs, settings, train_size, test_size);
  std::printf("\n%s\nsummary: %s\n", table.c_str(), (fs::path(settings.output_dir) / "summary.md").string().c_str());
  return 0;
}

/// Registers the options on `app`, bound to the fields of `settings`.
void add_options(CLI::App& app, Settings& settings) {
  ex::TrainerOptionsHelp help;
  help.epochs = "Training epochs of each run";
  help.seed = "Seed of the weights and the batch order (the same for both runs)";
  help.threads = ex::kSmallNetworkThreadsHelp;
  help.output_dir = "Where the runs' CSV files and the summary go";
  ex::add_trainer_options(app, settings, help);
  ex::add_recipe_option(app, settings);
  app.add_option("--fixed-weights", settings.fixed_weights,
                 "Task weights (class, group) of the fixed-weight run, comma-separated, each >= 0")
      ->delimiter(',')
      ->capture_default_str()
      ->check(ex::at_least(0));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "Trains one backbone with two heads on Fashion-MNIST (10 classes, 4 coarse groups) with "
      "torchloss::MultiTaskLoss, fixed vs learned uncertainty task weights, and reports both tasks' accuracy.");
  Settings settings;
  add_options(app, settings);
  CLI11_PARSE(app, argc, argv);
  ex::apply_recipe_defaults(app, settings);
  return ex::run_main("multi_task", [&settings] { return train(settings); });
}
