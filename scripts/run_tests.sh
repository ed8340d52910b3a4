#!/usr/bin/env bash
# One command, fresh Debian 12 to a verdict: installs what is missing, configures, builds and
# runs every test with CTest (reference fixtures, consumer builds, docs, examples), once per
# LibTorch leg, each in its own build tree (a rerun is incremental):
#
#   debian  Debian's libtorch-dev 1.13 (CPU)                              build/
#   pip     the LibTorch 2.x inside PyPI's torch wheel, with CUDA: the    build-torch2/
#           fused kernels (torchloss::cuda) are compiled and linked with nvcc, the GPU tests
#           report themselves skipped without a GPU, and tools/gpu_check.sh --dry-run proves
#           the GPU check up to its first launch
#
# then the sanitizer leg: the unit tests under AddressSanitizer and UndefinedBehaviorSanitizer
# on Debian's LibTorch (scripts/run_sanitizer_tests.sh, build-sanitize/).
#
#   scripts/run_tests.sh [--libtorch debian|pip|both] [--no-sanitize] [CTEST_ARGS...]
#     --libtorch LEG   run one leg (default: both)
#     --no-sanitize    skip the sanitizer leg
#     CTEST_ARGS       passed to ctest (e.g. -R focal, -LE example)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
legs=(debian pip)
sanitize=1
ctest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --libtorch)
      case "${2:-}" in
        debian|pip) legs=("$2") ;;
        both) legs=(debian pip) ;;
        *) echo "run_tests.sh: --libtorch takes debian, pip or both" >&2; exit 2 ;;
      esac
      shift 2 ;;
    --no-sanitize) sanitize=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done

"$root/scripts/install_deps.sh"
failed=()
for leg in "${legs[@]}"; do
  start=$SECONDS
  echo "==== LibTorch leg: $leg ===="
  if [[ $leg == pip ]]; then
    build_dir="${TORCHLOSS_TORCH2_BUILD_DIR:-$root/build-torch2}"
    TORCHLOSS_BUILD_DIR="$build_dir" "$root/scripts/build.sh" --libtorch pip
  else
    build_dir="${TORCHLOSS_BUILD_DIR:-$root/build}"
    TORCHLOSS_BUILD_DIR="$build_dir" "$root/scripts/build.sh"
  fi
  status=0
  (cd "$build_dir" && ctest --output-on-failure -j "$(nproc)" --timeout 900 "${ctest_args[@]}") || status=$?
  echo "==== LibTorch leg $leg: ctest exit $status after $((SECONDS - start)) s ===="
  [[ $status -eq 0 ]] || failed+=("$leg")
done
if [[ $sanitize == 1 ]]; then
  start=$SECONDS
  echo "==== sanitizer leg (ASan + UBSan, unit tests, Debian's LibTorch) ===="
  status=0
  "$root/scripts/run_sanitizer_tests.sh" || status=$?
  echo "==== sanitizer leg: exit $status after $((SECONDS - start)) s ===="
  [[ $status -eq 0 ]] || failed+=(sanitizer)
fi
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run_tests: failed legs: ${failed[*]}"
  exit 1
fi
echo "run_tests: every leg passed (${legs[*]}$([[ $sanitize == 1 ]] && echo " sanitizer"))"
