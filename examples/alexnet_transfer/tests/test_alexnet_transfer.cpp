// Tests of the AlexNet transfer example without Python: the CIFAR-10 reader, preprocessing,
// the architecture and its parameter names, the weight loader's errors, freezing, the
// feature cache and every --loss.

#include "alexnet_transfer/alexnet.hpp"
#include "alexnet_transfer/cifar10.hpp"
#include "alexnet_transfer/transfer.hpp"
#include "common/tests/temporary_directory.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
namespace alexnet = torchloss::examples::alexnet;
namespace cifar = torchloss::examples::cifar10;
namespace tr = torchloss::examples::transfer;
using Catch::Matchers::Contains;

namespace {

using torchloss::examples::testing::TemporaryDirectory;

/// Smallest input size the tests run AlexNet at (fast on a CPU).
constexpr std::int64_t kTestImageSize = 64;

/// Learnable synthetic images: class c has its own colour and stripe direction, plus noise.
std::pair<torch::Tensor, torch::Tensor> synthetic_images(std::int64_t n, std::uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor labels = torch::arange(n, torch::kInt64).remainder(cifar::kNumClasses);
  const torch::Tensor colour = torch::stack({labels * 25 % 256, 255 - labels * 25 % 256, labels * 97 % 256}, 1)
                                   .to(torch::kFloat)
                                   .view({n, 3, 1, 1});
  const torch::Tensor coordinate = torch::arange(32, torch::kFloat);
  const torch::Tensor vertical = (labels.remainder(2) == 0).view({n, 1, 1, 1});
  const torch::Tensor stripes_x = ((coordinate / 3).floor().remainder(2) * 120 - 60).view({1, 1, 1, 32});
  const torch::Tensor stripes_y = ((coordinate / 3).floor().remainder(2) * 120 - 60).view({1, 1, 32, 1});
  const torch::Tensor stripes =
      torch::where(vertical, stripes_x.expand({n, 1, 32, 32}), stripes_y.expand({n, 1, 32, 32}));
  const torch::Tensor noise = torch::randint(-40, 41, {n, 3, 32, 32}).to(torch::kFloat);
  const torch::Tensor images = (colour + stripes + noise).clamp(0, 255).to(torch::kUInt8);
  return {images, labels};
}

/// Encodes records: label byte, then the image's 3072 bytes.
std::vector<std::uint8_t> encode_records(const torch::Tensor& images, const torch::Tensor& labels) {
  std::vector<std::uint8_t> bytes;
  const torch::Tensor flat = images.reshape({images.size(0), -1}).contiguous();
  for (std::int64_t i = 0; i < images.size(0); ++i) {
    bytes.push_back(static_cast<std::uint8_t>(labels[i].item<std::int64_t>()));
    const std::uint8_t* row = flat[i].data_ptr<std::uint8_t>();
    bytes.insert(bytes.end(), row, row + flat.size(1));
  }
  return bytes;
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

/// Writes a complete CIFAR-10 folder: `per_file` training images in each of the 5 files, `test` test images.
void write_cifar_folder(const std::string& directory, std::int64_t per_file, std::int64_t test) {
  fs::create_directories(directory);
  auto [images, labels] = synthetic_images(5 * per_file + test, 7);
  for (std::int64_t f = 0; f < 5; ++f) {
    write_bytes((fs::path(directory) / cifar::kTrainFiles[static_cast<std::size_t>(f)]).string(),
                encode_records(images.slice(0, f * per_file, (f + 1) * per_file),
                               labels.slice(0, f * per_file, (f + 1) * per_file)));
  }
  write_bytes((fs::path(directory) / "test_batch.bin").string(),
              encode_records(images.slice(0, 5 * per_file), labels.slice(0, 5 * per_file)));
}

/// Expects `body` to throw an exception whose message contains every string of `parts`.
template <typename Body>
void require_error(Body&& body, const std::vector<std::string>& parts) {
  try {
    body();
  } catch (const std::exception& error) {
    const std::string message = error.what();
    for (const std::string& part : parts) CHECK_THAT(message, Contains(part));
    return;
  }
  FAIL("no exception thrown");
}

/// Copies of every parameter, by name.
std::map<std::string, torch::Tensor> snapshot(const torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> copies;
  for (const auto& item : model.named_parameters()) copies[item.key()] = item.value().detach().clone();
  return copies;
}

/// Makes `target`'s parameters equal to `source`'s.
void copy_parameters(const torch::nn::Module& source, torch::nn::Module& target) {
  const torch::NoGradGuard no_grad;
  const auto from = source.named_parameters();
  for (auto& item : target.named_parameters()) item.value().copy_(from[item.key()]);
}

/// Re-initialises the backbone as a stand-in for pretrained weights: He's normal
/// initialisation of every kernel and weight matrix, zero biases, then classifier.4 scaled so
/// the penultimate features of `images` have unit RMS (ReLU is positively homogeneous). With
/// LibTorch's default initialisation they shrink ~1000-fold over the 7 layers and the head
/// barely learns; real ImageNet features are of order 1.
void stand_in_backbone(tr::TransferAlexNet& model, const torch::Tensor& images) {
  const torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    if (item.key().rfind("classifier.6.", 0) == 0) continue;
    if (item.value().dim() > 1) {
      torch::nn::init::kaiming_normal_(item.value(), 0.0, torch::kFanIn, torch::kReLU);
    } else {
      item.value().zero_();
    }
  }
  model->eval();
  tr::Preprocessing preprocessing;
  preprocessing.image_size = kTestImageSize;
  const torch::Tensor penultimate =
      model->classifier->penultimate(model->pooled_features(tr::preprocess(images, preprocessing)));
  model->classifier->linear4->weight.div_(penultimate.pow(2).mean().sqrt());
}

tr::BatchOptions batch_options(std::int64_t batch_size) {
  tr::BatchOptions options;
  options.batch_size = batch_size;
  options.preprocessing.image_size = kTestImageSize;
  return options;
}

/// torchvision's AlexNet parameters, in order, with their shapes.
const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& torchvision_parameters() {
  static const std::vector<std::pair<std::string, std::vector<std::int64_t>>> parameters = {
      {"features.0.weight", {64, 3, 11, 11}},   {"features.0.bias", {64}},
      {"features.3.weight", {192, 64, 5, 5}},   {"features.3.bias", {192}},
      {"features.6.weight", {384, 192, 3, 3}},  {"features.6.bias", {384}},
      {"features.8.weight", {256, 384, 3, 3}},  {"features.8.bias", {256}},
      {"features.10.weight", {256, 256, 3, 3}}, {"features.10.bias", {256}},
      {"classifier.1.weight", {4096, 9216}},    {"classifier.1.bias", {4096}},
      {"classifier.4.weight", {4096, 4096}},    {"classifier.4.bias", {4096}},
      {"classifier.6.weight", {1000, 4096}},    {"classifier.6.bias", {1000}}};
  return parameters;
}

/// A dict with every AlexNet name but tiny tensors, for the loader's error paths.
c10::Dict<std::string, torch::Tensor> tiny_state_dict() {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& entry : torchvision_parameters()) dict.insert(entry.first, torch::zeros({1}));
  return dict;
}

