#pragma once
// Two-process Gloo tests on one host. The parent test case starts this executable once per
// rank, naming a hidden ([.]) worker test case; each worker joins a ProcessGroupGloo through a
// c10d::FileStore in a temporary directory, does its part and writes its results there; the
// parent waits for the workers, then compares their results with a single process.
//
//   TEST_CASE("x worker", "[.][x_worker]") {
//     auto worker = torchloss_test::join_gloo_group();
//     if (!worker) return;                      // started by hand: nothing to do
//     ... use worker->group, write files under worker->dir ...
//   }
//   TEST_CASE("x: ranks agree", "[x][distributed]") {
//     torchloss_test::GlooRun run("x worker");  // spawns and waits; removes its directory
//     ... read run.path("...") ...
//   }

// c10d compiles its Gloo process group only under this macro (libtorch_cpu exports it).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace torchloss_test {

/// Ranks of every Gloo test.
constexpr int kGlooWorld = 2;

/// What a worker knows: its rank, the shared directory, and the joined group.
struct GlooWorker {
  int rank;
  std::string dir;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace detail {
inline const char* kRankVariable = "TORCHLOSS_TEST_GLOO_RANK";
inline const char* kDirVariable = "TORCHLOSS_TEST_GLOO_DIR";

/// Starts this executable running only the test case `test_name`, as worker `rank`.
inline pid_t spawn_worker(const std::string& test_name, int rank, const std::string& dir) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kRankVariable) + "=" + std::to_string(rank));
  env_strings.push_back(std::string(kDirVariable) + "=" + dir);
  env_strings.push_back("OMP_NUM_THREADS=1");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string name = test_name;
  std::vector<char*> argv{exe.data(), name.data(), nullptr};
  pid_t pid = -1;
  return posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), envp.data()) == 0 ? pid : -1;
}

/// Waits for `pid` up to `seconds`; its exit status, or -1 (killed) on timeout.
inline int wait_worker(pid_t pid, int seconds) {
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
}  // namespace detail

/// In a worker test case: joins the group of kGlooWorld ranks; nullopt when the process was not
/// started by GlooRun (the hidden test case run by hand).
inline std::optional<GlooWorker> join_gloo_group() {
  const char* rank = std::getenv(detail::kRankVariable);
  const char* dir = std::getenv(detail::kDirVariable);
  if (!rank || !dir) return std::nullopt;
  GlooWorker worker{std::stoi(rank), dir, {}};
  auto store = c10::make_intrusive<c10d::FileStore>(worker.dir + "/store", kGlooWorld);
  auto options = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(60000));
  options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  worker.group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, worker.rank, kGlooWorld, options);
  return worker;
}

/// In the parent test case: runs the worker test case `worker_test_name` as kGlooWorld
/// processes in a fresh temporary directory and checks that each exits 0 within `seconds`.
/// The directory (and what the workers wrote there) goes with the object.
class GlooRun {
 public:
  explicit GlooRun(const std::string& worker_test_name, int seconds = 240) {
    char dir_template[] = "/tmp/torchloss_gloo_XXXXXX";
    REQUIRE(mkdtemp(dir_template) != nullptr);
    dir_ = dir_template;
    std::vector<pid_t> pids;
    for (int rank = 0; rank < kGlooWorld; ++rank) {
      pids.push_back(detail::spawn_worker(worker_test_name, rank, dir_));
      REQUIRE(pids.back() > 0);
    }
    for (int rank = 0; rank < kGlooWorld; ++rank) {
      INFO(worker_test_name << ", rank " << rank);
      CHECK(detail::wait_worker(pids[rank], seconds) == 0);
    }
  }
  GlooRun(const GlooRun&) = delete;
  GlooRun& operator=(const GlooRun&) = delete;
  ~GlooRun() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  /// A file of the shared directory.
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

}  // namespace torchloss_test
