#!/usr/bin/env bash
# The headline rows of bench/RESULTS.md on two LibTorch builds, one run, side by side: weighted
# CE, sigmoid focal, softmax focal and multi-label soft margin at 4096×1000 and 65536×80, GHM-C,
# and center loss at C = 10 and 10^5, each against that build's own built-in or composed
# version and copy floor.
#
#   bench/compare_legs.sh [BUILD_A [BUILD_B]] [-- BENCHMARK_ARGS...]
#     BUILD_A  build tree of the first leg (default build: Debian's LibTorch 1.13)
#     BUILD_B  build tree of the second leg (default build-torch2: PyPI's LibTorch 2.x)
# Builds the four benchmark programs in each tree, writes JSON into bench-legs/ and prints
# the markdown tables (bench/summarize.py --leg).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
builds=()
while [[ $# -gt 0 && "$1" != -- ]]; do builds+=("$1"); shift; done
[[ "${1:-}" == -- ]] && shift
[[ ${#builds[@]} -ge 1 ]] || builds=("$root/build" "$root/build-torch2")
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(--benchmark_min_time=0.1 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
programs=(bench_cross_entropy bench_focal bench_ghm bench_center_loss)
# 1 thread: the rows stay comparable on a shared 2-core machine.
filter='^BM_(WeightedCE|SigmoidFocal|SoftmaxFocal|MultiLabelSoftMargin|GHMC|CopyFloor)/[a-z_]+/(4096/1000|65536/80)/threads:1/|^BM_(CenterLoss|CopyFloor)/[a-z_]+/256/(10|100000)/threads:1/'
out="$root/bench-legs"
mkdir -p "$out"
legs=()
for build in "${builds[@]}"; do
  cmake --build "$build" --target "${programs[@]}" >/dev/null
  torch_dir="$(sed -n 's/^Torch_DIR:PATH=//p' "$build/CMakeCache.txt")"
  label="LibTorch $(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")/\1/p' "$torch_dir/TorchConfigVersion.cmake")"
  files=()
  for program in "${programs[@]}"; do
    json="$out/$(basename "$build")-$program.json"
    "$build/bench/$program" --benchmark_filter="$filter" "${args[@]}" \
      --benchmark_out="$json" --benchmark_out_format=json >/dev/null
    files+=("$json")
  done
  legs+=(--leg "$label=$(IFS=,; echo "${files[*]}")")
done
/usr/bin/python3 "$root/bench/summarize.py" "${legs[@]}"
