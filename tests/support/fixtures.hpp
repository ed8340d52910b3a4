#pragma once
// Reads the fixture files that tests/reference/generate_fixtures.py writes: a plain dict
// {name: tensor} saved by Python's torch.save.
#include <torch/torch.h>
#include <torchloss/detail/compat.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <string>

#ifndef TORCHLOSS_FIXTURE_DIR
#error "TORCHLOSS_FIXTURE_DIR must name the tests/fixtures directory"
#endif

namespace torchloss_test {

class Fixture {
 public:
  explicit Fixture(const std::string& file) {
    const std::string path = std::string(TORCHLOSS_FIXTURE_DIR) + "/" + file;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open fixture " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& item : torch::pickle_load(bytes).toGenericDict()) {
      tensors_[item.key().toStringRef()] = item.value().toTensor();
    }
  }
  bool has(const std::string& key) const { return tensors_.count(key) != 0; }
  torch::Tensor operator[](const std::string& key) const {
    const auto it = tensors_.find(key);
    if (it == tensors_.end()) throw std::runtime_error("fixture has no key " + key);
    return it->second;
  }
  torch::Tensor get_or_undefined(const std::string& key) const { return has(key) ? (*this)[key] : torch::Tensor(); }
  int64_t count() const { return (*this)["count"].item<int64_t>(); }

 private:
  std::map<std::string, torch::Tensor> tensors_;
};

/// The dtypes every loss is tested in, with the fixture tag of the rounding its expected
/// values were computed for, and the tolerances of a result in that dtype.
struct DtypeCase {
  torch::ScalarType dtype;
  const char* tag;
  double rtol, atol;
};
inline const std::vector<DtypeCase>& dtype_cases() {
  static const std::vector<DtypeCase> cases = {
      {torch::kDouble, "f64", 1e-10, 1e-12},
      {torch::kFloat, "f32", 2e-5, 1e-6},
      {torch::kHalf, "f16", 4e-3, 1e-3},
      {torch::kBFloat16, "bf16", 3e-2, 1e-2},
  };
  return cases;
}

/// The at::Reduction code stored in fixtures as the torchloss reduction option.
inline torchloss::reduction_t reduction_from_code(int64_t code) {
  if (code == 0) return torch::kNone;
  if (code == 1) return torch::kMean;
  return torch::kSum;
}

}  // namespace torchloss_test
