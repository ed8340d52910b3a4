// The fused classifier head linear_cross_entropy against the unfused composition (LibTorch's
// cross_entropy of linear(...) in float64, plus the z-loss, margins and logit adjustment written
// with ATen ops) and against Python fixtures (PyTorch's own functions): values and the
// gradients of input, weight and bias, for every option, on the fused CPU kernels and the ATen
// path, with uneven chunks and chunks larger than the batch; all-ignored batches, float16 and
// bfloat16, extreme inputs, finite differences, the module, bad inputs.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

#include <cmath>
#include <sstream>

using torchloss_test::AllClose;
namespace F = torchloss::functional;
namespace nnf = torch::nn::functional;

namespace {

constexpr const char* kFn = "torchloss::linear_cross_entropy";

/// The unfused head written with ATen ops: z = s·l (target s·(ψ(l_y) − m3)) + τ log π, with
/// l = linear(x, W, b) or normalize(x)·normalize(W)ᵀ; LibTorch's cross_entropy of z plus
/// ζ·logsumexp(z)² per counted sample.
torch::Tensor unfused(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, const torch::Tensor& y,
                      const F::LinearCrossEntropyFuncOptions& o) {
  torch::Tensor l;
  if (o.cosine()) {
    const auto unit = nnf::NormalizeFuncOptions().dim(1);
    l = torch::mm(nnf::normalize(x, unit), nnf::normalize(w, unit).t());
  } else {
    l = nnf::linear(x, w, b);
  }
  const auto valid = y != o.ignore_index();
  const auto safe = y.masked_fill(~valid, 0).unsqueeze(1);
  if (o.angular_margin() != 0 || o.additive_margin() != 0) {
    const auto target = l.gather(1, safe);
    auto psi = target;
    if (o.angular_margin() != 0) {
      const auto theta = target.acos();
      psi = torch::where(theta + o.angular_margin() <= torchloss::detail::kPi, (theta + o.angular_margin()).cos(),
                         target - o.angular_margin() * std::sin(o.angular_margin()));
    }
    l = l.scatter(1, safe, torch::where(valid.unsqueeze(1), psi - o.additive_margin(), target));
  }
  auto z = o.scale() * l;
  if (o.class_counts().defined()) {
    const auto counts = o.class_counts().to(torch::kDouble);
    z = z + o.tau() * (counts / counts.sum()).log();
  }
  const auto lse_sq = torch::where(valid, z.logsumexp(1).square(), torch::zeros({}, z.options()));
  auto ce_options = nnf::CrossEntropyFuncOptions()
                        .ignore_index(o.ignore_index())
                        .label_smoothing(o.label_smoothing())
                        .reduction(torch::kNone);
  if (o.class_weight().defined()) ce_options.weight(o.class_weight());
  const auto ce = nnf::cross_entropy(z, y, ce_options);
  const int64_t reduction = torchloss::detail::reduction_code(o.reduction());
  if (reduction == at::Reduction::None) return ce + o.z_loss() * lse_sq;
  if (reduction == at::Reduction::Sum) return ce.sum() + o.z_loss() * lse_sq.sum();
  const auto w_y = o.class_weight().defined() ? o.class_weight().index_select(0, safe.squeeze(1))
                                              : torch::ones({y.size(0)}, z.options());
  const auto weight_sum = (w_y * valid.to(z.scalar_type())).sum();
  return ce.sum() / weight_sum + o.z_loss() * lse_sq.sum() / valid.sum();
}

/// Leaves of a random head: x [N, D], W [C, D], b [C] (or undefined), in float64.
struct Head {
  torch::Tensor x, w, b, y;
};

Head random_head(int64_t n, int64_t d, int64_t c, bool bias, uint64_t seed, bool ignore = true) {
  torch::manual_seed(seed);
  Head h;
  h.x = torch::randn({n, d}, torch::kDouble);
  h.w = torch::randn({c, d}, torch::kDouble) * 0.5;
  if (bias) h.b = torch::randn({c}, torch::kDouble);
  h.y = torch::randint(c, {n}, torch::kLong);
  if (ignore && n > 0) h.y.slice(0, 0, n, 3).fill_(-100);
  return h;
}

/// Value and the gradients (input, weight, bias) of `loss_of(x, w, b)` for upstream `grad_output`.
struct Result {
  torch::Tensor loss, grad_input, grad_weight, grad_bias;
};

template <class LossOf>
Result evaluate(const Head& h, torch::ScalarType dtype, const torch::Tensor& grad_output, LossOf loss_of) {
  auto x = h.x.to(dtype).requires_grad_();
  auto w = h.w.to(dtype).requires_grad_();
  auto b = h.b.defined() ? h.b.to(dtype).requires_grad_() : torch::Tensor();
  Result r;
  r.loss = loss_of(x, w, b);
  std::vector<torch::Tensor> leaves{x, w};
  if (b.defined()) leaves.push_back(b);
  const auto grads = torch::autograd::grad({r.loss}, leaves, {grad_output.to(r.loss.scalar_type())});
  r.grad_input = grads[0];
  r.grad_weight = grads[1];
  if (b.defined()) r.grad_bias = grads[2];
  return r;
}

void check_close(const Result& actual, const Result& expected, double rtol, double atol) {
  CHECK_THAT(actual.loss, AllClose(expected.loss, rtol, atol));
  CHECK_THAT(actual.grad_input, AllClose(expected.grad_input, rtol, atol));
  CHECK_THAT(actual.grad_weight, AllClose(expected.grad_weight, rtol, atol));
  CHECK(actual.grad_bias.defined() == expected.grad_bias.defined());
  if (expected.grad_bias.defined()) CHECK_THAT(actual.grad_bias, AllClose(expected.grad_bias, rtol, atol));
}

/// Compares the fused head with the unfused composition in float64, on both kernel paths and
/// for each chunk size (0: automatic, 1, uneven 3, larger than N).
void check_against_unfused(const Head& h, F::LinearCrossEntropyFuncOptions o) {
  const bool none = torchloss::detail::reduction_code(o.reduction()) == at::Reduction::None;
  torch::manual_seed(99);
  const auto grad_output = none ? torch::randn({h.x.size(0)}, torch::kDouble) : torch::tensor(1.7, torch::kDouble);
  const auto expected = evaluate(h, torch::kDouble, grad_output, [&](const torch::Tensor& x, const torch::Tensor& w,
                                                                     const torch::Tensor& b) {
    return unfused(x, w, b, h.y, o);
  });
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (int64_t chunk : {int64_t{0}, int64_t{1}, int64_t{3}, h.x.size(0) + 5}) {
      INFO("aten path " << aten_path << ", chunk " << chunk);
      const auto actual = evaluate(h, torch::kDouble, grad_output, [&](const torch::Tensor& x,
                                                                       const torch::Tensor& w, const torch::Tensor& b) {
        return F::linear_cross_entropy(x, w, b, h.y, F::LinearCrossEntropyFuncOptions(o).chunk_size(chunk));
      });
      check_close(actual, expected, 1e-10, 1e-12);
    }
  }
}

