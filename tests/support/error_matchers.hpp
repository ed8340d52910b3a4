#pragma once
// Checks that a call raises c10::Error whose message starts with the public function's
// name and contains a fragment naming the argument or value.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#define TORCHLOSS_CHECK_ERROR(expr, fn, fragment)                                   \
  do {                                                                              \
    INFO("expression: " #expr);                                                     \
    try {                                                                           \
      (void)(expr);                                                                 \
      FAIL("no error raised");                                                      \
    } catch (const c10::Error& error) {                                             \
      const std::string message = error.what_without_backtrace();                  \
      INFO("message: " << message);                                                 \
      CHECK(message.rfind(std::string(fn) + ": ", 0) == 0);                         \
      CHECK(message.find(fragment) != std::string::npos);                           \
    }                                                                               \
  } while (false)
