/// @file main.cpp
/// Compares losses on a long-tailed Fashion-MNIST: the exponential profile of Cui et al.
/// (CVPR 2019) for the training set, the balanced test set, the same network, seeds and
/// budget for every loss.
///
///     long_tail --epochs 5 --seeds 1,2,3 --imbalance 100
///     long_tail --losses ce,focal --seeds 1 --epochs 1 --limit 6000
///
/// Writes, under --output-dir: runs.csv (one row per loss and seed), metrics.csv (one row
/// per epoch), per_class.csv (test recall of every class), summary.csv and results.md
/// (mean ± std over the seeds), and long_tail.png (bar chart).

#include "common/cli_checks.hpp"
#include "common/cli_options.hpp"
#include "common/csv_writer.hpp"
#include "common/evaluation.hpp"
#include "common/fashion_mnist.hpp"
#include "common/long_tail.hpp"
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
#include <functional>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace ex = torchloss::examples;
namespace fs = std::filesystem;

constexpr std::int64_t kNumClasses = ex::kFashionMnistNumClasses;
/// How many of the rarest classes the "rarest" accuracy averages.
constexpr std::int64_t kRareClasses = 3;

/// Everything the command line sets (--seeds instead of --seed).
struct Settings : ex::TrainerOptions {
  Settings() {
    epochs = 5;
    output_dir = "results/long_tail";
    plot_script = TORCHLOSS_LONG_TAIL_PLOT_SCRIPT;
  }
  std::vector<std::string> losses;  // empty: all
  std::vector<std::uint64_t> seeds = {1, 2, 3};
  double imbalance = 100.0;
  double beta = 0.999;
  double gamma = 2.0;
  std::int64_t ghm_bins = 30;
  double ghm_momentum = 0.75;
  double ldam_max_margin = 0.5;
  double ldam_scale = 30.0;
  std::int64_t drw_epoch = 0;
  double tau = 1.0;
  bool resume = false;
  bool no_plot = false;
  bool fused_head = false;  // LinearCrossEntropyLoss: the linear head and the loss in one
  std::int64_t eval_every = 1;  // evaluate on the test set every K epochs (and after the last)
};

/// What a loss factory may use: the training counts and the settings.
struct LossContext {
  torch::Tensor class_counts;  // int64 [C] of the long-tailed training set
  const Settings& settings;
};

/// Options of a fused head, or none.
using optional_fused_options = torchloss::optional<torchloss::LinearCrossEntropyLossOptions>;

/// The loss of one batch's logits.
using LogitLoss = std::function<torch::Tensor(const torch::Tensor& logits, const torch::Tensor& targets)>;
/// The loss to use in a given (1-based) epoch; deferred re-weighting changes it mid-run.
using EpochLoss = std::function<LogitLoss(std::int64_t epoch)>;

/// One row of the comparison.
struct LossSpec {
  std::string name;   // the --losses key
  std::string label;  // the table's wording
  bool normed_head;   // cosine classifier (NormedLinear) instead of a linear layer
  std::function<EpochLoss(const LossContext&)> make;  // a fresh loss (and state) per run
};

/// A loss that does not change with the epoch.
template <typename Loss>
EpochLoss constant(Loss loss) {
  return [loss](std::int64_t) -> LogitLoss {
    return [loss](const torch::Tensor& logits, const torch::Tensor& targets) mutable { return loss(logits, targets); };
  };
}

/// β of the class-balanced weights that LDAM-DRW switches to (Cao et al.'s value).
constexpr double kDrwBeta = 0.9999;

/// The first (1-based) epoch that LDAM-DRW re-weights: --drw-epoch, or by default the epoch
/// after 80% of the budget (the paper switches at 160 of 200 epochs) under the quick recipe,
/// the last third of the epochs under the reference recipe (9 to 12 of 12).
std::int64_t drw_switch_epoch(const Settings& settings) {
  if (settings.drw_epoch > 0) return settings.drw_epoch;
  if (settings.recipe == ex::Recipe::kReference) return settings.epochs - settings.epochs / 3 + 1;
  return settings.epochs * 4 / 5 + 1;
}

