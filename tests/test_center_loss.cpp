// center_loss and CenterLoss against the float64 reference of the authors' rule
// (tests/reference/fixtures_center_loss.py) over several steps, plus the modes, state, the
// distributed hook and every bad input.
#include <torchloss/center_loss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

#include <cstdio>
#include <string>
#include <unistd.h>

using torchloss_test::AllClose;
namespace F = torchloss::functional;

namespace {

const char* kFn = "torchloss::center_loss";
const char* kModule = "torchloss::CenterLoss";

/// A module with the given centers (float64 for float64 features, float32 otherwise).
torchloss::CenterLoss make_module(int64_t num_classes, int64_t feature_dim, double alpha, torchloss::reduction_t reduction,
                                  const torch::Tensor& centers0, torch::ScalarType features_dtype) {
  torchloss::CenterLoss loss(
      torchloss::CenterLossOptions(num_classes, feature_dim).alpha(alpha).reduction(reduction));
  if (features_dtype == torch::kDouble) loss->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  loss->centers.copy_(centers0);
  return loss;
}

/// Tolerances of centers: float64 for float64 features, float32 otherwise.
double centers_rtol(torch::ScalarType dtype) { return dtype == torch::kDouble ? 1e-10 : 2e-5; }
double centers_atol(torch::ScalarType dtype) { return dtype == torch::kDouble ? 1e-12 : 2e-6; }

/// The plain ATen formula, differentiable in features and centers by autograd.
torch::Tensor plain_center_loss(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& c,
                                torchloss::reduction_t reduction) {
  const auto losses = 0.5 * (x - c.index_select(0, y)).pow(2).sum(1);
  const int64_t code = torchloss::detail::reduction_code(reduction);
  if (code == at::Reduction::None) return losses;
  if (code == at::Reduction::Sum) return losses.sum();
  return losses.sum() / x.size(0);
}

/// The paper's update of `centers` (a copy) in float64, the C++ twin of the fixture's.
torch::Tensor reference_update(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& centers,
                               double alpha) {
  auto c = centers.to(torch::kDouble).clone();
  const auto xd = x.to(torch::kDouble);
  for (int64_t j = 0; j < c.size(0); ++j) {
    const auto members = (y == j).nonzero().flatten();
    if (members.numel() == 0) continue;
    const auto delta = (c[j] - xd.index_select(0, members)).sum(0) / (1.0 + static_cast<double>(members.numel()));
    c[j] = c[j] - alpha * delta;
  }
  return c;
}

}  // namespace

TEST_CASE("center_loss follows the float64 reference over several steps (loss, lambda-scaled gradient, centers)",
          "[center_loss]") {
  const torchloss_test::Fixture fx("center_loss.pt");
  for (bool aten_path : {false, true}) {
    for (const auto& dc : torchloss_test::dtype_cases()) {
      for (int64_t k = 0; k < fx.count(); ++k) {
        const std::string key = std::to_string(k);
        INFO("case " << key << ", dtype " << dc.dtype << ", aten path " << aten_path);
        const auto options = fx[key + "/options"];
        const double alpha = options[0].item<double>();
        const auto reduction = torchloss_test::reduction_from_code(options[1].item<int64_t>());
        const int64_t steps = options[2].item<int64_t>();
        const auto centers0 = fx[key + "/centers0"];
        auto loss = make_module(centers0.size(0), centers0.size(1), alpha, reduction, centers0, dc.dtype);
        for (int64_t s = 0; s < steps; ++s) {
          INFO("step " << s);
          const std::string step = key + "/" + std::to_string(s);
          const std::string expected = key + "/" + dc.tag + "/" + std::to_string(s);
          auto x = fx[step + "/features"].detach().to(dc.dtype).requires_grad_();
          torch::Tensor value;
          {
            torchloss::detail::ScopedAtenPath path(aten_path);
            value = loss(x, fx[step + "/labels"]);
            CHECK(value.scalar_type() == dc.dtype);
            value.backward(fx[step + "/grad_output"].to(dc.dtype));
          }
          CHECK_THAT(value, AllClose(fx[expected + "/loss"], dc.rtol, dc.atol));
          CHECK(x.grad().scalar_type() == dc.dtype);
          CHECK_THAT(x.grad(), AllClose(fx[expected + "/grad"], dc.rtol, dc.atol));
          CHECK(loss->centers.scalar_type() == (dc.dtype == torch::kDouble ? torch::kDouble : torch::kFloat));
          CHECK_THAT(loss->centers,
                     AllClose(fx[expected + "/centers"], centers_rtol(dc.dtype), centers_atol(dc.dtype)));
        }
      }
    }
  }
}

