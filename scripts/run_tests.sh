#!/usr/bin/env bash
# One command, fresh Debian 12 to a verdict: installs what is missing, configures, builds
# and runs every test with CTest (reference fixtures, consumer builds, docs, examples).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
build_dir="${TORCHLOSS_BUILD_DIR:-$root/build}"
cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" --timeout 900
