#!/usr/bin/env bash
# GPU check of torchloss: configures this checkout against the CUDA-enabled LibTorch of an
# installed PyTorch 2.x (torch.utils.cmake_prefix_path), with the fused kernels (torchloss::cuda),
# builds the CUDA tests and benchmarks, runs them on the GPU and prints a summary. No network.
#
#   tools/gpu_check.sh [options]
#     --build-dir DIR     build tree (default: build-gpu)
#     --deps DIR          extra CMake prefix holding Catch2 and Google Benchmark when the machine
#                         lacks them (default: build-gpu-deps, filled by --stage-deps)
#     --out DIR           logs and benchmark JSON (default: $OUT if set, else <build-dir>/out)
#     --arch LIST         CUDA architectures as PyTorch's TORCH_CUDA_ARCH_LIST (e.g. "9.0";
#                         default: the GPU's own, else 9.0)
#     --no-bench          skip the benchmarks
#     --bench-min-time S  Google Benchmark --benchmark_min_time (a bare number; default 0.5)
#     --allow-cpu-torch   go on with a PyTorch without CUDA (a dry run of this script's plumbing
#                         on a CPU machine; the CUDA checks then fail or skip)
#     --dry-run           on a machine without a GPU: configure and build every target the GPU
#                         run needs, then stop with "no GPU here" before the first launch (exit 0
#                         when everything built). CI runs this on the LibTorch 2.x leg.
#   tools/gpu_check.sh --stage-deps [DIR]
#     On a Debian machine with catch2, libbenchmark-dev and libgloo-dev: copy Catch2
#     (header-only), Google Benchmark (headers, shared library, CMake package) and Gloo's headers
#     into DIR (default build-gpu-deps; ignored by git), to carry to a GPU machine that has none.
#
# Environment: PYTHON (default python3, the one with torch), CUDACXX (nvcc; default: PATH,
# then /usr/local/cuda/bin/nvcc).
#
# Without Catch2 the Catch2 tests are not built (the kernel compile test still runs); without
# Google Benchmark the benchmarks are not built; either is reported in the summary. Record what
# it prints in bench/RESULTS.md ("Center loss, GPU").
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$root/build-gpu"
deps_dir="$root/build-gpu-deps"
out_dir="${OUT:-}"
arch=""
run_bench=1
bench_min_time=0.5
allow_cpu_torch=0
dry_run=0
python="${PYTHON:-python3}"

stage_deps() {
  local dest="$1" multiarch
  multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
  [[ -f /usr/include/catch2/catch.hpp ]] || { echo "stage-deps: Catch2 2.x not installed (apt-get install catch2)"; return 1; }
  [[ -f /usr/include/benchmark/benchmark.h ]] || { echo "stage-deps: libbenchmark-dev not installed"; return 1; }
  mkdir -p "$dest/include" "$dest/lib/cmake" "$dest/lib/$multiarch/cmake"
  cp -r /usr/include/catch2 "$dest/include/"
  cp -r /usr/lib/cmake/Catch2 "$dest/lib/cmake/"
  [[ -f /usr/lib/libCatch2WithMain.a ]] && cp /usr/lib/libCatch2WithMain.a "$dest/lib/"  # its CMake package checks for it
  cp -r /usr/include/benchmark "$dest/include/"
  # Gloo's headers, which PyTorch wheels do not ship, for test_center_loss_distributed (ProcessGroupGloo).
  [[ -d /usr/include/gloo ]] && cp -r /usr/include/gloo "$dest/include/"
  cp -r "/usr/lib/$multiarch/cmake/benchmark" "$dest/lib/$multiarch/cmake/"
  cp -a "/usr/lib/$multiarch"/libbenchmark.so* "/usr/lib/$multiarch"/libbenchmark_main.a "$dest/lib/$multiarch/"
  local real
  real="$(readlink -f "/usr/lib/$multiarch/libbenchmark.so")"
  cp "$real" "$dest/lib/$multiarch/"
  ( cd "$dest/lib/$multiarch" && for name in libbenchmark.so libbenchmark.so.1; do
      [[ -e "$name" ]] || ln -sf "$(basename "$real")" "$name"; done )
  echo "staged Catch2 and Google Benchmark in $dest ($(du -sh "$dest" | cut -f1)); carry it to the GPU machine"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$(realpath -m "$2")"; shift 2 ;;
    --deps) deps_dir="$(realpath -m "$2")"; shift 2 ;;
    --out) out_dir="$(realpath -m "$2")"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --no-bench) run_bench=0; shift ;;
    --bench-min-time) bench_min_time="$2"; shift 2 ;;
    --allow-cpu-torch) allow_cpu_torch=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --stage-deps) stage_deps "$(realpath -m "${2:-$deps_dir}")"; exit $? ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)"; exit 2 ;;
  esac
done
out_dir="${out_dir:-$build_dir/out}"
mkdir -p "$build_dir" "$out_dir"