TEST_CASE("center_loss: repeated labels use 1 + n_j and absent classes keep their centers", "[center_loss]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    torch::manual_seed(3);
    auto centers = torch::randn({6, 4});
    const auto before = centers.clone();
    auto x = torch::randn({7, 4}, torch::requires_grad());
    const auto y = torch::tensor({1, 1, 1, 4, 1, 4, 1}, torch::kLong);  // class 1 five times, 4 twice
    F::center_loss(x, y, centers, F::CenterLossFuncOptions().alpha(0.6)).backward();
    for (int64_t j : {0, 2, 3, 5}) CHECK(torch::equal(centers[j], before[j]));
    // c_1 <- c_1 + 0.6 * sum_{y_i = 1}(x_i - c_1) / (1 + 5)
    const auto ones = torch::tensor({0, 1, 2, 4, 6}, torch::kLong);
    const auto expected1 = before[1] + 0.6 * (x.detach().index_select(0, ones) - before[1]).sum(0) / 6.0;
    CHECK_THAT(centers[1], AllClose(expected1, 1e-6, 1e-7));
    CHECK_THAT(centers, AllClose(reference_update(x.detach(), y, before, 0.6), 1e-6, 1e-7));
  }
}

TEST_CASE("center_loss: eval mode computes the same loss and gradient and leaves the centers alone",
          "[center_loss]") {
  torch::manual_seed(4);
  torchloss::CenterLoss loss(torchloss::CenterLossOptions(5, 3));
  {
    torch::NoGradGuard no_grad;
    loss->centers.copy_(torch::randn({5, 3}));
  }
  const auto before = loss->centers.clone();
  const auto y = torch::tensor({0, 3, 3, 4}, torch::kLong);
  auto x = torch::randn({4, 3}, torch::requires_grad());
  loss->eval();
  const auto value = loss(x, y);
  value.backward();
  CHECK(torch::equal(loss->centers, before));
  CHECK_THAT(value, AllClose(plain_center_loss(x.detach(), y, before, torch::kMean)));
  CHECK_THAT(x.grad(), AllClose((x.detach() - before.index_select(0, y)) / 4.0));
  loss->train();
  loss(x, y).backward();
  CHECK_FALSE(torch::equal(loss->centers, before));
}

TEST_CASE("center_loss: learnable centers get the gradient of autograd through a plain ATen reference",
          "[center_loss]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (int64_t code : {0, 1, 2}) {
      INFO("reduction " << code << ", aten path " << aten_path);
      const auto reduction = torchloss_test::reduction_from_code(code);
      torch::manual_seed(5);
      torchloss::CenterLoss loss(torchloss::CenterLossOptions(6, 4).learnable_centers(true).reduction(reduction));
      REQUIRE(loss->named_parameters().contains("centers"));
      REQUIRE_FALSE(loss->named_buffers().contains("centers"));
      {
        torch::NoGradGuard no_grad;
        loss->centers.copy_(torch::randn({6, 4}));
      }
      const auto before = loss->centers.detach().clone();
      const auto y = torch::tensor({0, 2, 2, 5, 2}, torch::kLong);
      const auto x0 = torch::randn({5, 4});
      const auto grad_output = code == 0 ? torch::randn({5}) : torch::tensor(1.7);

      auto x = x0.clone().requires_grad_();
      loss(x, y).backward(grad_output);
      CHECK(torch::equal(loss->centers.detach(), before));  // no α update in learnable mode

      auto x_ref = x0.clone().requires_grad_();
      auto c_ref = before.clone().requires_grad_();
      plain_center_loss(x_ref, y, c_ref, reduction).backward(grad_output);
      CHECK_THAT(x.grad(), AllClose(x_ref.grad(), 1e-5, 1e-6));
      CHECK_THAT(loss->centers.grad(), AllClose(c_ref.grad(), 1e-5, 1e-6));
      // Absent classes get a zero gradient.
      CHECK(torch::equal(loss->centers.grad()[1], torch::zeros({4})));

      torch::optim::SGD optimizer(loss->parameters(), torch::optim::SGDOptions(0.5));
      optimizer.step();
      CHECK_THAT(loss->centers.detach(), AllClose(before - 0.5 * c_ref.grad(), 1e-5, 1e-6));
    }
  }
}

