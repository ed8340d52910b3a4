/// @file main.cpp
/// Metric learning beside center loss: the same small CNN (2-D embeddings by default, so they
/// can be drawn) trained on Fashion-MNIST with cross entropy, cross entropy + center loss,
/// ArcFace, CosFace (torchloss::CombinedMarginLoss on a NormedLinear head), supervised
/// contrastive (torchloss::SupConLoss, two augmented views) and batch-hard triplet
/// (torchloss::functional::batch_hard_triplet_loss), then scored as an embedding on the test
/// set: nearest-class-mean accuracy (class means of the training embeddings), Recall@1 and
/// MAP@R (Musgrave, Belongie and Lim, "A Metric Learning Reality Check", ECCV 2020).
///
///     metric_learning --epochs 5 --seeds 1,2,3
///     metric_learning --losses arcface,supcon --seeds 1 --epochs 1 --limit 6000
///
/// Writes under --output-dir: metrics.csv (per loss, seed and epoch), runs.csv (per loss and
/// seed), features_<loss>.csv (the first seed's 2-D test embeddings, unit-normalised for the
/// cosine losses), summary.csv and results.md (mean ± std over the seeds) and
/// metric_learning.png (embeddings and a bar chart).

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

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace ex = torchloss::examples;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

constexpr std::int64_t kNumClasses = ex::kFashionMnistNumClasses;

/// Everything the command line sets (--seeds instead of --seed).
struct Settings : ex::TrainerOptions {
  Settings() {
    epochs = 5;
    output_dir = "results/metric_learning";
    plot_script = TORCHLOSS_METRIC_LEARNING_PLOT_SCRIPT;
  }
  std::vector<std::string> losses;  // empty: all
  std::vector<std::uint64_t> seeds = {1, 2, 3};
  std::int64_t embedding_dim = 2;
  double scale = 16;             // s of ArcFace and CosFace
  double angular_margin = 0.2;   // ArcFace m2
  double additive_margin = 0.2;  // CosFace m3
  double center_lambda = 0.5;
  double temperature = 0.1;  // SupCon
  double triplet_margin = 0.3;
  bool triplet_soft_margin = false;  // softplus(d_ap − d_an), Hermans et al.'s recommendation
  bool no_plot = false;
};

/// The losses this trainer compares, by --losses key.
struct LossSpec {
  std::string name, label;
  bool cosine;  // evaluated on unit-normalised embeddings
};
const std::vector<LossSpec>& all_losses() {
  static const std::vector<LossSpec> specs{
      {"ce", "cross entropy", false},
      {"center", "cross entropy + center loss", false},
      {"arcface", "ArcFace (angular margin)", true},
      {"cosface", "CosFace (cosine margin)", true},
      {"supcon", "supervised contrastive (2 views)", true},
      {"triplet", "batch-hard triplet", false},
  };
  return specs;
}

/// The shared CNN (embedding of `embedding_dim`), with the head its loss needs.
class NetImpl : public torch::nn::Module {
 public:
  NetImpl(const std::string& loss, ex::ConvFeaturesOptions options, std::int64_t embedding_dim) {
    options.feature_dim = embedding_dim;
    options.activation = ex::FeatureActivation::kPReLU;
    features = register_module("features", ex::ConvFeatures(options));
    if (loss == "ce" || loss == "center") linear = register_module("linear", torch::nn::Linear(embedding_dim, kNumClasses));
    if (loss == "arcface" || loss == "cosface") {
      cosine = register_module("cosine", torchloss::NormedLinear(embedding_dim, kNumClasses));
    }
  }
  torch::Tensor embed(const torch::Tensor& images) { return features->forward(images); }

  ex::ConvFeatures features{nullptr};
  torch::nn::Linear linear{nullptr};
  torchloss::NormedLinear cosine{nullptr};
};
TORCH_MODULE(Net);

/// A random view of each image: a horizontal flip with probability 1/2 and a shift of up to 2
/// pixels (zero padding), the same shift for the whole batch.
torch::Tensor augment(const torch::Tensor& images) {
  const auto flip = torch::rand({images.size(0), 1, 1, 1}) < 0.5;
  auto view = torch::where(flip, images.flip(3), images);
  const auto shift = torch::randint(-2, 3, {2});
  const int64_t dy = shift[0].item<int64_t>(), dx = shift[1].item<int64_t>();
  const auto padded = F::pad(view, F::PadFuncOptions({2, 2, 2, 2}));
  return padded.narrow(2, 2 + dy, images.size(2)).narrow(3, 2 + dx, images.size(3));
}

