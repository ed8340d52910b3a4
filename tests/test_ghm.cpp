// GHM-C and GHM-R against the Python port of the reference algorithm (fixtures, sequences of
// calls with the moving average), against mmdetection's per-bin loop written in ATen (large
// inputs, both kernel paths), state (save/load, clone, to), gradients, and bad inputs.
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixture_cases.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <unistd.h>

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {

const char* kGHMC = "torchloss::GHMCLoss";
const char* kGHMR = "torchloss::GHMRLoss";

/// mmdetection's GHMC/GHMR forward, per-bin loop and all, in ATen (differentiable in x and
/// y; the weights are constants). `acc_sum` is updated as mmdetection does, in its own dtype.
torch::Tensor mmdet_reference(bool regression, const torch::Tensor& x, torch::Tensor y, torch::Tensor lw,
                              torch::Tensor acc_sum, int64_t bins, double momentum, double loss_weight,
                              double mu = 0.02) {
  if (!regression && y.scalar_type() == torch::kLong) {
    y = (y.unsqueeze(1) == torch::arange(x.size(1))).to(x.scalar_type());
    if (lw.defined()) lw = lw.view({-1, 1}).expand({-1, x.size(1)});
  }
  if (!lw.defined()) lw = torch::ones_like(x);
  auto edges = torch::arange(bins + 1).to(torch::kFloat) / bins;
  edges[bins] += 1e-6;
  torch::Tensor elem, g;
  if (regression) {
    const auto d = x - y;
    elem = torch::sqrt(d * d + mu * mu) - mu;
    g = (d / torch::sqrt(mu * mu + d * d)).abs().detach();
  } else {
    elem = torch::nn::functional::binary_cross_entropy_with_logits(
        x, y, torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
    g = (x.detach().sigmoid() - y.detach()).abs();
  }
  const auto valid = lw > 0;
  const double tot =
      std::max(regression ? lw.to(torch::kDouble).sum().item<double>() : valid.sum().item<double>(), 1.0);
  auto weights = torch::zeros_like(x);
  int64_t n = 0;
  for (int64_t i = 0; i < bins; ++i) {
    const auto inds = (g >= edges[i]) & (g < edges[i + 1]) & valid;
    const double num_in_bin = inds.sum().item<double>();
    if (num_in_bin > 0) {
      if (momentum > 0) {
        acc_sum[i] = momentum * acc_sum[i].item<double>() + (1 - momentum) * num_in_bin;
        weights.masked_fill_(inds, tot / acc_sum[i].item<double>());
      } else {
        weights.masked_fill_(inds, tot / num_in_bin);
      }
      ++n;
    }
  }
  if (n > 0) weights = weights / n;
  return (elem * weights).sum() / tot * loss_weight;
}

/// Gradient norms of every element: |σ(x) − y| or |d| / √(d² + μ²).
torch::Tensor gradient_norm(bool regression, const torch::Tensor& x, const torch::Tensor& y, double mu) {
  if (regression) return ((x - y) / ((x - y).square() + mu * mu).sqrt()).abs();
  return (x.sigmoid() - y).abs();
}

/// Moves elements whose gradient norm lies within `margin` of an inner bin edge, so that a
/// finite-difference step or a change of precision cannot move them to another bin.
torch::Tensor away_from_edges(bool regression, torch::Tensor x, const torch::Tensor& y, int64_t bins, double mu,
                              double margin = 1e-3) {
  for (int iteration = 0; iteration < 200; ++iteration) {
    const auto scaled = gradient_norm(regression, x, y, mu) * bins;
    const auto nearest = scaled.round();
    // Only the inner edges matter: g never leaves [0, 1].
    const auto bad = ((scaled - nearest).abs() < margin * bins) & (nearest > 0) & (nearest < bins);
    if (!bad.any().item<bool>()) return x;
    x = x + bad * 0.05 * (1 + x.abs()) * torch::randn(x.sizes(), x.options());
  }
  FAIL("could not move the inputs away from the bin edges");
  return x;
}

/// One fixture family: every case's call sequence through a fresh module, per path and dtype.
template <class Module, class Options>
void check_family(const std::string& family, bool regression) {
  const torchloss_test::Fixture fx("ghm.pt");
  const int64_t count = fx[family + "/count"].item<int64_t>();
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (const auto& dc : torchloss_test::dtype_cases()) {
      for (int64_t k = 0; k < count; ++k) {
        const std::string prefix = family + "/" + std::to_string(k);
        const auto opt = fx[prefix + "/options"];
        Options options;
        options.bins(opt[0].item<int64_t>()).momentum(opt[1].item<double>()).loss_weight(opt[2].item<double>());
        if constexpr (std::is_same<Options, torchloss::GHMRLossOptions>::value) options.mu(opt[3].item<double>());
        Module loss(options);
        const int64_t steps = fx[prefix + "/steps"].item<int64_t>();
        for (int64_t s = 0; s < steps; ++s) {
          const std::string key = prefix + "/" + std::to_string(s);
          INFO(key << ", dtype " << dc.dtype << ", aten path " << aten_path);
          auto x = fx[key + "/input"].to(dc.dtype).requires_grad_();
          auto target = fx[key + "/target"];
          if (target.is_floating_point()) target = target.to(dc.dtype);
          const auto lw = torchloss_test::optional_weight(fx, key + "/label_weight", dc.dtype);
          const auto value = loss(x, target, lw);
          CHECK(value.scalar_type() == dc.dtype);
          const auto expected = fx[key + "/" + dc.tag + "/loss"];
          CHECK_THAT(value, AllClose(expected, dc.rtol, dc.atol * (1 + expected.abs().item<double>())));
          const auto grad = torch::autograd::grad({value}, {x}, {fx[key + "/grad_output"].to(dc.dtype)})[0];
          CHECK(grad.scalar_type() == dc.dtype);
          CHECK_THAT(grad, AllClose(fx[key + "/" + dc.tag + "/grad"], dc.rtol, dc.atol));
          // The same counts in the same float64 arithmetic: the running counts agree exactly.
          CHECK_THAT(loss->acc_sum, AllClose(fx[key + "/" + dc.tag + "/acc_sum"], 0, 0));
        }
      }
    }
  }
  (void)regression;
}

torch::Tensor binary_targets(int64_t n, int64_t c, double positive = 0.2) {
  return (torch::rand({n, c}) < positive).to(torch::kFloat);
}

}  // namespace