declare -a summary=()
failures=0
note() { summary+=("$1"); }
pass() { note "PASS     $1"; }
fail() { note "FAIL     $1"; failures=$((failures + 1)); }
skip() { note "SKIPPED  $1"; }
print_summary() {
  echo
  echo "==================== torchloss GPU check: summary ===================="
  printf '%s\n' "${summary[@]}"
  echo "logs: $out_dir"
  echo "======================================================================"
}

# --- 1. PyTorch with CUDA --------------------------------------------------------------------
if ! torch_info="$("$python" - <<'EOF' 2>&1
import torch
print(torch.__version__)
print(torch.version.cuda)
print(torch.utils.cmake_prefix_path)
print(torch.__path__[0])
print(torch.cuda.is_available())
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
)"; then
  echo "$torch_info"
  fail "python: '$python' cannot import torch"
  print_summary
  exit 1
fi
mapfile -t torch_lines <<<"$torch_info"
torch_version="${torch_lines[0]}"; torch_cuda="${torch_lines[1]}"; torch_prefix="${torch_lines[2]}"
torch_package="${torch_lines[3]}"; gpu_available="${torch_lines[4]}"; gpu_name="${torch_lines[5]}"
echo "PyTorch $torch_version (CUDA $torch_cuda), CMake prefix $torch_prefix; GPU: $gpu_name"
note "INFO     PyTorch $torch_version, CUDA $torch_cuda, GPU $gpu_name"
if [[ "$torch_cuda" == "None" ]]; then
  fail "this PyTorch has no CUDA"
  [[ $allow_cpu_torch == 1 ]] || { print_summary; exit 1; }
fi
[[ "$gpu_available" == "True" ]] || note "WARNING  torch.cuda.is_available() is False: the GPU cases will skip themselves"

# --- 2. nvcc ---------------------------------------------------------------------------------
nvcc="${CUDACXX:-$(command -v nvcc || true)}"
[[ -n "$nvcc" || ! -x /usr/local/cuda/bin/nvcc ]] || nvcc=/usr/local/cuda/bin/nvcc
if [[ -z "$nvcc" ]]; then
  fail "nvcc: not found (set CUDACXX): no torchloss::cuda, nothing to check"
  print_summary
  exit 1
fi
note "INFO     nvcc: $nvcc ($("$nvcc" --version | tail -1))"
if [[ -z "$arch" ]]; then
  # PyTorch's CMake ignores CMAKE_CUDA_ARCHITECTURES and takes TORCH_CUDA_ARCH_LIST.
  arch="$("$python" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))' 2>/dev/null || echo 9.0)"
fi

# --- 3. Catch2 and Google Benchmark ----------------------------------------------------------
find_config() {  # find_config <Name>: is a CMake config package findable here or in deps_dir?
  local name="$1" dir
  for dir in "$deps_dir" /usr /usr/local "$("$python" -c 'import sys; print(sys.prefix)')"; do
    [[ -d "$dir" ]] || continue
    if find "$dir" -maxdepth 5 \( -name "${name}Config.cmake" -o -name "$(echo "$name" | tr '[:upper:]' '[:lower:]')-config.cmake" \) \
        2>/dev/null | grep -q .; then return 0; fi
  done
  return 1
}
build_tests=OFF; build_bench=OFF
if find_config Catch2; then build_tests=ON; else skip "Catch2 tests: Catch2 not found (stage it: tools/gpu_check.sh --stage-deps on a Debian machine, carry build-gpu-deps)"; fi
if [[ $run_bench == 1 ]]; then
  if find_config benchmark; then build_bench=ON; else skip "benchmarks: Google Benchmark not found (stage it as for Catch2)"; fi
fi

# --- 4. Configure ----------------------------------------------------------------------------
# Staged Gloo headers (see --stage-deps) for the distributed test.
extra_cxx_flags=""
[[ -d "$deps_dir/include/gloo" ]] && extra_cxx_flags="-isystem $deps_dir/include"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
echo "configuring in $build_dir (CUDA architectures: $arch) ..."
if cmake -S "$root" -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_PREFIX_PATH=$torch_package;$torch_prefix;$deps_dir" \
    "-DCMAKE_CUDA_COMPILER=$nvcc" \
    "-DTORCH_CUDA_ARCH_LIST=$arch" -DCMAKE_CUDA_ARCHITECTURES=OFF \
    "-DCMAKE_CXX_FLAGS=${extra_cxx_flags}" \
    -DTORCHLOSS_BUILD_EXAMPLES=OFF -DTORCHLOSS_BUILD_DOCS=OFF \
    "-DTORCHLOSS_BUILD_TESTS=$build_tests" "-DTORCHLOSS_BUILD_BENCH=$build_bench" \
    "-DTORCHLOSS_REFERENCE_PYTHON=$(command -v "$python")" >"$out_dir/configure.log" 2>&1; then
  pass "configure against LibTorch $torch_version"
else
  tail -40 "$out_dir/configure.log"
  fail "configure (see configure.log)"
  print_summary
  exit 1
