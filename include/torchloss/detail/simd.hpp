#pragma once
/// \file simd.hpp
/// \brief Explicit SIMD for the fused CPU kernels through the GCC/Clang vector extension.
///
/// Why not plain loops: under GCC's default -ftrapping-math the auto-vectoriser will not turn
/// the selections of a stable exp/log/sigmoid into masks, so those loops stay scalar. A
/// vector type makes the SIMD explicit and needs no flag. Kernels run their chunks through
/// dispatch_simd: 8 floats per operation in an AVX2+FMA function on CPUs that have it
/// (checked at run time, so a baseline x86-64 build uses it too), 4 floats (SSE) otherwise.
/// double stays scalar (width 1): its math is the standard library's, for accuracy.
///
/// The math of the losses is written once as templates over V; V is a scalar (float,
/// double), a `vfloat` or a torch::Tensor (the ATen path), and the helpers below make the
/// same code valid for each.

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

// vfloat8 values live in the AVX2 function that run_with_avx2 builds, but GCC also checks
// the default-target copies of the generic lambdas and templates that handle them and emits
// its -Wpsabi note ("AVX vector return without AVX enabled changes the ABI"), at locations as
// late as the end of the including file, where no push/pop can reach. The note concerns
// passing such vectors between separately compiled functions, which never happens here, so
// it is turned off for translation units that include torchloss.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace torchloss {
namespace detail {

/// 4 floats (one SSE register).
typedef float vfloat __attribute__((vector_size(16)));
/// 4 int32, the mask and bit-pattern type of vfloat.
typedef std::int32_t vint __attribute__((vector_size(16)));
/// 8 floats (one AVX register), used inside dispatch_simd's AVX2 function.
typedef float vfloat8 __attribute__((vector_size(32)));
/// 8 int32, the mask and bit-pattern type of vfloat8.
typedef std::int32_t vint8 __attribute__((vector_size(32)));

/// True for the float vector types.
template <typename V>
constexpr bool is_simd_v = std::is_same<V, vfloat>::value || std::is_same<V, vfloat8>::value;

/// The int32 mask/bit type of a float-based V (vint, vint8, or int32_t for float).
template <typename V>
using int_vector_t = std::conditional_t<std::is_same<V, vfloat8>::value, vint8,
                                        std::conditional_t<std::is_same<V, vfloat>::value, vint, std::int32_t>>;

/// The default SIMD type for element type T: vfloat for float, T itself otherwise.
template <typename T>
using simd_t = std::conditional_t<std::is_same<T, float>::value, vfloat, T>;

/// The lane type of V (float for the vectors, V for scalars).
template <typename V>
using lane_t = std::conditional_t<is_simd_v<V>, float, V>;

/// Lanes of V.
template <typename V>
constexpr int64_t lanes_v = static_cast<int64_t>(sizeof(V) / sizeof(lane_t<V>));

/// Lanes of simd_t<T>.
template <typename T>
constexpr int64_t simd_lanes = lanes_v<simd_t<T>>;

/// A constant as V (broadcast to every lane of a vector).
template <typename V>
inline V splat(double value) {
  return V{} + static_cast<lane_t<V>>(value);
}

/// mask ? a : b per lane. Scalars take a bool; vectors the -1/0 lanes of a comparison.
template <typename V, std::enable_if_t<!is_simd_v<V>, int> = 0>
inline V select(bool mask, V a, V b) {
  return mask ? a : b;
}
template <typename V, std::enable_if_t<is_simd_v<V>, int> = 0>
inline V select(int_vector_t<V> mask, V a, V b) {
  using I = int_vector_t<V>;
  return reinterpret_cast<V>((mask & reinterpret_cast<I>(a)) | (~mask & reinterpret_cast<I>(b)));
}

/// Loads V from p (unaligned).
template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

/// Stores v at p (unaligned).
template <typename V, typename T>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

/// Sum of the lanes of v.
template <typename V>
inline lane_t<V> lane_sum(const V& v) {
  if constexpr (is_simd_v<V>) {
    float total = 0;
    for (int j = 0; j < lanes_v<V>; ++j) total += v[j];
    return total;
  } else {
    return v;
  }
}

/// Calls body(k, V{}) for k = 0, W, 2W, ... while a whole vector fits, then body(k, T{})
/// for the scalar tail: `body` is a generic lambda that reads its V from the tag's type.
template <typename T, typename V = simd_t<T>, typename Body>
inline void simd_for(int64_t n, Body&& body) {
  constexpr int64_t width = lanes_v<V>;
  int64_t k = 0;
  for (; k + width <= n; k += width) body(k, V{});
  for (; k < n; ++k) body(k, T{});
}

/// Σ_{k<n} f(k, tag): f returns the V of its tag; vector partial sums, then the tail.
template <typename T, typename V = simd_t<T>, typename F>
inline T simd_sum(int64_t n, F&& f) {
  constexpr int64_t width = lanes_v<V>;
  V acc{};
  int64_t k = 0;
  for (; k + width <= n; k += width) acc += f(k, V{});
  T total = lane_sum(acc);
  for (; k < n; ++k) total += f(k, T{});
  return total;
}

/// max_k x[k], skipping NaN (it propagates through the sums that follow).
template <typename T, typename V = simd_t<T>>
inline T simd_max(const T* x, int64_t n) {
  constexpr int64_t width = lanes_v<V>;
  V acc = splat<V>(-std::numeric_limits<T>::infinity());
  int64_t k = 0;
  for (; k + width <= n; k += width) {
    const V v = load<V>(x + k);
    acc = select(v > acc, v, acc);
  }
  T result = -std::numeric_limits<T>::infinity();
  for (; k < n; ++k) result = x[k] > result ? x[k] : result;
  if constexpr (is_simd_v<V>) {
    for (int j = 0; j < lanes_v<V>; ++j) result = acc[j] > result ? acc[j] : result;
  } else {
    result = acc > result ? acc : result;
  }
  return result;
}

/// max_{k<n} f(k, tag), skipping NaN like simd_max: f returns the V of its tag (a computed
/// row, e.g. transformed logits, rather than one in memory); −∞ for n = 0.
template <typename T, typename V = simd_t<T>, typename F>
inline T simd_max_of(int64_t n, F&& f) {
  constexpr int64_t width = lanes_v<V>;
  V acc = splat<V>(-std::numeric_limits<T>::infinity());
  int64_t k = 0;
  for (; k + width <= n; k += width) {
    const V v = f(k, V{});
    acc = select(v > acc, v, acc);
  }
  T result = -std::numeric_limits<T>::infinity();
  for (; k < n; ++k) {
    const T v = f(k, T{});
    result = v > result ? v : result;
  }
  if constexpr (is_simd_v<V>) {
    for (int j = 0; j < lanes_v<V>; ++j) result = acc[j] > result ? acc[j] : result;
  } else {
    result = acc > result ? acc : result;
  }
  return result;
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
/// Whether this CPU runs AVX2 and FMA (checked once).
inline bool cpu_has_avx2_fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}

/// body(vfloat8{}) compiled for AVX2+FMA: `flatten` inlines the body and everything it
/// calls here, so the whole kernel is built with 8-lane instructions.
template <typename Body>
__attribute__((target("avx2,fma"), flatten)) inline void run_with_avx2(Body& body) {
  body(vfloat8{});
}
#endif

/// body(vfloat{}) inlined whole (the baseline twin of run_with_avx2).
template <typename Body>
__attribute__((flatten)) inline void run_with_sse(Body& body) {
  body(vfloat{});
}

/// Runs `body(tag)`, a generic lambda holding a kernel's loops, with the widest vector type
/// for element type T that this CPU supports: vfloat8 (AVX2), vfloat (SSE) or, for double,
/// the scalar itself. Results of the two float widths agree to rounding (FMA contraction).
template <typename T, typename Body>
inline void dispatch_simd(Body&& body) {
  if constexpr (!std::is_same<T, float>::value) {
    body(T{});
  } else {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    if (cpu_has_avx2_fma()) {
      run_with_avx2(body);
      return;
    }
#endif
    run_with_sse(body);
  }
}

}  // namespace detail
}  // namespace torchloss