const std::vector<torchloss::reduction_t>& reductions() {
  static const std::vector<torchloss::reduction_t> all{torch::kNone, torch::kMean, torch::kSum};
  return all;
}

}  // namespace

TEST_CASE("linear_cross_entropy matches the Python reference (fixtures)", "[linear_cross_entropy]") {
  const torchloss_test::Fixture fx("linear_cross_entropy.pt");
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (auto dtype : {torch::kDouble, torch::kFloat}) {
      const double rtol = dtype == torch::kDouble ? 1e-10 : 1e-4, atol = dtype == torch::kDouble ? 1e-12 : 1e-5;
      for (int64_t k = 0; k < fx.count(); ++k) {
        const std::string key = std::to_string(k);
        for (int64_t chunk : {0, 2}) {
          INFO("case " << key << ", dtype " << dtype << ", aten path " << aten_path << ", chunk " << chunk);
          const auto opt = fx[key + "/options"];
          auto o = F::LinearCrossEntropyFuncOptions()
                       .label_smoothing(opt[0].item<double>())
                       .z_loss(opt[1].item<double>())
                       .reduction(torchloss_test::reduction_from_code(opt[2].item<int64_t>()))
                       .cosine(opt[3].item<double>() != 0)
                       .scale(opt[4].item<double>())
                       .angular_margin(opt[5].item<double>())
                       .additive_margin(opt[6].item<double>())
                       .tau(opt[7].item<double>())
                       .class_counts(fx.get_or_undefined(key + "/counts"))
                       .chunk_size(chunk);
          const auto class_weight = fx.get_or_undefined(key + "/class_weight");
          if (class_weight.defined()) o.class_weight(class_weight.to(dtype));
          const Head h{fx[key + "/input"], fx[key + "/weight"], fx.get_or_undefined(key + "/bias"),
                       fx[key + "/target"]};
          const auto actual = evaluate(h, dtype, fx[key + "/grad_output"],
                                       [&](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
                                         return F::linear_cross_entropy(x, w, b, h.y, o);
                                       });
          CHECK(actual.loss.scalar_type() == dtype);
          const Result expected{fx[key + "/f64/loss"], fx[key + "/f64/grad_input"], fx[key + "/f64/grad_weight"],
                                fx.get_or_undefined(key + "/f64/grad_bias")};
          check_close(actual, expected, rtol, atol);
        }
      }
    }
  }
}