TEST_CASE("center_loss: float16 and bfloat16 features compute in float32 with float32 centers", "[center_loss]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (auto dtype : {torch::kHalf, torch::kBFloat16}) {
      INFO("dtype " << dtype << ", aten path " << aten_path);
      torch::manual_seed(6);
      const auto centers0 = torch::randn({4, 8});
      auto centers = centers0.clone();
      auto centers_f32 = centers0.clone();
      const auto y = torch::tensor({3, 0, 3, 1, 1, 1}, torch::kLong);
      auto x = torch::randn({6, 8}).to(dtype).requires_grad_();
      auto x32 = x.detach().to(torch::kFloat).requires_grad_();
      const auto value = F::center_loss(x, y, centers);
      const auto value32 = F::center_loss(x32, y, centers_f32);
      CHECK(value.scalar_type() == dtype);
      (3.0 * value).backward();
      (3.0 * value32).backward();
      CHECK(x.grad().scalar_type() == dtype);
      CHECK(centers.scalar_type() == torch::kFloat);
      CHECK_THAT(value, AllClose(value32, 1e-2, 1e-2));
      CHECK_THAT(x.grad(), AllClose(x32.grad(), 1e-2, 1e-2));
      CHECK(torch::equal(centers, centers_f32));  // the update reads the float32 diff of both
    }
  }
}

TEST_CASE("center_loss passes float64 finite differences in the features", "[center_loss]") {
  torch::manual_seed(7);
  const auto y = torch::tensor({0, 2, 2, 1, 2}, torch::kLong);
  const auto centers = torch::randn({4, 3}, torch::kDouble);
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    for (int64_t code : {0, 1, 2}) {
      INFO("reduction " << code << ", aten path " << aten_path);
      const auto f = [&](const torch::Tensor& x) {
        return F::center_loss(x, y, centers,
                              F::CenterLossFuncOptions()
                                  .reduction(torchloss_test::reduction_from_code(code))
                                  .update_centers(false));
      };
      CHECK(torchloss_test::finite_difference_error(f, torch::randn({5, 3}, torch::kDouble)) <= 1.0);
    }
  }
}

TEST_CASE("center_loss: lambda scales the feature gradient but not the center update", "[center_loss]") {
  torch::manual_seed(8);
  const auto centers0 = torch::randn({5, 3});
  const auto y = torch::tensor({4, 0, 4, 2}, torch::kLong);
  const auto x0 = torch::randn({4, 3});
  std::vector<torch::Tensor> grads, centers;
  for (double lambda : {1.0, 0.01, 25.0}) {
    auto c = centers0.clone();
    auto x = x0.clone().requires_grad_();
    // A second loss term, as in cross entropy + λ · center loss.
    const auto other = x.pow(2).sum() * 0.0;
    (other + lambda * F::center_loss(x, y, c)).backward();
    grads.push_back(x.grad() / lambda);
    centers.push_back(c);
  }
  CHECK_THAT(grads[1], AllClose(grads[0], 1e-5, 1e-7));
  CHECK_THAT(grads[2], AllClose(grads[0], 1e-5, 1e-7));
  CHECK(torch::equal(centers[1], centers[0]));
  CHECK(torch::equal(centers[2], centers[0]));
}

TEST_CASE("center_loss: the update uses the centers as they were at forward time", "[center_loss]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    torch::manual_seed(9);
    const auto centers0 = torch::randn({3, 2}, torch::kDouble);
    auto centers = centers0.clone();
    const auto y1 = torch::tensor({0, 1}, torch::kLong);
    const auto y2 = torch::tensor({1, 1, 2}, torch::kLong);
    auto x1 = torch::randn({2, 2}, torch::kDouble).requires_grad_();
    auto x2 = torch::randn({3, 2}, torch::kDouble).requires_grad_();
    // Both forwards see centers0; one backward applies both updates.
    const auto total = F::center_loss(x1, y1, centers) + F::center_loss(x2, y2, centers);
    total.backward();
    const auto step1 = reference_update(x1.detach(), y1, centers0, 0.5) - centers0;
    const auto step2 = reference_update(x2.detach(), y2, centers0, 0.5) - centers0;
    CHECK_THAT(centers, AllClose(centers0 + step1 + step2, 1e-12, 1e-14));
  }
}

