#!/usr/bin/env bash
# Configures and builds torchloss with Ninja, Release, in build/ (or $TORCHLOSS_BUILD_DIR).
#
#   scripts/build.sh [--libtorch debian|pip] [BUILD_ARGS...]
#     --libtorch debian   Debian's LibTorch 1.13 (default)
#     --libtorch pip      the LibTorch 2.x of PyPI's torch wheel (scripts/install_deps.sh
#                         --torch2 installs it), with the CUDA target built by nvcc
#     BUILD_ARGS          go to the build step (e.g. --target long_tail)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
configure_args=()
if [[ "${1:-}" == --libtorch ]]; then
  case "${2:-}" in
    debian) ;;
    pip)
      prefix="$("$root/scripts/install_deps.sh" --torch2-prefix)"
      nvcc="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
      # The torch package folder first: TorchConfig finds libtorch.so with find_library, which
      # would otherwise take Debian's /usr/lib one. sm_90 only: the Hopper GPU the GPU check
      # runs on (PyTorch's CMake takes TORCH_CUDA_ARCH_LIST; tests/cuda compiles sm_75 too).
      configure_args=("-DCMAKE_PREFIX_PATH=${prefix%/share/cmake};$prefix" "-DCMAKE_CUDA_COMPILER=$nvcc"
                      -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=OFF)
      ;;
    *) echo "build.sh: --libtorch takes debian or pip" >&2; exit 2 ;;
  esac
  shift 2
fi
build_dir="${TORCHLOSS_BUILD_DIR:-$root/build}"
# ccache, when installed, makes a rebuild after a clean checkout cheap (paths relative to the
# checkout, so another clone of the same commit hits the same entries).
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
  configure_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${configure_args[@]}" >/dev/null
cmake --build "$build_dir" "$@"