TEST_CASE("GHMCLoss reproduces the reference over call sequences", "[ghm][ghmc]") {
  check_family<torchloss::GHMCLoss, torchloss::GHMCLossOptions>("ghmc", false);
}

TEST_CASE("GHMRLoss reproduces the reference over call sequences", "[ghm][ghmr]") {
  check_family<torchloss::GHMRLoss, torchloss::GHMRLossOptions>("ghmr", true);
}

TEST_CASE("GHM losses match mmdetection's per-bin loop on large inputs, on both paths and any thread count",
          "[ghm]") {
  torch::manual_seed(11);
  const int threads = at::get_num_threads();
  for (bool regression : {false, true}) {
    for (int64_t bins : {10, 30, 100}) {  // 100 bins: the single-histogram (no lanes) kernel
      const double momentum = bins == 10 ? 0.0 : 0.75;
      // Several chunks of the parallel kernel, with a partial last one.
      const int64_t n = 517, c = 211;
      const auto y = regression ? torch::randn({n, c}) : binary_targets(n, c);
      const auto x0 = regression ? y + torch::randn({n, c}) * torch::pow(10.0, torch::rand({n, c}) * 3 - 2.5)
                                 : torch::randn({n, c}) * 3;
      const auto x = away_from_edges(regression, x0, y, bins, 0.02, 1e-5);
      const auto lw = (torch::rand({n, c}) > 0.1).to(torch::kFloat);
      auto reference_acc = torch::zeros({bins});
      torch::Tensor reference_grad, reference_loss;
      for (int step = 0; step < 2; ++step) {  // the second step uses a non-zero acc_sum
        auto xr = x.clone().requires_grad_();
        reference_loss = mmdet_reference(regression, xr, y, lw, reference_acc, bins, momentum, 1.5);
        reference_loss.backward();
        reference_grad = xr.grad();
      }
      torch::Tensor first_loss;
      for (bool aten_path : {false, true}) {
        for (int t : {1, 2}) {
          INFO("regression " << regression << ", bins " << bins << ", aten path " << aten_path << ", threads " << t);
          at::set_num_threads(t);
          torchloss::detail::ScopedAtenPath path(aten_path);
          auto acc = torch::zeros({bins});
          torch::Tensor loss, grad;
          for (int step = 0; step < 2; ++step) {
            auto xt = x.clone().requires_grad_();
            loss = regression ? F::ghmr_loss(xt, y, lw, acc, F::GHMRFuncOptions().bins(bins).momentum(momentum).loss_weight(1.5))
                              : F::ghmc_loss(xt, y, lw, acc, F::GHMCFuncOptions().bins(bins).momentum(momentum).loss_weight(1.5));
            loss.backward();
            grad = xt.grad();
          }
          CHECK_THAT(loss, AllClose(reference_loss, 1e-5, 1e-7));
          CHECK_THAT(grad, AllClose(reference_grad, 1e-5, 1e-9));
          CHECK_THAT(acc, AllClose(reference_acc, 1e-6, 0));
          // The fused kernel's result does not depend on the thread count.
          if (!aten_path && t == 1) first_loss = loss;
          if (!aten_path && t == 2) CHECK(torch::equal(loss, first_loss));
        }
      }
    }
  }
  at::set_num_threads(threads);
}