TEST_CASE("center_loss: fused CPU path, ATen path and thread counts agree", "[center_loss]") {
  torch::manual_seed(10);
  const auto centers0 = torch::randn({50, 64});
  const auto x0 = torch::randn({300, 64});
  const auto y = torch::randint(50, {300});
  auto run = [&](bool aten_path, int threads) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    const int previous = at::get_num_threads();
    at::set_num_threads(threads);
    auto c = centers0.clone();
    auto x = x0.clone().requires_grad_();
    const auto value = F::center_loss(x, y, c, F::CenterLossFuncOptions().reduction(torch::kSum));
    value.backward();
    at::set_num_threads(previous);
    return std::make_tuple(value.detach(), x.grad(), c);
  };
  const auto [v1, g1, c1] = run(false, 1);
  const auto [v2, g2, c2] = run(false, 2);
  const auto [va, ga, ca] = run(true, 2);
  CHECK(torch::equal(g1, g2));
  CHECK(torch::equal(c1, c2));  // float64 sums in batch order: bit-identical whatever the threads
  CHECK_THAT(v2, AllClose(v1, 1e-6));
  CHECK_THAT(va, AllClose(v1, 1e-5));
  CHECK(torch::equal(ga, g1));
  CHECK_THAT(ca, AllClose(c1, 1e-6, 1e-7));
}

TEST_CASE("center_loss: process_group all-reduces per-class counts, then sums of the classes present",
          "[center_loss]") {
  // A stand-in for two ranks that hold the same batch: the all-reduce doubles. The result must
  // equal one process fed the batch twice.
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    torch::manual_seed(11);
    const auto centers0 = torch::randn({9, 5});
    const auto x0 = torch::randn({6, 5});
    const auto y = torch::tensor({2, 7, 2, 0, 7, 7}, torch::kLong);
    std::vector<std::vector<int64_t>> shapes;
    torchloss::AllReduceFn doubling = [&shapes](torch::Tensor& t) {
      shapes.push_back(t.sizes().vec());
      t.mul_(2);
    };
    auto c = centers0.clone();
    auto x = x0.clone().requires_grad_();
    F::center_loss(x, y, c, F::CenterLossFuncOptions().process_group(doubling)).backward();
    REQUIRE(shapes.size() == 2);
    CHECK(shapes[0] == std::vector<int64_t>{9});     // dense counts [C]
    CHECK(shapes[1] == std::vector<int64_t>{3, 5});  // sums of the 3 classes present [K, D]

    auto c_single = centers0.clone();
    auto x_twice = torch::cat({x0, x0}).requires_grad_();
    F::center_loss(x_twice, torch::cat({y, y}), c_single).backward();
    CHECK_THAT(c, AllClose(c_single, 1e-6, 1e-7));
    // The gradient stays local: the mean over this rank's batch.
    CHECK_THAT(x.grad(), AllClose((x0 - centers0.index_select(0, y)) / 6.0, 1e-6, 1e-7));
  }
}

TEST_CASE("center_loss: an empty batch gives 0 and moves nothing", "[center_loss]") {
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    auto centers = torch::randn({3, 2});
    const auto before = centers.clone();
    auto x = torch::zeros({0, 2}, torch::requires_grad());
    const auto value = F::center_loss(x, torch::zeros({0}, torch::kLong), centers);
    CHECK(value.item<float>() == 0.0f);
    value.backward();
    CHECK(x.grad().sizes() == x.sizes());
    CHECK(torch::equal(centers, before));
  }
}

TEST_CASE("center_loss propagates NaN features to their own sample's loss", "[center_loss]") {
  auto x = torch::randn({3, 2});
  x[1][0] = std::numeric_limits<float>::quiet_NaN();
  const auto losses = F::center_loss(x, torch::tensor({0, 1, 2}), torch::zeros({3, 2}),
                                     F::CenterLossFuncOptions().reduction(torch::kNone).update_centers(false));
  CHECK(std::isnan(losses[1].item<float>()));
  CHECK(std::isfinite(losses[0].item<float>()));
}