/// The embeddings [N, D] of `images`, in eval mode, batched.
torch::Tensor embed_all(Net& model, const torch::Tensor& images) {
  ex::EvalModeGuard eval(*model);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < images.size(0); begin += 1024) {
    parts.push_back(model->embed(images.narrow(0, begin, std::min<int64_t>(1024, images.size(0) - begin))));
  }
  return torch::cat(parts);
}

/// What an embedding scores on the test set.
struct RetrievalMetrics {
  double accuracy = 0;     // nearest class mean (means of the training embeddings)
  double recall_at_1 = 0;  // the nearest other test embedding has the query's label
  double map_at_r = 0;     // Musgrave et al.'s MAP@R, R = the query's same-class count
};

/// Scores test embeddings against training class means and each other (Euclidean distances,
/// of unit-normalised embeddings when `cosine`).
RetrievalMetrics score(torch::Tensor train, const torch::Tensor& train_labels, torch::Tensor test,
                       const torch::Tensor& test_labels, bool cosine) {
  if (cosine) {
    train = F::normalize(train, F::NormalizeFuncOptions().dim(1));
    test = F::normalize(test, F::NormalizeFuncOptions().dim(1));
  }
  RetrievalMetrics out;
  const int64_t n = test.size(0);
  auto means = torch::zeros({kNumClasses, train.size(1)}).index_add_(0, train_labels, train) /
               torch::bincount(train_labels, {}, kNumClasses).clamp_min(1).to(torch::kFloat).unsqueeze(1);
  if (cosine) means = F::normalize(means, F::NormalizeFuncOptions().dim(1));
  out.accuracy = (torch::cdist(test, means).argmin(1) == test_labels).to(torch::kDouble).mean().item<double>();
  const auto same_class = torch::bincount(test_labels, {}, kNumClasses).index_select(0, test_labels) - 1;  // R
  const int64_t k = std::min<int64_t>(n - 1, same_class.max().item<int64_t>());
  if (k < 1) return out;
  double recall = 0, map = 0;
  int64_t queries = 0;
  for (int64_t begin = 0; begin < n; begin += 512) {
    const int64_t rows = std::min<int64_t>(512, n - begin);
    auto distances = torch::cdist(test.narrow(0, begin, rows), test);
    distances.scatter_(1, torch::arange(begin, begin + rows).unsqueeze(1), std::numeric_limits<float>::infinity());
    const auto nearest = std::get<1>(distances.topk(k, 1, /*largest=*/false, /*sorted=*/true));
    const auto labels = test_labels.narrow(0, begin, rows).unsqueeze(1);
    const auto relevant = (test_labels.index({nearest}) == labels).to(torch::kDouble);
    const auto r = same_class.narrow(0, begin, rows).to(torch::kDouble);
    const auto within_r = (torch::arange(1, k + 1, torch::kDouble).unsqueeze(0) <= r.unsqueeze(1)).to(torch::kDouble);
    const auto precision = relevant.cumsum(1) / torch::arange(1, k + 1, torch::kDouble).unsqueeze(0);
    const auto average_precision = (precision * relevant * within_r).sum(1) / r.clamp_min(1);
    recall += relevant.select(1, 0).sum().item<double>();
    map += average_precision.masked_select(r > 0).sum().item<double>();
    queries += (r > 0).sum().item<int64_t>();
  }
  out.recall_at_1 = recall / static_cast<double>(n);
  out.map_at_r = queries > 0 ? map / static_cast<double>(queries) : 0.0;
  return out;
}

/// The results of one loss and seed.
struct RunResult {
  std::string loss;
  std::uint64_t seed = 0;
  RetrievalMetrics metrics;
  double train_seconds = 0;
  torch::Tensor test_embeddings;
};