TEST_CASE("GHM fused forward: the SSE kernel agrees with the dispatched one (AVX2 where the CPU has it)", "[ghm]") {
  using namespace torchloss::detail;
  torch::manual_seed(12);
  for (bool regression : {false, true}) {
    const int64_t n = 300, c = 77, bins = 10;  // a tail in every row-sized run
    const auto y = regression ? torch::randn({n, c}) : binary_targets(n, c);
    const auto x = away_from_edges(regression, regression ? y + torch::randn({n, c}) * 0.3 : torch::randn({n, c}) * 3, y,
                                   bins, 0.02, 1e-4);
    const auto lw = (torch::rand({n, c}) > 0.2).to(torch::kFloat);
    const auto b = broadcast_weight(lw, x, torch::kFloat);
    const GHMEdges edges(bins);
    torch::Tensor grads[2], slots[2];
    GHMHistogram h[2];
    for (int k = 0; k < 2; ++k) {
      grads[k] = torch::empty_like(x);
      slots[k] = torch::empty(x.sizes(), torch::kByte);
      if (regression) {
        h[k] = k == 0 ? ghm_forward_cpu<GHMRTerm, float, uint8_t>(x, y, b, edges, {0.02}, true, grads[k], slots[k])
                      : ghm_forward_cpu<GHMRTerm, float, uint8_t, vfloat>(x, y, b, edges, {0.02}, true, grads[k], slots[k]);
      } else {
        h[k] = k == 0 ? ghm_forward_cpu<GHMCTerm, float, uint8_t>(x, y, b, edges, {}, false, grads[k], slots[k])
                      : ghm_forward_cpu<GHMCTerm, float, uint8_t, vfloat>(x, y, b, edges, {}, false, grads[k], slots[k]);
      }
    }
    INFO("regression " << regression);
    CHECK(torch::equal(slots[0], slots[1]));
    CHECK(torch::equal(h[0].stats, h[1].stats));
    CHECK_THAT(h[0].sums, AllClose(h[1].sums, 1e-6, 1e-9));
    CHECK_THAT(grads[0], AllClose(grads[1], 1e-6, 1e-9));
  }
}

