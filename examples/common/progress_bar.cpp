#include "common/progress_bar.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

#ifdef _WIN32
#include <io.h>
#else
#include <unistd.h>
#endif

namespace torchloss::examples {
namespace {

constexpr int kBarWidth = 30;
constexpr std::chrono::milliseconds kRedrawInterval{100};

}  // namespace

bool stderr_is_terminal() {
#ifdef _WIN32
  return _isatty(_fileno(stderr)) != 0;
#else
  return isatty(fileno(stderr)) != 0;
#endif
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto total = static_cast<long long>(std::llround(seconds));
  const long long hours = total / 3600;
  const long long minutes = (total / 60) % 60;
  const long long secs = total % 60;
  char text[32];
  if (hours > 0) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", hours, minutes, secs);
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", minutes, secs);
  }
  return text;
}

ProgressBar::ProgressBar(std::string label, std::int64_t total, bool enabled)
    : ProgressBar(std::move(label), total, enabled && stderr_is_terminal(), std::cerr) {}

ProgressBar::ProgressBar(std::string label, std::int64_t total, bool enabled, std::ostream& out)
    : label_(std::move(label)),
      total_(std::max<std::int64_t>(total, 0)),
      enabled_(enabled),
      out_(out),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - kRedrawInterval) {}

ProgressBar::~ProgressBar() {
  if (enabled_ && !finished_ && last_line_length_ > 0) out_ << '\n' << std::flush;
}

void ProgressBar::update(std::int64_t completed, double loss) {
  completed_ = std::clamp<std::int64_t>(completed, 0, total_);
  loss_ = loss;
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (completed_ < total_ && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  draw();
}

void ProgressBar::update(std::int64_t completed, double loss, std::int64_t examples_done) {
  examples_done_ = std::max<std::int64_t>(examples_done, 0);
  update(completed, loss);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  draw();
  out_ << '\n' << std::flush;
  finished_ = true;
}

void ProgressBar::draw() {
  const double fraction = total_ == 0 ? 1.0 : static_cast<double>(completed_) / static_cast<double>(total_);
  const auto filled = static_cast<int>(fraction * kBarWidth);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double remaining = completed_ == 0 ? -1.0 : elapsed * (1.0 - fraction) / fraction;

  std::ostringstream line;
  line << label_ << " [" << std::string(filled, '#') << std::string(kBarWidth - filled, '.') << "] "
       << completed_ << '/' << total_ << ' ' << std::setw(3) << static_cast<int>(fraction * 100.0) << "%  loss "
       << std::fixed << std::setprecision(4) << loss_ << "  " << format_duration(elapsed) << '<'
       << format_duration(remaining);
  if (examples_done_ >= 0 && elapsed > 0) {
    line << "  " << std::setprecision(0) << static_cast<double>(examples_done_) / elapsed << " img/s";
  }
  std::string text = line.str();
  // Pad with spaces so a shorter line fully covers the previous one.
  const std::size_t length = text.size();
  if (length < last_line_length_) text.append(last_line_length_ - length, ' ');
  last_line_length_ = length;
  out_ << '\r' << text << std::flush;
}

}  // namespace torchloss::examples