RunResult train_run(const LossSpec& spec, std::uint64_t seed, const ex::FashionMnist& train_set,
                    const ex::FashionMnist& test_set, const Settings& settings, ex::CsvWriter& metrics_csv) {
  torch::manual_seed(seed);
  Net model(spec.name, ex::recipe_network(settings), settings.embedding_dim);
  torchloss::CenterLoss center(torchloss::CenterLossOptions(kNumClasses, settings.embedding_dim).alpha(0.5));
  const auto margin_options = spec.name == "arcface"
                                  ? torchloss::CombinedMarginLossOptions::arcface(settings.scale, settings.angular_margin)
                                  : torchloss::CombinedMarginLossOptions::cosface(settings.scale, settings.additive_margin);
  torchloss::CombinedMarginLoss margin_loss(margin_options);
  torchloss::SupConLoss supcon(torchloss::SupConLossOptions().temperature(settings.temperature));
  const std::int64_t batches = ex::num_batches(train_set.targets().size(0), settings.batch_size);
  ex::RecipeOptimizer recipe(model->parameters(), settings, batches * settings.epochs);

  const ex::BatchLossFunction batch_loss = [&](const torch::Tensor& images, const torch::Tensor& y) {
    if (spec.name == "supcon") {
      const auto both = model->embed(torch::cat({augment(images), augment(images)}));
      const auto views = torch::stack({both.narrow(0, 0, images.size(0)), both.narrow(0, images.size(0), images.size(0))}, 1);
      return supcon(F::normalize(views, F::NormalizeFuncOptions().dim(2)), y);
    }
    const auto embedding = model->embed(images);
    if (spec.name == "triplet") {
      return torchloss::functional::batch_hard_triplet_loss(
          embedding, y,
          torchloss::functional::BatchHardTripletLossFuncOptions()
              .margin(settings.triplet_margin)
              .soft_margin(settings.triplet_soft_margin));
    }
    if (spec.cosine) return margin_loss(model->cosine(embedding), y);
    auto loss = F::cross_entropy(model->linear(embedding), y);
    if (spec.name == "center") loss = loss + settings.center_lambda * center(embedding, y);
    return loss;
  };

  const ex::TrainEpochOptions train_options = recipe.epoch_options(settings.batch_size);
  RunResult result{spec.name, seed, {}, 0.0, {}};
  for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
    ex::ProgressBar progress(spec.name + " seed " + std::to_string(seed) + " epoch " + std::to_string(epoch) + "/" +
                                 std::to_string(settings.epochs),
                             batches, !settings.no_progress);
    const ex::EpochStats stats = ex::train_one_epoch(*model, recipe.optimizer(), batch_loss, train_set.images(),
                                                     train_set.targets(), train_options, &progress);
    result.train_seconds += stats.seconds;
    result.test_embeddings = embed_all(model, test_set.images());
    result.metrics = score(embed_all(model, train_set.images()), train_set.targets(), result.test_embeddings,
                           test_set.targets(), spec.cosine);
    metrics_csv.write_row({spec.name, static_cast<std::int64_t>(seed), epoch, stats.mean_loss, result.metrics.accuracy,
                           result.metrics.recall_at_1, result.metrics.map_at_r, stats.seconds});
    std::printf("%-8s seed %llu epoch %lld/%lld  loss %.4f  NCM accuracy %.4f  Recall@1 %.4f  MAP@R %.4f  %.1f s\n",
                spec.name.c_str(), static_cast<unsigned long long>(seed), static_cast<long long>(epoch),
                static_cast<long long>(settings.epochs), stats.mean_loss, result.metrics.accuracy,
                result.metrics.recall_at_1, result.metrics.map_at_r, stats.seconds);
    std::fflush(stdout);
  }
  if (spec.cosine) result.test_embeddings = F::normalize(result.test_embeddings, F::NormalizeFuncOptions().dim(1));
  return result;
}

/// Mean and sample standard deviation (0 for one value).
std::pair<double, double> mean_std(const std::vector<double>& values) {
  double mean = 0;
  for (double v : values) mean += v / static_cast<double>(values.size());
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, values.size() > 1 ? std::sqrt(squares / static_cast<double>(values.size() - 1)) : 0.0};
}

std::string percent(std::pair<double, double> value, std::size_t n) {
  char text[64];
  if (n > 1) {
    std::snprintf(text, sizeof text, "%.2f ± %.2f", 100 * value.first, 100 * value.second);
  } else {
    std::snprintf(text, sizeof text, "%.2f", 100 * value.first);
  }
  return text;
}

