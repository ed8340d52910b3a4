#pragma once
/// \file kernel_utils.hpp
/// \brief Pieces the fused CPU kernels share: the ATen-path switch (and, through simd.hpp,
/// the vector loops).

#include <torchloss/detail/compat.hpp>
#include <torchloss/detail/simd.hpp>

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

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

/// Flushes denormal results and inputs to zero on this thread for a scope (x86 MXCSR FTZ and
/// DAZ bits; a no-op elsewhere or when `on` is false), restoring the previous mode after.
/// A kernel whose values routinely fall below float's normal range (softmax probabilities of
/// logits scaled by 30) otherwise pays a microcode assist, about a hundred cycles, for every
/// denormal it makes; flushed, such a value is 0, which it is to float precision anyway.
struct ScopedFlushDenormals {
#if defined(__SSE__) || defined(__x86_64__)
  unsigned int previous = 0;
  bool active;
  explicit ScopedFlushDenormals(bool on = true) : active(on) {
    if (!active) return;
    previous = _mm_getcsr();
    _mm_setcsr(previous | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
  }
  ~ScopedFlushDenormals() {
    if (active) _mm_setcsr(previous);
  }
#else
  explicit ScopedFlushDenormals(bool = true) {}
#endif
  ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
  ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;
};

/// Σ_i f(i) over [0, n) with 16 independent partial sums (a reduction the compiler may
/// map onto SIMD registers; simd_sum in simd.hpp is the explicit-vector alternative).
template <typename T, typename F>
inline T row_sum(int64_t n, F f) {
  constexpr int lanes = 16;
  T acc[lanes] = {};
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    for (int j = 0; j < lanes; ++j) acc[j] += f(i + j);
  }
  T result = 0;
  for (; i < n; ++i) result += f(i);
  for (int j = 0; j < lanes; ++j) result += acc[j];
  return result;
}

}  // namespace detail
}  // namespace torchloss
