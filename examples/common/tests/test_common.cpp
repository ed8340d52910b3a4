// Tests of the examples' shared library: IDX reading, the Fashion-MNIST dataset, metrics,
// CSV output, checkpoints, the progress bar and the Python runner.

#include "common/checkpoint.hpp"
#include "common/cli_checks.hpp"
#include "common/csv_writer.hpp"
#include "common/evaluation.hpp"
#include "common/fashion_mnist.hpp"
#include "common/idx.hpp"
#include "common/progress_bar.hpp"
#include "common/python_script.hpp"
#include "common/tests/temporary_directory.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace ex = torchloss::examples;
using Catch::Matchers::Contains;

namespace {

using torchloss::examples::testing::TemporaryDirectory;

using Bytes = std::vector<std::uint8_t>;

/// Encodes an IDX file: magic number and dimensions big-endian, then `payload`.
Bytes idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes bytes;
  const auto append_big_endian = [&bytes](std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(value >> shift));
  };
  append_big_endian(magic);
  for (const std::uint32_t dim : dims) append_big_endian(dim);
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

/// IDX images [count, rows, cols] whose pixel i holds (i * 7 + seed) mod 256.
Bytes image_file_bytes(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, int seed = 0) {
  Bytes pixels(std::size_t{count} * rows * cols);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>((i * 7 + seed) % 256);
  return idx_bytes(ex::kIdxImagesMagic, {count, rows, cols}, pixels);
}

/// IDX labels holding `labels`.
Bytes label_file_bytes(const Bytes& labels) {
  return idx_bytes(ex::kIdxLabelsMagic, {static_cast<std::uint32_t>(labels.size())}, labels);
}

void write_plain(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const std::string& path, const Bytes& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Writes one Fashion-MNIST split (`prefix` = "train" or "t10k") of 28x28 images, gzipped.
void write_fashion_split(const TemporaryDirectory& directory, const std::string& prefix, const Bytes& labels,
                         std::uint32_t image_count) {
  write_gzip(directory.file(prefix + "-images-idx3-ubyte.gz"), image_file_bytes(image_count, 28, 28));
  write_gzip(directory.file(prefix + "-labels-idx1-ubyte.gz"), label_file_bytes(labels));
}

}  // namespace

TEST_CASE("read_idx_images reads plain and gzipped files", "[idx]") {
  const TemporaryDirectory directory;
  const Bytes bytes = image_file_bytes(3, 4, 5);
  const std::string path = GENERATE(as<std::string>{}, "images.idx", "images.idx.gz");
  if (path.size() > 3 && path.substr(path.size() - 3) == ".gz") {
    write_gzip(directory.file(path), bytes);
  } else {
    write_plain(directory.file(path), bytes);
  }

  const torch::Tensor images = ex::read_idx_images(directory.file(path));
  REQUIRE(images.scalar_type() == torch::kUInt8);
  REQUIRE(images.sizes() == torch::IntArrayRef({3, 4, 5}));
  CHECK(images[0][0][1].item<int>() == 7);
  CHECK(images[2][3][4].item<int>() == (59 * 7) % 256);
}

TEST_CASE("read_idx_labels returns int64 labels", "[idx]") {
  const TemporaryDirectory directory;
  write_gzip(directory.file("labels.gz"), label_file_bytes({3, 1, 4, 1, 5}));
  const torch::Tensor labels = ex::read_idx_labels(directory.file("labels.gz"));
  REQUIRE(labels.scalar_type() == torch::kInt64);
  CHECK(torch::equal(labels, torch::tensor({3, 1, 4, 1, 5}, torch::kInt64)));
}

