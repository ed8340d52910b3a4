/// @file main.cpp
/// Trains a small CNN on Fashion-MNIST with torchloss::WeightedCrossEntropyLoss.
///
///     fashion_mnist --epochs 2 --class-weights effective --label-smoothing 0.1 --plot
///     fashion_mnist --epochs 2 --mixup 0.2 --label-smoothing 0.1   (torchloss::functional::mixup_cross_entropy)
///
/// Prints the test accuracy after each epoch and writes, under --output-dir,
/// metrics.csv, checkpoint/{model,optimizer}.pt and, with --plot, metrics.png.

#include "common/checkpoint.hpp"
#include "common/cli_checks.hpp"
#include "common/cli_options.hpp"
#include "common/csv_writer.hpp"
#include "common/evaluation.hpp"
#include "common/fashion_mnist.hpp"
#include "common/progress_bar.hpp"
#include "common/python_script.hpp"
#include "common/run_main.hpp"
#include "common/training.hpp"

#include <CLI/CLI.hpp>
#include <torch/torch.h>
#include <torchloss/torchloss.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace {

namespace ex = torchloss::examples;

/// Everything the command line sets.
struct Settings : ex::TrainerOptions {
  Settings() {
    epochs = 2;
    threads = 0;
    output_dir = "results/fashion_mnist";
    plot_script = TORCHLOSS_FASHION_MNIST_PLOT_SCRIPT;
  }
  double label_smoothing = 0.0;
  std::string class_weights = "none";
  double effective_number_beta = 0.999;
  double mixup_alpha = 0.0;  // 0: no mixup
  bool plot = false;
};

/// Registers the options on `app`, bound to the fields of `settings`.
void add_options(CLI::App& app, Settings& settings) {
  ex::TrainerOptionsHelp help;
  help.output_dir = "Where metrics.csv, the checkpoint and the plot go";
  ex::add_trainer_options(app, settings, help);
  app.add_option("--label-smoothing", settings.label_smoothing, "Label smoothing of the loss, in [0, 1]")
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0));
  app.add_option("--class-weights", settings.class_weights,
                 "Per-class loss weights from the training counts: none, inverse (inverse frequency) or "
                 "effective (effective number of samples)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "inverse", "effective"}));
  app.add_option("--beta", settings.effective_number_beta, "Beta of --class-weights effective, in [0, 1)")
      ->capture_default_str()
      ->check(ex::in_range(0.0, 1.0, /*include_upper=*/false));
  app.add_option("--mixup", settings.mixup_alpha,
                 "Mixup with lambda ~ Beta(ALPHA, ALPHA) per batch, trained with mixup_cross_entropy (0: off; "
                 "not with --class-weights)")
      ->capture_default_str()
      ->check(ex::at_least(0.0));
  app.add_flag("--plot", settings.plot, "Render the loss and accuracy curves to metrics.png");
}

/// Two conv-BN-ReLU-pool blocks (32 and 64 channels), then a 128-unit hidden layer with dropout.
struct FashionCnnImpl : torch::nn::Module {
  FashionCnnImpl()
      : features(register_module(
            "features",
            torch::nn::Sequential(
                torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1).bias(false)),
                torch::nn::BatchNorm2d(32), torch::nn::ReLU(), torch::nn::MaxPool2d(2),
                torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1).bias(false)),
                torch::nn::BatchNorm2d(64), torch::nn::ReLU(), torch::nn::MaxPool2d(2)))),
        classifier(register_module(
            "classifier",
            torch::nn::Sequential(torch::nn::Flatten(), torch::nn::Linear(64 * 7 * 7, 128), torch::nn::ReLU(),
                                  torch::nn::Dropout(0.3), torch::nn::Linear(128, ex::kFashionMnistNumClasses)))) {}

  /// Maps images [N, 1, 28, 28] to logits [N, 10].
  torch::Tensor forward(const torch::Tensor& images) { return classifier->forward(features->forward(images)); }

  torch::nn::Sequential features;
  torch::nn::Sequential classifier;
};
TORCH_MODULE(FashionCnn);

/// The per-class loss weights `scheme` asks for, or an undefined tensor for "none".
torch::Tensor make_class_weights(const std::string& scheme, const torch::Tensor& class_counts, double beta) {
  if (scheme == "inverse") return torchloss::class_weights::inverse_frequency(class_counts);
  if (scheme == "effective") return torchloss::class_weights::effective_number(class_counts, beta);
  return {};
}

/// λ ~ Beta(α, α), from two Gamma(α) draws of torch's generator (seeded by --seed).
double sample_mixup_lambda(double alpha) {
  const torch::Tensor gammas = at::_standard_gamma(torch::full({2}, alpha, torch::kDouble));
  return (gammas[0] / gammas.sum()).item<double>();
}

/// Runs one epoch of training; returns the mean training loss (batches weighted by size).
/// With --mixup, each batch is mixed with its reverse and trained with mixup_cross_entropy.
template <typename DataLoader>
double train_one_epoch(FashionCnn& model, DataLoader& loader, torchloss::WeightedCrossEntropyLoss& loss_fn,
                       const Settings& settings, torch::optim::Optimizer& optimizer, const torch::Device& device,
                       ex::ProgressBar& progress) {
  model->train();
  double loss_sum = 0.0;
  std::int64_t examples_seen = 0;
  std::int64_t batches_done = 0;
  for (auto& batch : loader) {
    const torch::Tensor images = batch.data.to(device);
    const torch::Tensor targets = batch.target.to(device);
    optimizer.zero_grad();
    torch::Tensor loss;
    if (settings.mixup_alpha > 0) {
      const double lam = sample_mixup_lambda(settings.mixup_alpha);
      loss = torchloss::functional::mixup_cross_entropy(
          model->forward(lam * images + (1 - lam) * images.flip(0)), targets, targets.flip(0), lam,
          torchloss::functional::MixupCrossEntropyFuncOptions().label_smoothing(settings.label_smoothing));
    } else {
      loss = loss_fn(model->forward(images), targets);
    }
    loss.backward();
    optimizer.step();

    loss_sum += loss.item<double>() * static_cast<double>(targets.size(0));
    examples_seen += targets.size(0);
    progress.update(++batches_done, loss_sum / static_cast<double>(examples_seen));
  }
  progress.finish();
  return examples_seen == 0 ? 0.0 : loss_sum / static_cast<double>(examples_seen);
}