TEST_CASE("linear_cross_entropy equals the unfused head for every plain option", "[linear_cross_entropy]") {
  torch::manual_seed(5);
  const auto class_weight = torch::rand({5}, torch::kDouble) + 0.1;
  for (bool bias : {true, false}) {
    const Head h = random_head(7, 4, 5, bias, 17);
    for (bool weighted : {false, true}) {
      for (double smoothing : {0.0, 0.2}) {
        for (double z_loss : {0.0, 0.01}) {
          for (const auto& reduction : reductions()) {
            INFO("bias " << bias << ", weighted " << weighted << ", smoothing " << smoothing << ", z_loss " << z_loss
                         << ", reduction " << torch::enumtype::get_enum_name(reduction));
            check_against_unfused(h, F::LinearCrossEntropyFuncOptions()
                                         .class_weight(weighted ? class_weight : torch::Tensor())
                                         .label_smoothing(smoothing)
                                         .z_loss(z_loss)
                                         .reduction(reduction));
          }
        }
      }
    }
  }
}

TEST_CASE("linear_cross_entropy with another ignore_index and no ignored rows", "[linear_cross_entropy]") {
  Head h = random_head(6, 3, 4, true, 23, /*ignore=*/false);
  check_against_unfused(h, F::LinearCrossEntropyFuncOptions().z_loss(0.1));
  h.y[2] = 3;
  check_against_unfused(h, F::LinearCrossEntropyFuncOptions().ignore_index(3).label_smoothing(0.1));
}

TEST_CASE("linear_cross_entropy: cosine logits with ArcFace/CosFace margins and logit adjustment",
          "[linear_cross_entropy]") {
  const auto counts = torch::tensor({900, 12, 250, 3, 60});
  struct Margins {
    double scale, m2, m3;
  };
  for (const Margins& m : {Margins{1, 0, 0}, Margins{8, 0.5, 0}, Margins{8, 0, 0.35}, Margins{6, 0.3, 0.2},
                           Margins{4, 2.9, 0}}) {  // m2 = 2.9 sends most targets to the c − m2 sin m2 branch
    for (bool adjusted : {false, true}) {
      for (const auto& reduction : reductions()) {
        INFO("scale " << m.scale << ", m2 " << m.m2 << ", m3 " << m.m3 << ", adjusted " << adjusted << ", reduction "
                      << torch::enumtype::get_enum_name(reduction));
        auto o = F::LinearCrossEntropyFuncOptions()
                     .cosine(true)
                     .scale(m.scale)
                     .angular_margin(m.m2)
                     .additive_margin(m.m3)
                     .label_smoothing(0.1)
                     .z_loss(0.001)
                     .reduction(reduction);
        if (adjusted) o.class_counts(counts).tau(1.5);
        check_against_unfused(random_head(7, 4, 5, /*bias=*/false, 31), o);
      }
    }
  }
  // The margin and the adjustment on the plain (biased) logits: scale and m3 apply there too.
  for (const auto& reduction : reductions()) {
    check_against_unfused(random_head(7, 4, 5, true, 37), F::LinearCrossEntropyFuncOptions()
                                                              .scale(2)
                                                              .additive_margin(0.5)
                                                              .class_counts(counts)
                                                              .tau(0.7)
                                                              .reduction(reduction));
  }
}

TEST_CASE("linear_cross_entropy: chunks larger than N and C, one row, one class", "[linear_cross_entropy]") {
  check_against_unfused(random_head(3, 4, 2, true, 41, false), F::LinearCrossEntropyFuncOptions().chunk_size(1000));
  check_against_unfused(random_head(1, 4, 6, true, 42, false), F::LinearCrossEntropyFuncOptions().z_loss(0.5));
  check_against_unfused(random_head(5, 2, 1, true, 43, false),
                        F::LinearCrossEntropyFuncOptions().reduction(torch::kNone).z_loss(0.5));
}