/// Deferred re-weighting (Cao et al., NeurIPS 2019) of a loss with a registered `weight`
/// buffer: ones, then the class-balanced weights (β = kDrwBeta) from the switch epoch on
/// (class_weights::deferred counts epochs from 0).
template <typename Loss>
EpochLoss deferred_reweighting(Loss loss, const LossContext& context) {
  const std::int64_t switch_epoch = drw_switch_epoch(context.settings);
  const torch::Tensor counts = context.class_counts;
  return [loss, switch_epoch, counts](std::int64_t epoch) mutable -> LogitLoss {
    torch::NoGradGuard no_grad;
    loss->weight.copy_(torchloss::class_weights::deferred(epoch - 1, switch_epoch - 1, counts, kDrwBeta));
    return [loss](const torch::Tensor& logits, const torch::Tensor& targets) mutable { return loss(logits, targets); };
  };
}

torchloss::LogitAdjustedCrossEntropyLossOptions logit_adjustment(const LossContext& context) {
  return torchloss::LogitAdjustedCrossEntropyLossOptions(context.class_counts).tau(context.settings.tau);
}

torch::Tensor effective_weights(const LossContext& context) {
  return torchloss::class_weights::effective_number(context.class_counts, context.settings.beta);
}

/// Every loss the comparison knows, in the table's order.
std::vector<LossSpec> loss_registry() {
  std::vector<LossSpec> specs;
  specs.push_back({"ce", "Cross entropy", false, [](const LossContext&) {
                     return constant(torchloss::WeightedCrossEntropyLoss());
                   }});
  specs.push_back({"ce_inverse", "Weighted CE, inverse frequency", false, [](const LossContext& context) {
                     return constant(torchloss::WeightedCrossEntropyLoss(
                         torchloss::WeightedCrossEntropyLossOptions().weight(
                             torchloss::class_weights::inverse_frequency(context.class_counts))));
                   }});
  specs.push_back({"ce_effective", "Weighted CE, effective number", false, [](const LossContext& context) {
                     return constant(torchloss::WeightedCrossEntropyLoss(
                         torchloss::WeightedCrossEntropyLossOptions().weight(effective_weights(context))));
                   }});
  specs.push_back({"focal", "Focal", false, [](const LossContext& context) {
                     return constant(
                         torchloss::FocalLoss(torchloss::FocalLossOptions().gamma(context.settings.gamma)));
                   }});
  specs.push_back({"weighted_focal", "Weighted focal, effective number", false, [](const LossContext& context) {
                     return constant(torchloss::WeightedFocalLoss(
                         torchloss::WeightedFocalLossOptions(effective_weights(context)).gamma(context.settings.gamma)));
                   }});
  specs.push_back({"sigmoid_focal", "Sigmoid focal (one-vs-all)", false, [](const LossContext& context) {
                     torchloss::SigmoidFocalLoss loss(
                         torchloss::SigmoidFocalLossOptions().gamma(context.settings.gamma));
                     return constant([loss](const torch::Tensor& logits, const torch::Tensor& targets) mutable {
                       return loss(logits, torch::one_hot(targets, logits.size(1)).to(logits.scalar_type()));
                     });
                   }});
  specs.push_back({"ghmc", "GHM-C (one-vs-all)", false, [](const LossContext& context) {
                     // One module per run: its running bin counts are the run's state.
                     torchloss::GHMCLoss loss(torchloss::GHMCLossOptions()
                                                  .bins(context.settings.ghm_bins)
                                                  .momentum(context.settings.ghm_momentum));
                     return constant([loss](const torch::Tensor& logits, const torch::Tensor& targets) mutable {
                       return loss(logits, targets);
                     });
                   }});
  specs.push_back({"ldam_drw", "LDAM-DRW (cosine head)", true, [](const LossContext& context) {
                     return deferred_reweighting(
                         torchloss::LDAMLoss(torchloss::LDAMLossOptions(context.class_counts)
                                                 .max_margin(context.settings.ldam_max_margin)
                                                 .scale(context.settings.ldam_scale)),
                         context);
                   }});
  specs.push_back({"logit_adjusted", "Logit-adjusted CE", false, [](const LossContext& context) {
                     return constant(torchloss::LogitAdjustedCrossEntropyLoss(logit_adjustment(context)));
                   }});
  // Combinations (#17): logit adjustment with DRW, and on the cosine head.
  specs.push_back({"logit_adjusted_drw", "Logit-adjusted CE + DRW", false, [](const LossContext& context) {
                     return deferred_reweighting(torchloss::LogitAdjustedCrossEntropyLoss(logit_adjustment(context).weight(
                                                     torch::ones({kNumClasses}))),
                                                 context);
                   }});
  specs.push_back({"logit_adjusted_cosine", "Logit-adjusted CE, cosine head", true, [](const LossContext& context) {
                     torchloss::LogitAdjustedCrossEntropyLoss loss(logit_adjustment(context));
                     const double scale = context.settings.ldam_scale;
                     return constant([loss, scale](const torch::Tensor& cosines, const torch::Tensor& targets) mutable {
                       return loss(scale * cosines, targets);
                     });
                   }});
  specs.push_back({"seesaw", "Seesaw (counts learned in training)", false, [](const LossContext&) {
                     return constant(torchloss::SeesawLoss(torchloss::SeesawLossOptions(kNumClasses)));
                   }});
  return specs;
}

