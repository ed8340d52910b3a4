/// @file main.cpp
/// Transfer learning: AlexNet pretrained on ImageNet (torchvision's weights), its backbone
/// frozen and its 1000-way classifier.6 replaced by a 10-way layer, trained on CIFAR-10 with
/// any loss of the library.
///
///     tools/export_torchvision_weights.py --output models/alexnet_imagenet1k_v1.pt
///     alexnet_transfer --data-dir data/cifar-10-batches-bin --weights models/alexnet_imagenet1k_v1.pt
///                      --loss focal --cache-features --epochs 10 --plot
///
/// Writes, under --output-dir: metrics.csv (one row per epoch), confusion_matrix.csv (of the
/// last epoch), checkpoint/ (model, optimizer, loss state, epoch; --resume continues from it)
/// and, with --plot, metrics.png.

#include "alexnet_transfer/alexnet.hpp"
#include "alexnet_transfer/cifar10.hpp"
#include "alexnet_transfer/transfer.hpp"
#include "common/checkpoint.hpp"
#include "common/cli_checks.hpp"
#include "common/cli_options.hpp"
#include "common/csv_writer.hpp"
#include "common/progress_bar.hpp"
#include "common/python_script.hpp"
#include "common/run_main.hpp"
#include "common/training.hpp"

#include <CLI/CLI.hpp>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace ex = torchloss::examples;
namespace tr = torchloss::examples::transfer;
namespace cifar = torchloss::examples::cifar10;
namespace fs = std::filesystem;

/// Everything the command line sets.
struct Settings : ex::TrainerOptions {
  Settings() {
    data_dir = "data/cifar-10-batches-bin";
    epochs = 5;
    threads = 0;
    output_dir = "results/alexnet_transfer";
    plot_script = TORCHLOSS_ALEXNET_TRANSFER_PLOT_SCRIPT;
  }
  std::string weights = "models/alexnet_imagenet1k_v1.pt";
  double momentum = 0.9;
  double weight_decay = 0.0;
  std::int64_t train_eval_size = 2000;
  std::int64_t image_size = 224;
  bool augment = false;
  std::string trainable = "head";
  bool finetune = false;
  double backbone_lr_scale = 0.1;
  bool cache_features = false;
  std::string loss = "ce";
  tr::LossSettings loss_settings;
  bool resume = false;
  bool plot = false;
};