TEST_CASE("linear_cross_entropy: all targets ignored give 0 and zero gradients", "[linear_cross_entropy]") {
  Head h = random_head(5, 3, 4, true, 51);
  h.y.fill_(-100);
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (const auto& reduction : reductions()) {
      INFO("aten path " << aten_path << ", reduction " << torch::enumtype::get_enum_name(reduction));
      const bool none = torchloss::detail::reduction_code(reduction) == at::Reduction::None;
      const auto grad_output = none ? torch::ones({5}, torch::kDouble) : torch::tensor(1.0, torch::kDouble);
      const auto r = evaluate(h, torch::kDouble, grad_output, [&](const torch::Tensor& x, const torch::Tensor& w,
                                                                  const torch::Tensor& b) {
        return F::linear_cross_entropy(
            x, w, b, h.y,
            F::LinearCrossEntropyFuncOptions().z_loss(0.1).label_smoothing(0.1).chunk_size(2).reduction(reduction));
      });
      CHECK(r.loss.abs().sum().item<double>() == 0);
      CHECK(r.grad_input.abs().sum().item<double>() == 0);
      CHECK(r.grad_weight.abs().sum().item<double>() == 0);
      CHECK(r.grad_bias.abs().sum().item<double>() == 0);
    }
  }
}

TEST_CASE("linear_cross_entropy: empty batch", "[linear_cross_entropy]") {
  const Head h = random_head(0, 3, 4, true, 52);
  for (const auto& reduction : reductions()) {
    const bool none = torchloss::detail::reduction_code(reduction) == at::Reduction::None;
    const auto grad_output = none ? torch::ones({0}, torch::kDouble) : torch::tensor(1.0, torch::kDouble);
    const auto r = evaluate(h, torch::kDouble, grad_output, [&](const torch::Tensor& x, const torch::Tensor& w,
                                                                const torch::Tensor& b) {
      return F::linear_cross_entropy(x, w, b, h.y, F::LinearCrossEntropyFuncOptions().reduction(reduction));
    });
    CHECK(r.loss.numel() == (none ? 0 : 1));
    if (!none) CHECK(r.loss.item<double>() == 0);
    CHECK(r.grad_input.sizes() == h.x.sizes());
    CHECK(r.grad_weight.abs().sum().item<double>() == 0);
  }
}

TEST_CASE("linear_cross_entropy: float16 and bfloat16 inputs compute in float32", "[linear_cross_entropy]") {
  const Head h = random_head(9, 8, 6, true, 61);
  const auto class_weight = torch::rand({6}) + 0.1;
  for (auto dtype : {torch::kHalf, torch::kBFloat16, torch::kFloat}) {
    // The reference sees the same rounded inputs, in float64.
    const Head rounded{h.x.to(dtype).to(torch::kDouble), h.w.to(dtype).to(torch::kDouble),
                       h.b.to(dtype).to(torch::kDouble), h.y};
    const double tol = dtype == torch::kHalf ? 4e-3 : dtype == torch::kBFloat16 ? 3e-2 : 2e-5;
    for (const auto& reduction : reductions()) {
      for (bool aten_path : {false, true}) {
        torchloss::detail::ScopedAtenPath path(aten_path);
        INFO("dtype " << dtype << ", reduction " << torch::enumtype::get_enum_name(reduction) << ", aten path "
                      << aten_path);
        const auto o = F::LinearCrossEntropyFuncOptions()
                           .class_weight(class_weight)
                           .label_smoothing(0.1)
                           .z_loss(0.01)
                           .chunk_size(4)
                           .reduction(reduction);
        const bool none = torchloss::detail::reduction_code(reduction) == at::Reduction::None;
        const auto grad_output = none ? torch::ones({9}, torch::kDouble) : torch::tensor(1.0, torch::kDouble);
        const auto expected = evaluate(rounded, torch::kDouble, grad_output,
                                       [&](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
                                         return unfused(x, w, b, h.y,
                                                        F::LinearCrossEntropyFuncOptions(o).class_weight(
                                                            class_weight.to(torch::kDouble)));
                                       });
        const auto actual = evaluate(h, dtype, grad_output, [&](const torch::Tensor& x, const torch::Tensor& w,
                                                                const torch::Tensor& b) {
          return F::linear_cross_entropy(x, w, b, h.y, o);
        });
        CHECK(actual.loss.scalar_type() == dtype);
        CHECK(actual.grad_input.scalar_type() == dtype);
        CHECK(actual.grad_weight.scalar_type() == dtype);
        CHECK(actual.grad_bias.scalar_type() == dtype);
        check_close(actual, expected, tol, tol);
      }
    }
  }
}

