#!/usr/bin/env bash
# Installs whatever torchloss needs that this machine lacks. Idempotent: when everything is
# present it only checks (about a second).
#
#   scripts/install_deps.sh             Debian's packages (LibTorch 1.13, Catch2, Benchmark, ...) and
#                                       the pinned pure-Python reference packages of the tests
#                                       (pytorch-metric-learning) into .deps/reference-packages/
#   scripts/install_deps.sh --torch2    also the pinned LibTorch 2.x of PyPI's torch wheel (CUDA
#                                       build), into .deps/torch-<version>/ (ignored by git);
#                                       prints nothing else on success
#   scripts/install_deps.sh --torch2-prefix
#                                       prints that LibTorch's CMake prefix (installs first)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The GPU machine of this project runs torch 2.11.0+cu130: the same LibTorch is tested here.
# PyPI's default torch 2.11.0 wheel for Linux x86_64 is that CUDA 13.0 build. torchvision is
# the one built for it (the fixture generator's sigmoid_focal_loss reference under 2.x).
torch2_version="2.11.0"
torchvision2_version="0.26.0"
torch2_dir="$root/.deps/torch-$torch2_version"
# A second implementation the metric-learning fixtures are checked against
# (tests/reference/agree_pytorch_metric_learning.py); pure Python, run on Debian's torch.
reference_packages=("pytorch-metric-learning==2.9.0")
reference_dir="$root/.deps/reference-packages"

packages=(
  build-essential cmake ninja-build git pkg-config ccache
  libtorch-dev libopenblas0-openmp zlib1g-dev libgloo-dev
  catch2 libbenchmark-dev libcli11-dev
  doxygen libjs-mathjax
  python3-torch python3-torchvision python3-matplotlib python3-scipy python3-tqdm
  dataset-fashion-mnist
)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

install_debian_packages() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "install_deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# A pip for CPython 3.11 (the wheel's ABI is Debian 12's Python): python3's own if it has one,
# else Debian's python3-pip.
pip_command() {
  if python3 -c 'import sys, pip; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    echo "python3 -m pip"
  else
    install_debian_packages python3-pip
    echo "/usr/bin/python3 -m pip --break-system-packages"
  fi
}

# pip install --target DIR "$@", once: the marker written last holds the arguments, so an
# interrupted install, or a changed pin, is redone. $2 says what it is, for the log.
pip_install_once() {
  local dir="$1" what="$2"
  shift 2
  [ "$(cat "$dir/.installed" 2>/dev/null)" = "$*" ] && return 0
  echo "install_deps: installing $what into $dir" >&2
  rm -rf "$dir"
  $(pip_command) install --quiet --no-cache-dir --disable-pip-version-check --target "$dir" "$@" >&2
  echo "$*" > "$dir/.installed"
}

# torch==$torch2_version and torchvision with their dependencies (the CUDA runtime libraries
# LibTorch links), into a folder of its own.
install_torch2() {
  pip_install_once "$torch2_dir" "torch==$torch2_version (LibTorch 2.x with CUDA, ~5 GB)" \
    "torch==$torch2_version" "torchvision==$torchvision2_version"
}

# The reference packages without their dependencies (numpy, scipy, tqdm and torch are Debian's;
# scikit-learn is needed only by parts the tests do not import).
install_reference_packages() {
  pip_install_once "$reference_dir" "${reference_packages[*]}" --no-deps "${reference_packages[@]}"
}

install_debian_packages "${packages[@]}"
install_reference_packages
case "${1:-}" in
  "") echo "install_deps: all ${#packages[@]} Debian packages and ${reference_packages[*]} present" ;;
  --torch2) install_torch2 ;;
  --torch2-prefix) install_torch2; echo "$torch2_dir/torch/share/cmake" ;;
  *) echo "install_deps.sh: unknown option $1 (--torch2, --torch2-prefix)" >&2; exit 2 ;;
esac
