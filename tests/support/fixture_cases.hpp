#pragma once
// The loop every loss's fixture test runs: for each kernel path (fused CPU, ATen), each
// dtype and each case of a fixture file, compute the loss on the input rounded to that dtype
// and compare value and input gradient with the reference computed for that rounding.
#include "support/all_close.hpp"
#include "support/fixtures.hpp"

#include <torchloss/detail/kernel_utils.hpp>

namespace torchloss_test {

/// The weight dtype a test passes beside an input of `dtype`: float64 with float64, float32
/// otherwise (a float16 weight would add its own rounding to the comparison).
inline torch::ScalarType weight_dtype_for(torch::ScalarType dtype) {
  return dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
}

/// An optional fixture tensor in the weight dtype for `dtype` (undefined when absent).
inline torch::Tensor optional_weight(const Fixture& fx, const std::string& key, torch::ScalarType dtype) {
  const auto w = fx.get_or_undefined(key);
  return w.defined() ? w.to(weight_dtype_for(dtype)) : w;
}

/// Runs every case of `file` through `loss_of(fx, key, x, dtype_case)`. Low-precision
/// targets (rounded by the test like the input) add `target_rtol_half`/`_bf16` to rtol.
/// `scale_grad_atol` scales the gradient's atol by 1 + max|expected gradient|, as the loss's
/// always is: for losses that multiply the logits (LDAM's s = 30), float rounding of a
/// gradient entry is relative to the row's largest entry, not to its own size.
template <class LossOf>
void check_fixture_cases(const std::string& file, LossOf loss_of, double target_rtol_half = 0,
                         double target_rtol_bf16 = 0, bool scale_grad_atol = false) {
  const Fixture fx(file);
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (const auto& dc : dtype_cases()) {
      const double rtol = dc.rtol + (dc.dtype == torch::kHalf       ? target_rtol_half
                                     : dc.dtype == torch::kBFloat16 ? target_rtol_bf16
                                                                    : 0.0);
      for (int64_t k = 0; k < fx.count(); ++k) {
        const std::string key = std::to_string(k);
        INFO(file << " case " << key << ", dtype " << dc.dtype << ", aten path " << aten_path);
        const auto expected = fx[key + "/" + dc.tag + "/loss"];
        // A sum of extreme losses overflows float16 (max 65504) in any implementation.
        if (dc.dtype == torch::kHalf && expected.abs().max().item<double>() > 65504) continue;
        auto x = fx[key + "/input"].to(dc.dtype).requires_grad_();
        const auto loss = loss_of(fx, key, x, dc);
        CHECK(loss.scalar_type() == dc.dtype);
        CHECK_THAT(loss, AllClose(expected, rtol, dc.atol * (1 + expected.abs().max().item<double>())));
        const auto grad = torch::autograd::grad({loss}, {x}, {fx[key + "/grad_output"].to(dc.dtype)})[0];
        CHECK(grad.scalar_type() == dc.dtype);
        const auto expected_grad = fx[key + "/" + dc.tag + "/grad"];
        const double grad_atol =
            dc.atol * (scale_grad_atol ? 1 + expected_grad.abs().max().item<double>() : 1.0);
        CHECK_THAT(grad, AllClose(expected_grad, rtol, grad_atol));
      }
    }
  }
}

}  // namespace torchloss_test