/// The fused head (--fused-head) that trains as `spec`'s linear head and loss do, for the
/// losses that are a cross entropy of linear logits; throws for the others.
torchloss::LinearCrossEntropyLossOptions fused_head_options(const LossSpec& spec, const LossContext& context) {
  torchloss::LinearCrossEntropyLossOptions options(ex::recipe_network(context.settings).feature_dim, kNumClasses);
  if (spec.name == "ce") return options;
  if (spec.name == "ce_inverse") {
    return options.class_weight(torchloss::class_weights::inverse_frequency(context.class_counts));
  }
  if (spec.name == "ce_effective") return options.class_weight(effective_weights(context));
  if (spec.name == "logit_adjusted") return options.class_counts(context.class_counts).tau(context.settings.tau);
  throw std::invalid_argument("--fused-head: loss '" + spec.name +
                              "' is not a cross entropy of linear logits (use ce, ce_inverse, ce_effective or "
                              "logit_adjusted)");
}

/// The shared network with a linear or a cosine (NormedLinear) classifier on top, or with a
/// fused head (LinearCrossEntropyLoss: the same Linear parameters, initialised alike, whose
/// training loss never materialises the logits).
class LongTailNetImpl : public torch::nn::Module {
 public:
  LongTailNetImpl(const ex::ConvFeaturesOptions& network, bool normed_head, optional_fused_options fused = {}) {
    features_ = register_module("features", ex::ConvFeatures(network));
    const std::int64_t feature_dim = features_->options().feature_dim;
    if (fused) {
      fused_head_ = register_module("head", torchloss::LinearCrossEntropyLoss(*fused));
      return;
    }
    head_ = normed_head ? torch::nn::AnyModule(torchloss::NormedLinear(feature_dim, kNumClasses))
                        : torch::nn::AnyModule(torch::nn::Linear(feature_dim, kNumClasses));
    register_module("head", head_.ptr());
  }

  /// Maps images [N, 1, 28, 28] to logits [N, 10].
  torch::Tensor forward(const torch::Tensor& images) {
    const auto features = features_->forward(images);
    return fused_head_ ? fused_head_->logits(features) : head_.forward(features);
  }

  /// The fused head's training loss of images against their labels.
  torch::Tensor fused_loss(const torch::Tensor& images, const torch::Tensor& targets) {
    return fused_head_(features_->forward(images), targets);
  }

  /// Whether the head is fused with the loss.
  bool fused() const { return !fused_head_.is_empty(); }

 private:
  ex::ConvFeatures features_{nullptr};
  torch::nn::AnyModule head_;
  torchloss::LinearCrossEntropyLoss fused_head_{nullptr};
};
TORCH_MODULE(LongTailNet);

/// The final results of one (loss, seed) run.
struct RunResult {
  std::string loss;
  std::string label;
  std::uint64_t seed = 0;
  double balanced_accuracy = 0.0;
  double rare_accuracy = 0.0;
  double accuracy = 0.0;
  double train_seconds = 0.0;
};

