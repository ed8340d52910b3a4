#!/usr/bin/env bash
# One command, fresh Debian 12 to results: installs what is missing, builds, and trains the
# example programs on the real Fashion-MNIST (Debian's dataset-fashion-mnist).
#
#   scripts/run_example.sh                   the main example, short (a few minutes on 2 cores):
#                                              center-loss embeddings and the long-tail comparison
#   scripts/run_example.sh TRAINER [ARGS...] one trainer with its own options (its defaults are
#                                              the full run; try TRAINER --help)
#   scripts/run_example.sh long_tail_parity [--seeds 1,2,3] [--losses a,b]
#                                            the reference recipe in C++ (long_tail --recipe
#                                              reference) and in PyTorch (reference.py), one core
#                                              each, then one side-by-side table (parity.py)
#   scripts/run_example.sh center_loss_parity [--seeds 1,2,3]
#                                            the same for center_loss_embedding and its twin
#   scripts/run_example.sh --help            this text
#
# TRAINER: center_loss_embedding, long_tail, multi_task, fashion_mnist. Results go to
# results/TRAINER/ unless ARGS give --output-dir.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${TORCHLOSS_BUILD_DIR:-$root/build}"
trainers=(center_loss_embedding long_tail multi_task fashion_mnist)

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

build() {
  "$root/scripts/install_deps.sh"
  "$root/scripts/build.sh" --target "$@"
}

# The short version of the two main examples, side by side on the two cores: the center-loss
# runs in the background (log in results/center_loss_embedding/log.txt), the long-tail
# comparison in the foreground with its progress bar.
run_short_demo() {
  build center_loss_embedding long_tail
  local center_dir="$root/results/center_loss_embedding" long_tail_dir="$root/results/long_tail"
  mkdir -p "$center_dir"
  echo "center loss: CE vs CE + 0.5 * CenterLoss on 30000 images, 4 epochs (log: $center_dir/log.txt)"
  "$build_dir/examples/center_loss_embedding/center_loss_embedding" --limit 30000 --test-limit 5000 --epochs 4 \
    --threads 1 --no-progress --output-dir "$center_dir" >"$center_dir/log.txt" 2>&1 &
  local center_pid=$!
  echo "long tail: every loss x 1 seed x 2 epochs on the imbalance-100 training set"
  local long_tail_status=0
  "$build_dir/examples/long_tail/long_tail" --seeds 1 --epochs 2 --test-limit 5000 --threads 1 \
    --output-dir "$long_tail_dir" || long_tail_status=$?
  local center_status=0
  wait "$center_pid" || center_status=$?
  if [[ $center_status -ne 0 ]]; then
    echo "center_loss_embedding failed (exit $center_status):" >&2
    tail -n 5 "$center_dir/log.txt" >&2
  else
    echo
    cat "$center_dir/summary.md"
  fi
  if [[ $long_tail_status -ne 0 || $center_status -ne 0 ]]; then
    exit 1
  fi
  cat <<EOF

Short runs done (one seed, small budgets: for the real comparison see examples/README.md).
  long-tail table:   $long_tail_dir/results.md   chart: $long_tail_dir/long_tail.png
  center-loss table: $center_dir/summary.md   scatter plots: $center_dir/embeddings.png
Full runs: scripts/run_example.sh long_tail   |   scripts/run_example.sh center_loss_embedding
EOF
}

# Runs the two sides of a parity comparison at once, one core each: the function named $4 (the
# C++ trainer, in the background) and the one named $5 (its PyTorch twin), logging into
# $2/torchloss/log.txt and $2/pytorch/log.txt; then $3 (parity.py) writes the table and plot in $2.
run_both_sides() {
  local name="$1" dir="$2" parity="$3" cpp_side="$4" python_side="$5"
  mkdir -p "$dir/torchloss" "$dir/pytorch"
  echo "torchloss: the C++ trainer (log: $dir/torchloss/log.txt)"
  "$cpp_side" >"$dir/torchloss/log.txt" 2>&1 &
  local cpp_pid=$!
  echo "PyTorch:   its twin reference.py (log: $dir/pytorch/log.txt)"
  local python_status=0 cpp_status=0
  "$python_side" >"$dir/pytorch/log.txt" 2>&1 || python_status=$?
  wait "$cpp_pid" || cpp_status=$?
  if [[ $python_status -ne 0 || $cpp_status -ne 0 ]]; then
    echo "run_example.sh $name: a trainer failed (C++ exit $cpp_status, PyTorch exit $python_status):" >&2
    tail -n 3 "$dir/torchloss/log.txt" "$dir/pytorch/log.txt" >&2
    exit 1
  fi
  /usr/bin/python3 "$parity" "$dir/torchloss" "$dir/pytorch" --output-dir "$dir"
}

