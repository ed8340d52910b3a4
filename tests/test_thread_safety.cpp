// Thread safety of the stateful modules (issue #13): four threads calling one GHMCLoss,
// GHMRLoss, CenterLoss or SeesawLoss lose no update of its state.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"

#include <thread>
#include <vector>

using torchloss_test::AllClose;

namespace {

constexpr int kThreads = 4;
constexpr int kCallsPerThread = 25;

/// Runs `call` kCallsPerThread times in each of kThreads threads, at once.
template <typename Call>
void run_concurrently(const Call& call) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&call] {
      for (int i = 0; i < kCallsPerThread; ++i) call();
    });
  }
  for (auto& thread : threads) thread.join();
}

}  // namespace

TEST_CASE("GHM modules shared by four threads apply every moving-average update", "[threads][ghm]") {
  torch::manual_seed(5);
  // Each call sees the same batch (the same bin counts), so every order of the updates gives
  // acc = counts·(1 − m^k) after k updates; a lost update leaves m^k visibly larger.
  const auto x = torch::randn({64, 8});
  const auto y = (torch::rand({64, 8}) < 0.3).to(torch::kFloat);
  for (bool aten : {false, true}) {
    INFO("ATen path " << aten);
    torchloss::GHMCLoss concurrent(torchloss::GHMCLossOptions().bins(10).momentum(0.99));
    torchloss::GHMCLoss sequential(torchloss::GHMCLossOptions().bins(10).momentum(0.99));
    run_concurrently([&] {
      const torchloss::detail::ScopedAtenPath path(aten);
      auto input = x.clone().requires_grad_();
      concurrent(input, y).backward();
    });
    const torchloss::detail::ScopedAtenPath path(aten);
    for (int i = 0; i < kThreads * kCallsPerThread; ++i) sequential(x, y);
    CHECK_THAT(concurrent->acc_sum, AllClose(sequential->acc_sum, 1e-5, 1e-5));

    torchloss::GHMRLoss regression(torchloss::GHMRLossOptions().momentum(0.99));
    torchloss::GHMRLoss regression_sequential(torchloss::GHMRLossOptions().momentum(0.99));
    run_concurrently([&] {
      const torchloss::detail::ScopedAtenPath inner(aten);
      regression(x * 0.05, y * 0.05);
    });
    for (int i = 0; i < kThreads * kCallsPerThread; ++i) regression_sequential(x * 0.05, y * 0.05);
    CHECK_THAT(regression->acc_sum, AllClose(regression_sequential->acc_sum, 1e-5, 1e-5));
  }
}

TEST_CASE("CenterLoss shared by four threads applies every center update", "[threads][center_loss]") {
  // Every call pulls the centers of one batch towards the same features by α·n/(1+n) of the
  // distance; with α = 1e-6 the centers move so little that each update is the same to a
  // relative 1e-5, so the total is the number of updates applied (a lost one: 1 in 100).
  torch::manual_seed(6);
  const auto features = torch::randn({32, 16}, torch::kDouble) + 1;
  const auto labels = torch::randint(0, 5, {32}, torch::kLong);
  for (bool aten : {false, true}) {
    INFO("ATen path " << aten);
    torchloss::CenterLoss concurrent(torchloss::CenterLossOptions(5, 16).alpha(1e-6));
    torchloss::CenterLoss sequential(torchloss::CenterLossOptions(5, 16).alpha(1e-6));
    concurrent->to(torch::kDouble);
    sequential->to(torch::kDouble);
    run_concurrently([&] {
      const torchloss::detail::ScopedAtenPath path(aten);
      auto input = features.clone().requires_grad_();
      concurrent(input, labels).backward();
    });
    const torchloss::detail::ScopedAtenPath path(aten);
    for (int i = 0; i < kThreads * kCallsPerThread; ++i) {
      auto input = features.clone().requires_grad_();
      sequential(input, labels).backward();
    }
    REQUIRE(sequential->centers.abs().max().item<double>() > 0);
    CHECK_THAT(concurrent->centers, AllClose(sequential->centers, 1e-4, 1e-12));
  }
}

TEST_CASE("SeesawLoss shared by four threads counts every training batch", "[threads][seesaw]") {
  torch::manual_seed(6);
  // 4096 classes: each update is a long add, so unlocked threads would overwrite each other.
  constexpr int64_t kClasses = 4096;
  const auto x = torch::randn({256, kClasses});
  const auto y = torch::randint(kClasses, {256});
  for (bool aten : {false, true}) {
    INFO("ATen path " << aten);
    torchloss::SeesawLoss seesaw{torchloss::SeesawLossOptions(kClasses)};
    run_concurrently([&] {
      const torchloss::detail::ScopedAtenPath path(aten);
      seesaw(x, y);
    });
    const auto expected = torch::bincount(y, {}, kClasses).to(torch::kFloat) * (kThreads * kCallsPerThread);
    CHECK(torch::equal(seesaw->cum_samples, expected));
  }
}
