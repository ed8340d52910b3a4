// A consumer of torchloss::cuda: the fused kernels must be compiled into the program and
// registered at static initialisation, with or without a GPU; with one, center_loss runs them
// and must agree with the CPU path. Exits non-zero on a failure.
#include <torchloss/torchloss.hpp>

#include <torch/torch.h>

#include <iostream>

#include "expected_version.hpp"

int main() {
  if (!torchloss::detail::center_loss_cuda_kernels_registered()) {
    std::cerr << "torchloss::cuda is linked but its kernels are not registered\n";
    return 1;
  }
  torch::manual_seed(0);
  const auto features = torch::randn({8, 4});
  const auto labels = torch::randint(0, 3, {8}, torch::kLong);
  const auto centers = torch::randn({3, 4});
  const auto on_cpu = torchloss::functional::center_loss(features, labels, centers.clone());
  if (!torch::cuda::is_available()) {
    std::cout << "torchloss::cuda kernels registered; no GPU here, CPU loss " << on_cpu.item<float>() << '\n';
    return 0;
  }
  const torch::Device cuda(torch::kCUDA, 0);
  const auto on_gpu =
      torchloss::functional::center_loss(features.to(cuda), labels.to(cuda), centers.to(cuda)).cpu();
  std::cout << "center_loss: CPU " << on_cpu.item<float>() << ", CUDA kernels " << on_gpu.item<float>() << '\n';
  return torch::allclose(on_cpu, on_gpu, 1e-5, 1e-6) ? 0 : 1;
}