/// Mean and sample standard deviation (0 for fewer than two values).
std::pair<double, double> mean_and_std(const std::vector<double>& values) {
  if (values.empty()) return {std::nan(""), std::nan("")};
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  if (values.size() < 2) return {mean, 0.0};
  double squares = 0.0;
  for (const double value : values) squares += (value - mean) * (value - mean);
  return {mean, std::sqrt(squares / static_cast<double>(values.size() - 1))};
}

/// The settings that make two runs comparable, as one line (written to config.txt).
std::string comparable_settings(const Settings& s) {
  std::ostringstream line;
  line << "epochs=" << s.epochs << " batch_size=" << s.batch_size << " lr=" << s.learning_rate
       << " imbalance=" << s.imbalance << " limit=" << s.train_limit << " test_limit=" << s.test_limit
       << " beta=" << s.beta << " gamma=" << s.gamma << " ghm_bins=" << s.ghm_bins
       << " ghm_momentum=" << s.ghm_momentum << " ldam_max_margin=" << s.ldam_max_margin
       << " ldam_scale=" << s.ldam_scale << " drw_epoch=" << s.drw_epoch << " tau=" << s.tau
       << " recipe=" << ex::recipe_name(s.recipe);
  if (s.fused_head) line << " fused_head=1";
  return line.str();
}

/// Output files; with --resume they start with the rows of the previous invocation.
class Outputs {
 public:
  Outputs(const Settings& settings, const fs::path& dir)
      : runs_path_((dir / "runs.csv").string()),
        metrics_path_((dir / "metrics.csv").string()),
        per_class_path_((dir / "per_class.csv").string()) {
    std::vector<std::string> per_class_columns = {"loss", "seed"};
    for (std::int64_t c = 0; c < kNumClasses; ++c) per_class_columns.push_back("class_" + std::to_string(c));
    const std::vector<std::string> runs_columns = {"loss",         "label",    "seed",         "balanced_accuracy",
                                                   "rare3_accuracy", "accuracy", "train_seconds"};
    const std::vector<std::string> metrics_columns = {"loss",           "seed",          "epoch",
                                                      "train_loss",     "test_accuracy", "balanced_accuracy",
                                                      "rare3_accuracy", "epoch_seconds"};
    std::vector<std::vector<std::string>> old_runs, old_metrics, old_per_class;
    const std::string config_path = (dir / "config.txt").string();
    if (settings.resume && fs::exists(runs_path_)) {
      std::ifstream config(config_path);
      std::string previous;
      std::getline(config, previous);
      if (previous != comparable_settings(settings)) {
        throw std::runtime_error("--resume: '" + config_path + "' records different settings (" + previous +
                                 "); use the same options or another --output-dir");
      }
      old_runs = read_rows(runs_path_, runs_columns);
      old_metrics = read_rows(metrics_path_, metrics_columns);
      old_per_class = read_rows(per_class_path_, per_class_columns);
    }
    fs::create_directories(dir);
    std::ofstream(config_path) << comparable_settings(settings) << '\n';
    runs_ = std::make_unique<ex::CsvWriter>(runs_path_, runs_columns);
    metrics_ = std::make_unique<ex::CsvWriter>(metrics_path_, metrics_columns);
    per_class_ = std::make_unique<ex::CsvWriter>(per_class_path_, per_class_columns);
    for (const auto& row : old_runs) {
      RunResult result{row[0], row[1], std::stoull(row[2]), std::stod(row[3]), std::stod(row[4]),
                       std::stod(row[5]), std::stod(row[6])};
      done_.insert({result.loss, result.seed});
      add_run(result);
    }
    // Only the epochs and per-class rows of runs that finished are kept.
    for (const auto& row : old_metrics) {
      if (done_.count({row[0], std::stoull(row[1])}) != 0) metrics_->write_row(cells(row));
    }
    for (const auto& row : old_per_class) {
      if (done_.count({row[0], std::stoull(row[1])}) != 0) per_class_->write_row(cells(row));
    }
  }

