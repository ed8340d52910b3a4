// CenterLoss with process_group: two Gloo ranks on localhost (a c10d::FileStore in a temporary
// directory), each a child process running this executable's hidden worker test case with its
// rank in the environment. Both must end with bit-identical centers, equal to one process fed
// the concatenated batches, on the fused CPU path and on the ATen path.

// c10d compiles its Gloo process group only under this macro (libtorch_cpu exports it).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <torchloss/center_loss.hpp>
#include <torchloss/distributed.hpp>

#include "support/all_close.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

constexpr int kWorld = 2;
constexpr int64_t kClasses = 7, kDim = 6, kPerRank = 5, kSteps = 4;
const char* kWorkerName = "center_loss distributed worker";

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

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

/// Starts this executable as worker `rank`; returns its pid.
pid_t spawn_worker(int rank, const std::string& dir) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("TORCHLOSS_CENTER_RANK=" + std::to_string(rank));
  env_strings.push_back("TORCHLOSS_CENTER_DIR=" + dir);
  env_strings.push_back("OMP_NUM_THREADS=1");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string name = kWorkerName;
  std::vector<char*> argv{exe.data(), name.data(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), envp.data());
  return rc == 0 ? pid : -1;
}

/// Waits for `pid` up to `seconds`; returns its exit status, or -1 (killed) on timeout.
int wait_worker(pid_t pid, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

}  // namespace

// Hidden ([.]): runs only when the parent test below starts this executable by its name.
TEST_CASE("center_loss distributed worker", "[.][center_loss_worker]") {
  const std::string rank_text = env_or_empty("TORCHLOSS_CENTER_RANK");
  const std::string dir = env_or_empty("TORCHLOSS_CENTER_DIR");
  if (rank_text.empty() || dir.empty()) return;  // started by hand: nothing to do
  const int rank = std::stoi(rank_text);
  auto store = c10::make_intrusive<c10d::FileStore>(dir + "/store", kWorld);
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(60000));
  gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, kWorld, gloo_options);

  for (bool aten_path : {false, true}) {
    torchloss::CenterLoss loss(options().process_group(torchloss::all_reduce_with(group)));
    train(loss, rank, aten_path);
    torch::save(loss->centers, dir + "/centers_" + std::to_string(aten_path) + "_" + std::to_string(rank) + ".pt");
  }
}

TEST_CASE("center_loss: two Gloo ranks keep bit-identical centers equal to one process fed the whole batch",
          "[center_loss][distributed]") {
  char dir_template[] = "/tmp/torchloss_center_dist_XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  std::vector<pid_t> pids;
  for (int rank = 0; rank < kWorld; ++rank) {
    pids.push_back(spawn_worker(rank, dir));
    REQUIRE(pids.back() > 0);
  }
  for (int rank = 0; rank < kWorld; ++rank) {
    INFO("worker " << rank);
    CHECK(wait_worker(pids[rank], 240) == 0);
  }
  for (bool aten_path : {false, true}) {
    INFO("aten path " << aten_path);
    std::vector<torch::Tensor> centers(kWorld);
    for (int rank = 0; rank < kWorld; ++rank) {
      torch::load(centers[rank], dir + "/centers_" + std::to_string(aten_path) + "_" + std::to_string(rank) + ".pt");
    }
    torchloss::CenterLoss single(options());
    train(single, /*rank=*/-1, aten_path);
    CHECK(torch::equal(centers[0], centers[1]));
    CHECK(torch::equal(centers[0], single->centers));
    CHECK_THAT(centers[0], torchloss_test::AllClose(single->centers, 1e-6, 1e-7));
    CHECK(torch::equal(centers[0][kClasses - 1], torch::zeros({kDim})));
    CHECK_FALSE(torch::equal(centers[0], torch::zeros_like(centers[0])));
  }
  std::system(("rm -rf '" + dir + "'").c_str());
}