TEST_CASE("GHMCLoss takes int64 labels [N] as mmdetection does (one-hot, background rows)", "[ghm][ghmc]") {
  torch::manual_seed(5);
  const int64_t n = 40, c = 6;
  const auto labels = torch::randint(-1, c + 1, {n});  // -1 and C: rows of zeros
  const auto onehot = (labels.unsqueeze(1) == torch::arange(c)).to(torch::kFloat);
  const auto lw = (torch::rand({n}) > 0.3).to(torch::kFloat);
  const auto x = torch::randn({n, c}) * 3;
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    torchloss::GHMCLoss from_labels(torchloss::GHMCLossOptions().momentum(0.75));
    torchloss::GHMCLoss from_onehot(torchloss::GHMCLossOptions().momentum(0.75));
    for (int step = 0; step < 3; ++step) {
      auto x1 = x.clone().requires_grad_();
      auto x2 = x.clone().requires_grad_();
      const auto a = from_labels(x1, labels, lw);
      const auto b = from_onehot(x2, onehot, lw.view({-1, 1}).expand({n, c}));
      a.backward();
      b.backward();
      CHECK_THAT(a, AllClose(b, 1e-6, 0));
      CHECK_THAT(x1.grad(), AllClose(x2.grad(), 1e-6, 1e-9));
      CHECK(torch::equal(from_labels->acc_sum, from_onehot->acc_sum));
    }
  }
}

TEST_CASE("GHM label_weight may be bool, integer or floating, and only its sign counts in GHM-C", "[ghm]") {
  torch::manual_seed(6);
  const auto x = torch::randn({8, 5}) * 2;
  const auto y = binary_targets(8, 5, 0.4);
  const auto mask = torch::rand({8, 5}) > 0.3;
  const auto as_float = mask.to(torch::kFloat);
  const auto reference = F::ghmc_loss(x, y, as_float);
  CHECK_THAT(F::ghmc_loss(x, y, mask), AllClose(reference));
  CHECK_THAT(F::ghmc_loss(x, y, mask.to(torch::kInt)), AllClose(reference));
  CHECK_THAT(F::ghmc_loss(x, y, as_float * 3.5), AllClose(reference));
  // GHM-R's tot is the sum of the weights (mmdetection), but tot cancels out of the loss:
  // w_i / tot = 1 / (n · count_b).
  const auto r = F::ghmr_loss(x, y, as_float);
  CHECK_THAT(F::ghmr_loss(x, y, mask), AllClose(r));
  CHECK_THAT(F::ghmr_loss(x, y, as_float * 2), AllClose(r, 1e-6));
  // No label_weight: every element counts.
  CHECK_THAT(F::ghmc_loss(x, y), AllClose(F::ghmc_loss(x, y, torch::ones({8, 5}))));
}

TEST_CASE("GHM functional forms equal the modules and update acc_sum in place", "[ghm]") {
  torch::manual_seed(7);
  torchloss::GHMCLoss module(torchloss::GHMCLossOptions().bins(12).momentum(0.6).loss_weight(2));
  auto acc = torch::zeros({12});
  for (int step = 0; step < 4; ++step) {
    const auto x = torch::randn({10, 7}) * 3;
    const auto y = binary_targets(10, 7);
    const auto a = module(x, y);
    const auto b = F::ghmc_loss(x, y, {}, acc, F::GHMCFuncOptions().bins(12).momentum(0.6).loss_weight(2));
    CHECK(torch::equal(a, b));
    CHECK(torch::equal(module->acc_sum, acc));
  }
  CHECK(acc.sum().item<double>() > 0);
  // momentum 0: acc_sum is neither needed nor touched.
  torchloss::GHMRLoss plain;
  plain(torch::randn({4, 4}), torch::randn({4, 4}));
  CHECK(plain->acc_sum.count_nonzero().item<int64_t>() == 0);
  CHECK(F::ghmr_loss(torch::randn({4, 4}), torch::randn({4, 4})).defined());
}