  bool done(const std::string& loss, std::uint64_t seed) const { return done_.count({loss, seed}) != 0; }

  void add_epoch(const std::vector<ex::CsvWriter::Cell>& row) { metrics_->write_row(row); }

  void add_per_class(const std::string& loss, std::uint64_t seed, const std::vector<double>& recall) {
    std::vector<ex::CsvWriter::Cell> row = {loss, seed};
    for (const double value : recall) row.emplace_back(value);
    per_class_->write_row(row);
  }

  void add_run(const RunResult& result) {
    runs_->write_row({result.loss, result.label, result.seed, result.balanced_accuracy, result.rare_accuracy,
                      result.accuracy, result.train_seconds});
    results_.push_back(result);
  }

  const std::vector<RunResult>& results() const { return results_; }
  const std::string& runs_path() const { return runs_path_; }

 private:
  static std::vector<std::vector<std::string>> read_rows(const std::string& path,
                                                         const std::vector<std::string>& columns) {
    if (!fs::exists(path)) return {};
    auto rows = ex::read_csv(path);
    if (rows.empty() || rows.front() != columns) {
      throw std::runtime_error("--resume: '" + path + "' does not have the expected header");
    }
    rows.erase(rows.begin());
    for (const auto& row : rows) {
      if (row.size() != columns.size()) throw std::runtime_error("--resume: '" + path + "' has a malformed row");
    }
    return rows;
  }

  static std::vector<ex::CsvWriter::Cell> cells(const std::vector<std::string>& row) {
    return {row.begin(), row.end()};
  }

  std::string runs_path_, metrics_path_, per_class_path_;
  std::unique_ptr<ex::CsvWriter> runs_, metrics_, per_class_;
  std::set<std::pair<std::string, std::uint64_t>> done_;
  std::vector<RunResult> results_;
};

/// The long-tailed training set and the balanced test set.
struct Data {
  ex::FashionMnist train;
  ex::FashionMnist test;
  torch::Tensor class_counts;
  std::vector<std::int64_t> rare_classes;
};

Data load_data(const Settings& settings) {
  const ex::FashionMnist full_train(settings.data_dir, ex::FashionMnist::Split::kTrain, settings.train_limit);
  ex::FashionMnist test(settings.data_dir, ex::FashionMnist::Split::kTest, settings.test_limit);
  const std::int64_t n_max = full_train.class_counts().max().item<std::int64_t>();
  const auto counts = ex::exponential_profile_counts(n_max, settings.imbalance, kNumClasses);
  ex::FashionMnist train = full_train.subset(ex::long_tailed_indices(full_train.targets(), counts));
  torch::Tensor class_counts = train.class_counts();
  auto rare = ex::rarest_classes(class_counts, kRareClasses);
  return {std::move(train), std::move(test), std::move(class_counts), std::move(rare)};
}

/// Mean test recall over `classes`.
double mean_recall(const ex::ClassificationMetrics& metrics, const std::vector<std::int64_t>& classes) {
  double sum = 0.0;
  for (const std::int64_t c : classes) sum += metrics.per_class_accuracy[static_cast<std::size_t>(c)];
  return sum / static_cast<double>(classes.size());
}

