// Class-weight helpers against their formulas in float64 (fixtures).
#include <torchloss/torchloss.hpp>

#include "support/all_close.hpp"
#include "support/error_matchers.hpp"
#include "support/fixtures.hpp"

using torchloss_test::AllClose;

TEST_CASE("class weights match their formulas", "[class_weights]") {
  const torchloss_test::Fixture fx("class_weights.pt");
  const auto counts = fx["counts"];
  CHECK_THAT(torchloss::class_weights::inverse_frequency(counts), AllClose(fx["inverse_frequency"], 1e-6));
  CHECK_THAT(torchloss::class_weights::inverse_frequency(counts.to(torch::kFloat)), AllClose(fx["inverse_frequency"], 1e-6));
  const auto betas = fx["betas"];
  for (int64_t i = 0; i < betas.numel(); ++i) {
    INFO("beta " << betas[i].item<double>());
    const auto w = torchloss::class_weights::effective_number(counts, betas[i].item<double>());
    CHECK(w.scalar_type() == torch::kFloat);
    CHECK_THAT(w, AllClose(fx["effective_number/" + std::to_string(i)], 1e-6));
    CHECK(w.sum().item<double>() == Approx(counts.numel()).epsilon(1e-6));
  }
}

TEST_CASE("class weights plug into the losses", "[class_weights]") {
  const auto counts = torch::tensor({100, 10, 1});
  const auto w = torchloss::class_weights::effective_number(counts, 0.99);
  torchloss::WeightedCrossEntropyLoss loss(torchloss::WeightedCrossEntropyLossOptions().weight(w));
  CHECK(std::isfinite(loss(torch::randn({4, 3}), torch::tensor({0, 1, 2, 2})).item<float>()));
}

TEST_CASE("class weights reject bad counts", "[class_weights][errors]") {
  TORCHLOSS_CHECK_ERROR(torchloss::class_weights::inverse_frequency(torch::tensor({3, 0, 2})),
                        "torchloss::class_weights::inverse_frequency", "every class count must be positive, got 0 at class 1");
  TORCHLOSS_CHECK_ERROR(torchloss::class_weights::inverse_frequency(torch::ones({2, 2})),
                        "torchloss::class_weights::inverse_frequency", "counts must be a non-empty 1-D tensor");
  TORCHLOSS_CHECK_ERROR(torchloss::class_weights::effective_number(torch::tensor({3, -1}), 0.9),
                        "torchloss::class_weights::effective_number", "got -1");
  TORCHLOSS_CHECK_ERROR(torchloss::class_weights::effective_number(torch::tensor({3, 1}), 1.0),
                        "torchloss::class_weights::effective_number", "beta must be in [0, 1)");
}
