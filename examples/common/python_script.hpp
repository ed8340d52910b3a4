#pragma once
/// @file python_script.hpp
/// Running a helper Python script (matplotlib plots) from a trainer.

#include <string>
#include <vector>

namespace torchloss::examples {

/// The interpreter that has Debian's python3-matplotlib.
inline constexpr const char* kDefaultPython = "/usr/bin/python3";

/// Runs `python script arguments...` without a shell and waits for it; the script's own
/// output and traceback go to this process's stdout and stderr. Throws
/// `std::runtime_error` when the script or interpreter is missing, cannot be started,
/// or exits with a non-zero status or on a signal.
void run_python_script(const std::string& script, const std::vector<std::string>& arguments,
                       const std::string& python = kDefaultPython);

}  // namespace torchloss::examples
