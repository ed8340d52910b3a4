// GHM-C and GHM-R with process_group: two Gloo ranks on localhost (a c10d::FileStore in a
// temporary directory), each a child process running this executable's hidden worker test
// case with its rank in the environment. Over a sequence of batches split unevenly between
// the ranks, both ranks must end with identical acc_sum, equal to one process fed the
// concatenated batches; at every step the two ranks' losses must add up to that process's
// loss and their gradients must be its gradient's rows. Fused CPU path and ATen path.

#include <torchloss/distributed.hpp>
#include <torchloss/ghm_loss.hpp>

#include "support/all_close.hpp"
#include "support/gloo_workers.hpp"

#include <string>
#include <vector>

namespace {

using torchloss_test::AllClose;

constexpr int kWorld = torchloss_test::kGlooWorld;
constexpr int64_t kRows = 12, kClasses = 5, kSteps = 5;
const int64_t kFirstRows[kWorld + 1] = {0, 5, kRows};  // uneven: 5 and 7 rows

struct Batch {
  torch::Tensor x, y, label_weight;
};

/// The global batch of a step (float64, so sums compare tightly), classification or regression.
Batch global_batch(int64_t step, bool regression) {
  torch::manual_seed(200 + step + (regression ? 50 : 0));
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  Batch b;
  b.y = regression ? torch::randn({kRows, kClasses}, opt) : (torch::rand({kRows, kClasses}, opt) < 0.3).to(torch::kDouble);
  b.x = regression ? b.y + torch::randn({kRows, kClasses}, opt) * torch::rand({kRows, kClasses}, opt)
                   : 3 * torch::randn({kRows, kClasses}, opt);
  b.label_weight = (torch::rand({kRows, kClasses}, opt) > 0.2).to(torch::kDouble);
  return b;
}

Batch shard(const Batch& b, int rank) {
  if (rank < 0) return b;
  const int64_t begin = kFirstRows[rank], rows = kFirstRows[rank + 1] - begin;
  return {b.x.narrow(0, begin, rows), b.y.narrow(0, begin, rows), b.label_weight.narrow(0, begin, rows)};
}

/// One loss trained over every step on `rank`'s rows (all rows when rank < 0): the losses
/// [steps], the gradients (concatenated over the steps) and the final acc_sum.
struct Run {
  torch::Tensor losses, grads, acc_sum;
};

template <class Module>
Run train(Module& loss, bool regression, int rank, bool aten_path) {
  torchloss::detail::ScopedAtenPath path(aten_path);
  std::vector<torch::Tensor> losses, grads;
  for (int64_t step = 0; step < kSteps; ++step) {
    const Batch b = shard(global_batch(step, regression), rank);
    auto x = b.x.clone().requires_grad_();
    auto value = loss(x, b.y, b.label_weight);
    value.backward();
    losses.push_back(value.detach());
    grads.push_back(x.grad());
  }
  return {torch::stack(losses), torch::cat(grads), loss->acc_sum.clone()};
}

torchloss::GHMCLossOptions classification_options() { return torchloss::GHMCLossOptions().bins(10).momentum(0.75); }
torchloss::GHMRLossOptions regression_options() { return torchloss::GHMRLossOptions().mu(0.05).bins(7).momentum(0.7); }

std::string result_name(const char* what, bool aten_path, int rank) {
  return std::string(what) + "_" + std::to_string(aten_path) + "_" + std::to_string(rank) + ".pt";
}

std::vector<torch::Tensor> as_list(const Run& run) { return {run.losses, run.grads, run.acc_sum}; }

Run load_run(const std::string& path) {
  std::vector<torch::Tensor> parts;
  torch::load(parts, path);
  return {parts.at(0), parts.at(1), parts.at(2)};
}

}  // namespace

// Hidden ([.]): runs only when the parent test below starts this executable by its name.
TEST_CASE("ghm distributed worker", "[.][ghm_worker]") {
  const auto worker = torchloss_test::join_gloo_group();
  if (!worker) return;  // started by hand: nothing to do
  const int rank = worker->rank;
  const auto& group = worker->group;
  const auto path = [&](const char* what, bool aten_path) { return worker->dir + "/" + result_name(what, aten_path, rank); };

  for (bool aten_path : {false, true}) {
    // The group converts to the option's AllReduceFn; all_reduce_with() spells it out.
    torchloss::GHMCLoss classification(classification_options().process_group(group));
    torch::save(as_list(train(classification, false, rank, aten_path)), path("ghmc", aten_path));
    torchloss::GHMRLoss regression(regression_options().process_group(torchloss::all_reduce_with(group)));
    torch::save(as_list(train(regression, true, rank, aten_path)), path("ghmr", aten_path));
    // Without the group, each rank keeps its own counts (what the reference does).
    torchloss::GHMCLoss local(classification_options());
    torch::save(as_list(train(local, false, rank, aten_path)), path("local", aten_path));
  }
}

TEST_CASE("GHM losses: two Gloo ranks keep identical acc_sum and add up to one process fed both shards",
          "[ghm][distributed]") {
  const torchloss_test::GlooRun run("ghm distributed worker");
  for (bool aten_path : {false, true}) {
    for (const char* what : {"ghmc", "ghmr"}) {
      INFO(what << ", aten path " << aten_path);
      const bool regression = std::string(what) == "ghmr";
      const Run rank0 = load_run(run.path(result_name(what, aten_path, 0)));
      const Run rank1 = load_run(run.path(result_name(what, aten_path, 1)));
      Run single;
      if (regression) {
        torchloss::GHMRLoss loss(regression_options());
        single = train(loss, true, -1, aten_path);
      } else {
        torchloss::GHMCLoss loss(classification_options());
        single = train(loss, false, -1, aten_path);
      }
      CHECK(torch::equal(rank0.acc_sum, rank1.acc_sum));
      CHECK(torch::equal(rank0.acc_sum, single.acc_sum));
      CHECK(single.acc_sum.sum().item<double>() > 0);
      CHECK_THAT(rank0.losses + rank1.losses, AllClose(single.losses, 1e-12, 1e-14));
      // Each rank's gradient is the single process's gradient of its rows, step by step.
      const auto g0 = rank0.grads.view({kSteps, -1, kClasses});
      const auto g1 = rank1.grads.view({kSteps, -1, kClasses});
      CHECK_THAT(torch::cat({g0, g1}, 1), AllClose(single.grads.view({kSteps, kRows, kClasses}), 1e-12, 1e-15));
    }
    // The control: per-rank counts drift apart from the global ones.
    const Run local0 = load_run(run.path(result_name("local", aten_path, 0)));
    const Run local1 = load_run(run.path(result_name("local", aten_path, 1)));
    CHECK_FALSE(torch::equal(local0.acc_sum, local1.acc_sum));
  }
}
