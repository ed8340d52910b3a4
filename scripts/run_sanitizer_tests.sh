#!/usr/bin/env bash
# The sanitizer leg: builds the Catch2 unit tests (only those: no examples, benchmarks, docs,
# consumer builds or fuzz battery) with AddressSanitizer and UndefinedBehaviorSanitizer in
# their own build directory, and runs them with CTest. Any report fails the run
# (-fno-sanitize-recover=all; halt_on_error). About 10 minutes on 2 cores, mostly compiling.
#
# What LibTorch needs:
#   -fno-sanitize=vptr   LibTorch is built without the sanitizers: its type information is
#                        not the instrumented one, and UBSan's dynamic-type check would report
#                        false positives on every virtual call into it.
#   detect_leaks=0       LibTorch and its OpenMP runtime keep process-lifetime allocations
#                        (registries, thread pools) that LeakSanitizer reports at exit.
#   The headers are instrumented where they are compiled: torchloss's own code (every kernel)
#   runs under both sanitizers; LibTorch's prebuilt code does not.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${TORCHLOSS_SANITIZE_BUILD_DIR:-$root/build-sanitize}"
jobs="${TORCHLOSS_SANITIZE_JOBS:-$(nproc)}"
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-sanitize=vptr -fno-omit-frame-pointer -g"

export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$root" -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1" \
  -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DTORCHLOSS_BUILD_TESTS=ON -DTORCHLOSS_UNIT_TESTS_ONLY=ON \
  -DTORCHLOSS_BUILD_BENCH=OFF -DTORCHLOSS_BUILD_EXAMPLES=OFF -DTORCHLOSS_BUILD_DOCS=OFF
cmake --build "$build_dir" -j "$jobs"
cd "$build_dir"
ctest --output-on-failure -j "$jobs" --timeout 900