/// Trains one loss with one seed; returns its final test results.
RunResult run_one(const LossSpec& spec, std::uint64_t seed, const Data& data, const Settings& settings,
                  Outputs& outputs) {
  torch::manual_seed(seed);
  const LossContext context{data.class_counts, settings};
  LongTailNet model(ex::recipe_network(settings), spec.normed_head,
                    settings.fused_head ? optional_fused_options(fused_head_options(spec, context)) : optional_fused_options());
  const EpochLoss epoch_loss = spec.make(context);
  const std::int64_t batches = ex::num_batches(data.train.targets().size(0), settings.batch_size);
  ex::RecipeOptimizer recipe(model->parameters(), settings, batches * settings.epochs);
  const ex::TrainEpochOptions train_options = recipe.epoch_options(settings.batch_size);

  RunResult result{spec.name, spec.label, seed};
  ex::ClassificationMetrics metrics;
  for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
    const LogitLoss loss = epoch_loss(epoch);
    ex::ProgressBar progress(spec.name + " seed " + std::to_string(seed) + " epoch " + std::to_string(epoch) + "/" +
                                 std::to_string(settings.epochs),
                             batches, !settings.no_progress);
    const ex::EpochStats stats = ex::train_one_epoch(
        *model, recipe.optimizer(),
        [&model, &loss](const torch::Tensor& images, const torch::Tensor& targets) {
          return model->fused() ? model->fused_loss(images, targets) : loss(model->forward(images), targets);
        },
        data.train.images(), data.train.targets(), train_options, &progress);
    result.train_seconds += stats.seconds;
    if (epoch % settings.eval_every != 0 && epoch != settings.epochs) continue;
    metrics = ex::evaluate_classifier(model, data.test, kNumClasses);
    outputs.add_epoch({spec.name, seed, epoch, stats.mean_loss, metrics.accuracy, metrics.balanced_accuracy,
                       mean_recall(metrics, data.rare_classes), stats.seconds});
  }
  result.balanced_accuracy = metrics.balanced_accuracy;
  result.rare_accuracy = mean_recall(metrics, data.rare_classes);
  result.accuracy = metrics.accuracy;
  outputs.add_per_class(spec.name, seed, metrics.per_class_accuracy);
  return result;
}

/// One line of the table: the loss's mean ± std over its seeds.
struct SummaryRow {
  std::string loss, label;
  std::size_t seeds = 0;
  std::pair<double, double> balanced, rare, seconds;
};

std::vector<SummaryRow> summarize(const std::vector<LossSpec>& specs, const std::vector<RunResult>& results) {
  std::vector<SummaryRow> rows;
  for (const LossSpec& spec : specs) {
    std::vector<double> balanced, rare, seconds;
    for (const RunResult& result : results) {
      if (result.loss != spec.name) continue;
      balanced.push_back(result.balanced_accuracy);
      rare.push_back(result.rare_accuracy);
      seconds.push_back(result.train_seconds);
    }
    if (balanced.empty()) continue;
    rows.push_back({spec.name, spec.label, balanced.size(), mean_and_std(balanced), mean_and_std(rare),
                    mean_and_std(seconds)});
  }
  return rows;
}

std::string format_mean_std(std::pair<double, double> value, double scale, int decimals, std::size_t n) {
  char text[64];
  if (n < 2) {
    std::snprintf(text, sizeof text, "%.*f", decimals, value.first * scale);
  } else {
    std::snprintf(text, sizeof text, "%.*f ± %.*f", decimals, value.first * scale, decimals, value.second * scale);
  }
  return text;
}

/// Writes summary.csv and results.md; returns the markdown.
std::string write_summary(const std::vector<SummaryRow>& rows, const Data& data, const Settings& settings,
                          const fs::path& dir) {
  ex::CsvWriter csv((dir / "summary.csv").string(),
                    {"loss", "label", "seeds", "balanced_accuracy_mean", "balanced_accuracy_std",
                     "rare3_accuracy_mean", "rare3_accuracy_std", "train_seconds_mean", "train_seconds_std"});
  for (const SummaryRow& row : rows) {
    csv.write_row({row.loss, row.label, static_cast<std::int64_t>(row.seeds), row.balanced.first,
                   row.balanced.second, row.rare.first, row.rare.second, row.seconds.first, row.seconds.second});
  }

  std::ostringstream md;
  const auto counts = data.class_counts.contiguous();
  md << "Long-tailed Fashion-MNIST, imbalance factor " << ex::format_number(settings.imbalance) << ": "
     << data.train.targets().size(0) << " training images (per class:";
  for (std::int64_t c = 0; c < kNumClasses; ++c) md << ' ' << counts[c].item<std::int64_t>();
  md << "), balanced test set of " << data.test.targets().size(0) << " images. " << settings.epochs
     << (settings.epochs == 1 ? " epoch" : " epochs") << ", " << ex::recipe_description(settings)
     << ", the same network for every loss. Rarest 3 classes:";
  for (std::size_t i = 0; i < data.rare_classes.size(); ++i) {
    md << (i == 0 ? " " : ", ") << ex::kFashionMnistClassNames[static_cast<std::size_t>(data.rare_classes[i])];
  }
  std::size_t most_seeds = 0;
  for (const SummaryRow& row : rows) most_seeds = std::max(most_seeds, row.seeds);
  md << ". " << (most_seeds > 1 ? "Mean ± sample standard deviation over the seeds." : "One seed.") << "\n\n";
  md << "| loss | seeds | balanced accuracy (%) | rarest-3 accuracy (%) | training time (s) |\n";
  md << "| --- | ---: | ---: | ---: | ---: |\n";
  for (const SummaryRow& row : rows) {
    md << "| " << row.label << " | " << row.seeds << " | " << format_mean_std(row.balanced, 100, 2, row.seeds)
       << " | " << format_mean_std(row.rare, 100, 2, row.seeds) << " | "
       << format_mean_std(row.seconds, 1, 1, row.seeds) << " |\n";
  }
  std::ofstream((dir / "results.md").string()) << md.str();
  return md.str();
}

