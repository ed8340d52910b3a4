// CenterLoss with process_group: two Gloo ranks on localhost (a c10d::FileStore in a temporary
// directory), each a child process running this executable's hidden worker test case with its
// rank in the environment. Both must end with bit-identical centers, equal to one process fed
// the concatenated batches, on the fused CPU path and on the ATen path.

#include <torchloss/center_loss.hpp>
#include <torchloss/distributed.hpp>

#include "support/all_close.hpp"
#include "support/gloo_workers.hpp"

#include <string>
#include <utility>
#include <vector>

namespace {

constexpr int kWorld = torchloss_test::kGlooWorld;
constexpr int64_t kClasses = 7, kDim = 6, kPerRank = 5, kSteps = 4;

/// The global batch of a step: kWorld * kPerRank samples; rank r holds rows [r·kPerRank, (r+1)·kPerRank).
std::pair<torch::Tensor, torch::Tensor> global_batch(int64_t step) {
  torch::manual_seed(100 + step);
  auto x = 2 * torch::randn({kWorld * kPerRank, kDim}) + 1;
  // Classes 0..5 only: class 6 never appears and must not move.
  auto y = torch::randint(kClasses - 1, {kWorld * kPerRank});
  return {x, y};
}

/// Trains `loss` over every step on the samples of `rank` (all samples when rank < 0).
void train(torchloss::CenterLoss& loss, int rank, bool aten_path) {
  torchloss::detail::ScopedAtenPath path(aten_path);
  for (int64_t step = 0; step < kSteps; ++step) {
    auto [x, y] = global_batch(step);
    if (rank >= 0) {
      x = x.narrow(0, rank * kPerRank, kPerRank);
      y = y.narrow(0, rank * kPerRank, kPerRank);
    }
    auto features = x.clone().requires_grad_();
    loss(features, y).backward();
  }
}

torchloss::CenterLossOptions options() { return torchloss::CenterLossOptions(kClasses, kDim).alpha(0.6); }

std::string centers_name(bool aten_path, int rank) {
  return "centers_" + std::to_string(aten_path) + "_" + std::to_string(rank) + ".pt";
}

}  // namespace

// Hidden ([.]): runs only when the parent test below starts this executable by its name.
TEST_CASE("center_loss distributed worker", "[.][center_loss_worker]") {
  const auto worker = torchloss_test::join_gloo_group();
  if (!worker) return;  // started by hand: nothing to do

  for (bool aten_path : {false, true}) {
    torchloss::CenterLoss loss(options().process_group(torchloss::all_reduce_with(worker->group)));
    train(loss, worker->rank, aten_path);
    torch::save(loss->centers, worker->dir + "/" + centers_name(aten_path, worker->rank));
  }
}

TEST_CASE("center_loss: two Gloo ranks keep bit-identical centers equal to one process fed the whole batch",
          "[center_loss][distributed]") {
  const torchloss_test::GlooRun run("center_loss distributed worker");
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    std::vector<torch::Tensor> centers(kWorld);
    for (int rank = 0; rank < kWorld; ++rank) {
      torch::load(centers[rank], run.path(centers_name(aten_path, rank)));
    }
    torchloss::CenterLoss single(options());
    train(single, /*rank=*/-1, aten_path);
    CHECK(torch::equal(centers[0], centers[1]));
    CHECK(torch::equal(centers[0], single->centers));
    CHECK_THAT(centers[0], torchloss_test::AllClose(single->centers, 1e-6, 1e-7));
    CHECK(torch::equal(centers[0][kClasses - 1], torch::zeros({kDim})));
    CHECK_FALSE(torch::equal(centers[0], torch::zeros_like(centers[0])));
  }
}
