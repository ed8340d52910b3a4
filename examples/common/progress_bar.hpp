#pragma once
/// @file progress_bar.hpp
/// A one-line terminal progress bar, redrawn in place with '\r'.

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace torchloss::examples {

/// Shows `label [#####.....] i/N  pct%  loss x  elapsed<ETA` on one line, followed by
/// `  R img/s` when the caller reports how many examples are done.
///
/// Draws nothing when disabled, so a training loop can update it unconditionally.
class ProgressBar {
 public:
  /// A bar on stderr, drawn only when `enabled` and stderr is a terminal (not a log file or pipe).
  ProgressBar(std::string label, std::int64_t total, bool enabled = true);

  /// A bar on `out`, drawn whenever `enabled` (for tests, or a stream known to be a terminal).
  ProgressBar(std::string label, std::int64_t total, bool enabled, std::ostream& out);

  /// Ends the line if `finish()` was not called.
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Records that `completed` of the steps are done with running loss `loss`; redraws at
  /// most every 0.1 s, and always on the last step.
  void update(std::int64_t completed, double loss);

  /// As update(completed, loss), and also shows the throughput: `examples_done` examples
  /// (images) processed since the bar was created, divided by the elapsed time.
  void update(std::int64_t completed, double loss, std::int64_t examples_done);

  /// Draws the final state and ends the line.
  void finish();

  /// Returns whether the bar draws at all.
  bool enabled() const { return enabled_; }

 private:
  void draw();

  std::string label_;
  std::int64_t total_;
  bool enabled_;
  std::ostream& out_;
  std::int64_t completed_ = 0;
  double loss_ = 0.0;
  std::int64_t examples_done_ = -1;  // < 0: throughput not shown
  bool finished_ = false;
  std::size_t last_line_length_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

/// Formats a duration as `m:ss`, or `h:mm:ss` from an hour on.
std::string format_duration(double seconds);

/// Returns whether stderr is attached to a terminal.
bool stderr_is_terminal();

}  // namespace torchloss::examples
