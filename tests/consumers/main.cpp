// What a user of torchloss writes first: one loss through the umbrella header, checked
// against LibTorch's own cross entropy. Exits non-zero on a mismatch.
#include <torchloss/torchloss.hpp>

#include <torch/torch.h>

#include <cstdlib>
#include <iostream>

#include "expected_version.hpp"

int main() {
  torch::manual_seed(0);
  const auto logits = torch::randn({16, 5}, torch::kDouble);
  const auto target = torch::randint(0, 5, {16}, torch::kLong);

  const auto loss = torchloss::functional::weighted_cross_entropy(logits, target);
  const auto expected = torch::nn::functional::cross_entropy(logits, target);

  std::cout << "torchloss " << TORCHLOSS_VERSION_MAJOR << '.' << TORCHLOSS_VERSION_MINOR << '.'
            << TORCHLOSS_VERSION_PATCH << ": weighted_cross_entropy = " << loss.item<double>()
            << ", torch cross_entropy = " << expected.item<double>() << '\n';
  if (!torch::allclose(loss, expected, /*rtol=*/1e-10, /*atol=*/1e-12)) {
    std::cerr << "mismatch: torchloss::functional::weighted_cross_entropy differs from "
                 "torch::nn::functional::cross_entropy\n";
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
