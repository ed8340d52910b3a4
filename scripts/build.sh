#!/usr/bin/env bash
# Configures and builds torchloss in build/ (or $TORCHLOSS_BUILD_DIR) with Ninja, Release.
# Extra arguments go to the build step (e.g. a target name).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${TORCHLOSS_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" "$@"
