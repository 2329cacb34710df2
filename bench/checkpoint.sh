#!/usr/bin/env bash
# Training steps without checkpoints against asynchronous checkpoints every N steps
# (zotune bench checkpoint), side by side in one run per interval, on the OPT-125M shape with
# random weights (each checkpoint: 501 MB of safetensors, fsynced, on the disk of $TMPDIR).
#   bench/checkpoint.sh [STEPS] [THREADS]
# Writes the raw output to bench/results/checkpoint-<date>.txt as well.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps=${1:-24} threads=${2:-2}
out="$root/bench/results/checkpoint-$(date +%Y%m%d-%H%M).txt"

"$root/scripts/setup.sh"
swift build -c release --package-path "$root" >&2
{
    echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; checkpoints on $(df -h "${TMPDIR:-/tmp}" | awk 'NR==2{print $1}')"
    echo "# command: bench/checkpoint.sh $steps $threads ($(date -u +%FT%TZ))"
    for every in 1 10; do
        "$root/.build/release/zotune" bench checkpoint --shape opt-125m --batch 4 --seq 128 --steps "$steps" \
            --save-every "$every" --threads "$threads"
    done
} | tee "$out"