/// Registers the options on `app`, bound to the fields of `settings`.
void add_options(CLI::App& app, Settings& settings) {
  ex::TrainerOptionsHelp help;
  help.data_dir_names = "--data-dir,--data";
  help.data_dir = "CIFAR-10 binary version: the cifar-10-batches-bin folder (or the folder holding it)";
  help.epochs = "Last training epoch";
  help.batch_size = "Training and evaluation batch size";
  help.learning_rate = "SGD learning rate of the new head";
  help.seed = "Seed of the head's initialisation, the shuffling, dropout and augmentation";
  help.output_dir_names = "--output-dir,--out";
  help.output_dir = "Where metrics.csv, confusion_matrix.csv, the checkpoint and the plot go";
  ex::add_trainer_options(app, settings, help);
  app.add_option("--weights", settings.weights,
                 "torchvision AlexNet state dict (tools/export_torchvision_weights.py); not needed with --resume "
                 "when a checkpoint exists")
      ->capture_default_str();
  app.add_option("--momentum", settings.momentum, "SGD momentum")
      ->capture_default_str()
      ->check(ex::in_range(0, 1, false));
  app.add_option("--weight-decay", settings.weight_decay, "SGD weight decay")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--train-eval-size", settings.train_eval_size,
                 "Training images (evenly spaced) re-evaluated in eval mode after each epoch (0 = none)")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--image-size", settings.image_size, "Side the 32x32 images are resized to (>= 63)")
      ->capture_default_str()
      ->check(ex::at_least(static_cast<double>(ex::alexnet::kMinImageSize)));
  app.add_flag("--augment", settings.augment, "Random crop (4-pixel padding) and horizontal flip while training");
  auto* trainable = app.add_option("--trainable", settings.trainable,
                                   "What trains: head (the new classifier.6 only), classifier (classifier.*), all")
                        ->capture_default_str()
                        ->check(CLI::IsMember({"head", "classifier", "all"}));
  app.add_flag("--finetune", settings.finetune, "Train every layer (same as --trainable all)")->excludes(trainable);
  app.add_option("--backbone-lr-scale", settings.backbone_lr_scale,
                 "Learning rate of the pretrained layers that train, relative to --lr")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_flag("--cache-features", settings.cache_features,
               "Run the frozen part once over the data and train on its cached outputs (not with --augment or "
               "--finetune)");
  app.add_option("--loss", settings.loss,
                 "Training loss: ce, weighted-ce, focal, weighted-focal, ghmc, ce+center (center loss on the "
                 "4096-d penultimate features)")
      ->capture_default_str()
      ->check(CLI::IsMember(tr::loss_names()));
  app.add_option("--class-weights", settings.loss_settings.class_weights,
                 "Class weights of weighted-ce and weighted-focal, from the training counts: effective or inverse")
      ->capture_default_str()
      ->check(CLI::IsMember({"effective", "inverse"}));
  app.add_option("--beta", settings.loss_settings.beta, "Beta of --class-weights effective, in [0, 1)")
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0, /*include_upper=*/false));
  app.add_option("--gamma", settings.loss_settings.gamma, "Focusing parameter of focal and weighted-focal")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--ghm-bins", settings.loss_settings.ghm_bins, "GHM-C bins")
      ->capture_default_str()
      ->check(ex::at_least(1));
  app.add_option("--ghm-momentum", settings.loss_settings.ghm_momentum, "GHM-C moving-average momentum, in [0, 1)")
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0, /*include_upper=*/false));
  app.add_option("--center-lambda", settings.loss_settings.center_lambda, "Weight of the center loss in ce+center")
      ->capture_default_str()
      ->check(ex::at_least(0));
  app.add_option("--center-alpha", settings.loss_settings.center_alpha, "Update rate of the centers, in [0, 1]")
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0));
  app.add_flag("--resume", settings.resume, "Continue from the checkpoint in --output-dir, if there is one");
  app.add_flag("--plot", settings.plot, "Render the loss and accuracy curves to metrics.png");
}

/// The columns of metrics.csv.
std::vector<std::string> metrics_columns() {
  std::vector<std::string> columns = {
      "epoch",     "train_loss",    "train_accuracy",    "train_eval_loss", "train_eval_accuracy",
      "test_loss", "test_accuracy", "balanced_accuracy", "train_seconds",   "seconds"};
  for (const char* name : cifar::kClassNames) columns.push_back(std::string("test_accuracy_") + name);
  return columns;
}

/// What must be the same to resume a run: the trainable part and the loss.
std::string recipe(const Settings& settings) { return "trainable=" + settings.trainable + " loss=" + settings.loss; }

/// Saves the loss state, the finished epoch and the recipe to `directory`/trainer_state.pt.
void save_trainer_state(const std::string& directory, std::int64_t epoch, const std::string& recipe_text,
                        const tr::TrainingLoss& loss) {
  torch::serialize::OutputArchive archive;
  archive.write("epoch", c10::IValue(epoch));
  archive.write("recipe", c10::IValue(recipe_text));
  torch::serialize::OutputArchive loss_archive;
  loss->save(loss_archive);
  archive.write("loss", loss_archive);
  const fs::path path = fs::path(directory) / "trainer_state.pt";
  const fs::path temporary = path.string() + ".tmp";
  archive.save_to(temporary.string());
  fs::rename(temporary, path);
}

/// Restores what save_trainer_state wrote into `loss`; returns the finished epoch.
std::int64_t load_trainer_state(const std::string& directory, const std::string& recipe_text, tr::TrainingLoss& loss) {
  const fs::path path = fs::path(directory) / "trainer_state.pt";
  if (!fs::exists(path)) throw std::runtime_error("checkpoint file not found: '" + path.string() + "'");
  torch::serialize::InputArchive archive;
  archive.load_from(path.string());
  c10::IValue epoch;
  c10::IValue saved_recipe;
  archive.read("epoch", epoch);
  archive.read("recipe", saved_recipe);
  if (saved_recipe.toStringRef() != recipe_text) {
    throw std::runtime_error("cannot resume: the checkpoint in '" + directory + "' was trained with " +
                             saved_recipe.toStringRef() + ", this run asks for " + recipe_text);
  }
  torch::serialize::InputArchive loss_archive;
  archive.read("loss", loss_archive);
  loss->load(loss_archive);
  return epoch.toInt();
}