void save_dict(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CIFAR-10 reader

TEST_CASE("read_batch_file decodes label bytes and R, G, B planes", "[cifar10]") {
  TemporaryDirectory directory;
  std::vector<std::uint8_t> bytes;
  for (int record = 0; record < 3; ++record) {
    bytes.push_back(static_cast<std::uint8_t>(record * 4));  // labels 0, 4, 8
    for (int i = 0; i < 3072; ++i) bytes.push_back(static_cast<std::uint8_t>((record + i) % 251));
  }
  write_bytes(directory.file("batch.bin"), bytes);

  const cifar::Records records = cifar::read_batch_file(directory.file("batch.bin"));
  REQUIRE(records.images.sizes() == torch::IntArrayRef({3, 3, 32, 32}));
  CHECK(records.images.scalar_type() == torch::kUInt8);
  CHECK(records.labels.equal(torch::tensor({0, 4, 8}, torch::kInt64)));
  // Record 1, green plane (c = 1), row 2, column 5: byte 1 + 1024 + 2 * 32 + 5 of the record.
  CHECK(records.images[1][1][2][5].item<int>() == (1 + 1024 + 2 * 32 + 5) % 251);
  CHECK(records.images[2][2][31][31].item<int>() == (2 + 3071) % 251);

  const cifar::Records first = cifar::read_batch_file(directory.file("batch.bin"), /*limit=*/2);
  CHECK(first.labels.size(0) == 2);
}

TEST_CASE("Cifar10 loads both splits, in file order, with limits and the archive's folder", "[cifar10]") {
  TemporaryDirectory directory;
  const std::string folder = directory.file("cifar-10-batches-bin");
  write_cifar_folder(folder, /*per_file=*/4, /*test=*/6);
  const auto [images, labels] = synthetic_images(26, 7);

  const cifar::Cifar10 train(folder, cifar::Cifar10::Split::kTrain);
  CHECK(*train.size() == 20);
  CHECK(train.images().equal(images.slice(0, 0, 20)));
  CHECK(train.targets().equal(labels.slice(0, 0, 20)));
  CHECK(train.class_counts().sum().item<std::int64_t>() == 20);

  // The folder the archive was unpacked in works too.
  const cifar::Cifar10 test(directory.str(), cifar::Cifar10::Split::kTest);
  CHECK(test.images().equal(images.slice(0, 20)));

  // --limit 6 reads file 1 (4 records) and 2 records of file 2.
  const cifar::Cifar10 limited(folder, cifar::Cifar10::Split::kTrain, 6);
  CHECK(limited.targets().equal(labels.slice(0, 0, 6)));

  // A torch::data dataset: batches through the stock data loader.
  auto loader = torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
      cifar::Cifar10(folder, cifar::Cifar10::Split::kTrain).map(torch::data::transforms::Stack<>()), 8);
  auto batch = loader->begin();
  CHECK(batch->data.sizes() == torch::IntArrayRef({8, 3, 32, 32}));
  CHECK(batch->target.equal(labels.slice(0, 0, 8)));
}

