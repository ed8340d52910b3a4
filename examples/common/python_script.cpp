#include "common/python_script.hpp"

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

extern char** environ;

namespace torchloss::examples {

void run_python_script(const std::string& script, const std::vector<std::string>& arguments,
                       const std::string& python) {
  if (!std::filesystem::exists(python)) {
    throw std::runtime_error("Python interpreter not found: '" + python + "'");
  }
  if (!std::filesystem::exists(script)) {
    throw std::runtime_error("Python script not found: '" + script + "'");
  }
  std::vector<std::string> command = {python, script};
  command.insert(command.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& word : command) argv.push_back(word.data());
  argv.push_back(nullptr);

  const std::string description = "'" + python + " " + script + "'";
  pid_t child = 0;
  const int spawn_error = posix_spawn(&child, python.c_str(), nullptr, nullptr, argv.data(), environ);
  if (spawn_error != 0) {
    throw std::runtime_error("cannot start " + description + ": " + std::strerror(spawn_error));
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("cannot wait for " + description + ": " + std::strerror(errno));
  }
  if (WIFSIGNALED(status)) {
    throw std::runtime_error(description + " was killed by signal " + std::to_string(WTERMSIG(status)));
  }
  if (WEXITSTATUS(status) != 0) {
    throw std::runtime_error(description + " failed with exit status " + std::to_string(WEXITSTATUS(status)));
  }
}

}  // namespace torchloss::examples