/// Rows of an earlier metrics.csv up to `last_epoch` (kept on --resume); empty when the file
/// is missing or has other columns.
std::vector<std::vector<std::string>> previous_rows(const std::string& path, const std::vector<std::string>& columns,
                                                    std::int64_t last_epoch) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::vector<std::string>> rows;
  const auto split = [](const std::string& text) {
    std::vector<std::string> fields;
    std::stringstream stream(text);
    std::string field;
    while (std::getline(stream, field, ',')) fields.push_back(field);
    return fields;
  };
  if (!std::getline(in, line) || split(line) != columns) return rows;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = split(line);
    if (fields.size() != columns.size()) continue;
    if (std::stoll(fields[0]) <= last_epoch) rows.push_back(std::move(fields));
  }
  return rows;
}

/// Writes the confusion matrix (rows: true class, columns: predicted class) to `path`.
void write_confusion_matrix(const std::string& path, const torch::Tensor& confusion) {
  std::vector<std::string> header = {"true_class"};
  for (const char* name : cifar::kClassNames) header.emplace_back(name);
  ex::CsvWriter csv(path, header);
  for (std::int64_t row = 0; row < confusion.size(0); ++row) {
    std::vector<ex::CsvWriter::Cell> cells = {cifar::kClassNames[static_cast<std::size_t>(row)]};
    for (std::int64_t column = 0; column < confusion.size(1); ++column) {
      cells.emplace_back(confusion[row][column].item<std::int64_t>());
    }
    csv.write_row(cells);
  }
}

/// Prints the recall of every class.
void print_per_class_accuracy(const ex::ClassificationMetrics& metrics) {
  std::printf("per-class test accuracy:\n");
  for (std::size_t c = 0; c < metrics.per_class_accuracy.size(); ++c) {
    std::printf("  %-12s %.4f  (%lld images)\n", cifar::kClassNames[c], metrics.per_class_accuracy[c],
                static_cast<long long>(metrics.per_class_count[c]));
  }
}

/// Seconds since `start`.
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Throws for option combinations that cannot work.
void check_settings(const Settings& settings) {
  if (settings.cache_features && settings.augment) {
    throw std::invalid_argument(
        "--cache-features needs fixed inputs: random crops and flips (--augment) change "
        "every epoch; drop one of them");
  }
  if (settings.cache_features && settings.trainable == "all") {
    throw std::invalid_argument(
        "--cache-features needs a frozen backbone: nothing is frozen with --finetune "
        "(--trainable all)");
  }
}