TEST_CASE("Cifar10 rejects missing and malformed data with clear errors", "[cifar10]") {
  TemporaryDirectory directory;
  const std::string folder = directory.file("batches");
  using Split = cifar::Cifar10::Split;

  require_error([&] { cifar::Cifar10(directory.file("nowhere"), Split::kTrain); },
                {"CIFAR-10 directory not found", "nowhere"});

  write_cifar_folder(folder, 2, 2);
  fs::remove(fs::path(folder) / "data_batch_4.bin");
  // Even with a limit that would not read it.
  require_error([&] { cifar::Cifar10(folder, Split::kTrain, 1); }, {"CIFAR-10 file not found", "data_batch_4.bin"});

  write_bytes((fs::path(folder) / "test_batch.bin").string(), std::vector<std::uint8_t>(3073 * 2 + 100, 1));
  require_error([&] { cifar::Cifar10(folder, Split::kTest); },
                {"test_batch.bin", "6246 bytes", "not a whole number of 3073-byte records"});

  write_bytes((fs::path(folder) / "test_batch.bin").string(), {});
  require_error([&] { cifar::Cifar10(folder, Split::kTest); }, {"test_batch.bin", "is empty"});

  std::vector<std::uint8_t> bad_label(3073 * 3, 0);
  bad_label[3073 * 2] = 12;
  write_bytes((fs::path(folder) / "test_batch.bin").string(), bad_label);
  require_error([&] { cifar::Cifar10(folder, Split::kTest); }, {"test_batch.bin", "record 2 has label 12", "[0, 9]"});
}

// ---------------------------------------------------------------------------------------------
// Preprocessing

TEST_CASE("preprocess standardises with CIFAR-10's statistics and resizes", "[preprocess]") {
  torch::Tensor images = torch::empty({2, 3, 32, 32}, torch::kUInt8);
  images.select(1, 0).fill_(200);
  images.select(1, 1).fill_(100);
  images.select(1, 2).fill_(0);
  tr::Preprocessing preprocessing;
  preprocessing.image_size = 70;
  const torch::Tensor x = tr::preprocess(images, preprocessing);
  REQUIRE(x.sizes() == torch::IntArrayRef({2, 3, 70, 70}));
  CHECK(x.scalar_type() == torch::kFloat);
  const double values[3] = {200, 100, 0};
  for (int c = 0; c < 3; ++c) {
    const double expected = (values[c] / 255.0 - cifar::kChannelMean[static_cast<std::size_t>(c)]) /
                            cifar::kChannelStd[static_cast<std::size_t>(c)];
    CHECK(x.select(1, c).min().item<double>() == Approx(expected).epsilon(1e-5));
    CHECK(x.select(1, c).max().item<double>() == Approx(expected).epsilon(1e-5));
  }

  preprocessing.image_size = 62;
  require_error([&] { tr::preprocess(images, preprocessing); }, {"image_size must be >= 63"});
  require_error([&] { tr::preprocess(images.to(torch::kFloat), tr::Preprocessing{}); }, {"uint8"});
}