TEST_CASE("linear_cross_entropy: extreme inputs give finite values and gradients", "[linear_cross_entropy]") {
  Head h = random_head(6, 4, 5, true, 71);
  h.x = h.x * 1e4;  // logits of order 1e4
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      for (bool cosine : {false, true}) {
        INFO("aten path " << aten_path << ", dtype " << dtype << ", cosine " << cosine);
        auto o = F::LinearCrossEntropyFuncOptions().label_smoothing(0.1).z_loss(1e-4).chunk_size(4);
        Head head = h;
        if (cosine) {
          head.b = torch::Tensor();
          o.cosine(true).scale(64).angular_margin(0.5);
        }
        const auto r = evaluate(head, dtype, torch::tensor(1.0, torch::kDouble),
                                [&](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
                                  return F::linear_cross_entropy(x, w, b, head.y, o);
                                });
        CHECK(r.loss.isfinite().all().item<bool>());
        CHECK(r.grad_input.isfinite().all().item<bool>());
        CHECK(r.grad_weight.isfinite().all().item<bool>());
        if (r.grad_bias.defined()) CHECK(r.grad_bias.isfinite().all().item<bool>());
      }
    }
  }
}

TEST_CASE("linear_cross_entropy: ArcFace target cosine of exactly 1 has a finite gradient", "[linear_cross_entropy]") {
  // Sample 0's feature is its class's weight vector: its target cosine is 1 (θ = 0).
  auto w = torch::randn({4, 3}, torch::kDouble).requires_grad_();
  auto x = torch::cat({w.detach().slice(0, 1, 2), torch::randn({2, 3}, torch::kDouble)}).requires_grad_();
  const auto y = torch::tensor({1, 0, 2});
  const auto loss = F::linear_cross_entropy(x, w, {}, y,
                                            F::LinearCrossEntropyFuncOptions().cosine(true).scale(16).angular_margin(0.5));
  const auto grads = torch::autograd::grad({loss}, {x, w});
  CHECK(loss.isfinite().item<bool>());
  CHECK(grads[0].isfinite().all().item<bool>());
  CHECK(grads[1].isfinite().all().item<bool>());
}

TEST_CASE("linear_cross_entropy: cosine rows whose squared norm overflows are still unit vectors",
          "[linear_cross_entropy]") {
  // Regression (fuzz seed 13, case 3778): normalize() of a float32 row of norm 5e25 squared it
  // to inf and returned a zero row (cosines 0) instead of (0.6, −0.8). Expected: the float64
  // cross entropy of s·(x̂·Ŵ_c), x̂ = (0.6, −0.8), written out; the true gradient of x is of
  // order 1/‖x‖ = 2e-26, i.e. 0 in float32.
  const std::vector<double> unit_x{0.6, -0.8};
  const std::vector<std::vector<double>> w_rows{{1.0, 0.0}, {0.0, 2.0}, {-3.0, 4.0}};
  const double s = 16;
  std::vector<double> z;
  for (const auto& row : w_rows) {
    const double norm = std::hypot(row[0], row[1]);
    z.push_back(s * (unit_x[0] * row[0] + unit_x[1] * row[1]) / norm);
  }
  const double z_max = std::max({z[0], z[1], z[2]});
  const double lse = z_max + std::log(std::exp(z[0] - z_max) + std::exp(z[1] - z_max) + std::exp(z[2] - z_max));
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {  // bfloat16: computed in float32
      const double magnitude = 1e25;
      for (int64_t label = 0; label < 3; ++label) {
        INFO("aten path " << aten_path << ", dtype " << dtype << ", label " << label);
        const auto x = (torch::tensor({{3.0, -4.0}}, torch::kDouble) * magnitude).to(dtype).requires_grad_();
        const auto w = torch::tensor({{1.0, 0.0}, {0.0, 2.0}, {-3.0, 4.0}}, torch::kDouble).to(dtype).requires_grad_();
        const auto loss = F::linear_cross_entropy(x, w, {}, torch::tensor({label}),
                                                  F::LinearCrossEntropyFuncOptions().cosine(true).scale(s));
        const double tol = dtype == torch::kFloat ? 1e-4 : 5e-2;
        CHECK_THAT(loss.to(torch::kDouble), AllClose(torch::tensor(lse - z[label], torch::kDouble), tol, tol));
        const auto grad_x = torch::autograd::grad({loss}, {x})[0].to(torch::kDouble);
        CHECK_THAT(grad_x, AllClose(torch::zeros({1, 2}, torch::kDouble), 0, 1e-6));
      }
    }
  }
}

