#pragma once
/// \file fast_math.hpp
/// \brief exp/log/softplus/sigmoid for the fused CPU kernels, templated over V = float,
/// vfloat, vfloat8 (see simd.hpp) or double.
///
/// float and vfloat share one branch-free implementation (accurate to about 2 ulp), so a
/// vector loop and its scalar tail compute the same numbers; double defers to the standard
/// library, whose accuracy the float64 tests rely on.

#include <torchloss/detail/simd.hpp>

#include <cmath>

namespace torchloss {
namespace detail {
namespace fast {

/// True for double, which takes the standard library's math.
template <typename V>
constexpr bool is_double_v = std::is_same<V, double>::value;

/// The int32 bit pattern type of a float-based V.
template <typename V>
using bits_t = int_vector_t<V>;

/// The bits of a float-based V.
template <typename V>
inline bits_t<V> to_bits(V x) {
  bits_t<V> bits;
  std::memcpy(&bits, &x, sizeof(V));
  return bits;
}

/// A float-based V from its bits.
template <typename V>
inline V from_bits(bits_t<V> bits) {
  V x;
  std::memcpy(&x, &bits, sizeof(V));
  return x;
}

/// int32 lanes converted to float lanes.
template <typename V>
inline V int_to_float(bits_t<V> i) {
  if constexpr (is_simd_v<V>) {
    return __builtin_convertvector(i, V);
  } else {
    return static_cast<float>(i);
  }
}

/// 4 and 8 uint32 lanes, for shifts that must not overflow a signed lane.
typedef std::uint32_t vuint __attribute__((vector_size(16)));
typedef std::uint32_t vuint8 __attribute__((vector_size(32)));

/// bits << 23 per lane, computed on unsigned lanes (defined for every bit pattern).
template <typename V>
inline bits_t<V> shift_to_exponent(bits_t<V> bits) {
  if constexpr (std::is_same<V, vfloat8>::value) {
    return (bits_t<V>)((vuint8)bits << 23);
  } else if constexpr (is_simd_v<V>) {
    return (bits_t<V>)((vuint)bits << 23);
  } else {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(bits) << 23);
  }
}

/// e^x: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n by exponent bits.
/// Inputs below -87.3 give about 1e-38 (not a denormal or 0); NaN stays NaN.
template <typename V>
inline V exp(V x) {
  if constexpr (is_double_v<V>) {
    return std::exp(x);
  } else {
    // The clamp keeps 2^n a normal number; NaN fails both comparisons and passes through.
    x = select(x > 88.3762626647949f, splat<V>(88.3762626647949), x);
    x = select(x < -87.3365447504f, splat<V>(-87.3365447504), x);
    // Round x/ln2 to the nearest integer with the 1.5*2^23 trick: no float->int conversion.
    const float shifter = 12582912.0f;
    V n = x * 1.44269504088896341f + shifter;
    const bits_t<V> n_bits = to_bits(n);
    n = n - shifter;
    // Cody-Waite: ln2 split into a high part exact in float and a low correction.
    V r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    V p = splat<V>(1.9875691500e-4);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // The low mantissa bits of the shifted float hold n; move it to the exponent field (in
    // unsigned arithmetic: a NaN's bits would make the signed shift undefined).
    return p * from_bits<V>(shift_to_exponent<V>(n_bits - 0x4B400000 + 127));
  }
}

/// log(u) for u in [1, 2]: u = t 2^k with t in [√2/2, √2], log t = 2 atanh(s),
/// s = (t−1)/(t+1), |s| <= 0.172.
template <typename V>
inline V log_1_to_2(V u) {
  const auto high = u > 1.41421356f;
  const V t = select(high, u * 0.5f, u);
  const V k = select(high, splat<V>(0.693147180559945), V{});
  const V s = (t - 1.0f) / (t + 1.0f);
  const V s2 = s * s;
  V p = splat<V>(1.0 / 9);
  p = p * s2 + 0.142857143f;
  p = p * s2 + 0.2f;
  p = p * s2 + 0.333333333f;
  p = p * s2 + 1.0f;
  return k + 2.0f * s * p;
}

/// Natural log of a positive normal number (0 and denormals are selected away by callers);
/// NaN stays NaN.
template <typename V>
inline V log(V x) {
  if constexpr (is_double_v<V>) {
    return std::log(x);
  } else {
    const bits_t<V> bits = to_bits(x);
    const V k = int_to_float<V>(((bits >> 23) & 0xff) - 127);
    const V m = from_bits<V>((bits & 0x007fffff) | 0x3f800000);
    return select(x == x, log_1_to_2(m) + k * 0.693147180559945f, x);
  }
}

/// log(1 + e) for e in [0, 1] as e·q(e), q a degree-9 polynomial fitted to log1p(e)/e
/// (relative error about 1.5e-7 in float, 1 to 2 ulp): no division, and small e keeps its
/// relative precision (q(0) = 1).
template <typename V>
inline V log1p_unit(V e) {
  if constexpr (is_double_v<V>) {
    return std::log1p(e);
  } else {
    V q = splat<V>(-0.00324377347715199);
    q = q * e + 0.019849825650453568f;
    q = q * e - 0.05695537477731705f;
    q = q * e + 0.10603103786706924f;
    q = q * e - 0.1530517339706421f;
    q = q * e + 0.196757510304451f;
    q = q * e - 0.24954085052013397f;
    q = q * e + 0.33329954743385315f;
    q = q * e - 0.4999990165233612f;
    q = q * e + 1.0f;
    return e * q;
  }
}

/// m^γ for m in [0, 1] and γ >= 0, with 0^0 = 1; γ = 0, 1, 2, 3 and 4 are exact.
template <typename V>
inline V pow_unit(V m, double gamma) {
  if (gamma == 2) return m * m;
  if (gamma == 1) return m;
  if (gamma == 0) return splat<V>(1);
  if (gamma == 3) return m * m * m;
  if (gamma == 4) {
    const V square = m * m;
    return square * square;
  }
  if constexpr (is_double_v<V>) {
    return std::pow(m, gamma);
  } else {
    // Below the smallest normal float, m^γ is negligible next to what it multiplies.
    const auto normal = m >= std::numeric_limits<float>::min();
    const V power = exp(static_cast<float>(gamma) * log(select(normal, m, splat<V>(1))));
    return select(normal, power, select(m == m, V{}, m));
  }
}

/// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{−|x|}), stable at any |x|.
template <typename V>
inline V softplus(V x) {
  const V neg_abs = select(x < 0, x, -x);
  const V pos = select(x > 0, x, V{});
  return pos + log1p_unit(exp(neg_abs));
}

/// σ(x) = 1 / (1 + e^{−x}), stable at any |x| (e^{−|x|} never overflows).
template <typename V>
inline V sigmoid(V x) {
  const V e = exp(select(x < 0, x, -x));
  const V inv = splat<V>(1) / (e + 1);
  return select(x >= 0, inv, e * inv);
}

}  // namespace fast
}  // namespace detail
}  // namespace torchloss