/// Prints the recall of every class of the final evaluation.
void print_per_class_accuracy(const ex::ClassificationMetrics& metrics) {
  std::printf("per-class test accuracy:\n");
  for (std::size_t c = 0; c < metrics.per_class_accuracy.size(); ++c) {
    std::printf("  %-12s %.4f  (%lld images)\n", ex::kFashionMnistClassNames[c], metrics.per_class_accuracy[c],
                static_cast<long long>(metrics.per_class_count[c]));
  }
}

/// Loads the data, trains, evaluates after every epoch and writes the outputs; returns the exit code.
int train(const Settings& settings) {
  if (settings.mixup_alpha > 0 && settings.class_weights != "none") {
    throw std::runtime_error("--mixup does not combine with --class-weights (mixup_cross_entropy has no class weights)");
  }
  const int threads = ex::configure_threads(settings.threads);
  torch::manual_seed(settings.seed);
  const torch::Device device = torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;

  ex::FashionMnist train_set(settings.data_dir, ex::FashionMnist::Split::kTrain, settings.train_limit);
  const ex::FashionMnist test_set(settings.data_dir, ex::FashionMnist::Split::kTest, settings.test_limit);
  const auto train_size = static_cast<std::int64_t>(*train_set.size());
  std::printf("Fashion-MNIST: %lld training / %lld test images, device %s, threads %d\n",
              static_cast<long long>(train_size), static_cast<long long>(*test_set.size()),
              device.str().c_str(), threads);

  const torch::Tensor class_weights =
      make_class_weights(settings.class_weights, train_set.class_counts(), settings.effective_number_beta);
  if (class_weights.defined()) {
    std::printf("class weights (%s):", settings.class_weights.c_str());
    for (std::int64_t c = 0; c < class_weights.numel(); ++c) std::printf(" %.3f", class_weights[c].item<double>());
    std::printf("\n");
  }
  std::fflush(stdout);
  torchloss::WeightedCrossEntropyLoss loss_fn(torchloss::WeightedCrossEntropyLossOptions()
                                                  .weight(class_weights)
                                                  .label_smoothing(settings.label_smoothing));
  loss_fn->to(device);

  FashionCnn model;
  model->to(device);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(settings.learning_rate));
  auto train_loader = torch::data::make_data_loader(train_set.map(torch::data::transforms::Stack<>()),
                                                    torch::data::DataLoaderOptions(settings.batch_size));
  const std::int64_t batches_per_epoch = (train_size + settings.batch_size - 1) / settings.batch_size;

  const std::filesystem::path output_dir(settings.output_dir);
  const std::string metrics_path = (output_dir / "metrics.csv").string();
  ex::CsvWriter metrics_csv(metrics_path, {"epoch", "train_loss", "test_loss", "test_accuracy",
                                           "balanced_accuracy", "seconds"});
  ex::EvaluationOptions evaluation;
  evaluation.device = device;
  evaluation.loss = [&loss_fn](const torch::Tensor& logits, const torch::Tensor& targets) {
    return loss_fn(logits, targets);
  };

  ex::ClassificationMetrics test_metrics;
  for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    ex::ProgressBar progress("epoch " + std::to_string(epoch) + "/" + std::to_string(settings.epochs),
                             batches_per_epoch, !settings.no_progress);
    const double train_loss = train_one_epoch(model, *train_loader, loss_fn, settings, optimizer, device, progress);
    test_metrics = ex::evaluate_classifier(model, test_set, ex::kFashionMnistNumClasses, evaluation);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();

    std::printf("epoch %lld/%lld  train_loss %.4f  test_loss %.4f  test_accuracy %.4f  balanced_accuracy %.4f  "
                "%.1f s\n",
                static_cast<long long>(epoch), static_cast<long long>(settings.epochs), train_loss,
                test_metrics.loss, test_metrics.accuracy, test_metrics.balanced_accuracy, seconds);
    std::fflush(stdout);
    metrics_csv.write_row({epoch, train_loss, test_metrics.loss, test_metrics.accuracy,
                           test_metrics.balanced_accuracy, seconds});
    ex::save_checkpoint((output_dir / "checkpoint").string(), *model, &optimizer);
  }

  print_per_class_accuracy(test_metrics);
  std::printf("metrics: %s\ncheckpoint: %s\n", metrics_path.c_str(), (output_dir / "checkpoint").string().c_str());
  if (settings.plot) {
    const std::string plot_path = (output_dir / "metrics.png").string();
    ex::run_python_script(settings.plot_script,
                          {metrics_path, plot_path, "--title", "Fashion-MNIST, WeightedCrossEntropyLoss"});
    std::printf("plot: %s\n", plot_path.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Trains a small CNN on Fashion-MNIST with torchloss::WeightedCrossEntropyLoss.");
  Settings settings;
  add_options(app, settings);
  CLI11_PARSE(app, argc, argv);
  return ex::run_main("fashion_mnist", [&settings] { return train(settings); });
}