TEST_CASE("linear_cross_entropy: cosine logits of one feature have zero gradients, also under ArcFace",
          "[linear_cross_entropy]") {
  // Regression (fuzz seed 13, cases 15958, 17008, 19255): with D = 1 every unit vector is ±1,
  // so the loss is locally constant in x and W and their exact gradients are 0. Autograd's
  // normalize backward g/|v| − v (v·g)/|v|³ cancels only up to rounding, and ArcFace's slope
  // ψ'(c) at c = ±1 (about 1/√(2·ulp)) amplified the remainder to 4e-3 (float32) and 0.125
  // (float16). Expected loss: the float64 formula, ψ(1) = cos m, ψ(−1) = −1 − m sin m.
  const double s = 16, m = 0.5;
  const std::vector<double> xs{2.8, -0.4, 0.013, -5.9};
  const std::vector<double> ws{-0.23, 0.68, -0.74, 1.48};
  const std::vector<int64_t> labels{0, 3, 2, 1};
  std::vector<double> expected;
  for (size_t i = 0; i < xs.size(); ++i) {
    std::vector<double> z;
    for (size_t c = 0; c < ws.size(); ++c) {
      const double cosine = (xs[i] > 0) == (ws[c] > 0) ? 1.0 : -1.0;
      double logit = cosine;
      if (static_cast<int64_t>(c) == labels[i]) logit = cosine > 0 ? std::cos(m) : -1 - m * std::sin(m);
      z.push_back(s * logit);
    }
    double z_max = z[0];
    for (double v : z) z_max = std::max(z_max, v);
    double sum = 0;
    for (double v : z) sum += std::exp(v - z_max);
    expected.push_back(z_max + std::log(sum) - z[labels[i]]);
  }
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (const auto dtype : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16}) {
      for (int64_t chunk : {0, 1, 3}) {
        INFO("aten path " << aten_path << ", dtype " << dtype << ", chunk " << chunk);
        const auto x = torch::tensor(xs, torch::kDouble).reshape({4, 1}).to(dtype).requires_grad_();
        const auto w = torch::tensor(ws, torch::kDouble).reshape({4, 1}).to(dtype).requires_grad_();
        const auto loss = F::linear_cross_entropy(
            x, w, {}, torch::tensor(labels),
            F::LinearCrossEntropyFuncOptions().cosine(true).scale(s).angular_margin(m).chunk_size(chunk).reduction(
                torch::kNone));
        const double tol = dtype == torch::kFloat || dtype == torch::kDouble ? 1e-5 : 5e-2;
        CHECK_THAT(loss.to(torch::kDouble), AllClose(torch::tensor(expected, torch::kDouble), tol, tol));
        const auto grads = torch::autograd::grad({loss.sum()}, {x, w});
        CHECK_THAT(grads[0].to(torch::kDouble), AllClose(torch::zeros({4, 1}, torch::kDouble), 0, 0));
        CHECK_THAT(grads[1].to(torch::kDouble), AllClose(torch::zeros({4, 1}, torch::kDouble), 0, 0));
      }
    }
  }
}

TEST_CASE("linear_cross_entropy: float64 finite differences of input, weight and bias", "[linear_cross_entropy]") {
  const Head h = random_head(5, 3, 4, true, 81);
  const auto options = [](bool cosine) {
    auto o = F::LinearCrossEntropyFuncOptions().label_smoothing(0.15).z_loss(0.05).chunk_size(2).reduction(
        torch::kNone);
    if (cosine) o.cosine(true).scale(4).angular_margin(0.4).additive_margin(0.1);
    return o;
  };
  CHECK(torchloss_test::finite_difference_error(
            [&](const torch::Tensor& x) { return F::linear_cross_entropy(x, h.w, h.b, h.y, options(false)); }, h.x) <=
        1);
  CHECK(torchloss_test::finite_difference_error(
            [&](const torch::Tensor& w) { return F::linear_cross_entropy(h.x, w, h.b, h.y, options(false)); }, h.w) <=
        1);
  CHECK(torchloss_test::finite_difference_error(
            [&](const torch::Tensor& b) { return F::linear_cross_entropy(h.x, h.w, b, h.y, options(false)); }, h.b) <=
        1);
  CHECK(torchloss_test::finite_difference_error(
            [&](const torch::Tensor& x) { return F::linear_cross_entropy(x, h.w, {}, h.y, options(true)); }, h.x) <= 1);
  CHECK(torchloss_test::finite_difference_error(
            [&](const torch::Tensor& w) { return F::linear_cross_entropy(h.x, w, {}, h.y, options(true)); }, h.w) <= 1);
}