/// The specs --losses selects, in the registry's order; throws on an unknown name.
std::vector<LossSpec> selected_losses(const std::vector<std::string>& names) {
  std::vector<LossSpec> registry = loss_registry();
  if (names.empty()) return registry;
  std::vector<LossSpec> chosen;
  for (const std::string& name : names) {
    const auto found = std::find_if(registry.begin(), registry.end(),
                                    [&name](const LossSpec& spec) { return spec.name == name; });
    if (found == registry.end()) {
      std::string known;
      for (const LossSpec& spec : registry) known += (known.empty() ? "" : ", ") + spec.name;
      throw std::invalid_argument("--losses: unknown loss '" + name + "' (known: " + known + ")");
    }
    if (std::none_of(chosen.begin(), chosen.end(), [&name](const LossSpec& spec) { return spec.name == name; })) {
      chosen.push_back(*found);
    }
  }
  return chosen;
}

int compare(const Settings& settings) {
  const std::vector<LossSpec> specs = selected_losses(settings.losses);
  if (settings.fused_head) {
    for (const LossSpec& spec : specs) fused_head_options(spec, LossContext{torch::ones({kNumClasses}), settings});
  }
  const int threads = ex::configure_threads(settings.threads);
  const Data data = load_data(settings);
  std::printf("long-tailed Fashion-MNIST (imbalance %s): %lld training images, per class",
              ex::format_number(settings.imbalance).c_str(), static_cast<long long>(data.train.targets().size(0)));
  for (std::int64_t c = 0; c < kNumClasses; ++c) {
    std::printf(" %lld", static_cast<long long>(data.class_counts[c].item<std::int64_t>()));
  }
  std::printf("; %lld test images; %d threads\n", static_cast<long long>(data.test.targets().size(0)), threads);
  std::fflush(stdout);

  const fs::path dir(settings.output_dir);
  Outputs outputs(settings, dir);
  std::vector<std::uint64_t> seeds;  // --seeds without repeats, in the given order
  for (const std::uint64_t seed : settings.seeds) {
    if (std::find(seeds.begin(), seeds.end(), seed) == seeds.end()) seeds.push_back(seed);
  }
  for (const LossSpec& spec : specs) {
    for (const std::uint64_t seed : seeds) {
      if (outputs.done(spec.name, seed)) {
        std::printf("%-16s seed %llu: kept from the previous run (--resume)\n", spec.name.c_str(),
                    static_cast<unsigned long long>(seed));
        continue;
      }
      const RunResult result = run_one(spec, seed, data, settings, outputs);
      outputs.add_run(result);
      std::printf("%-16s seed %llu: balanced accuracy %.4f  rarest-3 accuracy %.4f  training %.1f s\n",
                  spec.name.c_str(), static_cast<unsigned long long>(seed), result.balanced_accuracy,
                  result.rare_accuracy, result.train_seconds);
      std::fflush(stdout);
    }
  }

  const std::string table = write_summary(summarize(specs, outputs.results()), data, settings, dir);
  std::printf("\n%s\nruns: %s\ntable: %s\n", table.c_str(), outputs.runs_path().c_str(),
              (dir / "results.md").string().c_str());
  if (!settings.no_plot) {
    const std::string plot_path = (dir / "long_tail.png").string();
    ex::run_python_script(settings.plot_script, {(dir / "summary.csv").string(), outputs.runs_path(), plot_path,
                                                 "--title",
                                                 "Long-tailed Fashion-MNIST, imbalance " +
                                                     ex::format_number(settings.imbalance) + ", " +
                                                     std::to_string(settings.epochs) + " epochs"});
    std::printf("plot: %s\n", plot_path.c_str());
  }
  return 0;
}

