// SeesawLoss with process_group: two Gloo ranks on localhost (tests/support/gloo_workers.hpp).
// Over a sequence of batches split unevenly between the ranks, both ranks must hold identical
// cum_samples after every step, equal to one process fed the concatenated batches; with kSum
// the two ranks' losses add up to that process's loss, and their gradients are its rows.
// Fused CPU path and ATen path. Without the group, the ranks' counts drift apart (mmpretrain).

#include <torchloss/distributed.hpp>
#include <torchloss/seesaw_loss.hpp>

#include "support/all_close.hpp"
#include "support/gloo_workers.hpp"

#include <string>
#include <vector>

namespace {

using torchloss_test::AllClose;

constexpr int kWorld = torchloss_test::kGlooWorld;
constexpr int64_t kRows = 14, kClasses = 6, kSteps = 4;
const int64_t kFirstRows[kWorld + 1] = {0, 5, kRows};  // uneven: 5 and 9 rows

struct Batch {
  torch::Tensor x, y;
};

/// The global batch of a step: float64 logits and long-tailed labels (class c about 2^-c).
Batch global_batch(int64_t step) {
  torch::manual_seed(300 + step);
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  const auto prior = torch::pow(0.5, torch::arange(kClasses, opt));
  return {3 * torch::randn({kRows, kClasses}, opt), torch::multinomial(prior, kRows, /*replacement=*/true)};
}

Batch shard(const Batch& b, int rank) {
  if (rank < 0) return b;
  const int64_t begin = kFirstRows[rank], rows = kFirstRows[rank + 1] - begin;
  return {b.x.narrow(0, begin, rows), b.y.narrow(0, begin, rows)};
}

/// The losses [steps], gradients (concatenated over the steps) and counts after each step.
struct Run {
  torch::Tensor losses, grads, counts;
};

Run train(torchloss::SeesawLoss& loss, int rank, bool aten_path) {
  torchloss::detail::ScopedAtenPath path(aten_path);
  std::vector<torch::Tensor> losses, grads, counts;
  for (int64_t step = 0; step < kSteps; ++step) {
    const Batch b = shard(global_batch(step), rank);
    auto x = b.x.clone().requires_grad_();
    auto value = loss(x, b.y);
    value.backward();
    losses.push_back(value.detach());
    grads.push_back(x.grad());
    counts.push_back(loss->cum_samples.clone());
  }
  return {torch::stack(losses), torch::cat(grads), torch::stack(counts)};
}

torchloss::SeesawLossOptions options() { return torchloss::SeesawLossOptions(kClasses).reduction(torch::kSum); }

std::string result_name(const char* what, bool aten_path, int rank) {
  return std::string("seesaw_") + what + "_" + std::to_string(aten_path) + "_" + std::to_string(rank) + ".pt";
}

Run load_run(const std::string& path) {
  std::vector<torch::Tensor> parts;
  torch::load(parts, path);
  return {parts.at(0), parts.at(1), parts.at(2)};
}

}  // namespace

// Hidden ([.]): runs only when the parent test below starts this executable by its name.
TEST_CASE("seesaw distributed worker", "[.][seesaw_worker]") {
  const auto worker = torchloss_test::join_gloo_group();
  if (!worker) return;  // started by hand: nothing to do
  for (bool aten_path : {false, true}) {
    torchloss::SeesawLoss synced(options().process_group(worker->group));
    const Run run = train(synced, worker->rank, aten_path);
    torch::save(std::vector<torch::Tensor>{run.losses, run.grads, run.counts},
                worker->dir + "/" + result_name("synced", aten_path, worker->rank));
    torchloss::SeesawLoss local(options());
    const Run alone = train(local, worker->rank, aten_path);
    torch::save(std::vector<torch::Tensor>{alone.losses, alone.grads, alone.counts},
                worker->dir + "/" + result_name("local", aten_path, worker->rank));
  }
}

TEST_CASE("SeesawLoss: two Gloo ranks keep identical cum_samples and add up to one process fed both shards",
          "[seesaw][distributed]") {
  const torchloss_test::GlooRun run("seesaw distributed worker");
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    const Run rank0 = load_run(run.path(result_name("synced", aten_path, 0)));
    const Run rank1 = load_run(run.path(result_name("synced", aten_path, 1)));
    torchloss::SeesawLoss loss(options());
    const Run single = train(loss, -1, aten_path);
    CHECK(torch::equal(rank0.counts, rank1.counts));
    CHECK(torch::equal(rank0.counts, single.counts));
    CHECK(single.counts[kSteps - 1].sum().item<double>() == kSteps * kRows);
    CHECK_THAT(rank0.losses + rank1.losses, AllClose(single.losses, 1e-12, 1e-14));
    const auto g0 = rank0.grads.view({kSteps, -1, kClasses});
    const auto g1 = rank1.grads.view({kSteps, -1, kClasses});
    CHECK_THAT(torch::cat({g0, g1}, 1), AllClose(single.grads.view({kSteps, kRows, kClasses}), 1e-12, 1e-15));
    // The control: per-rank counts drift apart, as mmpretrain's do.
    const Run local0 = load_run(run.path(result_name("local", aten_path, 0)));
    const Run local1 = load_run(run.path(result_name("local", aten_path, 1)));
    CHECK_FALSE(torch::equal(local0.counts, local1.counts));
  }
}