TEST_CASE("CenterLoss state: save/load, clone and to() carry the centers, and a resumed run continues identically",
          "[center_loss]") {
  torch::manual_seed(12);
  const int64_t num_classes = 8, dim = 5;
  std::vector<torch::Tensor> xs, ys;
  for (int s = 0; s < 6; ++s) {
    xs.push_back(torch::randn({10, dim}));
    ys.push_back(torch::randint(num_classes, {10}));
  }
  auto step = [&](torchloss::CenterLoss& loss, int s) {
    auto x = xs[s].clone().requires_grad_();
    loss(x, ys[s]).backward();
  };

  torchloss::CenterLoss straight(torchloss::CenterLossOptions(num_classes, dim).alpha(0.3));
  for (int s = 0; s < 6; ++s) step(straight, s);

  torchloss::CenterLoss first(torchloss::CenterLossOptions(num_classes, dim).alpha(0.3));
  for (int s = 0; s < 3; ++s) step(first, s);
  REQUIRE(first->named_buffers().contains("centers"));
  char path_template[] = "/tmp/torchloss_center_XXXXXX";
  const int fd = mkstemp(path_template);
  REQUIRE(fd >= 0);
  close(fd);
  const std::string path = path_template;
  torch::save(first, path);

  torchloss::CenterLoss resumed(torchloss::CenterLossOptions(num_classes, dim).alpha(0.3));
  torch::load(resumed, path);
  std::remove(path.c_str());
  CHECK(torch::equal(resumed->centers, first->centers));
  for (int s = 3; s < 6; ++s) step(resumed, s);
  CHECK(torch::equal(resumed->centers, straight->centers));

  // clone() is a deep copy: updating the copy leaves the original alone.
  auto copy = std::dynamic_pointer_cast<torchloss::CenterLossImpl>(first->clone());
  REQUIRE(copy);
  CHECK(torch::equal(copy->centers, first->centers));
  const auto first_before = first->centers.clone();
  auto x = xs[0].clone().requires_grad_();
  copy->forward(x, ys[0]).backward();
  CHECK(torch::equal(first->centers, first_before));
  CHECK_FALSE(torch::equal(copy->centers, first_before));

  // ->to() converts the registered buffer, and the loss follows it.
  first->to(torch::kDouble);
  CHECK(first->centers.scalar_type() == torch::kDouble);
  CHECK(first->named_buffers()["centers"].scalar_type() == torch::kDouble);
  auto xd = xs[0].to(torch::kDouble).requires_grad_();
  first(xd, ys[0]).backward();
  CHECK(first->centers.scalar_type() == torch::kDouble);

  std::ostringstream printed;
  printed << *first;
  CHECK(printed.str().find("torchloss::CenterLoss(num_classes=8, feature_dim=5, alpha=0.3") == 0);

  // The learnable form saves and loads its parameter the same way.
  torchloss::CenterLoss learnable(torchloss::CenterLossOptions(num_classes, dim).learnable_centers(true));
  {
    torch::NoGradGuard no_grad;
    learnable->centers.normal_();
  }
  std::stringstream buffer;
  torch::save(learnable, buffer);
  torchloss::CenterLoss learnable_loaded(torchloss::CenterLossOptions(num_classes, dim).learnable_centers(true));
  torch::load(learnable_loaded, buffer);
  CHECK(torch::equal(learnable_loaded->centers, learnable->centers));
}

