#!/usr/bin/env bash
# Installs, from Debian's archive, whatever torchloss needs that this machine lacks.
# Idempotent: when everything is present it only checks (about a second).
set -euo pipefail

packages=(
  build-essential cmake ninja-build git pkg-config
  libtorch-dev libopenblas0-openmp zlib1g-dev libgloo-dev
  catch2 libbenchmark-dev libcli11-dev
  doxygen libjs-mathjax
  python3-torch python3-torchvision python3-matplotlib
  dataset-fashion-mnist
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
