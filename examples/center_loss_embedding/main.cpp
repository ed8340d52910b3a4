/// @file main.cpp
/// Center loss, seen: a small CNN with a 2-unit penultimate layer (as in the MNIST figure of
/// Wen et al., ECCV 2016) trained on Fashion-MNIST with softmax cross entropy alone, then
/// with cross entropy + λ·torchloss::CenterLoss, from the same initial weights.
///
///     center_loss_embedding --epochs 8 --center-lambda 0.5 --center-alpha 0.5
///     center_loss_embedding --recipe reference --center-lambda 0.5,1 --center-alpha 0.1,0.5
///
/// Lists of λ and α train one center-loss run per pair (a search: center_l<λ>_a<α>/), after
/// the cross-entropy baseline (unless --no-baseline).
///
/// For each run (ce/, center/ under --output-dir): metrics.csv (one row per epoch),
/// features.csv (the 2-D features of the test images), checkpoint/. Then summary.csv and
/// summary.md (test accuracy and the intra/inter ratio of both runs) and embeddings.png
/// (the two scatter plots side by side).

#include "common/checkpoint.hpp"
#include "common/cli_checks.hpp"
#include "common/cli_options.hpp"
#include "common/csv_writer.hpp"
#include "common/evaluation.hpp"
#include "common/fashion_mnist.hpp"
#include "common/models.hpp"
#include "common/progress_bar.hpp"
#include "common/python_script.hpp"
#include "common/recipe.hpp"
#include "common/run_main.hpp"
#include "common/training.hpp"

#include <CLI/CLI.hpp>
#include <torch/torch.h>
#include <torchloss/torchloss.hpp>

#include <cmath>
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
constexpr std::int64_t kFeatureDim = 2;
/// The peak learning rate of the reference recipe for this 2-D network. At the recipe's 0.05,
/// at 0.02 and at 0.01, SGD diverges within the first 15 batches once λ = 0.5 · center loss is
/// added (the PyTorch twin diverges at the same batch at 0.01): the quadratic pull through the
/// fc layer over 3136 inputs is too stiff for that step, and a larger λ needs a proportionally
/// smaller rate. So the trainer starts its cosine schedule at 0.005.
constexpr double kReferenceLearningRate = 0.005;

/// Everything the command line sets.
struct Settings : ex::TrainerOptions {
  Settings() {
    epochs = 8;
    output_dir = "results/center_loss_embedding";
    plot_script = TORCHLOSS_CENTER_LOSS_PLOT_SCRIPT;
  }
  std::vector<double> center_lambdas{0.5};
  std::vector<double> center_alphas{0.5};
  bool no_baseline = false;
  bool no_plot = false;
};

/// The shared conv feature extractor (the recipe's widths) narrowed to 2 PReLU units, then a
/// linear classifier: the 2-D features are what the scatter plots show.
class EmbeddingNetImpl : public torch::nn::Module {
 public:
  explicit EmbeddingNetImpl(ex::ConvFeaturesOptions options) {
    options.feature_dim = kFeatureDim;
    options.activation = ex::FeatureActivation::kPReLU;
    features = register_module("features", ex::ConvFeatures(options));
    classifier = register_module("classifier", torch::nn::Linear(kFeatureDim, kNumClasses));
  }

  /// Returns the 2-D features [N, 2] and the logits [N, 10] of images [N, 1, 28, 28].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& images) {
    torch::Tensor embedding = features->forward(images);
    torch::Tensor logits = classifier->forward(embedding);
    return {std::move(embedding), std::move(logits)};
  }

  ex::ConvFeatures features{nullptr};
  torch::nn::Linear classifier{nullptr};
};
TORCH_MODULE(EmbeddingNet);

/// How compact the classes are in feature space.
struct Compactness {
  /// Mean distance of a sample to its class's mean feature.
  double intra = 0.0;
  /// Mean distance between two class means (over all pairs of classes present).
  double inter = 0.0;
  /// intra / inter: scale-free, smaller is tighter.
  double ratio = 0.0;
};

