#pragma once
/// @file run_main.hpp
/// Uniform error reporting for the example programs' `main`.

#include <c10/util/Exception.h>

#include <exception>
#include <iostream>
#include <string>

namespace torchloss::examples {

/// Returns the first line of `message` (LibTorch appends call-site details on later lines).
inline std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

/// Runs `body` and returns its exit code; on an exception prints `<program>: error: <message>`
/// as one line on stderr and returns 1, so bad data or options never end in a crash.
template <typename Body>
int run_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const c10::Error& error) {
    std::cerr << program << ": error: " << first_line(error.what_without_backtrace()) << '\n';
  } catch (const std::exception& error) {
    std::cerr << program << ": error: " << first_line(error.what()) << '\n';
  }
  return 1;
}

}  // namespace torchloss::examples