TEST_CASE("preprocess augments with seeded random crops and flips", "[preprocess]") {
  const torch::Tensor images = synthetic_images(16, 3).first;
  tr::Preprocessing plain;
  plain.image_size = kTestImageSize;
  tr::Preprocessing augmented = plain;
  augmented.augment = true;
  torch::manual_seed(5);
  const torch::Tensor first = tr::preprocess(images, augmented);
  torch::manual_seed(5);
  const torch::Tensor again = tr::preprocess(images, augmented);
  CHECK(first.equal(again));
  CHECK(first.sizes() == torch::IntArrayRef({16, 3, kTestImageSize, kTestImageSize}));
  CHECK_FALSE(first.equal(tr::preprocess(images, plain)));
}

// ---------------------------------------------------------------------------------------------
// The model and the weight loader

TEST_CASE("AlexNet has torchvision's parameter names and shapes", "[alexnet]") {
  alexnet::AlexNet model;
  const auto parameters = model->named_parameters();
  REQUIRE(parameters.size() == torchvision_parameters().size());
  std::size_t index = 0;
  for (const auto& item : parameters) {
    CHECK(item.key() == torchvision_parameters()[index].first);
    CHECK(item.value().sizes() == torch::IntArrayRef(torchvision_parameters()[index].second));
    ++index;
  }
  CHECK(model->named_buffers().size() == 0);

  model->eval();
  const torch::NoGradGuard no_grad;
  const torch::Tensor images = torch::randn({2, 3, kTestImageSize, kTestImageSize});
  CHECK(model->pooled_features(images).sizes() == torch::IntArrayRef({2, alexnet::kPooledFeatures}));
  CHECK(model->forward(images).sizes() == torch::IntArrayRef({2, 1000}));
  CHECK(model->forward(torch::randn({1, 3, 224, 224})).sizes() == torch::IntArrayRef({1, 1000}));
  require_error([&] { model->forward(torch::randn({1, 3, 40, 40})); }, {"at least 63x63"});
}

TEST_CASE("load_state_dict_file names the first mismatch and leaves the model untouched", "[alexnet][weights]") {
  TemporaryDirectory directory;
  alexnet::AlexNet model;
  const auto before = snapshot(*model);
  const auto unchanged = [&] {
    for (const auto& item : model->named_parameters()) {
      if (!item.value().equal(before.at(item.key()))) return false;
    }
    return true;
  };

  require_error([&] { alexnet::load_state_dict_file(*model, directory.file("absent.pt")); },
                {"weights file not found", "absent.pt"});

  auto missing = tiny_state_dict();
  REQUIRE(missing.erase("features.3.bias") == 1);
  save_dict(directory.file("missing.pt"), missing);
  require_error([&] { alexnet::load_state_dict_file(*model, directory.file("missing.pt")); },
                {"missing.pt", "missing key 'features.3.bias'", "[192]"});

  auto unexpected = tiny_state_dict();
  unexpected.insert("features.13.weight", torch::zeros({2}));
  save_dict(directory.file("unexpected.pt"), unexpected);
  require_error([&] { alexnet::load_state_dict_file(*model, directory.file("unexpected.pt")); },
                {"unexpected key 'features.13.weight'"});

  save_dict(directory.file("shapes.pt"), tiny_state_dict());
  require_error([&] { alexnet::load_state_dict_file(*model, directory.file("shapes.pt")); },
                {"shape mismatch for 'features.0.weight'", "the file has [1]", "the model expects [64, 3, 11, 11]"});

  save_dict(directory.file("tensor.pt"), torch::zeros({3}));
  require_error([&] { alexnet::load_state_dict_file(*model, directory.file("tensor.pt")); },
                {"not a dict of tensors", "dict(model.state_dict())"});

  c10::Dict<std::string, std::int64_t> numbers;
  numbers.insert("features.0.weight", 3);
  save_dict(directory.file("numbers.pt"), numbers);
  require_error([&] { alexnet::load_state_dict_file(*model, directory.file("numbers.pt")); },
                {"'features.0.weight' is a Int, not a tensor"});

  write_bytes(directory.file("garbage.pt"), std::vector<std::uint8_t>(64, 7));
  require_error([&] { alexnet::load_state_dict_file(*model, directory.file("garbage.pt")); },
                {"cannot read", "garbage.pt", "pickled dict of tensors"});
  CHECK(unchanged());
}