/// The compactness of `features` [N, D] grouped by `labels` [N].
Compactness compactness(const torch::Tensor& features, const torch::Tensor& labels) {
  const torch::Tensor x = features.to(torch::kDouble);
  const torch::Tensor counts = torch::bincount(labels, {}, kNumClasses).to(torch::kDouble);
  const torch::Tensor present = counts > 0;
  torch::Tensor sums = torch::zeros({kNumClasses, x.size(1)}, x.options()).index_add_(0, labels, x);
  const torch::Tensor centers = sums / counts.clamp_min(1).unsqueeze(1);
  Compactness result;
  result.intra = (x - centers.index_select(0, labels)).norm(2, 1).mean().item<double>();
  const torch::Tensor present_centers = centers.index({present});
  const std::int64_t k = present_centers.size(0);
  const torch::Tensor distances = torch::cdist(present_centers, present_centers);
  result.inter = k < 2 ? 0.0 : distances.sum().item<double>() / static_cast<double>(k * (k - 1));
  result.ratio = result.inter > 0 ? result.intra / result.inter : std::nan("");
  return result;
}

/// The 2-D test features, the predictions' metrics and the compactness of one evaluation.
struct Evaluation {
  torch::Tensor features;
  ex::ClassificationMetrics metrics;
  Compactness compactness;
};

Evaluation evaluate(EmbeddingNet& model, const ex::FashionMnist& test_set) {
  std::vector<torch::Tensor> features;
  // evaluate_classifier runs the batches in eval mode; the embeddings are kept on the side.
  const ex::ClassificationMetrics metrics = ex::evaluate_classifier(
      *model,
      [&model, &features](const torch::Tensor& images) {
        auto [embedding, logits] = model->forward(images);
        features.push_back(embedding.cpu());
        return logits;
      },
      test_set.images(), test_set.targets(), kNumClasses);
  torch::Tensor all = torch::cat(features);
  const Compactness measured = compactness(all, test_set.targets());
  return {std::move(all), metrics, measured};
}

/// Writes features.csv: x, y, label of every test image.
void write_features(const std::string& path, const torch::Tensor& features, const torch::Tensor& labels) {
  ex::CsvWriter csv(path, {"x", "y", "label"});
  const torch::Tensor x = features.to(torch::kDouble).contiguous();
  const auto* value = x.data_ptr<double>();
  const torch::Tensor y = labels.contiguous();
  const auto* label = y.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < x.size(0); ++i) csv.write_row({value[2 * i], value[2 * i + 1], label[i]});
}

/// The results of one run.
struct RunResult {
  std::string name;
  double lambda = 0.0;
  double alpha = 0.0;
  Evaluation evaluation;
  double train_seconds = 0.0;
};