# Reads --seeds (and --losses where `allow_losses` is 1) into the caller's `seeds`, `losses`.
parse_parity_options() {
  local name="$1" allow_losses="$2"
  shift 2
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --seeds) seeds="$2"; shift 2 ;;
      --losses) [[ $allow_losses == 1 ]] || break; losses="$2"; shift 2 ;;
      *) break ;;
    esac
  done
  if [[ $# -gt 0 ]]; then
    echo "run_example.sh $name: unknown option '$1' (--seeds$([[ $allow_losses == 1 ]] && echo ", --losses"))" >&2
    exit 2
  fi
}

# torchloss beside PyTorch on the reference recipe (#17): long_tail and its twin, then
# parity.py's table and plot in results/long_tail_reference/.
run_long_tail_parity() {
  build long_tail
  local dir="$root/results/long_tail_reference" seeds=1,2,3 losses=""
  parse_parity_options long_tail_parity 1 "$@"
  local common=(--seeds "$seeds" --eval-every 3 --threads 1 --no-progress)
  [[ -n "$losses" ]] && common+=(--losses "$losses")
  cpp_side() {
    "$build_dir/examples/long_tail/long_tail" --recipe reference "${common[@]}" --no-plot --output-dir "$dir/torchloss"
  }
  python_side() { /usr/bin/python3 "$root/examples/long_tail/reference.py" "${common[@]}" --output-dir "$dir/pytorch"; }
  run_both_sides long_tail_parity "$dir" "$root/examples/long_tail/parity.py" cpp_side python_side
}

# The same for the center-loss trainer (#17 item 5): CE and CE + 0.5 * center loss per seed,
# into results/center_loss_reference/ (seed_S folders on each side).
run_center_loss_parity() {
  build center_loss_embedding
  local dir="$root/results/center_loss_reference" seeds=1,2,3
  parse_parity_options center_loss_parity 0 "$@"
  cpp_side() {
    local seed
    for seed in ${seeds//,/ }; do
      "$build_dir/examples/center_loss_embedding/center_loss_embedding" --recipe reference --seed "$seed" \
        --threads 1 --no-progress --no-plot --output-dir "$dir/torchloss/seed_$seed" || return
    done
  }
  python_side() {
    /usr/bin/python3 "$root/examples/center_loss_embedding/reference.py" --seeds "$seeds" --threads 1 --no-progress \
      --output-dir "$dir/pytorch"
  }
  run_both_sides center_loss_parity "$dir" "$root/examples/center_loss_embedding/parity.py" cpp_side python_side
}

if [[ $# -eq 0 ]]; then
  run_short_demo
  exit 0
fi
if [[ "$1" == long_tail_parity || "$1" == center_loss_parity ]]; then
  command="$1"
  shift
  "run_$command" "$@"
  exit 0
fi
case "$1" in
  -h | --help)
    usage
    exit 0
    ;;
  -*)
    echo "run_example.sh: name a trainer before its options: scripts/run_example.sh TRAINER $*" >&2
    echo "  TRAINER: ${trainers[*]} (scripts/run_example.sh --help)" >&2
    exit 2
    ;;
esac
trainer="$1"
shift
if [[ ! " ${trainers[*]} " =~ " $trainer " ]]; then
  echo "run_example.sh: unknown trainer '$trainer' (known: ${trainers[*]})" >&2
  exit 2
fi
build "$trainer"
extra=()
if [[ "$trainer" == fashion_mnist ]]; then
  extra=(--plot)
fi
# The trainers accept --output-dir once: add ours only when the arguments do not set it.
output_dir_given=0
for argument in "$@"; do
  [[ "$argument" == --output-dir || "$argument" == --output-dir=* ]] && output_dir_given=1
done
if [[ $output_dir_given -eq 0 ]]; then
  extra+=(--output-dir "$root/results/$trainer")
fi
exec "$build_dir/examples/$trainer/$trainer" "${extra[@]}" "$@"
