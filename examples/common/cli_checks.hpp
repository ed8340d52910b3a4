#pragma once
/// @file cli_checks.hpp
/// CLI11 validators for numeric options with short, readable messages (CLI11's
/// PositiveNumber and NonNegativeNumber print the full 300-digit bound of a double).

#include <CLI/CLI.hpp>

#include <functional>
#include <locale>
#include <sstream>
#include <string>

namespace torchloss::examples {

/// Formats `value` as the shortest plain text ("1", "0.5").
inline std::string format_number(double value) {
  std::ostringstream text;
  text.imbue(std::locale::classic());
  text << value;
  return text.str();
}

/// Accepts a number for which `accept(value)` holds; otherwise reports "must be <requirement>".
inline CLI::Validator number_check(std::function<bool(double)> accept, const std::string& requirement) {
  return CLI::Validator(
      [accept = std::move(accept), requirement](const std::string& text) {
        std::istringstream input(text);
        input.imbue(std::locale::classic());
        double value = 0.0;
        if (!(input >> value) || !input.eof() || !accept(value)) {
          return "must be " + requirement + ", got '" + text + "'";
        }
        return std::string();
      },
      requirement);
}

/// Accepts a number >= `minimum`.
inline CLI::Validator at_least(double minimum) {
  return number_check([minimum](double value) { return value >= minimum; }, ">= " + format_number(minimum));
}

/// Accepts a number > `minimum`.
inline CLI::Validator greater_than(double minimum) {
  return number_check([minimum](double value) { return value > minimum; }, "> " + format_number(minimum));
}

/// Accepts a number in [`lower`, `upper`], or in [`lower`, `upper`) when `include_upper` is false.
inline CLI::Validator in_range(double lower, double upper, bool include_upper = true) {
  return number_check(
      [=](double value) { return value >= lower && (include_upper ? value <= upper : value < upper); },
      "in [" + format_number(lower) + ", " + format_number(upper) + (include_upper ? "]" : ")"));
}

}  // namespace torchloss::examples