TEST_CASE("linear_cross_entropy: gradients only where asked, none under NoGradGuard", "[linear_cross_entropy]") {
  const Head h = random_head(6, 3, 4, true, 91);
  auto w = h.w.clone().requires_grad_();
  // Frozen features and bias: only the weight gets a gradient, equal to the unfused one.
  const auto fused = F::linear_cross_entropy(h.x, w, h.b, h.y);
  const auto reference = unfused(h.x, w, h.b, h.y, F::LinearCrossEntropyFuncOptions());
  CHECK_THAT(torch::autograd::grad({fused}, {w})[0], AllClose(torch::autograd::grad({reference}, {w})[0], 1e-10, 1e-12));
  // A second backward through the same graph (retain_graph) recomputes what the first handed over.
  for (const auto& reduction : reductions()) {
    INFO("reduction " << torch::enumtype::get_enum_name(reduction));
    const auto o = F::LinearCrossEntropyFuncOptions().z_loss(0.1).chunk_size(4).reduction(reduction);
    auto x = h.x.clone().requires_grad_();
    const auto loss = F::linear_cross_entropy(x, w, h.b, h.y, o).sum();
    loss.backward({}, /*retain_graph=*/true);
    const auto first = x.grad().clone();
    loss.backward();
    CHECK_THAT(x.grad(), AllClose(2 * first, 1e-12, 1e-14));
    const auto expected = torch::autograd::grad({unfused(x, w, h.b, h.y, o).sum()}, {x})[0];
    CHECK_THAT(first, AllClose(expected, 1e-10, 1e-12));
  }
  torch::NoGradGuard no_grad;
  const auto value = F::linear_cross_entropy(h.x, w, h.b, h.y);
  CHECK_FALSE(value.requires_grad());
  CHECK_THAT(value, AllClose(reference.detach(), 1e-10));
}

TEST_CASE("LinearCrossEntropyLoss: parameters like torch::nn::Linear, logits, buffers", "[linear_cross_entropy]") {
  torch::manual_seed(3);
  torch::nn::Linear linear(torch::nn::LinearOptions(6, 10));
  torch::manual_seed(3);
  torchloss::LinearCrossEntropyLoss head(6, 10);
  CHECK(torch::equal(head->weight, linear->weight));
  CHECK(torch::equal(head->bias, linear->bias));
  CHECK(head->parameters().size() == 2);
  CHECK(head->named_parameters().contains("weight"));
  CHECK(head->named_parameters().contains("bias"));

  const auto x = torch::randn({5, 6});
  const auto y = torch::randint(10, {5});
  CHECK(torch::equal(head->logits(x), linear(x)));
  const auto loss = head(x, y);
  const auto expected = nnf::cross_entropy(linear(x), y);
  CHECK_THAT(loss, AllClose(expected, 1e-5, 1e-6));
  const auto grads = torch::autograd::grad({loss}, {head->weight, head->bias});
  const auto expected_grads = torch::autograd::grad({expected}, {linear->weight, linear->bias});
  CHECK_THAT(grads[0], AllClose(expected_grads[0], 1e-4, 1e-6));
  CHECK_THAT(grads[1], AllClose(expected_grads[1], 1e-4, 1e-6));

  // Class weights and counts are buffers that travel with the module.
  const auto class_weight = torch::rand({10}) + 0.5;
  const auto counts = torch::arange(1, 11);
  torchloss::LinearCrossEntropyLoss adjusted(torchloss::LinearCrossEntropyLossOptions(6, 10)
                                                 .bias(false)
                                                 .class_weight(class_weight)
                                                 .class_counts(counts)
                                                 .tau(0.5)
                                                 .z_loss(0.01));
  CHECK(adjusted->parameters().size() == 1);
  CHECK_FALSE(adjusted->bias.defined());
  CHECK(adjusted->named_buffers().contains("class_weight"));
  CHECK(adjusted->named_buffers().contains("class_counts"));
  const auto double_head = std::dynamic_pointer_cast<torchloss::LinearCrossEntropyLossImpl>(adjusted->clone());
  double_head->to(torch::kDouble);
  const auto xd = x.to(torch::kDouble);
  CHECK_THAT(double_head->forward(xd, y),
             AllClose(unfused(xd, double_head->weight, {}, y,
                              F::LinearCrossEntropyFuncOptions().class_weight(class_weight.to(torch::kDouble))
                                  .class_counts(counts).tau(0.5).z_loss(0.01)),
                      1e-10));

  // The cosine head has no bias; its logits are s·cos.
  torchloss::LinearCrossEntropyLoss arcface(
      torchloss::LinearCrossEntropyLossOptions(6, 10).cosine(true).scale(30).angular_margin(0.5));
  CHECK_FALSE(arcface->bias.defined());
  const auto unit = nnf::NormalizeFuncOptions().dim(1);
  CHECK_THAT(arcface->logits(x), AllClose(30 * torch::mm(nnf::normalize(x, unit),
                                                          nnf::normalize(arcface->weight, unit).t()),
                                          1e-5, 1e-5));
  std::ostringstream printed;
  printed << *arcface;
  CHECK(printed.str() ==
        "torchloss::LinearCrossEntropyLoss(in_features=6, out_features=10, bias=false, cosine=true, "
        "angular_margin=0.5, scale=30, ignore_index=-100, label_smoothing=0, z_loss=0, reduction=kMean)");
}