TEST_CASE("read_idx reports malformed files clearly", "[idx]") {
  const TemporaryDirectory directory;
  const Bytes good_images = image_file_bytes(2, 3, 3);

  SECTION("missing file") {
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("absent.gz")),
                      Contains("IDX file not found") && Contains("absent.gz"));
  }
  SECTION("payload shorter than the header declares") {
    write_plain(directory.file("short"), Bytes(good_images.begin(), good_images.end() - 4));
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("short")),
                      Contains("truncated") && Contains("18 bytes") && Contains("only 14"));
  }
  SECTION("header cut inside the dimensions") {
    write_gzip(directory.file("header.gz"), Bytes(good_images.begin(), good_images.begin() + 9));
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("header.gz")), Contains("truncated"));
  }
  SECTION("empty file") {
    write_plain(directory.file("empty"), {});
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("empty")), Contains("truncated"));
  }
  SECTION("gzip stream cut short") {
    write_gzip(directory.file("cut.gz"), image_file_bytes(50, 28, 28));
    const Bytes compressed = read_bytes(directory.file("cut.gz"));
    write_plain(directory.file("cut.gz"), Bytes(compressed.begin(), compressed.begin() + compressed.size() / 2));
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("cut.gz")), Contains("truncated"));
  }
  SECTION("corrupt gzip data") {
    write_gzip(directory.file("corrupt.gz"), image_file_bytes(50, 28, 28));
    Bytes compressed = read_bytes(directory.file("corrupt.gz"));
    for (std::size_t i = 20; i < 60; ++i) compressed[i] = 0xFF;
    write_plain(directory.file("corrupt.gz"), compressed);
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("corrupt.gz")), Contains("corrupt"));
  }
  SECTION("wrong magic number") {
    write_gzip(directory.file("labels.gz"), label_file_bytes({1, 2}));
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("labels.gz")),
                      Contains("bad magic number 0x00000801") && Contains("expected 0x00000803"));
    write_plain(directory.file("text"), {'h', 'e', 'l', 'l', 'o'});
    CHECK_THROWS_WITH(ex::read_idx_labels(directory.file("text")), Contains("bad magic number"));
  }
  SECTION("payload longer than the header declares") {
    Bytes long_file = good_images;
    long_file.push_back(0);
    write_gzip(directory.file("long.gz"), long_file);
    CHECK_THROWS_WITH(ex::read_idx_images(directory.file("long.gz")), Contains("size mismatch"));
  }
}

TEST_CASE("normalize_images scales to [0, 1] then standardises", "[idx]") {
  const torch::Tensor images = torch::tensor({0, 255, 51}, torch::kUInt8).reshape({1, 1, 3});
  const torch::Tensor normalized = ex::normalize_images(images, 0.5, 0.25);
  REQUIRE(normalized.sizes() == torch::IntArrayRef({1, 1, 1, 3}));
  CHECK(torch::allclose(normalized.flatten(), torch::tensor({-2.0F, 2.0F, -1.2F})));
  CHECK_THROWS_AS(ex::normalize_images(images.to(torch::kFloat), 0.5, 0.25), std::invalid_argument);
}

TEST_CASE("FashionMnist loads a split, limits it and counts classes", "[fashion_mnist]") {
  const TemporaryDirectory directory;
  write_fashion_split(directory, "train", {0, 1, 1, 9, 9, 9}, 6);
  write_fashion_split(directory, "t10k", {2, 3}, 2);

  ex::FashionMnist train(directory.path().string(), ex::FashionMnist::Split::kTrain);
  REQUIRE(*train.size() == 6);
  CHECK(train.images().sizes() == torch::IntArrayRef({6, 1, 28, 28}));
  CHECK(train.images().scalar_type() == torch::kFloat32);
  CHECK(torch::equal(train.class_counts(), torch::tensor({1, 2, 0, 0, 0, 0, 0, 0, 0, 3}, torch::kInt64)));
  const torch::data::Example<> example = train.get(3);
  CHECK(example.data.sizes() == torch::IntArrayRef({1, 28, 28}));
  CHECK(example.target.item<std::int64_t>() == 9);

  const ex::FashionMnist limited(directory.path().string(), ex::FashionMnist::Split::kTrain, 2);
  CHECK(*limited.size() == 2);
  const ex::FashionMnist test(directory.path().string(), ex::FashionMnist::Split::kTest, 100);
  CHECK(*test.size() == 2);

  const ex::FashionMnist tail = train.subset(torch::tensor({3, 0}, torch::kInt64));
  CHECK(torch::equal(tail.targets(), torch::tensor({9, 0}, torch::kInt64)));
  CHECK(ex::kFashionMnistClassNames[9] == std::string("Ankle boot"));
}

TEST_CASE("FashionMnist finds plain files when no .gz exists", "[fashion_mnist]") {
  const TemporaryDirectory directory;
  write_plain(directory.file("t10k-images-idx3-ubyte"), image_file_bytes(2, 28, 28));
  write_plain(directory.file("t10k-labels-idx1-ubyte"), label_file_bytes({4, 5}));
  const ex::FashionMnist test(directory.path().string(), ex::FashionMnist::Split::kTest);
  CHECK(torch::equal(test.targets(), torch::tensor({4, 5}, torch::kInt64)));
}

