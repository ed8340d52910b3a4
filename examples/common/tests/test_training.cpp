// Tests of the shared machinery the comparison trainers add: the long-tailed subset, the
// shared network, the generic training epoch and reading a CSV back.

#include "common/csv_writer.hpp"
#include "common/long_tail.hpp"
#include "common/models.hpp"
#include "common/training.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace ex = torchloss::examples;

namespace {

/// A fresh file path under the system temp dir; the file is removed at scope exit.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& name) {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() /
            ("torchloss_training_test_" + std::to_string(stamp) + "_" + std::to_string(counter++) + "_" + name);
  }
  ~TemporaryFile() {
    std::error_code ignored;
    fs::remove(path_, ignored);
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

std::vector<std::int64_t> to_vector(const torch::Tensor& tensor) {
  const torch::Tensor contiguous = tensor.to(torch::kInt64).contiguous();
  return {contiguous.data_ptr<std::int64_t>(), contiguous.data_ptr<std::int64_t>() + contiguous.numel()};
}

}  // namespace

TEST_CASE("exponential_profile_counts follows Cui et al.'s profile", "[long_tail]") {
  // int(6000 * 0.01 ** (c / 9)), as the reference code computes it.
  CHECK(ex::exponential_profile_counts(6000, 100, 10) ==
        std::vector<std::int64_t>{6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60});
  CHECK(ex::exponential_profile_counts(500, 1, 3) == std::vector<std::int64_t>{500, 500, 500});
  CHECK(ex::exponential_profile_counts(7, 1, 1) == std::vector<std::int64_t>{7});
  // Never an empty class, even when n_max / IF rounds to zero.
  CHECK(ex::exponential_profile_counts(10, 1000, 4).back() == 1);
  CHECK_THROWS_AS(ex::exponential_profile_counts(0, 10, 10), std::invalid_argument);
  CHECK_THROWS_AS(ex::exponential_profile_counts(10, 0.5, 10), std::invalid_argument);
  CHECK_THROWS_AS(ex::exponential_profile_counts(10, std::nan(""), 10), std::invalid_argument);
  CHECK_THROWS_AS(ex::exponential_profile_counts(10, 10, 0), std::invalid_argument);
}