/// Writes summary.csv and results.md; returns the markdown.
std::string write_summary(const std::vector<LossSpec>& specs, const std::vector<RunResult>& runs,
                          const Settings& settings, std::int64_t train_size, std::int64_t test_size) {
  const fs::path dir(settings.output_dir);
  ex::CsvWriter csv((dir / "summary.csv").string(),
                    {"loss", "label", "seeds", "accuracy_mean", "accuracy_std", "recall_at_1_mean", "recall_at_1_std",
                     "map_at_r_mean", "map_at_r_std", "train_seconds_mean"});
  std::ostringstream md;
  md << "Fashion-MNIST, " << train_size << " training / " << test_size << " test images, " << settings.epochs
     << (settings.epochs == 1 ? " epoch" : " epochs") << ", " << ex::recipe_description(settings) << ", "
     << settings.embedding_dim
     << "-D embeddings; ArcFace/CosFace s = " << ex::format_number(settings.scale)
     << ", m2 = " << ex::format_number(settings.angular_margin) << ", m3 = " << ex::format_number(settings.additive_margin)
     << "; center λ = " << ex::format_number(settings.center_lambda) << "; SupCon τ = "
     << ex::format_number(settings.temperature) << "; triplet "
     << (settings.triplet_soft_margin ? std::string("soft margin")
                                      : "margin " + ex::format_number(settings.triplet_margin))
     << ". Accuracy: nearest class mean of the training embeddings; Recall@1 and MAP@R over the test set "
        "(unit-normalised embeddings for ArcFace, CosFace and SupCon).\n\n";
  md << "| loss | seeds | NCM accuracy (%) | Recall@1 (%) | MAP@R (%) | training time (s) |\n";
  md << "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const LossSpec& spec : specs) {
    std::vector<double> accuracy, recall, map, seconds;
    for (const RunResult& run : runs) {
      if (run.loss != spec.name) continue;
      accuracy.push_back(run.metrics.accuracy);
      recall.push_back(run.metrics.recall_at_1);
      map.push_back(run.metrics.map_at_r);
      seconds.push_back(run.train_seconds);
    }
    if (accuracy.empty()) continue;
    const auto a = mean_std(accuracy), r = mean_std(recall), m = mean_std(map), t = mean_std(seconds);
    csv.write_row({spec.name, spec.label, static_cast<std::int64_t>(accuracy.size()), a.first, a.second, r.first,
                   r.second, m.first, m.second, t.first});
    char time[32];
    std::snprintf(time, sizeof time, "%.0f", t.first);
    md << "| " << spec.label << " | " << accuracy.size() << " | " << percent(a, accuracy.size()) << " | "
       << percent(r, accuracy.size()) << " | " << percent(m, accuracy.size()) << " | " << time << " |\n";
  }
  std::ofstream((dir / "results.md").string()) << md.str();
  return md.str();
}

/// Writes features_<loss>.csv: x, y, label of every test embedding (2-D only).
void write_features(const fs::path& path, const torch::Tensor& embeddings, const torch::Tensor& labels) {
  ex::CsvWriter csv(path.string(), {"x", "y", "label"});
  const auto x = embeddings.to(torch::kDouble).contiguous();
  const auto* value = x.data_ptr<double>();
  const auto* label = labels.contiguous().data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < x.size(0); ++i) csv.write_row({value[2 * i], value[2 * i + 1], label[i]});
}