TEST_CASE("save_state_dict_file and load_state_dict_file round-trip parameters and buffers", "[alexnet][weights]") {
  TemporaryDirectory directory;
  torch::nn::Sequential source(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  source->forward(torch::randn({8, 4}));  // moves the running statistics
  alexnet::save_state_dict_file(*source, directory.file("small.pt"));
  torch::nn::Sequential target(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  alexnet::load_state_dict_file(*target, directory.file("small.pt"));
  for (const auto& item : source->named_parameters()) CHECK(item.value().equal(target->named_parameters()[item.key()]));
  for (const auto& item : source->named_buffers()) CHECK(item.value().equal(target->named_buffers()[item.key()]));
}

// ---------------------------------------------------------------------------------------------
// Freezing, the optimizer, caching

TEST_CASE("a frozen backbone stays bit-identical while the new head trains", "[transfer][freeze]") {
  torch::manual_seed(1);
  tr::TransferAlexNet model = tr::make_transfer_model("", cifar::kNumClasses, tr::Trainable::kHead);
  CHECK(model->classifier->last->weight.sizes() == torch::IntArrayRef({10, 4096}));
  for (const auto& item : model->named_parameters()) {
    INFO(item.key());
    CHECK(item.value().requires_grad() == (item.key().rfind("classifier.6.", 0) == 0));
  }
  const auto optimizer = tr::make_optimizer(model, 1e-2, 0.1);
  REQUIRE(optimizer->param_groups().size() == 1);
  CHECK(optimizer->param_groups()[0].params().size() == 2);

  // Frozen layers stay in eval mode (their dropout is off) whatever train() says.
  model->train();
  CHECK_FALSE(model->classifier->dropout0->is_training());
  CHECK_FALSE(model->classifier->dropout3->is_training());
  CHECK(model->classifier->last->is_training());

  const auto before = snapshot(*model);
  const auto [images, labels] = synthetic_images(48, 2);
  tr::TrainingLoss loss(tr::LossSettings{}, torch::bincount(labels, {}, 10));
  tr::BatchOptions options = batch_options(16);
  options.preprocessing.augment = true;
  for (int epoch = 0; epoch < 2; ++epoch) tr::train_epoch(model, loss, *optimizer, {images, labels, false}, options);

  for (const auto& item : model->named_parameters()) {
    INFO(item.key());
    if (item.key().rfind("classifier.6.", 0) == 0) {
      CHECK_FALSE(item.value().equal(before.at(item.key())));
    } else {
      CHECK(item.value().equal(before.at(item.key())));  // bit-identical
    }
  }
}

TEST_CASE("trainable classifier freezes the convolutions and trains classifier.*", "[transfer][freeze]") {
  torch::manual_seed(2);
  tr::TransferAlexNet model = tr::make_transfer_model("", cifar::kNumClasses, tr::Trainable::kClassifier);
  const auto optimizer = tr::make_optimizer(model, 1e-2, 0.1);
  REQUIRE(optimizer->param_groups().size() == 2);
  CHECK(static_cast<torch::optim::SGDOptions&>(optimizer->param_groups()[1].options()).lr() == Approx(1e-3));
  CHECK(optimizer->param_groups()[1].params().size() == 4);
  model->train();
  CHECK(model->classifier->dropout0->is_training());  // dropout trains in the trainable part
  CHECK_FALSE(model->features->ptr(0)->is_training());

  const auto before = snapshot(*model);
  const auto [images, labels] = synthetic_images(32, 2);
  tr::TrainingLoss loss(tr::LossSettings{}, torch::bincount(labels, {}, 10));
  tr::train_epoch(model, loss, *optimizer, {images, labels, false}, batch_options(16));
  for (const auto& item : model->named_parameters()) {
    INFO(item.key());
    const bool trains = item.key().rfind("classifier.", 0) == 0;
    CHECK(item.value().equal(before.at(item.key())) != trains);
  }
}

TEST_CASE("finetuning trains every layer, the pretrained ones at the scaled learning rate", "[transfer][freeze]") {
  torch::manual_seed(3);
  tr::TransferAlexNet model = tr::make_transfer_model("", cifar::kNumClasses, tr::Trainable::kAll);
  const auto optimizer = tr::make_optimizer(model, 1e-2, 0.1);
  REQUIRE(optimizer->param_groups().size() == 2);
  CHECK(optimizer->param_groups()[1].params().size() == 14);
  CHECK(model->frozen_parameters().empty());
  const auto before = snapshot(*model);
  const auto [images, labels] = synthetic_images(8, 2);
  tr::TrainingLoss loss(tr::LossSettings{}, torch::bincount(labels, {}, 10));
  tr::train_epoch(model, loss, *optimizer, {images, labels, false}, batch_options(8));
  for (const auto& item : model->named_parameters()) {
    INFO(item.key());
    CHECK_FALSE(item.value().equal(before.at(item.key())));
  }
  torch::manual_seed(3);
  require_error([&] { tr::cache_frozen_outputs(model, images, labels, batch_options(8)); }, {"cannot cache"});
}

TEST_CASE("training on cached features equals training on images", "[transfer][cache]") {
  // kHead caches the penultimate features; kClassifier the pooled ones, with classifier.0's and
  // classifier.3's dropout still drawn each step.
  for (const tr::Trainable trainable : {tr::Trainable::kHead, tr::Trainable::kClassifier}) {
    INFO(tr::to_string(trainable));
    torch::manual_seed(4);
    tr::TransferAlexNet uncached = tr::make_transfer_model("", cifar::kNumClasses, trainable);
    tr::TransferAlexNet cached = tr::make_transfer_model("", cifar::kNumClasses, trainable);
    copy_parameters(*uncached, *cached);
    const auto [images, labels] = synthetic_images(32, 5);
    const tr::BatchOptions options = batch_options(16);
    const tr::InputSet cache = tr::cache_frozen_outputs(cached, images, labels, options);
    CHECK(cache.cached);
    CHECK(cache.inputs.sizes() == torch::IntArrayRef({32, cached->frozen_output_features()}));

    tr::TrainingLoss loss_a(tr::LossSettings{}, torch::bincount(labels, {}, 10));
    tr::TrainingLoss loss_b(tr::LossSettings{}, torch::bincount(labels, {}, 10));
    const auto optimizer_a = tr::make_optimizer(uncached, 1e-2, 1.0);
    const auto optimizer_b = tr::make_optimizer(cached, 1e-2, 1.0);
    torch::manual_seed(6);
    const tr::EpochResult a = tr::train_epoch(uncached, loss_a, *optimizer_a, {images, labels, false}, options);
    torch::manual_seed(6);
    const tr::EpochResult b = tr::train_epoch(cached, loss_b, *optimizer_b, cache, options);
    CHECK(a.loss == Approx(b.loss).epsilon(1e-4));
    const auto after_a = uncached->named_parameters();
    for (const auto& item : cached->named_parameters()) {
      INFO(item.key());
      CHECK(torch::allclose(item.value(), after_a[item.key()], 1e-4, 1e-6));
    }

    const tr::Evaluation on_images = tr::evaluate(uncached, {images, labels, false}, options);
    const tr::Evaluation on_cache = tr::evaluate(cached, cache, options);
    CHECK(on_images.metrics.loss == Approx(on_cache.metrics.loss).epsilon(1e-4));
    CHECK(on_images.confusion.equal(on_cache.confusion));
  }
}

TEST_CASE("evaluate scores in eval mode and returns the confusion matrix", "[transfer]") {
  torch::manual_seed(8);
  tr::TransferAlexNet model = tr::make_transfer_model("", cifar::kNumClasses, tr::Trainable::kClassifier);
  const auto [images, labels] = synthetic_images(30, 9);
  model->train();
  const tr::Evaluation first = tr::evaluate(model, {images, labels, false}, batch_options(7));
  const tr::Evaluation second = tr::evaluate(model, {images, labels, false}, batch_options(30));
  CHECK(model->is_training());                     // mode restored
  CHECK(first.confusion.equal(second.confusion));  // no dropout: deterministic
  CHECK(first.confusion.sizes() == torch::IntArrayRef({10, 10}));
  CHECK(first.confusion.sum().item<std::int64_t>() == 30);
  CHECK(first.confusion.sum(1).equal(torch::bincount(labels, {}, 10)));
  CHECK(first.confusion.diagonal().sum().item<double>() / 30.0 == Approx(first.metrics.accuracy));
  CHECK(first.metrics.loss > 0);
}

// ---------------------------------------------------------------------------------------------
// Losses

TEST_CASE("TrainingLoss builds every loss with weights from the class counts", "[transfer][loss]") {
  const torch::Tensor counts = torch::tensor({50, 10, 10, 10, 10, 10, 10, 10, 10, 5}, torch::kInt64);
  for (const std::string& name : tr::loss_names()) CHECK(tr::to_string(tr::parse_loss(name)) == name);
  require_error([] { tr::parse_loss("hinge"); }, {"unknown loss 'hinge'"});

  tr::LossSettings settings;
  settings.kind = tr::LossKind::kWeightedCrossEntropy;
  const tr::TrainingLoss effective(settings, counts);
  CHECK(effective->class_weights().allclose(torchloss::class_weights::effective_number(counts, 0.999)));
  settings.class_weights = "inverse";
  settings.kind = tr::LossKind::kWeightedFocal;
  const tr::TrainingLoss inverse(settings, counts);
  CHECK(inverse->class_weights().allclose(torchloss::class_weights::inverse_frequency(counts)));
  CHECK(inverse->class_weights()[9].item<double>() > inverse->class_weights()[0].item<double>());

  settings.kind = tr::LossKind::kCrossEntropyCenter;
  const tr::TrainingLoss center(settings, counts);
  CHECK(center->named_buffers().contains("center.centers"));
  CHECK(center->named_buffers()["center.centers"].sizes() == torch::IntArrayRef({10, 4096}));
}

TEST_CASE("every loss trains the head on learnable data", "[transfer][loss]") {
  const auto [images, labels] = synthetic_images(60, 11);
  const tr::BatchOptions options = batch_options(15);
  torch::manual_seed(12);
  // ce+center needs trainable layers under the 4096-d features for its center term to act:
  // it trains classifier.* on cached pooled features, in full batches (each step updates 54.6M
  // parameters); the other losses train the head on cached penultimate features.
  tr::TransferAlexNet classifier_model = tr::make_transfer_model("", cifar::kNumClasses, tr::Trainable::kClassifier);
  stand_in_backbone(classifier_model, images);
  tr::TransferAlexNet head_model = tr::make_transfer_model("", cifar::kNumClasses, tr::Trainable::kHead);
  copy_parameters(*classifier_model, *head_model);
  const tr::InputSet pooled = tr::cache_frozen_outputs(classifier_model, images, labels, options);
  const tr::InputSet penultimate = tr::cache_frozen_outputs(head_model, images, labels, options);

  for (const std::string& name : tr::loss_names()) {
    INFO("--loss " << name);
    tr::LossSettings settings;
    settings.kind = tr::parse_loss(name);
    settings.center_lambda = 1e-3;
    const bool center = settings.kind == tr::LossKind::kCrossEntropyCenter;
    tr::TransferAlexNet& model = center ? classifier_model : head_model;
    const tr::InputSet& data = center ? pooled : penultimate;
    torch::manual_seed(13);
    model->prepare(cifar::kNumClasses, model->trainable());  // a fresh head
    tr::TrainingLoss loss(settings, torch::bincount(labels, {}, 10));
    const auto optimizer = tr::make_optimizer(model, 1e-3, /*backbone_lr_scale=*/0.1);
    std::vector<double> losses;
    tr::EpochResult last;
    for (int epoch = 0; epoch < 12; ++epoch) {
      last = tr::train_epoch(model, loss, *optimizer, data, center ? batch_options(data.size()) : options);
      losses.push_back(last.loss);
    }
    const double accuracy = tr::evaluate(model, data, options).metrics.accuracy;
    INFO("first epoch " << losses.front() << ", last " << losses.back() << ", running accuracy " << last.accuracy
                        << ", eval accuracy " << accuracy);
    CHECK(losses.back() < 0.8 * losses.front());
    CHECK(accuracy > 0.5);
  }
}