/// Trains one run: cross entropy, plus λ·CenterLoss (update rate `alpha`) when `lambda` > 0.
RunResult train_run(const std::string& name, double lambda, double alpha, const ex::FashionMnist& train_set,
                    const ex::FashionMnist& test_set, const Settings& settings) {
  // The same seed for both runs: the same initial weights and the same batch order.
  torch::manual_seed(settings.seed);
  EmbeddingNet model(ex::recipe_network(settings));
  torchloss::CenterLoss center_loss(
      torchloss::CenterLossOptions(kNumClasses, kFeatureDim).alpha(alpha));
  torchloss::WeightedCrossEntropyLoss cross_entropy;

  const fs::path dir = fs::path(settings.output_dir) / name;
  ex::CsvWriter metrics_csv((dir / "metrics.csv").string(),
                            {"epoch", "train_loss", "test_accuracy", "balanced_accuracy", "intra_class",
                             "inter_class", "intra_inter_ratio", "epoch_seconds"});
  const std::int64_t batches = ex::num_batches(train_set.targets().size(0), settings.batch_size);
  ex::RecipeOptimizer recipe(model->parameters(), settings, batches * settings.epochs);
  const ex::TrainEpochOptions train_options = recipe.epoch_options(settings.batch_size);
  const ex::BatchLossFunction batch_loss = [&](const torch::Tensor& images, const torch::Tensor& targets) {
    auto [embedding, logits] = model->forward(images);
    torch::Tensor loss = cross_entropy(logits, targets);
    // The centers move inside backward (the paper's α rule); the baseline never calls it.
    if (lambda > 0) loss = loss + lambda * center_loss(embedding, targets);
    return loss;
  };

  RunResult result{name, lambda, lambda > 0 ? alpha : 0.0, {}, 0.0};
  for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
    ex::ProgressBar progress(name + " epoch " + std::to_string(epoch) + "/" + std::to_string(settings.epochs),
                             batches, !settings.no_progress);
    const ex::EpochStats stats = ex::train_one_epoch(*model, recipe.optimizer(), batch_loss, train_set.images(),
                                                     train_set.targets(), train_options, &progress);
    result.train_seconds += stats.seconds;
    result.evaluation = evaluate(model, test_set);
    const Evaluation& evaluation = result.evaluation;
    metrics_csv.write_row({epoch, stats.mean_loss, evaluation.metrics.accuracy, evaluation.metrics.balanced_accuracy,
                           evaluation.compactness.intra, evaluation.compactness.inter,
                           evaluation.compactness.ratio, stats.seconds});
    std::printf("%-6s epoch %lld/%lld  train_loss %.4f  test_accuracy %.4f  intra/inter %.4f  %.1f s\n",
                name.c_str(), static_cast<long long>(epoch), static_cast<long long>(settings.epochs),
                stats.mean_loss, evaluation.metrics.accuracy, evaluation.compactness.ratio, stats.seconds);
    std::fflush(stdout);
  }
  write_features((dir / "features.csv").string(), result.evaluation.features, test_set.targets());
  ex::save_checkpoint((dir / "checkpoint").string(), *model, &recipe.optimizer());
  torch::save(center_loss, (dir / "checkpoint" / "center_loss.pt").string());
  return result;
}

/// Writes summary.csv and summary.md; returns the markdown table.
std::string write_summary(const std::vector<RunResult>& runs, const Settings& settings, std::int64_t train_size,
                          std::int64_t test_size) {
  const fs::path dir(settings.output_dir);
  ex::CsvWriter csv((dir / "summary.csv").string(),
                    {"run", "center_lambda", "center_alpha", "test_accuracy", "balanced_accuracy", "intra_class",
                     "inter_class", "intra_inter_ratio", "train_seconds"});
  std::ostringstream md;
  md << "Fashion-MNIST, " << train_size << " training / " << test_size << " test images, " << settings.epochs
     << (settings.epochs == 1 ? " epoch" : " epochs") << ", " << ex::recipe_description(settings) << ", seed "
     << settings.seed
     << "; 2-D features. intra/inter = mean distance of a test feature to its class mean / mean distance "
        "between class means (smaller: tighter clusters).\n\n";
  md << "| run | test accuracy (%) | intra-class | inter-class | intra/inter | training time (s) |\n";
  md << "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const RunResult& run : runs) {
    const Evaluation& e = run.evaluation;
    csv.write_row({run.name, run.lambda, run.alpha, e.metrics.accuracy, e.metrics.balanced_accuracy, e.compactness.intra,
                   e.compactness.inter, e.compactness.ratio, run.train_seconds});
    const std::string label = run.lambda > 0 ? "cross entropy + " + ex::format_number(run.lambda) +
                                                   " · center loss (α = " + ex::format_number(run.alpha) + ")"
                                             : "cross entropy";
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %.2f | %.3f | %.3f | %.3f | %.0f |\n", label.c_str(),
                  100 * e.metrics.accuracy, e.compactness.intra, e.compactness.inter, e.compactness.ratio,
                  run.train_seconds);
    md << line;
  }
  std::ofstream((dir / "summary.md").string()) << md.str();
  return md.str();
}

