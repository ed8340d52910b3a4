// center_loss on CUDA tensors: the fused kernels of torchloss::cuda (when this executable links
// them: tests/cuda/cuda_tests.cmake does where Torch has CUDA), the ATen path, and the CPU
// path must agree. Without a GPU the executable exits 77 before any case runs
// (support/cuda_test_main.cpp): CTest reports the cases skipped.
#include <torchloss/center_loss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixtures.hpp"

#include <tuple>

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {

const char* kFn = "torchloss::center_loss";

/// Which implementations to compare on CUDA: the ATen path always, the kernels when linked.
std::vector<bool> cuda_aten_path_choices() {
  if (torchloss::detail::center_loss_cuda_kernels_registered()) return {false, true};
  WARN("torchloss::cuda is not linked: only the ATen path runs on CUDA tensors here");
  return {true};
}

/// Restores the global deterministic-algorithms flag on scope exit.
struct ScopedDeterministic {
  bool previous;
  explicit ScopedDeterministic(bool on) : previous(at::globalContext().deterministicAlgorithms()) {
    at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
  }
  ~ScopedDeterministic() { at::globalContext().setDeterministicAlgorithms(previous, false); }
};

/// One training step on `device`: loss, feature gradient (λ-scaled), centers after the update.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> step_on(const torch::Device& device, bool aten_path,
                                                                const torch::Tensor& x0, const torch::Tensor& y,
                                                                const torch::Tensor& centers0,
                                                                F::CenterLossFuncOptions options, double lambda) {
  torchloss::detail::ScopedAtenPath path(aten_path);
  auto centers = centers0.to(device).clone();
  auto x = x0.to(device).requires_grad_();
  const auto value = F::center_loss(x, y.to(device), centers, options);
  (lambda * value).sum().backward();
  if (device.is_cuda()) torch::cuda::synchronize();
  return {value.detach().cpu(), x.grad().cpu(), centers.cpu()};
}

}  // namespace

TEST_CASE("center_loss on CUDA: kernels, ATen path and CPU agree in loss, gradient and centers",
          "[center_loss][cuda]") {
  const torch::Device cuda(torch::kCUDA, 0);
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16}) {
    const auto centers_dtype = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
    const double tol = dtype == torch::kHalf ? 4e-3 : dtype == torch::kBFloat16 ? 3e-2 : 1e-5;
    for (int64_t code : {0, 1, 2}) {
      for (bool deterministic : {false, true}) {
        ScopedDeterministic det(deterministic);
        torch::manual_seed(20 + code);
        const auto centers0 = torch::randn({37, 70}).to(centers_dtype);
        const auto x0 = torch::randn({300, 70}).to(dtype);
        const auto y = torch::randint(30, {300});  // classes 30..36 absent
        const auto options = F::CenterLossFuncOptions().alpha(0.4).reduction(torchloss_test::reduction_from_code(code));
        const auto [cpu_loss, cpu_grad, cpu_centers] = step_on(torch::kCPU, false, x0, y, centers0, options, 1.7);
        for (bool aten_path : cuda_aten_path_choices()) {
          INFO("dtype " << dtype << ", reduction " << code << ", deterministic " << deterministic << ", aten path "
                        << aten_path);
          const auto [loss, grad, centers] = step_on(cuda, aten_path, x0, y, centers0, options, 1.7);
          CHECK(loss.scalar_type() == dtype);
          CHECK(grad.scalar_type() == dtype);
          CHECK(centers.scalar_type() == centers_dtype);
          CHECK_THAT(loss, AllClose(cpu_loss, tol, tol));
          CHECK_THAT(grad, AllClose(cpu_grad, tol, tol));
          CHECK_THAT(centers, AllClose(cpu_centers, 1e-5, 1e-6));
          CHECK(torch::equal(centers.narrow(0, 30, 7), centers0.narrow(0, 30, 7)));
        }
      }
    }
  }
}

TEST_CASE("center_loss on CUDA: the deterministic kernels repeat bit for bit", "[center_loss][cuda]") {
  const torch::Device cuda(torch::kCUDA, 0);
  ScopedDeterministic det(true);
  torch::manual_seed(30);
  // Many samples per class: the order of additions matters for the bits.
  const auto centers0 = torch::randn({8, 256});
  const auto x0 = torch::randn({4096, 256});
  const auto y = torch::randint(8, {4096});
  for (bool aten_path : cuda_aten_path_choices()) {
    INFO("aten path " << aten_path);
    const auto first = std::get<2>(step_on(cuda, aten_path, x0, y, centers0, {}, 1.0));
    for (int repeat = 0; repeat < 3; ++repeat) {
      CHECK(torch::equal(std::get<2>(step_on(cuda, aten_path, x0, y, centers0, {}, 1.0)), first));
    }
  }
}

