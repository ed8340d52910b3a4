#!/usr/bin/env bash
# One command, fresh Debian 12 to results: installs what is missing, builds, and runs the
# main example (a short Fashion-MNIST training with WeightedCrossEntropyLoss).
# Arguments go to the example (try --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh" --target fashion_mnist
build_dir="${TORCHLOSS_BUILD_DIR:-$root/build}"
exec "$build_dir/examples/fashion_mnist/fashion_mnist" --output-dir "$root/results/fashion_mnist" --plot "$@"