TEST_CASE("GHM state: save/load resumes identically, clone and to() carry acc_sum", "[ghm]") {
  torch::manual_seed(8);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> batches;
  for (int i = 0; i < 6; ++i) batches.emplace_back(torch::randn({12, 9}) * 3, binary_targets(12, 9));
  const auto lw = (torch::rand({12, 9}) > 0.2).to(torch::kFloat);
  torchloss::GHMCLoss original(torchloss::GHMCLossOptions().bins(10).momentum(0.75));
  for (int i = 0; i < 3; ++i) original(batches[i].first, batches[i].second, lw);
  REQUIRE(original->named_buffers().contains("acc_sum"));

  char path[] = "/tmp/torchloss_ghm_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  torch::save(original, path);
  torchloss::GHMCLoss resumed(torchloss::GHMCLossOptions().bins(10).momentum(0.75));
  torch::load(resumed, path);
  std::remove(path);
  CHECK(torch::equal(resumed->acc_sum, original->acc_sum));

  auto copy = std::dynamic_pointer_cast<torchloss::GHMCLossImpl>(original->clone());
  REQUIRE(copy);
  CHECK(torch::equal(copy->acc_sum, original->acc_sum));
  CHECK(copy->acc_sum.data_ptr() != original->acc_sum.data_ptr());

  for (int i = 3; i < 6; ++i) {
    auto x1 = batches[i].first.clone().requires_grad_();
    auto x2 = batches[i].first.clone().requires_grad_();
    auto x3 = batches[i].first.clone().requires_grad_();
    const auto a = original(x1, batches[i].second, lw);
    const auto b = resumed(x2, batches[i].second, lw);
    const auto c = copy->forward(x3, batches[i].second, lw);
    a.backward();
    b.backward();
    c.backward();
    CHECK(torch::equal(a, b));
    CHECK(torch::equal(a, c));
    CHECK(torch::equal(x1.grad(), x2.grad()));
    CHECK(torch::equal(original->acc_sum, resumed->acc_sum));
    CHECK(torch::equal(original->acc_sum, copy->acc_sum));
  }
  const auto before = original->acc_sum.clone();
  copy->forward(batches[0].first, batches[0].second);
  CHECK(torch::equal(original->acc_sum, before));  // the clone's state is its own

  torchloss::GHMRLoss regression(torchloss::GHMRLossOptions().momentum(0.5));
  regression(torch::randn({5, 4}), torch::randn({5, 4}));
  const auto counts = regression->acc_sum.clone();
  regression->to(torch::kDouble);
  CHECK(regression->acc_sum.scalar_type() == torch::kDouble);
  CHECK_THAT(regression->acc_sum, AllClose(counts, 0, 0));
  const auto value = regression(torch::randn({5, 4}, torch::kDouble), torch::randn({5, 4}, torch::kDouble));
  CHECK(value.scalar_type() == torch::kDouble);
  std::ostringstream printed;
  printed << *regression;
  CHECK(printed.str() == "torchloss::GHMRLoss(mu=0.02, bins=10, momentum=0.5, loss_weight=1, distributed=false)");
}

TEST_CASE("GHM: all elements masked, empty bins and empty inputs", "[ghm]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    torchloss::GHMCLoss loss(torchloss::GHMCLossOptions().momentum(0.75));
    loss(torch::randn({6, 4}), binary_targets(6, 4));
    const auto before = loss->acc_sum.clone();
    auto x = torch::randn({6, 4}).requires_grad_();
    const auto masked = loss(x, binary_targets(6, 4), torch::zeros({6, 4}));
    masked.backward();
    CHECK(masked.item<float>() == 0.0f);
    CHECK(x.grad().count_nonzero().item<int64_t>() == 0);
    CHECK(torch::equal(loss->acc_sum, before));  // no bin was filled: nothing moves

    // Every element in one bin (g = 0.5 at x = 0, y = 1): the others stay empty and keep
    // their counts; the weight is tot / acc / 1.
    torchloss::GHMCLoss one_bin(torchloss::GHMCLossOptions().momentum(0.5));
    auto z = torch::zeros({3, 4}).requires_grad_();
    const auto value = one_bin(z, torch::ones({3, 4}));
    value.backward();
    auto expected_acc = torch::zeros({10});
    expected_acc[5] = 6;  // 0.5 · 0 + 0.5 · 12
    CHECK_THAT(one_bin->acc_sum, AllClose(expected_acc, 0, 0));
    // w = 12 / 6 = 2 per element, loss = Σ 2 · log 2 / 12 = 2 log 2.
    CHECK_THAT(value, AllClose(torch::tensor(2 * std::log(2.0)), 1e-6));
    CHECK_THAT(z.grad(), AllClose(torch::full({3, 4}, 2 * -0.5 / 12), 1e-6));

    auto empty = torch::zeros({0, 4}).requires_grad_();
    const auto nothing = F::ghmr_loss(empty, torch::zeros({0, 4}));
    nothing.backward();
    CHECK(nothing.item<float>() == 0.0f);
  }
}

