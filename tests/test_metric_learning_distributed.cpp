// SupConLoss with process_group: two Gloo ranks on localhost, each a child process running this
// executable's hidden worker test case. The contrast set is every rank's features and the
// gather's backward sums the gradients over the ranks, so the ranks together compute the loss
// of the concatenated batch (fixture: the SupContrast authors' SupConLoss in float64), and each
// rank's feature gradient is that of the sum of the ranks' losses: for kMean over equal halves,
// R times the concatenated batch's gradient (what DDP's averaging expects); for kSum over
// unequal parts, the concatenated batch's gradient itself.

#include <torchloss/distributed.hpp>
#include <torchloss/supervised_contrastive_loss.hpp>

#include "support/all_close.hpp"
#include "support/fixtures.hpp"
#include "support/gloo_workers.hpp"

#include <string>
#include <vector>

namespace {

constexpr int kWorld = torchloss_test::kGlooWorld;

/// The first sample of `rank`'s part, for ranks holding `first_rank_rows` and the rest of 10.
int64_t part_begin(int rank, int64_t first_rank_rows) { return rank == 0 ? 0 : first_rank_rows; }
int64_t part_size(int rank, int64_t first_rank_rows, int64_t total) {
  return rank == 0 ? first_rank_rows : total - first_rank_rows;
}

/// The cases: kMean over equal halves, kSum over parts of 6 and 4; supervised and SimCLR.
struct Case {
  const char* labels_tag;
  const char* reduction_tag;
  int64_t first_rank_rows;
};
const std::vector<Case>& cases() {
  static const std::vector<Case> all{
      {"supervised", "mean", 5}, {"supervised", "sum", 6}, {"simclr", "mean", 5}, {"simclr", "sum", 6}};
  return all;
}

std::string result_name(bool aten_path, int rank) {
  return "supcon_" + std::to_string(aten_path) + "_" + std::to_string(rank) + ".pt";
}

}  // namespace

// Hidden ([.]): runs only when the parent test below starts this executable by its name.
TEST_CASE("supcon distributed worker", "[.][supcon_worker]") {
  const auto worker = torchloss_test::join_gloo_group();
  if (!worker) return;  // started by hand: nothing to do
  const torchloss_test::Fixture fx("supervised_contrastive_distributed.pt");
  const int64_t total = fx["features"].size(0);
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    std::vector<torch::Tensor> results;  // per case: loss, feature gradient
    for (const auto& c : cases()) {
      const int64_t begin = part_begin(worker->rank, c.first_rank_rows);
      const int64_t size = part_size(worker->rank, c.first_rank_rows, total);
      auto features = fx["features"].narrow(0, begin, size).clone().requires_grad_();
      const auto labels =
          std::string(c.labels_tag) == "simclr" ? torch::Tensor() : fx["labels"].narrow(0, begin, size);
      const auto loss = torchloss::functional::supervised_contrastive_loss(
          features, labels,
          torchloss::functional::SupConLossFuncOptions()
              .temperature(0.1)
              .reduction(std::string(c.reduction_tag) == "mean" ? torchloss::reduction_t(torch::kMean)
                                                                 : torchloss::reduction_t(torch::kSum))
              .process_group(worker->group));
      loss.backward();
      results.push_back(loss.detach());
      results.push_back(features.grad());
    }
    torch::save(results, worker->dir + "/" + result_name(aten_path, worker->rank));
  }
}

TEST_CASE("supervised_contrastive_loss over two Gloo ranks equals the concatenated batch", "[supcon][distributed]") {
  const torchloss_test::GlooRun run("supcon distributed worker");
  const torchloss_test::Fixture fx("supervised_contrastive_distributed.pt");
  const int64_t total = fx["features"].size(0);
  for (bool aten_path : {false, true}) {
    std::vector<std::vector<torch::Tensor>> ranks(kWorld);
    for (int rank = 0; rank < kWorld; ++rank) torch::load(ranks[rank], run.path(result_name(aten_path, rank)));
    for (size_t k = 0; k < cases().size(); ++k) {
      const auto& c = cases()[k];
      const std::string key = std::string(c.labels_tag) + "/" + c.reduction_tag;
      INFO("aten path " << aten_path << ", " << key);
      const bool mean = std::string(c.reduction_tag) == "mean";
      // Losses: the mean of equal halves' means, or the sum of the parts' sums.
      const auto combined = mean ? (ranks[0][2 * k] + ranks[1][2 * k]) / kWorld : ranks[0][2 * k] + ranks[1][2 * k];
      CHECK_THAT(combined, torchloss_test::AllClose(fx[key + "/loss"], 1e-12, 1e-12));
      for (int rank = 0; rank < kWorld; ++rank) {
        INFO("rank " << rank);
        const auto expected = fx[key + "/grad"].narrow(0, part_begin(rank, c.first_rank_rows),
                                                       part_size(rank, c.first_rank_rows, total));
        CHECK_THAT(ranks[rank][2 * k + 1], torchloss_test::AllClose(mean ? expected * kWorld : expected, 1e-10, 1e-12));
      }
    }
  }
}
