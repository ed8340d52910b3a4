// The fuzz battery: random cases over every public loss (fuzz_cases.hpp), each on the fused
// CPU path, the ATen path and in float64, run in forked children so a crash (a signal, an
// abort, a hang) names its case instead of ending the run. Batches of cases run in one child;
// a batch that crashes is re-run one case per child to find the culprit.
//
//   fuzz_battery [--seed S] [--seconds T] [--cases N] [--loss NAME] [--case ID] [--batch B]
//
// Runs cases 0, 1, 2, ... of seed S (default 13) until T seconds (default 120) or N cases
// have run; `--case ID` runs that one case in this process (no fork: for a debugger), and
// prints what it compared. Exit status 0 when every case passed.
#include "fuzz_cases.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using torchloss_fuzz::LossEntry;
using torchloss_fuzz::losses;

/// The loss of case `id`: the cases cycle through the table.
const LossEntry& entry_of(uint64_t id, const std::string& only) {
  const auto& table = losses();
  if (!only.empty()) {
    for (const auto& e : table) {
      if (only == e.name) return e;
    }
    std::cerr << "fuzz_battery: no loss named " << only << "\n";
    std::exit(2);
  }
  return table[id % table.size()];
}

/// Runs cases [first, last) in this process; prints failures; returns their number.
int run_cases(uint64_t seed, uint64_t first, uint64_t last, const std::string& only) {
  int failures = 0;
  for (uint64_t id = first; id < last; ++id) {
    const auto& entry = entry_of(id, only);
    std::string failure;
    try {
      failure = torchloss_fuzz::check_case(entry, seed, id);
    } catch (const std::exception& error) {
      failure = std::string("unexpected exception: ") + error.what();
    }
    if (!failure.empty()) {
      ++failures;
      std::cout << "FAIL seed=" << seed << " case=" << id << " loss=" << entry.name << "\n"
                << failure << "  reproduce: fuzz_battery --seed " << seed << " --case " << id
                << (only.empty() ? "" : " --loss " + only) << std::endl;
    }
  }
  return failures;
}

/// How a child ended: "" when it exited (status in `failures`), else the signal.
struct ChildEnd {
  bool crashed = false;
  int failures = 0;
  std::string how;
};

/// Runs cases [first, last) in a forked child with a time limit.
ChildEnd run_in_child(uint64_t seed, uint64_t first, uint64_t last, const std::string& only, int limit_seconds) {
  std::cout.flush();
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fuzz_battery: fork");
    std::exit(2);
  }
  if (pid == 0) {
    alarm(static_cast<unsigned>(limit_seconds));  // a hang ends as SIGALRM
    const int failures = run_cases(seed, first, last, only);
    std::cout.flush();
    _exit(failures > 0 ? 1 : 0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  ChildEnd end;
  if (WIFSIGNALED(status)) {
    end.crashed = true;
    end.how = std::string("signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  } else if (WEXITSTATUS(status) > 1) {
    end.crashed = true;
    end.how = "exit status " + std::to_string(WEXITSTATUS(status));
  } else {
    end.failures = WEXITSTATUS(status);
  }
  return end;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 13, cases = 0, single = 0, batch = 64;
  bool run_single = false;
  double seconds = 120;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "fuzz_battery: " << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--seed") {
      const std::string s = value();
      seed = s == "random" ? static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count())
                           : std::stoull(s);
    } else if (arg == "--seconds") {
      seconds = std::stod(value());
    } else if (arg == "--cases") {
      cases = std::stoull(value());
    } else if (arg == "--case") {
      single = std::stoull(value());
      run_single = true;
    } else if (arg == "--loss") {
      only = value();
    } else if (arg == "--batch") {
      batch = std::max<uint64_t>(1, std::stoull(value()));
    } else {
      std::cerr << "usage: fuzz_battery [--seed S|random] [--seconds T] [--cases N] [--loss NAME] [--case ID] "
                   "[--batch B]\n";
      return 2;
    }
  }
  if (run_single) {
    torchloss_fuzz::describe_case(entry_of(single, only), seed, single, std::cout);
    const int failures = run_cases(seed, single, single + 1, only);
    if (failures == 0) std::cout << "case " << single << " of seed " << seed << " passed\n";
    return failures > 0 ? 1 : 0;
  }
  // The parent runs no tensor code: forking a process whose OpenMP pool is running is unsafe.
  std::cout << "fuzz_battery: seed " << seed << ", " << losses().size() << " losses, up to " << seconds << " s"
            << std::endl;
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  uint64_t next = 0;
  int failures = 0, crashes = 0;
  const int limit = 120;  // per child, far above a batch's time
  while (elapsed() < seconds && (cases == 0 || next < cases)) {
    const uint64_t last = cases == 0 ? next + batch : std::min(cases, next + batch);
    const ChildEnd end = run_in_child(seed, next, last, only, limit);
    if (end.crashed) {
      // Find the case: one child per case.
      for (uint64_t id = next; id < last; ++id) {
        const ChildEnd one = run_in_child(seed, id, id + 1, only, limit);
        if (one.crashed) {
          ++crashes;
          std::cout << "CRASH seed=" << seed << " case=" << id << " loss=" << entry_of(id, only).name << ": "
                    << one.how << "\n  reproduce: fuzz_battery --seed " << seed << " --case " << id << std::endl;
        } else {
          failures += one.failures;
        }
      }
    } else {
      failures += end.failures > 0 ? 1 : 0;  // the child printed each failure
    }
    next = last;
  }
  std::cout << "fuzz_battery: " << next << " cases in " << elapsed() << " s, " << crashes << " crashed, "
            << (failures > 0 ? "failures above" : "no failures") << std::endl;
  return crashes > 0 || failures > 0 ? 1 : 0;
}