TEST_CASE("GHM losses pass float64 finite differences with the bins held fixed", "[ghm]") {
  torch::manual_seed(9);
  const auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (bool regression : {false, true}) {
      INFO("regression " << regression << ", aten path " << aten_path);
      const int64_t bins = 7;
      const auto y = regression ? torch::randn({5, 4}, dbl) : (torch::rand({5, 4}, dbl) < 0.4).to(torch::kDouble);
      const auto lw = (torch::rand({5, 4}, dbl) > 0.2).to(torch::kDouble);
      const auto x0 = regression ? y + torch::randn({5, 4}, dbl) * 0.05 : torch::randn({5, 4}, dbl) * 2;
      const auto x = away_from_edges(regression, x0, y, bins, 0.1);
      const auto acc = torch::rand({bins}, dbl) * 5;  // a non-zero running state
      const auto f = [&](const torch::Tensor& input) {
        auto state = acc.clone();  // every evaluation starts from the same state
        return regression ? F::ghmr_loss(input, y, lw, state, F::GHMRFuncOptions().mu(0.1).bins(bins).momentum(0.6))
                          : F::ghmc_loss(input, y, lw, state, F::GHMCFuncOptions().bins(bins).momentum(0.6));
      };
      CHECK(torchloss_test::finite_difference_error(f, x) <= 1.0);
    }
  }
}

TEST_CASE("GHM gradients reach a regression target that requires one", "[ghm][ghmr]") {
  torch::manual_seed(10);
  const auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  const auto x0 = torch::randn({6, 4}, dbl);
  const auto y0 = x0 + torch::randn({6, 4}, dbl) * 0.1;
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    auto x = x0.clone().requires_grad_();
    auto y = y0.clone().requires_grad_();
    F::ghmr_loss(x, y).backward();
    auto xr = x0.clone().requires_grad_();
    auto yr = y0.clone().requires_grad_();
    mmdet_reference(true, xr, yr, {}, torch::zeros({10}), 10, 0, 1.0).backward();
    CHECK_THAT(x.grad(), AllClose(xr.grad(), 1e-10, 1e-14));
    CHECK_THAT(y.grad(), AllClose(yr.grad(), 1e-10, 1e-14));
    // GHM-C: ∂/∂y of the weighted BCE is −w·x.
    auto xc = x0.clone().requires_grad_();
    auto yc = torch::rand({6, 4}, dbl).requires_grad_();
    F::ghmc_loss(xc, yc).backward();
    auto xcr = x0.clone().requires_grad_();
    auto ycr = yc.detach().clone().requires_grad_();
    mmdet_reference(false, xcr, ycr, {}, torch::zeros({10}), 10, 0, 1.0).backward();
    CHECK_THAT(yc.grad(), AllClose(ycr.grad(), 1e-10, 1e-14));
  }
}

TEST_CASE("GHM losses stay finite at extreme inputs and propagate NaN", "[ghm]") {
  for (const auto& dc : torchloss_test::dtype_cases()) {
    for (bool aten_path : {false, true}) {
      INFO("dtype " << dc.dtype << ", aten path " << aten_path);
      torchloss::detail::ScopedAtenPath path(aten_path);
      auto x = torch::tensor({-1e4, 1e4, -1e4, 1e4, 0.5, -0.5}).to(dc.dtype).requires_grad_();
      const auto y = torch::tensor({0.0, 1.0, 1.0, 0.0, 1.0, 0.0}).to(dc.dtype);
      torchloss::GHMCLoss classification(torchloss::GHMCLossOptions().momentum(0.75));
      const auto loss = classification(x, y);
      loss.backward();
      CHECK(std::isfinite(loss.item<double>()));
      CHECK(torch::isfinite(x.grad()).all().item<bool>());
      // g = 0 (bin 0: two elements, and the 0.5/-0.5 pair lands in bin 3) and g = 1 (last bin).
      CHECK(classification->acc_sum[0].item<float>() == 0.5f);
      CHECK(classification->acc_sum[9].item<float>() == 0.5f);

      auto p = torch::tensor({1e4, -1e4, 0.0, 1e-3}).to(dc.dtype).requires_grad_();
      const auto loss_r = F::ghmr_loss(p, torch::zeros({4}, dc.dtype));
      loss_r.backward();
      CHECK(std::isfinite(loss_r.item<double>()));
      CHECK(torch::isfinite(p.grad()).all().item<bool>());
    }
  }
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(std::isnan(F::ghmc_loss(torch::tensor({0.5, nan}), torch::tensor({1.0, 0.0})).item<double>()));
    // A masked NaN still propagates, as 0 · NaN does in the reference.
    CHECK(std::isnan(
        F::ghmr_loss(torch::tensor({0.5, nan}), torch::tensor({1.0, 0.0}), torch::tensor({1.0, 0.0})).item<double>()));
  }
}