/// Registers the options on `app`, bound to the fields of `settings`.
void add_options(CLI::App& app, Settings& settings) {
  ex::TrainerOptionsHelp help;
  help.epochs = "Training epochs of every run";
  help.train_limit = "Draw the long tail from the first K training images only (0 = all)";
  help.seed = "";  // --seeds below
  help.threads = ex::kSmallNetworkThreadsHelp;
  help.output_dir = "Where the CSV files, the table and the chart go";
  ex::add_trainer_options(app, settings, help);
  ex::add_recipe_option(app, settings);
  app.add_option("--eval-every", settings.eval_every,
                 "Evaluate on the test set every K epochs and after the last (metrics.csv has those epochs)")
      ->capture_default_str()
      ->check(ex::at_least(1));
  std::string known;
  for (const LossSpec& spec : loss_registry()) known += (known.empty() ? "" : ",") + spec.name;
  app.add_option("--losses", settings.losses, "Comma-separated losses to compare (default: all): " + known)
      ->delimiter(',');
  app.add_option("--seeds", settings.seeds, "Comma-separated seeds; each loss trains once per seed")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--imbalance", settings.imbalance,
                 "Imbalance factor IF: class c keeps n_max * IF^(-c/9) training images")
      ->capture_default_str()
      ->check(ex::at_least(1));
  app.add_option("--beta", settings.beta, "Beta of the effective-number weights, in [0, 1)")
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0, /*include_upper=*/false));
  app.add_option("--gamma", settings.gamma, "Focusing parameter of the focal losses")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--ghm-bins", settings.ghm_bins, "Bins of GHM-C")->capture_default_str()->check(ex::at_least(1));
  app.add_option("--ghm-momentum", settings.ghm_momentum, "Moving average of GHM-C's bin counts, in [0, 1)")
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0, /*include_upper=*/false));
  app.add_option("--ldam-max-margin", settings.ldam_max_margin, "Largest margin of LDAM (the rarest class's)")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--ldam-scale", settings.ldam_scale, "Scale s of the cosine logits (LDAM-DRW, logit-adjusted CE on the cosine head)")
      ->capture_default_str()
      ->check(ex::greater_than(0));
  app.add_option("--drw-epoch", settings.drw_epoch,
                 "First epoch (1-based) of LDAM-DRW's class-balanced weights (beta 0.9999); 0 = the epoch after "
                 "80% of --epochs (quick recipe) or the first of the last third (reference recipe)")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--tau", settings.tau, "Temperature tau of the logit adjustment (1 = balanced softmax)")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_flag("--resume", settings.resume,
               "Keep the (loss, seed) runs already in --output-dir/runs.csv and run only the missing ones");
  app.add_flag("--no-plot", settings.no_plot, "Do not render long_tail.png");
  app.add_flag("--fused-head", settings.fused_head,
               "Train with torchloss::LinearCrossEntropyLoss, the linear head and the loss fused (the logits "
               "exist only for evaluation); for ce, ce_inverse, ce_effective and logit_adjusted");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "Compares torchloss losses on long-tailed Fashion-MNIST (Cui et al.'s exponential profile), "
      "with the same network, seeds and budget for each; reports balanced accuracy, accuracy on the "
      "rarest 3 classes and training time, as mean ± std over the seeds.");
  Settings settings;
  add_options(app, settings);
  CLI11_PARSE(app, argc, argv);
  ex::apply_recipe_defaults(app, settings);
  return ex::run_main("long_tail", [&settings] { return compare(settings); });
}