TEST_CASE("linear_cross_entropy: bad inputs raise torchloss errors", "[linear_cross_entropy]") {
  const auto x = torch::randn({4, 3});
  const auto w = torch::randn({5, 3});
  const auto b = torch::randn({5});
  const auto y = torch::tensor({0, 1, 4, -100});
  using O = F::LinearCrossEntropyFuncOptions;
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x.view({2, 2, 3}), w, b, y), kFn, "input must have shape [N, D]");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x.to(torch::kLong), w, b, y), kFn, "floating-point");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, torch::randn({5, 4}), b, y), kFn, "weight must have shape [C, 3]");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, torch::randn({0, 3}), {}, torch::full({4}, -100)), kFn,
                        "C >= 1");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w.to(torch::kDouble), b, y), kFn,
                        "weight has dtype Double but input has dtype Float");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b.to(torch::kHalf), y), kFn,
                        "bias has dtype Half but input has dtype Float");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, torch::randn({4}), y), kFn, "bias must have shape [5]");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, torch::tensor({0, 1, 2})), kFn,
                        "target must have shape [4]");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y.to(torch::kInt)), kFn, "int64");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, torch::tensor({0, 1, 5, 2})), kFn,
                        "target label 5 is outside [0, 5)");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, torch::tensor({0, -1, 2, 2})), kFn,
                        "target label -1 is outside [0, 5)");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().class_weight(torch::ones({4}))), kFn,
                        "class_weight must have shape [5]");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().label_smoothing(1.5)), kFn, "label_smoothing");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().z_loss(-1)), kFn, "z_loss must be");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().chunk_size(-2)), kFn, "chunk_size must be >= 0");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().scale(0)), kFn, "scale must be");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, {}, y, O().angular_margin(0.5)), kFn,
                        "angular_margin 0.5 needs cosine");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, {}, y, O().cosine(true).angular_margin(4)), kFn,
                        "angular_margin must be in");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().cosine(true)), kFn, "bias must be undefined");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().class_counts(torch::tensor({1, 2, 0, 4, 5}))), kFn,
                        "class count");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().class_counts(torch::ones({3}))), kFn,
                        "class_counts must have shape [5]");
  TORCHLOSS_CHECK_ERROR(F::linear_cross_entropy(x, w, b, y, O().class_counts(torch::ones({5})).tau(-1)), kFn,
                        "tau must be");
  TORCHLOSS_CHECK_ERROR(torchloss::LinearCrossEntropyLoss(0, 5), "torchloss::LinearCrossEntropyLoss",
                        "in_features must be >= 1");
  torchloss::LinearCrossEntropyLoss head(3, 5);
  TORCHLOSS_CHECK_ERROR(head->logits(torch::randn({2, 4})), "torchloss::LinearCrossEntropyLoss::logits",
                        "input must have shape [..., 3]");
}
