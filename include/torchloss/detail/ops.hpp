#pragma once
/// \file ops.hpp
/// \brief Math overloaded for scalars (the fused CPU kernels, through fast_math.hpp) and for
/// tensors (the ATen path), so each loss writes its formulas once as templates over V.

#include <torchloss/detail/compat.hpp>
#include <torchloss/detail/fast_math.hpp>

#include <cmath>
#include <type_traits>

namespace torchloss {
namespace detail {
namespace ops {

/// Enables an overload for the kernels' types: float, double and vfloat.
template <typename T>
using if_scalar = std::enable_if_t<std::is_floating_point<T>::value || is_simd_v<T>, int>;

/// A double option in the arithmetic of V: a V for the kernels' types (broadcast for
/// vfloat), the double itself for tensors.
template <typename V>
inline auto lit(double value) {
  if constexpr (std::is_floating_point<V>::value || is_simd_v<V>) {
    return splat<V>(value);
  } else {
    return value;
  }
}

/// softplus(x) = log(1 + e^x), stable at any |x|.
template <typename T, if_scalar<T> = 0>
inline T softplus(T x) {
  return fast::softplus(x);
}
/// softplus on tensors: max(x, 0) + log1p(e^{-|x|}), written with selections whose autograd
/// derivative is σ(x) everywhere, x = 0 included (clamp and abs would give 1 there), so a
/// gradient formula built on it differentiates correctly (double backward).
inline torch::Tensor softplus(const torch::Tensor& x) {
  const auto positive = x > 0;
  return torch::where(positive, x, torch::zeros_like(x)) + torch::where(positive, -x, x).exp().log1p();
}

/// sigmoid(x), stable at any |x|.
template <typename T, if_scalar<T> = 0>
inline T sigmoid(T x) {
  return fast::sigmoid(x);
}
/// sigmoid on tensors.
inline torch::Tensor sigmoid(const torch::Tensor& x) { return x.sigmoid(); }

/// e^x - 1, accurate near 0 (scalars: the softmax terms use it once per row).
template <typename T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
inline T expm1(T x) {
  return std::expm1(x);
}
/// e^x - 1 on tensors.
inline torch::Tensor expm1(const torch::Tensor& x) { return x.expm1(); }

/// m^γ for m in [0, 1], γ >= 0, 0^0 = 1.
template <typename T, if_scalar<T> = 0>
inline T pow_unit(T m, double gamma) {
  return fast::pow_unit(m, gamma);
}
/// m^γ on tensors.
inline torch::Tensor pow_unit(const torch::Tensor& m, double gamma) { return m.pow(gamma); }

/// a / b where b > 0, `fallback` elsewhere (b = 0 or NaN).
template <typename T, if_scalar<T> = 0>
inline T div_or(T a, T b, double fallback) {
  const auto positive = b > 0;
  return select(positive, a / select(positive, b, splat<T>(1)), splat<T>(fallback));
}
/// a / b where b > 0, `fallback` elsewhere, on tensors.
inline torch::Tensor div_or(const torch::Tensor& a, const torch::Tensor& b, double fallback) {
  // The divisor is 1 off b > 0: the unselected quotient stays finite, so its derivative
  // (masked to 0 by where) is not 0 · ∞ = NaN in a double backward.
  const auto positive = b > 0;
  return torch::where(positive, a / torch::where(positive, b, torch::ones_like(b)), torch::full_like(a, fallback));
}

/// max(d, 0), keeping NaN (a NaN input must reach the output).
template <typename T, if_scalar<T> = 0>
inline T relu(T d) {
  return select(d < 0, T{}, d);
}
/// max(d, 0) on tensors (clamp keeps NaN).
inline torch::Tensor relu(const torch::Tensor& d) { return d.clamp_min(0); }

/// 1 where d > 0, else 0 (NaN gives 0; multiply by it to mask a derivative that is 0 off d > 0).
template <typename T, if_scalar<T> = 0>
inline T step(T d) {
  return select(d > 0, splat<T>(1), T{});
}
/// 1 where d > 0, else 0, on tensors.
inline torch::Tensor step(const torch::Tensor& d) { return (d > 0).to(d.scalar_type()); }

/// −log(1 − u) for u in [0, 1), given u and 1 − u each computed accurately: log1p(u / (1 − u))
/// (its argument in [0, 1]) for u <= 1/2, so small u keeps its relative precision, and
/// −log(1 − u) above, where 1 − u (not u) carries the information.
template <typename T, if_scalar<T> = 0>
inline T neg_log1m(T u, T one_minus_u) {
  const auto small = u <= static_cast<lane_t<T>>(0.5);
  const T ratio = select(small, u / select(small, one_minus_u, splat<T>(1)), T{});
  return select(small, fast::log1p_unit(ratio), -fast::log(select(small, splat<T>(1), one_minus_u)));
}
/// −log(1 − u) on tensors.
inline torch::Tensor neg_log1m(const torch::Tensor& u, const torch::Tensor& one_minus_u) {
  return torch::where(u <= 0.5, -torch::log1p(-u), -one_minus_u.log());
}

/// σ(x), σ(−x) = 1 − σ(x) and softplus(x) = −log σ(−x), from one e^{−|x|}: each accurate
/// at any |x| (σ(−x) is not computed as 1 − σ(x), which cancels for large x).
template <typename V>
struct Logistic {
  V p, q, softplus;
};
/// Logistic parts of a scalar.
template <typename T, if_scalar<T> = 0>
inline Logistic<T> logistic(T x) {
  const T e = fast::exp(select(x < 0, x, -x));
  const T inv = splat<T>(1) / (e + 1);
  const T small = e * inv;
  const auto positive = x >= 0;
  return {select(positive, inv, small), select(positive, small, inv),
          select(x > 0, x, T{}) + fast::log1p_unit(e)};
}
/// Logistic parts of a tensor.
inline Logistic<torch::Tensor> logistic(const torch::Tensor& x) {
  return {x.sigmoid(), (-x).sigmoid(), ops::softplus(x)};
}

}  // namespace ops
}  // namespace detail
}  // namespace torchloss