TEST_CASE("long_tailed_indices keeps the first examples of each class in order", "[long_tail]") {
  const torch::Tensor targets = torch::tensor({0, 1, 0, 2, 1, 0, 2, 1, 0}, torch::kInt64);
  const torch::Tensor indices = ex::long_tailed_indices(targets, {3, 2, 1});
  CHECK(to_vector(indices) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
  // A class with fewer examples than asked keeps them all.
  CHECK(to_vector(ex::long_tailed_indices(targets, {1, 10, 1})) == std::vector<std::int64_t>{0, 1, 3, 4, 7});
  CHECK_THROWS_AS(ex::long_tailed_indices(targets, {1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(ex::long_tailed_indices(targets.to(torch::kInt32), {1, 1, 1}), std::invalid_argument);
}

TEST_CASE("rarest_classes picks the smallest counts", "[long_tail]") {
  const torch::Tensor counts = torch::tensor({50, 3, 20, 3, 7}, torch::kInt64);
  CHECK(ex::rarest_classes(counts, 2) == std::vector<std::int64_t>{1, 3});
  CHECK(ex::rarest_classes(counts, 3) == std::vector<std::int64_t>{1, 3, 4});
  // Ties are broken towards the higher class index.
  CHECK(ex::rarest_classes(torch::tensor({5, 5, 5}, torch::kInt64), 1) == std::vector<std::int64_t>{2});
  CHECK(ex::rarest_classes(counts, 0).empty());
  CHECK_THROWS_AS(ex::rarest_classes(counts, 6), std::invalid_argument);
}

TEST_CASE("read_csv reads back what CsvWriter writes", "[csv]") {
  const TemporaryFile file("table.csv");
  {
    ex::CsvWriter writer(file.path(), {"loss", "label", "value"});
    writer.write_row({"ce", "Weighted CE, inverse frequency", 0.5});
    writer.write_row({"q", "a \"quoted\"\nline", std::int64_t{3}});
    writer.write_row({"empty", "", 1});
  }
  const auto rows = ex::read_csv(file.path());
  REQUIRE(rows.size() == 4);
  CHECK(rows[0] == std::vector<std::string>{"loss", "label", "value"});
  CHECK(rows[1] == std::vector<std::string>{"ce", "Weighted CE, inverse frequency", "0.5"});
  CHECK(rows[2] == std::vector<std::string>{"q", "a \"quoted\"\nline", "3"});
  CHECK(rows[3] == std::vector<std::string>{"empty", "", "1"});

  const TemporaryFile broken("broken.csv");
  std::ofstream(broken.path()) << "a,\"unterminated\n";
  CHECK_THROWS_AS(ex::read_csv(broken.path()), std::runtime_error);
  CHECK_THROWS_AS(ex::read_csv(broken.path() + ".missing"), std::runtime_error);
}

TEST_CASE("ConvFeatures maps images to feature vectors", "[models]") {
  torch::manual_seed(0);
  const torch::Tensor images = torch::randn({5, 1, 28, 28});
  ex::ConvFeatures relu_features(ex::ConvFeaturesOptions{});
  const torch::Tensor features = relu_features->forward(images);
  CHECK(features.sizes() == torch::IntArrayRef({5, 64}));
  CHECK(features.min().item<float>() >= 0.0F);

  ex::ConvFeaturesOptions embedding;
  embedding.feature_dim = 2;
  embedding.activation = ex::FeatureActivation::kPReLU;
  ex::ConvFeatures embedding_features(embedding);
  CHECK(embedding_features->forward(images).sizes() == torch::IntArrayRef({5, 2}));

  ex::ConvFeaturesOptions bad;
  bad.feature_dim = 0;
  CHECK_THROWS_AS(ex::ConvFeatures(bad), std::invalid_argument);
  bad = {};
  bad.dropout = 1.0;
  CHECK_THROWS_AS(ex::ConvFeatures(bad), std::invalid_argument);
}

TEST_CASE("train_one_epoch visits every example once and reduces the loss", "[training]") {
  torch::manual_seed(1);
  // A separable two-class problem for a linear model.
  const torch::Tensor inputs = torch::randn({100, 4});
  const torch::Tensor targets = (inputs.select(1, 0) > 0).to(torch::kInt64);
  torch::nn::Linear model(4, 2);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.5));
  std::int64_t seen = 0;
  const ex::BatchLossFunction batch_loss = [&](const torch::Tensor& x, const torch::Tensor& y) {
    seen += x.size(0);
    return torch::nn::functional::cross_entropy(model->forward(x), y);
  };
  ex::TrainEpochOptions options;
  options.batch_size = 32;
  model->eval();
  const ex::EpochStats first = ex::train_one_epoch(*model, optimizer, batch_loss, inputs, targets, options);
  CHECK(model->is_training());
  CHECK(seen == 100);
  CHECK(first.num_examples == 100);
  CHECK(first.num_batches == 4);
  CHECK(first.seconds >= 0.0);
  ex::EpochStats last = first;
  for (int epoch = 0; epoch < 10; ++epoch) {
    last = ex::train_one_epoch(*model, optimizer, batch_loss, inputs, targets, options);
  }
  CHECK(last.mean_loss < 0.5 * first.mean_loss);
  CHECK(ex::num_batches(100, 32) == 4);
  CHECK(ex::num_batches(0, 32) == 0);
}

TEST_CASE("train_one_epoch stops on a non-finite loss and on bad arguments", "[training]") {
  torch::nn::Linear model(2, 2);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
  const torch::Tensor inputs = torch::randn({8, 2});
  const torch::Tensor targets = torch::zeros({8}, torch::kInt64);
  const ex::BatchLossFunction diverged = [&](const torch::Tensor& x, const torch::Tensor&) {
    return model->forward(x).sum() * std::numeric_limits<float>::infinity();
  };
  CHECK_THROWS_WITH(ex::train_one_epoch(*model, optimizer, diverged, inputs, targets),
                    Catch::Matchers::Contains("the loss of batch 1 is"));
  const ex::BatchLossFunction fine = [&](const torch::Tensor& x, const torch::Tensor&) {
    return model->forward(x).pow(2).mean();
  };
  CHECK_THROWS_AS(ex::train_one_epoch(*model, optimizer, fine, inputs, targets.slice(0, 0, 4)),
                  std::invalid_argument);
  ex::TrainEpochOptions options;
  options.batch_size = 0;
  CHECK_THROWS_AS(ex::train_one_epoch(*model, optimizer, fine, inputs, targets, options), std::invalid_argument);
}

TEST_CASE("train_one_epoch keeps the stored order without shuffling", "[training]") {
  torch::nn::Linear model(1, 1);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.0));
  const torch::Tensor inputs = torch::arange(10, torch::kFloat).unsqueeze(1);
  const torch::Tensor targets = torch::arange(10, torch::kInt64);
  std::vector<std::int64_t> order;
  const ex::BatchLossFunction record = [&](const torch::Tensor& x, const torch::Tensor& y) {
    for (const std::int64_t value : to_vector(y)) order.push_back(value);
    return model->forward(x).sum();
  };
  ex::TrainEpochOptions options;
  options.batch_size = 3;
  options.shuffle = false;
  ex::train_one_epoch(*model, optimizer, record, inputs, targets, options);
  CHECK(order == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Shuffled: every example once, in another order (seeded).
  order.clear();
  options.shuffle = true;
  torch::manual_seed(3);
  ex::train_one_epoch(*model, optimizer, record, inputs, targets, options);
  std::vector<std::int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(order != sorted);
}