TEST_CASE("FashionMnist rejects inconsistent files", "[fashion_mnist]") {
  const TemporaryDirectory directory;
  SECTION("images/labels count mismatch") {
    write_fashion_split(directory, "train", {0, 1, 2}, 4);
    CHECK_THROWS_WITH(ex::FashionMnist(directory.path().string(), ex::FashionMnist::Split::kTrain),
                      Contains("count mismatch") && Contains("4 images") && Contains("3 labels"));
  }
  SECTION("label out of range") {
    write_fashion_split(directory, "train", {0, 10}, 2);
    CHECK_THROWS_WITH(ex::FashionMnist(directory.path().string(), ex::FashionMnist::Split::kTrain),
                      Contains("label 10 outside [0, 10)"));
  }
  SECTION("missing directory") {
    CHECK_THROWS_WITH(ex::FashionMnist(directory.file("nowhere"), ex::FashionMnist::Split::kTest),
                      Contains("IDX file not found") && Contains("t10k-images-idx3-ubyte.gz"));
  }
}

TEST_CASE("CsvWriter writes a header and flushed rows", "[csv]") {
  const TemporaryDirectory directory;
  const std::string path = directory.file("nested/deeper/metrics.csv");
  ex::CsvWriter writer(path, {"epoch", "loss", "note"});
  writer.write_row({1, 0.5, "plain"});
  // Flushed: readable before the writer closes.
  CHECK(read_text(path) == "epoch,loss,note\n1,0.5,plain\n");
  writer.write_row({std::int64_t{2}, 0.123456789, "a, \"quoted\" note"});
  CHECK(read_text(path) == "epoch,loss,note\n1,0.5,plain\n2,0.123457,\"a, \"\"quoted\"\" note\"\n");
  CHECK_THROWS_AS(writer.write_row({1, 2.0}), std::invalid_argument);
}

TEST_CASE("CsvWriter reports an unwritable path", "[csv]") {
  const TemporaryDirectory directory;
  write_plain(directory.file("a_file"), {});
  CHECK_THROWS_AS(ex::CsvWriter(directory.file("a_file/metrics.csv"), {"x"}), std::runtime_error);
}

TEST_CASE("classification_metrics computes accuracy and balanced accuracy", "[evaluation]") {
  // Class 0: 3 of 4 right; class 1: 0 of 1; class 2: absent; class 3: 1 of 1.
  const torch::Tensor targets = torch::tensor({0, 0, 0, 0, 1, 3}, torch::kInt64);
  const torch::Tensor predictions = torch::tensor({0, 0, 0, 1, 0, 3}, torch::kInt64);
  const ex::ClassificationMetrics metrics = ex::classification_metrics(predictions, targets, 4);
  CHECK(metrics.num_examples == 6);
  CHECK(metrics.accuracy == Approx(4.0 / 6.0));
  CHECK(metrics.balanced_accuracy == Approx((0.75 + 0.0 + 1.0) / 3.0));
  CHECK(metrics.per_class_count == std::vector<std::int64_t>{4, 1, 0, 1});
  CHECK(metrics.per_class_accuracy[0] == Approx(0.75));
  CHECK(std::isnan(metrics.per_class_accuracy[2]));
  CHECK(std::isnan(metrics.loss));
  CHECK_THROWS_AS(ex::classification_metrics(predictions, targets, 3), std::invalid_argument);
}

TEST_CASE("evaluate_classifier batches, restores the training mode and averages the loss", "[evaluation]") {
  // The "model" passes its inputs through as logits, so the predictions are known.
  torch::nn::Identity model;
  model->train();
  const torch::Tensor logits = torch::tensor({{2.0F, 0.0F}, {0.0F, 1.0F}, {3.0F, 0.0F}, {1.0F, 0.0F}, {0.0F, 5.0F}});
  const torch::Tensor targets = torch::tensor({0, 1, 1, 0, 1}, torch::kInt64);
  ex::EvaluationOptions options;
  options.batch_size = 2;
  options.loss = [](const torch::Tensor& batch_logits, const torch::Tensor& batch_targets) {
    return torch::nn::functional::cross_entropy(batch_logits, batch_targets);
  };
  bool ran_in_eval_mode = true;
  const ex::ClassificationMetrics metrics = ex::evaluate_classifier(
      *model,
      [&](const torch::Tensor& inputs) {
        ran_in_eval_mode = ran_in_eval_mode && !model->is_training() && !torch::GradMode::is_enabled();
        return model->forward(inputs);
      },
      logits, targets, 2, options);
  CHECK(ran_in_eval_mode);
  CHECK(model->is_training());
  CHECK(metrics.accuracy == Approx(0.8));
  CHECK(metrics.balanced_accuracy == Approx((1.0 + 2.0 / 3.0) / 2.0));
  CHECK(metrics.loss == Approx(torch::nn::functional::cross_entropy(logits, targets).item<double>()));
}

