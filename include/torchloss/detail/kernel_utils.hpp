#pragma once
/// \file kernel_utils.hpp
/// \brief Pieces the fused CPU kernels share: the ATen-path switch and lane reductions.

#include <torchloss/detail/compat.hpp>

#include <limits>

namespace torchloss {
namespace detail {

/// When true (tests only), CPU tensors take the ATen-op path that other devices use.
inline thread_local bool force_aten_path = false;

/// Sets force_aten_path for a scope.
struct ScopedAtenPath {
  bool previous;
  explicit ScopedAtenPath(bool on = true) : previous(force_aten_path) { force_aten_path = on; }
  ~ScopedAtenPath() { force_aten_path = previous; }
};

/// Number of accumulator lanes in the row reductions: independent partial results that the
/// compiler maps onto SIMD registers (float reductions are not reassociated otherwise).
constexpr int kLanes = 16;

/// max_c x_c of a row; NaN entries are skipped here and propagate through the exp pass.
template <typename T>
inline T row_max(const T* x, int64_t n) {
  T acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  }
  T result = -std::numeric_limits<T>::infinity();
  for (; i < n; ++i) result = x[i] > result ? x[i] : result;
  for (int j = 0; j < kLanes; ++j) result = acc[j] > result ? acc[j] : result;
  return result;
}

/// Σ_i f(i) over [0, n) with lane accumulators.
template <typename T, typename F>
inline T row_sum(int64_t n, F f) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += f(i + j);
  }
  T result = 0;
  for (; i < n; ++i) result += f(i);
  for (int j = 0; j < kLanes; ++j) result += acc[j];
  return result;
}

}  // namespace detail
}  // namespace torchloss