TEST_CASE("center_loss on CUDA: the issue's shape N=1024, D=512, C=100000 matches the CPU", "[center_loss][cuda]") {
  const torch::Device cuda(torch::kCUDA, 0);
  torch::manual_seed(31);
  const auto centers0 = torch::randn({100000, 512});
  const auto x0 = torch::randn({1024, 512});
  const auto y = torch::randint(100000, {1024});
  const auto [cpu_loss, cpu_grad, cpu_centers] = step_on(torch::kCPU, false, x0, y, centers0, {}, 0.5);
  for (bool aten_path : cuda_aten_path_choices()) {
    INFO("aten path " << aten_path);
    const auto [loss, grad, centers] = step_on(cuda, aten_path, x0, y, centers0, {}, 0.5);
    CHECK_THAT(loss, AllClose(cpu_loss, 1e-5, 1e-6));
    CHECK_THAT(grad, AllClose(cpu_grad, 1e-5, 1e-7));
    CHECK_THAT(centers, AllClose(cpu_centers, 1e-5, 1e-6));
  }
}

TEST_CASE("center_loss on CUDA: the all-reduce hook sees the same statistics as on the CPU", "[center_loss][cuda]") {
  const torch::Device cuda(torch::kCUDA, 0);
  torch::manual_seed(32);
  const auto centers0 = torch::randn({9, 5});
  const auto x0 = torch::randn({6, 5});
  const auto y = torch::tensor({2, 7, 2, 0, 7, 7}, torch::kLong);
  torchloss::AllReduceFn doubling = [](torch::Tensor& t) { t.mul_(2); };
  const auto options = F::CenterLossFuncOptions().process_group(doubling);
  const auto cpu_centers = std::get<2>(step_on(torch::kCPU, false, x0, y, centers0, options, 1.0));
  for (bool aten_path : cuda_aten_path_choices()) {
    INFO("aten path " << aten_path);
    CHECK_THAT(std::get<2>(step_on(cuda, aten_path, x0, y, centers0, options, 1.0)), AllClose(cpu_centers, 1e-6, 1e-7));
  }
}

TEST_CASE("center_loss on CUDA: the module moves with ->to(), learnable centers get their gradient",
          "[center_loss][cuda]") {
  const torch::Device cuda(torch::kCUDA, 0);
  for (bool aten_path : cuda_aten_path_choices()) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    torchloss::CenterLoss loss(torchloss::CenterLossOptions(10, 4));
    loss->to(cuda);
    CHECK(loss->centers.device() == cuda);
    auto x = torch::randn({6, 4}, torch::TensorOptions().device(cuda)).requires_grad_();
    const auto y = torch::tensor({1, 1, 3, 9, 9, 9}, torch::kLong).to(cuda);
    loss(x, y).backward();
    CHECK(loss->centers.device() == cuda);
    CHECK_FALSE(torch::equal(loss->centers.cpu(), torch::zeros({10, 4})));

    torchloss::CenterLoss learnable(torchloss::CenterLossOptions(10, 4).learnable_centers(true).reduction(torch::kSum));
    learnable->to(cuda);
    auto x2 = x.detach().clone().requires_grad_();
    learnable(x2, y).backward();
    const auto expected = torch::zeros({10, 4}).index_add_(0, y.cpu(), -x2.detach().cpu());
    CHECK_THAT(learnable->centers.grad().cpu(), AllClose(expected, 1e-6, 1e-7));
  }
}

TEST_CASE("center_loss on CUDA: bad labels raise the error, on every path", "[center_loss][cuda]") {
  const torch::Device cuda(torch::kCUDA, 0);
  const auto options = torch::TensorOptions().device(cuda);
  for (bool aten_path : cuda_aten_path_choices()) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    auto centers = torch::zeros({5, 3}, options);
    const auto x = torch::randn({4, 3}, options);
    TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::tensor({0, 5, 1, 1}).to(cuda), centers), kFn, "labels holds 5");
    TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::tensor({0, -3, 1, 1}).to(cuda), centers), kFn, "labels holds -3");
    TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::tensor({0, 1, 1, 1}), centers), kFn, "labels is on cpu");
    TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::tensor({0, 1, 1, 1}).to(cuda), torch::zeros({5, 3})), kFn,
                          "centers is on cpu but features is on cuda");
  }
}