TEST_CASE("GHM bin edges are mmdetection's float32 edges, at and around every edge", "[ghm]") {
  for (int64_t bins : {1, 3, 7, 10, 30, 100, 1000}) {
    const torchloss::detail::GHMEdges edges(bins);
    auto table = torch::arange(bins + 1).to(torch::kFloat) / bins;
    table[bins] += 1e-6;
    std::vector<double> probes = {0.0, 1.0, 0.5, 1e-30, 1.0 + 1e-7, 1.0 + 2e-6, 2.0};
    for (int64_t i = 0; i <= bins; ++i) {
      const float e = table[i].item<float>();
      probes.insert(probes.end(), {e, std::nextafter(e, -1.0f), std::nextafter(e, 2.0f), std::nextafter(double(e), -1.0),
                                   std::nextafter(double(e), 2.0)});
    }
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      const auto g = torch::tensor(probes, torch::kDouble).to(dtype);
      const auto t = table.to(dtype);
      // The reference: the bin i with t[i] <= g < t[i+1], else `bins`.
      const auto in_bin = (g.unsqueeze(1) >= t.narrow(0, 0, bins)) & (g.unsqueeze(1) < t.narrow(0, 1, bins));
      const auto expected = torch::where(in_bin.any(1), in_bin.to(torch::kLong).argmax(1), torch::full_like(g, bins).to(torch::kLong));
      CHECK(torch::equal(edges.slot(g), expected));
      for (int64_t j = 0; j < g.numel(); ++j) {
        INFO("bins " << bins << ", g " << probes[static_cast<size_t>(j)] << ", dtype " << dtype);
        const int32_t s = dtype == torch::kFloat ? edges.slot(g[j].item<float>()) : edges.slot(g[j].item<double>());
        CHECK(s == expected[j].item<int64_t>());
      }
      if (dtype == torch::kFloat) {  // the SIMD lanes of the fused kernel
        const auto gf = g.contiguous();
        for (int64_t j = 0; j + 4 <= g.numel(); j += 4) {
          const auto lanes = edges.slot(torchloss::detail::load<torchloss::detail::vfloat>(gf.data_ptr<float>() + j));
          for (int l = 0; l < 4; ++l) CHECK(lanes[l] == expected[j + l].item<int64_t>());
        }
      }
    }
    CHECK(edges.slot(std::numeric_limits<float>::quiet_NaN()) == bins);
  }
}