int train(const Settings& settings) {
  const int threads = ex::configure_threads(settings.threads);
  const ex::FashionMnist train_set(settings.data_dir, ex::FashionMnist::Split::kTrain, settings.train_limit);
  const ex::FashionMnist test_set(settings.data_dir, ex::FashionMnist::Split::kTest, settings.test_limit);
  const std::int64_t train_size = train_set.targets().size(0);
  const std::int64_t test_size = test_set.targets().size(0);
  std::printf("Fashion-MNIST: %lld training / %lld test images, %d threads\n", static_cast<long long>(train_size),
              static_cast<long long>(test_size), threads);
  std::fflush(stdout);

  std::vector<RunResult> runs;
  if (!settings.no_baseline) runs.push_back(train_run("ce", 0.0, 0.0, train_set, test_set, settings));
  const bool search = settings.center_lambdas.size() * settings.center_alphas.size() > 1;
  for (const double lambda : settings.center_lambdas) {
    for (const double alpha : settings.center_alphas) {
      const std::string name =
          search ? "center_l" + ex::format_number(lambda) + "_a" + ex::format_number(alpha) : "center";
      runs.push_back(train_run(name, lambda, alpha, train_set, test_set, settings));
    }
  }

  const std::string table = write_summary(runs, settings, train_size, test_size);
  const fs::path dir(settings.output_dir);
  std::printf("\n%s\nsummary: %s\n", table.c_str(), (dir / "summary.md").string().c_str());
  if (!settings.no_plot) {
    const std::string plot_path = (dir / "embeddings.png").string();
    std::vector<std::string> arguments{(dir / "summary.csv").string(), plot_path, "--features"};
    for (const RunResult& run : runs) arguments.push_back((dir / run.name / "features.csv").string());
    ex::run_python_script(settings.plot_script, arguments);
    std::printf("plot: %s\n", plot_path.c_str());
  }
  return 0;
}

/// Registers the options on `app`, bound to the fields of `settings`.
void add_options(CLI::App& app, Settings& settings) {
  ex::TrainerOptionsHelp help;
  help.epochs = "Training epochs of each run";
  help.learning_rate = "Learning rate: Adam's (quick recipe) or SGD's peak (reference recipe: " +
                       ex::format_number(kReferenceLearningRate) + ")";
  help.seed = "Seed of the weights and the batch order (the same for both runs)";
  help.threads = ex::kSmallNetworkThreadsHelp;
  help.output_dir = "Where the runs' CSV files, the summary and the plot go";
  ex::add_trainer_options(app, settings, help);
  ex::add_recipe_option(app, settings, kReferenceLearningRate);
  app.add_option("--center-lambda", settings.center_lambdas,
                 "Weight λ of the center loss: CE + λ·center (a comma-separated list searches every λ, α pair)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(ex::greater_than(0));
  app.add_option("--center-alpha", settings.center_alphas,
                 "Update rate α of the class centers, in [0, 1] (a comma-separated list searches)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0));
  app.add_flag("--no-baseline", settings.no_baseline, "Skip the cross-entropy run (for searches)");
  app.add_flag("--no-plot", settings.no_plot, "Do not render embeddings.png");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "Trains a CNN with 2-D features on Fashion-MNIST with cross entropy, then with cross entropy + "
      "λ·CenterLoss, and compares test accuracy and cluster compactness (intra/inter-class distance).");
  Settings settings;
  add_options(app, settings);
  CLI11_PARSE(app, argc, argv);
  ex::apply_recipe_defaults(app, settings, kReferenceLearningRate);
  return ex::run_main("center_loss_embedding", [&settings] { return train(settings); });
}