TEST_CASE("center_loss rejects bad inputs with messages naming the argument", "[center_loss]") {
  const auto x = torch::randn({4, 3});
  const auto y = torch::tensor({0, 1, 2, 1}, torch::kLong);
  const auto c = torch::zeros({5, 3});
  for (bool aten_path : {false, true}) {
    torchloss::detail::ScopedAtenPath path(aten_path);
    TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::tensor({0, 5, 1, 1}), c), kFn, "labels holds 5, outside [0, num_classes) = [0, 5)");
    TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::tensor({0, -1, 1, 1}), c), kFn, "labels holds -1");
  }
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::zeros({5, 4})), kFn,
                        "features have feature_dim 3 but centers have feature_dim 4");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::zeros({0, 3})), kFn, "num_classes must be >= 1");
  TORCHLOSS_CHECK_ERROR(F::center_loss(torch::randn({4, 0}), y, torch::zeros({5, 0})), kFn,
                        "feature_dim must be >= 1");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::tensor({0, 1, 2}), c), kFn,
                        "labels has batch size 3 but features has batch size 4");
  TORCHLOSS_CHECK_ERROR(F::center_loss(torch::randn({4, 3, 1}), y, c), kFn,
                        "features must have shape [N, feature_dim], got [4, 3, 1]");
  TORCHLOSS_CHECK_ERROR(F::center_loss(torch::randn({3}), y, c), kFn, "features must have shape");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y.view({2, 2}), c), kFn, "labels must have shape [N], got [2, 2]");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::zeros({15})), kFn,
                        "centers must have shape [num_classes, feature_dim], got [15]");
  TORCHLOSS_CHECK_ERROR(F::center_loss(torch::ones({4, 3}, torch::kLong), y, c), kFn,
                        "features must be a floating-point tensor");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y.to(torch::kInt), c), kFn, "labels must hold int64 class indices, got Int");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y.to(torch::kFloat), c), kFn, "labels must hold int64");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::zeros({5, 3}, torch::kLong)), kFn,
                        "centers must be a floating-point tensor, got Long");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::zeros({5, 3}, torch::kDouble)), kFn,
                        "centers must be Float for Float features");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x.to(torch::kHalf), y, torch::zeros({5, 3}, torch::kHalf)), kFn,
                        "centers must be Float for Half features");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, c, F::CenterLossFuncOptions().alpha(1.5)), kFn,
                        "alpha must be in [0, 1], got 1.5");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, c, F::CenterLossFuncOptions().alpha(-0.1)), kFn,
                        "alpha must be in [0, 1], got -0.1");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, c, F::CenterLossFuncOptions().alpha(std::nan(""))), kFn,
                        "alpha must be in [0, 1]");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::zeros({5, 3}, torch::requires_grad())), kFn,
                        "centers requires grad (learnable centers) and update_centers is true");
  TORCHLOSS_CHECK_ERROR(F::center_loss(torch::Tensor(), y, c), kFn, "features is an undefined tensor");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, torch::Tensor(), c), kFn, "labels is an undefined tensor");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::Tensor()), kFn, "centers is an undefined tensor");
  // Devices: a meta tensor stands in for another device on this CPU-only machine.
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y, torch::zeros({5, 3}, torch::Device(torch::kMeta))), kFn,
                        "centers is on meta but features is on cpu");
  TORCHLOSS_CHECK_ERROR(F::center_loss(x, y.to(torch::kMeta), c), kFn, "labels is on meta but features is on cpu");

  // The module reports a bad label or dimension through the functional form.
  torchloss::CenterLoss loss(5, 3);
  TORCHLOSS_CHECK_ERROR(loss(x, torch::tensor({0, 1, 7, 1})), kFn, "labels holds 7");
  TORCHLOSS_CHECK_ERROR(loss(torch::randn({4, 2}), y), kFn, "features have feature_dim 2 but centers have feature_dim 3");
}

TEST_CASE("CenterLoss rejects bad options in its constructor", "[center_loss]") {
  TORCHLOSS_CHECK_ERROR(torchloss::CenterLoss(0, 3), kModule, "num_classes must be >= 1, got 0");
  TORCHLOSS_CHECK_ERROR(torchloss::CenterLoss(-2, 3), kModule, "num_classes must be >= 1, got -2");
  TORCHLOSS_CHECK_ERROR(torchloss::CenterLoss(4, 0), kModule, "feature_dim must be >= 1, got 0");
  TORCHLOSS_CHECK_ERROR(torchloss::CenterLoss(torchloss::CenterLossOptions(4, 2).alpha(2.0)), kModule,
                        "alpha must be in [0, 1], got 2");
  TORCHLOSS_CHECK_ERROR(torchloss::CenterLoss(torchloss::CenterLossOptions(4, 2).alpha(-1.0)), kModule,
                        "alpha must be in [0, 1], got -1");
}