int train(const Settings& settings) {
  std::vector<LossSpec> specs;
  for (const LossSpec& spec : all_losses()) {
    if (settings.losses.empty() ||
        std::find(settings.losses.begin(), settings.losses.end(), spec.name) != settings.losses.end()) {
      specs.push_back(spec);
    }
  }
  for (const std::string& name : settings.losses) {
    const bool known = std::any_of(all_losses().begin(), all_losses().end(),
                                   [&](const LossSpec& spec) { return spec.name == name; });
    if (!known) throw std::invalid_argument("unknown loss '" + name + "' in --losses");
  }
  const int threads = ex::configure_threads(settings.threads);
  const ex::FashionMnist train_set(settings.data_dir, ex::FashionMnist::Split::kTrain, settings.train_limit);
  const ex::FashionMnist test_set(settings.data_dir, ex::FashionMnist::Split::kTest, settings.test_limit);
  const std::int64_t train_size = train_set.targets().size(0), test_size = test_set.targets().size(0);
  std::printf("Fashion-MNIST: %lld training / %lld test images, %d threads\n", static_cast<long long>(train_size),
              static_cast<long long>(test_size), threads);
  const fs::path dir(settings.output_dir);
  ex::CsvWriter metrics_csv((dir / "metrics.csv").string(), {"loss", "seed", "epoch", "train_loss", "accuracy",
                                                             "recall_at_1", "map_at_r", "epoch_seconds"});
  ex::CsvWriter runs_csv((dir / "runs.csv").string(),
                         {"loss", "seed", "accuracy", "recall_at_1", "map_at_r", "train_seconds"});
  std::vector<RunResult> runs;
  std::vector<std::string> feature_files;
  for (const LossSpec& spec : specs) {
    for (std::size_t s = 0; s < settings.seeds.size(); ++s) {
      RunResult run = train_run(spec, settings.seeds[s], train_set, test_set, settings, metrics_csv);
      runs_csv.write_row({run.loss, static_cast<std::int64_t>(run.seed), run.metrics.accuracy, run.metrics.recall_at_1,
                          run.metrics.map_at_r, run.train_seconds});
      if (s == 0 && settings.embedding_dim == 2) {
        feature_files.push_back((dir / ("features_" + spec.name + ".csv")).string());
        write_features(feature_files.back(), run.test_embeddings, test_set.targets());
      }
      run.test_embeddings = torch::Tensor();
      runs.push_back(std::move(run));
    }
  }
  const std::string table = write_summary(specs, runs, settings, train_size, test_size);
  std::printf("\n%s\nsummary: %s\n", table.c_str(), (dir / "results.md").string().c_str());
  if (!settings.no_plot) {
    const std::string plot_path = (dir / "metric_learning.png").string();
    std::vector<std::string> arguments{(dir / "summary.csv").string(), plot_path};
    if (!feature_files.empty()) {
      arguments.push_back("--features");
      arguments.insert(arguments.end(), feature_files.begin(), feature_files.end());
    }
    ex::run_python_script(settings.plot_script, arguments);
    std::printf("plot: %s\n", plot_path.c_str());
  }
  return 0;
}

void add_options(CLI::App& app, Settings& settings) {
  ex::TrainerOptionsHelp help;
  help.epochs = "Training epochs of each run";
  help.seed.clear();  // --seeds instead
  help.threads = ex::kSmallNetworkThreadsHelp;
  help.output_dir = "Where the CSV files, the table and the plot go";
  ex::add_trainer_options(app, settings, help);
  ex::add_recipe_option(app, settings);
  std::string known;
  for (const LossSpec& spec : all_losses()) known += (known.empty() ? "" : ",") + spec.name;
  app.add_option("--losses", settings.losses, "Comma-separated losses to compare (default: all): " + known)
      ->delimiter(',');
  app.add_option("--seeds", settings.seeds, "Comma-separated seeds; each loss trains once per seed")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--embedding-dim", settings.embedding_dim, "Embedding size (2: plotted)")
      ->capture_default_str()
      ->check(ex::at_least(1));
  app.add_option("--scale", settings.scale, "Logit scale s of ArcFace and CosFace")
      ->capture_default_str()
      ->check(ex::greater_than(0));
  app.add_option("--angular-margin", settings.angular_margin, "ArcFace's angular margin m2 (radians)")
      ->capture_default_str()
      ->check(ex::in_range(0.0, M_PI));
  app.add_option("--additive-margin", settings.additive_margin, "CosFace's cosine margin m3")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--center-lambda", settings.center_lambda, "Weight λ of the center loss: CE + λ·center")
      ->capture_default_str()
      ->check(ex::greater_than(0));
  app.add_option("--temperature", settings.temperature, "SupCon temperature τ")
      ->capture_default_str()
      ->check(ex::greater_than(0));
  app.add_option("--triplet-margin", settings.triplet_margin, "Margin of the batch-hard triplet loss")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_flag("--triplet-soft-margin", settings.triplet_soft_margin,
               "Batch-hard triplet with the soft margin softplus(d_ap - d_an) instead of the hinge (ignores --triplet-margin)");
  app.add_flag("--no-plot", settings.no_plot, "Do not render metric_learning.png");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "Trains the same CNN on Fashion-MNIST with cross entropy, CE + center loss, ArcFace, CosFace, supervised "
      "contrastive and batch-hard triplet losses, and scores the embeddings (nearest-class-mean accuracy, "
      "Recall@1, MAP@R).");
  Settings settings;
  add_options(app, settings);
  CLI11_PARSE(app, argc, argv);
  ex::apply_recipe_defaults(app, settings);
  return ex::run_main("metric_learning", [&settings] { return train(settings); });
}
