// libFuzzer entry (clang, -fsanitize=fuzzer): the fuzzer's bytes drive the same case
// generator as the battery (fuzz_cases.hpp), so coverage feedback steers shapes, dtypes,
// layouts, values and options. The first byte picks the loss; the rest is replayed for each
// of the three variants. A disagreement between them aborts with what differed; crashes are
// libFuzzer's (and the sanitizers') to report, with the input that caused them. See README.md.
#include "fuzz_cases.hpp"

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& table = torchloss_fuzz::losses();
  const auto& entry = table[data[0] % table.size()];
  const torchloss_fuzz::Variant variants[3] = {{false, false}, {true, false}, {false, true}};
  torchloss_fuzz::Outcome outcomes[3];
  for (int k = 0; k < 3; ++k) {
    torchloss_fuzz::Draw d(data + 1, size - 1);
    outcomes[k] = torchloss_fuzz::run_variant_with(entry, d, variants[k]);
  }
  const std::string failure = torchloss_fuzz::compare_outcomes(outcomes, variants);
  if (!failure.empty()) {
    std::fprintf(stderr, "torchloss fuzz: the paths disagree on %s:\n%s", entry.name, failure.c_str());
    std::abort();
  }
  return 0;
}