fi
if grep -q "torchloss::cuda (fused CUDA kernels)" "$out_dir/configure.log"; then
  pass "torchloss::cuda defined"
else
  fail "torchloss::cuda not defined (Torch without CUDA, or no CUDA language): the kernels are not tested"
fi

# --- 5. Build --------------------------------------------------------------------------------
jobs="$(nproc)"
build_target() {  # build_target <target>: 0 when built
  if cmake --build "$build_dir" --target "$1" -j "$jobs" >"$out_dir/build_$1.log" 2>&1; then
    pass "build $1"; return 0
  fi
  grep -m 20 -E "error|Error" "$out_dir/build_$1.log"
  fail "build $1 (see build_$1.log)"; return 1
}
declare -A built=()
if [[ $build_tests == ON ]]; then
  # test_center_loss_distributed needs Gloo's headers, which PyTorch wheels may not ship.
  for target in test_center_loss_cuda test_center_loss test_center_loss_distributed; do
    build_target "$target" && built[$target]=1
  done
fi
if [[ $build_bench == ON ]]; then build_target bench_center_loss && built[bench_center_loss]=1; fi

# --- 6. Tests --------------------------------------------------------------------------------
if [[ $build_tests == ON ]]; then
  if (cd "$build_dir" && ctest -R '^cuda_kernels_compile$' --output-on-failure) >"$out_dir/cuda_kernels_compile.log" 2>&1; then
    pass "cuda_kernels_compile (nvcc sm_90 and sm_75)"
  else
    fail "cuda_kernels_compile (see cuda_kernels_compile.log)"
  fi
else
  # No CTest tree with tests: compile the kernels directly, as the test does.
  if cmake -DNVCC="$nvcc" -DSOURCE="$root/tests/cuda/kernels_compile.cu" -DINCLUDE_DIR="$root/include" \
      -DOUTPUT_DIR="$build_dir/cuda_kernels_compile" -DARCHITECTURES=90,75 \
      -P "$root/tests/cuda/kernels_compile.cmake" >"$out_dir/cuda_kernels_compile.log" 2>&1; then
    pass "kernels compile (nvcc sm_90 and sm_75)"
  else
    fail "kernels compile (see cuda_kernels_compile.log)"
  fi
fi
if [[ $dry_run == 1 ]]; then
  note "INFO     dry run: everything above was built; no GPU here, stopping before the first launch"
  print_summary
  echo "no GPU here: dry run stops before the first launch"
  [[ $failures -eq 0 ]]
  exit
fi
for target in test_center_loss_cuda test_center_loss test_center_loss_distributed; do
  [[ -n "${built[$target]:-}" ]] || continue
  "$build_dir/tests/$target" >"$out_dir/$target.log" 2>&1
  status=$?
  if [[ $status -eq 0 ]]; then
    pass "$target: $(grep -E '^(All tests passed|test cases:)' "$out_dir/$target.log" | tail -1)"
  elif [[ $status -eq 77 ]]; then
    fail "$target: skipped itself (exit 77: $(head -1 "$out_dir/$target.log"))"
  else
    tail -60 "$out_dir/$target.log"
    fail "$target: $(grep -E '^test cases:' "$out_dir/$target.log" | tail -1) (see $target.log)"
  fi
  if [[ $target == test_center_loss_cuda ]] && grep -q "torchloss::cuda is not linked" "$out_dir/$target.log"; then
    fail "test_center_loss_cuda: the kernels were not linked, only the ATen path ran"
  fi
done

# --- 7. Benchmarks ---------------------------------------------------------------------------
if [[ -n "${built[bench_center_loss]:-}" ]]; then
  bench="$build_dir/bench/bench_center_loss"
  if "$bench" --benchmark_filter='CUDA|CopyFloor/clone/1024/' --benchmark_repetitions=5 \
      --benchmark_min_time="$bench_min_time" --benchmark_out="$out_dir/bench_center_loss_gpu.json" \
      --benchmark_out_format=json >"$out_dir/bench_center_loss_gpu.txt" 2>&1; then
    if grep -q "^BM_CenterLossCUDA/" "$out_dir/bench_center_loss_gpu.txt"; then
      pass "bench_center_loss (GPU rows)"
      grep -E "_min|_median" "$out_dir/bench_center_loss_gpu.txt" || cat "$out_dir/bench_center_loss_gpu.txt"
      if [[ -f "$root/bench/summarize.py" ]]; then
        "$python" "$root/bench/summarize.py" "$out_dir/bench_center_loss_gpu.json" | tee "$out_dir/bench_center_loss_gpu.md"
      fi
    else
      cat "$out_dir/bench_center_loss_gpu.txt"
      fail "bench_center_loss: no GPU benchmark ran (no CUDA device?)"
    fi
  else
    tail -30 "$out_dir/bench_center_loss_gpu.txt"
    fail "bench_center_loss (see bench_center_loss_gpu.txt)"
  fi
fi

print_summary
[[ $failures -eq 0 ]]