TEST_CASE("save_checkpoint and load_checkpoint round-trip a model and its optimizer", "[checkpoint]") {
  const TemporaryDirectory directory;
  torch::manual_seed(0);
  const auto compute_gradient = [](torch::nn::Linear& linear) {
    linear->zero_grad();
    linear->forward(torch::ones({4, 3})).sum().backward();
  };
  torch::nn::Linear model(3, 2);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  compute_gradient(model);
  optimizer.step();  // creates the momentum buffers
  const std::string checkpoint = directory.file("checkpoint");
  ex::save_checkpoint(checkpoint, *model, &optimizer);
  CHECK(ex::has_checkpoint(checkpoint));

  torch::nn::Linear restored(3, 2);
  torch::optim::SGD restored_optimizer(restored->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  ex::load_checkpoint(checkpoint, *restored, &restored_optimizer);
  CHECK(torch::equal(restored->weight, model->weight));
  CHECK(torch::equal(restored->bias, model->bias));
  // Identical optimizer state: one more identical step keeps the weights identical.
  compute_gradient(model);
  compute_gradient(restored);
  optimizer.step();
  restored_optimizer.step();
  CHECK(torch::allclose(restored->weight, model->weight));

  CHECK_FALSE(ex::has_checkpoint(directory.file("none")));
  CHECK_THROWS_WITH(ex::load_checkpoint(directory.file("none"), *restored),
                    Contains("checkpoint file not found"));
}

TEST_CASE("ProgressBar draws in place and stays silent when disabled", "[progress]") {
  std::ostringstream out;
  {
    ex::ProgressBar bar("epoch 1/1", 3, true, out);
    bar.update(1, 0.5);
    bar.update(3, 0.25);
    bar.finish();
  }
  const std::string text = out.str();
  CHECK(text.front() == '\r');
  CHECK_THAT(text, Contains("epoch 1/1") && Contains("3/3") && Contains("100%") && Contains("loss 0.2500"));
  CHECK(text.back() == '\n');

  std::ostringstream silent;
  {
    ex::ProgressBar bar("quiet", 3, false, silent);
    bar.update(3, 1.0);
    bar.finish();
  }
  CHECK(silent.str().empty());

  std::ostringstream with_rate;
  {
    ex::ProgressBar bar("epoch 1/1", 2, true, with_rate);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bar.update(2, 0.5, 64);
    bar.finish();
  }
  CHECK_THAT(with_rate.str(), Contains("2/2") && Contains(" img/s"));
  CHECK(ex::format_duration(75) == "1:15");
  CHECK(ex::format_duration(3723) == "1:02:03");
}

TEST_CASE("run_python_script runs a script and reports failures", "[python]") {
  if (!fs::exists(ex::kDefaultPython)) {
    WARN("skipped: no " << ex::kDefaultPython);
    return;
  }
  const TemporaryDirectory directory;
  const std::string script = directory.file("script.py");
  std::ofstream(script) << "import sys\n"
                           "open(sys.argv[1], 'w').write('ran')\n"
                           "sys.exit(int(sys.argv[2]))\n";
  const std::string marker = directory.file("marker with space.txt");

  ex::run_python_script(script, {marker, "0"});
  CHECK(read_text(marker) == "ran");
  CHECK_THROWS_WITH(ex::run_python_script(script, {marker, "3"}), Contains("exit status 3"));
  CHECK_THROWS_WITH(ex::run_python_script(directory.file("absent.py"), {}), Contains("script not found"));
  CHECK_THROWS_WITH(ex::run_python_script(script, {}, directory.file("no_python")),
                    Contains("interpreter not found"));
}

TEST_CASE("CLI checks accept valid numbers and explain rejections", "[cli]") {
  const auto parse = [](const CLI::Validator& check, const std::string& value) {
    CLI::App app;
    double option = 0.0;
    app.add_option("--x", option)->check(check);
    const std::vector<std::string> reversed_arguments = {value, "--x"};  // CLI11 parses a reversed vector
    std::vector<std::string> arguments = reversed_arguments;
    app.parse(arguments);
    return option;
  };
  CHECK(parse(ex::at_least(1), "3") == 3.0);
  CHECK_THROWS_WITH(parse(ex::at_least(1), "0"), Contains("must be >= 1, got '0'"));
  CHECK_THROWS_WITH(parse(ex::greater_than(0), "0"), Contains("must be > 0"));
  CHECK(parse(ex::in_range(0, 1), "1") == 1.0);
  CHECK_THROWS_WITH(parse(ex::in_range(0, 1, false), "1"), Contains("must be in [0, 1)"));
  CHECK_THROWS_WITH(parse(ex::at_least(0), "abc"), Contains("must be >= 0, got 'abc'"));
}