/// Loads the data, trains, evaluates after every epoch and writes the outputs; returns the exit code.
int train(Settings settings) {
  if (settings.finetune) settings.trainable = "all";
  check_settings(settings);
  settings.loss_settings.kind = tr::parse_loss(settings.loss);
  const tr::Trainable trainable = tr::parse_trainable(settings.trainable);

  const int threads = ex::configure_threads(settings.threads);
  torch::manual_seed(settings.seed);
  const torch::Device device = torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;

  const cifar::Cifar10 train_set(settings.data_dir, cifar::Cifar10::Split::kTrain, settings.train_limit);
  const cifar::Cifar10 test_set(settings.data_dir, cifar::Cifar10::Split::kTest, settings.test_limit);
  const std::int64_t train_size = *train_set.size();
  std::printf("CIFAR-10: %lld training / %lld test images, image size %lld, device %s, threads %d\n",
              static_cast<long long>(train_size), static_cast<long long>(*test_set.size()),
              static_cast<long long>(settings.image_size), device.str().c_str(), threads);

  const fs::path output_dir(settings.output_dir);
  const std::string checkpoint_dir = (output_dir / "checkpoint").string();
  const bool resuming = settings.resume && ex::has_checkpoint(checkpoint_dir);
  if (settings.resume && !resuming) std::printf("no checkpoint in %s: starting at epoch 1\n", checkpoint_dir.c_str());
  if (!resuming && !fs::is_regular_file(settings.weights)) {
    throw std::runtime_error("weights file not found: '" + settings.weights +
                             "' (export torchvision's ImageNet AlexNet with tools/export_torchvision_weights.py)");
  }

  // The new head's initialisation draws from the seeded generator.
  tr::TransferAlexNet model = tr::make_transfer_model(resuming ? "" : settings.weights, cifar::kNumClasses, trainable);
  model->to(device);
  tr::TrainingLoss loss(settings.loss_settings, train_set.class_counts());
  loss->to(device);
  auto optimizer = tr::make_optimizer(model, settings.learning_rate, settings.backbone_lr_scale, settings.momentum,
                                      settings.weight_decay);
  std::int64_t trainable_count = 0;
  for (const auto& parameter : model->parameters())
    trainable_count += parameter.requires_grad() ? parameter.numel() : 0;
  std::printf("AlexNet from %s: %s trains (%lld parameters), loss %s\n",
              resuming ? checkpoint_dir.c_str() : settings.weights.c_str(), settings.trainable.c_str(),
              static_cast<long long>(trainable_count), settings.loss.c_str());
  if (loss->class_weights().defined()) {
    std::printf("class weights (%s):", settings.loss_settings.class_weights.c_str());
    for (std::int64_t c = 0; c < loss->class_weights().numel(); ++c) {
      std::printf(" %.3f", loss->class_weights()[c].item<double>());
    }
    std::printf("\n");
  }
  if (settings.loss_settings.kind == tr::LossKind::kCrossEntropyCenter && trainable == tr::Trainable::kHead) {
    std::printf(
        "note: with --trainable head the 4096-d features are frozen, so the center term cannot change "
        "them (only the centers move); use --trainable classifier or --finetune\n");
  }

  std::int64_t first_epoch = 1;
  if (resuming) {
    ex::load_checkpoint(checkpoint_dir, *model, optimizer.get());
    first_epoch = load_trainer_state(checkpoint_dir, recipe(settings), loss) + 1;
    std::printf("resumed from %s after epoch %lld\n", checkpoint_dir.c_str(), static_cast<long long>(first_epoch - 1));
  }
  std::fflush(stdout);

  tr::BatchOptions batches;
  batches.batch_size = settings.batch_size;
  batches.preprocessing.image_size = settings.image_size;
  batches.preprocessing.augment = settings.augment;
  batches.device = device;

  // Training images re-evaluated in eval mode: evenly spaced, so every file is represented.
  const std::int64_t train_eval_size = std::min(settings.train_eval_size, train_size);
  std::vector<std::int64_t> spaced_indices;
  for (std::int64_t i = 0; i < train_eval_size; ++i) spaced_indices.push_back(i * train_size / train_eval_size);
  const torch::Tensor train_eval_indices = torch::tensor(spaced_indices, torch::kInt64);

  tr::InputSet train_data{train_set.images(), train_set.targets(), false};
  tr::InputSet test_data{test_set.images(), test_set.targets(), false};
  if (settings.cache_features && first_epoch <= settings.epochs) {
    const auto cache_start = std::chrono::steady_clock::now();
    {
      ex::ProgressBar progress("caching train", (train_size + settings.batch_size - 1) / settings.batch_size,
                               !settings.no_progress);
      train_data = tr::cache_frozen_outputs(model, train_set.images(), train_set.targets(), batches, &progress);
    }
    {
      ex::ProgressBar progress(
          "caching test", (static_cast<std::int64_t>(*test_set.size()) + settings.batch_size - 1) / settings.batch_size,
          !settings.no_progress);
      test_data = tr::cache_frozen_outputs(model, test_set.images(), test_set.targets(), batches, &progress);
    }
    std::printf("feature cache: %lld + %lld images -> %lld floats each, %.1f MB, %.2f s\n",
                static_cast<long long>(train_size), static_cast<long long>(test_data.size()),
                static_cast<long long>(model->frozen_output_features()),
                static_cast<double>((train_data.inputs.numel() + test_data.inputs.numel()) * 4) / 1e6,
                seconds_since(cache_start));
    std::fflush(stdout);
  }
  const tr::InputSet train_eval_data = train_data.subset(train_eval_indices);

  const std::vector<std::string> columns = metrics_columns();
  const std::string metrics_path = (output_dir / "metrics.csv").string();
  const auto kept_rows =
      resuming ? previous_rows(metrics_path, columns, first_epoch - 1) : std::vector<std::vector<std::string>>{};
  ex::CsvWriter metrics_csv(metrics_path, columns);
  for (const auto& row : kept_rows) metrics_csv.write_row(std::vector<ex::CsvWriter::Cell>(row.begin(), row.end()));
  const std::string confusion_path = (output_dir / "confusion_matrix.csv").string();

  const std::int64_t batches_per_epoch = (train_size + settings.batch_size - 1) / settings.batch_size;
  tr::Evaluation test_evaluation;
  for (std::int64_t epoch = first_epoch; epoch <= settings.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    tr::EpochResult result;
    {
      ex::ProgressBar progress("epoch " + std::to_string(epoch) + "/" + std::to_string(settings.epochs),
                               batches_per_epoch, !settings.no_progress);
      result = tr::train_epoch(model, loss, *optimizer, train_data, batches, &progress);
    }
    const double train_seconds = seconds_since(epoch_start);
    const tr::Evaluation train_evaluation = tr::evaluate(model, train_eval_data, batches);
    test_evaluation = tr::evaluate(model, test_data, batches);
    const double seconds = seconds_since(epoch_start);
    const ex::ClassificationMetrics& test = test_evaluation.metrics;
    const ex::ClassificationMetrics& train_eval = train_evaluation.metrics;

    std::printf(
        "epoch %lld/%lld  train_loss %.4f  train_acc %.4f  train_eval_acc %.4f  test_loss %.4f  "
        "test_acc %.4f  balanced_acc %.4f  %.3f s (training %.3f s, %.0f img/s)\n",
        static_cast<long long>(epoch), static_cast<long long>(settings.epochs), result.loss, result.accuracy,
        train_eval.accuracy, test.loss, test.accuracy, test.balanced_accuracy, seconds, train_seconds,
        static_cast<double>(result.examples) / std::max(train_seconds, 1e-9));
    std::fflush(stdout);
    std::vector<ex::CsvWriter::Cell> row = {
        epoch,     result.loss,   result.accuracy,        train_eval.loss, train_eval.accuracy,
        test.loss, test.accuracy, test.balanced_accuracy, train_seconds,   seconds};
    for (const double accuracy : test.per_class_accuracy) row.emplace_back(accuracy);
    metrics_csv.write_row(row);
    write_confusion_matrix(confusion_path, test_evaluation.confusion);
    ex::save_checkpoint(checkpoint_dir, *model, optimizer.get());
    save_trainer_state(checkpoint_dir, epoch, recipe(settings), loss);
  }

  if (first_epoch <= settings.epochs) print_per_class_accuracy(test_evaluation.metrics);
  std::printf("metrics: %s\nconfusion matrix: %s\ncheckpoint: %s\n", metrics_path.c_str(), confusion_path.c_str(),
              checkpoint_dir.c_str());
  if (settings.plot) {
    const std::string plot_path = (output_dir / "metrics.png").string();
    ex::run_python_script(settings.plot_script, {metrics_path, plot_path, "--title",
                                                 "AlexNet transfer to CIFAR-10, --loss " + settings.loss});
    std::printf("plot: %s\n", plot_path.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "Transfer learning: AlexNet with ImageNet weights, frozen backbone, new 10-way head, trained on CIFAR-10 "
      "with a torchloss loss.");
  Settings settings;
  add_options(app, settings);
  CLI11_PARSE(app, argc, argv);
  return ex::run_main("alexnet_transfer", [&settings] { return train(settings); });
}