TEST_CASE("GHM losses reject bad inputs with named errors", "[ghm][errors]") {
  const auto x = torch::randn({4, 3});
  const auto y = binary_targets(4, 3);
  TORCHLOSS_CHECK_ERROR(torchloss::GHMCLoss(torchloss::GHMCLossOptions().bins(0)), kGHMC, "bins must be in [1, ");
  TORCHLOSS_CHECK_ERROR(torchloss::GHMRLoss(torchloss::GHMRLossOptions().bins(-3)), kGHMR, "got -3");
  TORCHLOSS_CHECK_ERROR(torchloss::GHMCLoss(torchloss::GHMCLossOptions().momentum(1.0)), kGHMC,
                        "momentum must be in [0, 1), got 1");
  TORCHLOSS_CHECK_ERROR(torchloss::GHMCLoss(torchloss::GHMCLossOptions().momentum(-0.1)), kGHMC, "momentum");
  TORCHLOSS_CHECK_ERROR(torchloss::GHMRLoss(torchloss::GHMRLossOptions().momentum(std::nan(""))), kGHMR, "momentum");
  TORCHLOSS_CHECK_ERROR(torchloss::GHMCLoss(torchloss::GHMCLossOptions().loss_weight(INFINITY)), kGHMC,
                        "loss_weight must be finite");
  TORCHLOSS_CHECK_ERROR(torchloss::GHMRLoss(torchloss::GHMRLossOptions().mu(0)), kGHMR, "mu must be positive");

  torchloss::GHMCLoss ghmc(torchloss::GHMCLossOptions().momentum(0.5));
  TORCHLOSS_CHECK_ERROR(ghmc(x.to(torch::kInt), y), kGHMC, "input must be a floating-point");
  TORCHLOSS_CHECK_ERROR(ghmc(x, torch::rand({4, 1})), kGHMC, "target shape [4, 1]");
  TORCHLOSS_CHECK_ERROR(ghmc(x, y.to(torch::kInt)), kGHMC, "target must be float [N, C]");
  TORCHLOSS_CHECK_ERROR(ghmc(x, torch::zeros({3}, torch::kLong)), kGHMC, "int64 class labels must have shape [N]");
  TORCHLOSS_CHECK_ERROR(ghmc(x, y, torch::ones({4})), kGHMC, "label_weight shape [4]");
  TORCHLOSS_CHECK_ERROR(ghmc(x, torch::zeros({4}, torch::kLong), torch::ones({4, 3})), kGHMC, "label_weight shape [4, 3]");
  TORCHLOSS_CHECK_ERROR(ghmc(x, y, torch::ones({4, 3}, torch::kComplexFloat)), kGHMC, "label_weight must be real");
  TORCHLOSS_CHECK_ERROR(ghmc(x, y.to(torch::kMeta)), kGHMC, "target is on meta");
  TORCHLOSS_CHECK_ERROR(ghmc(x, y, torch::ones({4, 3}, torch::kMeta)), kGHMC, "label_weight is on meta");
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    TORCHLOSS_CHECK_ERROR(ghmc(x, y + 1.5), kGHMC, "outside [0, 1]");
  }

  const auto opts = F::GHMCFuncOptions().momentum(0.5);
  const char* fn = "torchloss::ghmc_loss";
  TORCHLOSS_CHECK_ERROR(F::ghmc_loss(x, y, {}, {}, opts), fn, "acc_sum (the running bin counts, shape [10]) must be given");
  TORCHLOSS_CHECK_ERROR(F::ghmc_loss(x, y, {}, torch::zeros({9}), opts), fn, "acc_sum shape [9] must be [bins] = [10]");
  TORCHLOSS_CHECK_ERROR(F::ghmc_loss(x, y, {}, torch::zeros({10}, torch::kHalf), opts), fn, "acc_sum must be float32 or float64");
  TORCHLOSS_CHECK_ERROR(F::ghmc_loss(x, y, {}, torch::zeros({10}, torch::kMeta), opts), fn, "acc_sum is on meta");
  TORCHLOSS_CHECK_ERROR(F::ghmc_loss(x, y, {}, {}, F::GHMCFuncOptions().bins(0)), fn, "bins");

  torchloss::GHMRLoss ghmr;
  TORCHLOSS_CHECK_ERROR(ghmr(x, torch::randn({3, 4})), kGHMR, "target shape [3, 4] must equal input shape [4, 3]");
  TORCHLOSS_CHECK_ERROR(ghmr(x, torch::zeros({4, 3}, torch::kLong)), kGHMR, "target must be a floating-point");
  TORCHLOSS_CHECK_ERROR(ghmr(x, y, torch::ones({4, 1})), kGHMR, "label_weight shape [4, 1]");
  TORCHLOSS_CHECK_ERROR(ghmr(x.to(torch::kMeta), y), kGHMR, "target is on cpu");
  TORCHLOSS_CHECK_ERROR(F::ghmr_loss(x, y, {}, {}, F::GHMRFuncOptions().mu(-1)), "torchloss::ghmr_loss", "mu must be positive");
}
