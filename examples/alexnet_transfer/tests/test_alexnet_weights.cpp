// The C++ AlexNet against torchvision's: weights exported by tools/export_torchvision_weights.py
// --random (the CTest fixture example_alexnet_transfer_export_random_weights) load by name
// and give torchvision's logits on the inputs the script saved with --check-io.

#include "alexnet_transfer/alexnet.hpp"
#include "alexnet_transfer/transfer.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace alexnet = torchloss::examples::alexnet;
namespace tr = torchloss::examples::transfer;
using Catch::Matchers::Contains;

namespace {

const std::string kWeights = TORCHLOSS_ALEXNET_RANDOM_WEIGHTS;
const std::string kCheckIo = TORCHLOSS_ALEXNET_CHECK_IO;

/// The dict of tensors Python's torch.save wrote to `path`.
c10::Dict<c10::IValue, c10::IValue> load_python_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

torch::Tensor entry(const c10::Dict<c10::IValue, c10::IValue>& dict, const std::string& key) {
  return dict.at(c10::IValue(key)).toTensor();
}

/// ‖a − b‖ / ‖b‖.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>() /
         b.to(torch::kDouble).norm().item<double>();
}

}  // namespace

TEST_CASE("the C++ AlexNet gives torchvision's logits on torchvision's weights", "[alexnet][torchvision]") {
  alexnet::AlexNet model;
  alexnet::load_state_dict_file(*model, kWeights);
  model->eval();
  const auto check_io = load_python_dict(kCheckIo);
  const torch::NoGradGuard no_grad;
  for (const std::string suffix : {"", "_small"}) {
    const torch::Tensor input = entry(check_io, "input" + suffix);
    const torch::Tensor expected = entry(check_io, "logits" + suffix);
    INFO("input " << input.sizes());
    const torch::Tensor logits = model->forward(input);
    REQUIRE(logits.sizes() == expected.sizes());
    const double error = relative_error(logits, expected);
    INFO("relative error " << error);
    CHECK(error < 1e-4);
    CHECK(logits.argmax(1).equal(expected.argmax(1)));
  }
}

TEST_CASE("make_transfer_model keeps the loaded backbone and adds a 10-way head", "[alexnet][torchvision]") {
  torch::manual_seed(0);
  tr::TransferAlexNet model = tr::make_transfer_model(kWeights, 10, tr::Trainable::kHead);
  alexnet::AlexNet reference;
  alexnet::load_state_dict_file(*reference, kWeights);
  const auto loaded = reference->named_parameters();
  for (const auto& item : model->named_parameters()) {
    INFO(item.key());
    if (item.key().rfind("classifier.6.", 0) == 0) {
      CHECK(item.value().size(0) == 10);
    } else {
      CHECK(item.value().equal(loaded[item.key()]));
    }
  }
  // The 4096-d penultimate features are torchvision's (classifier.6's input).
  model->eval();
  reference->eval();
  const torch::NoGradGuard no_grad;
  const torch::Tensor images = torch::randn({2, 3, 64, 64});
  CHECK(model->frozen_forward(images).equal(reference->classifier->penultimate(reference->pooled_features(images))));
}

TEST_CASE("a 1000-class file does not load into the 10-class model", "[alexnet][torchvision]") {
  tr::TransferAlexNet model;
  model->prepare(10, tr::Trainable::kHead);
  try {
    alexnet::load_state_dict_file(*model, kWeights);
    FAIL("no exception thrown");
  } catch (const std::runtime_error& error) {
    CHECK_THAT(error.what(), Contains("shape mismatch for 'classifier.6.weight'") && Contains("[1000, 4096]") &&
                                 Contains("[10, 4096]"));
  }
}
