#!/usr/bin/env bash
# Resident against offloaded MeZO steps (zotune bench zo-step --offload) for OPT-125M, 350M and
# 1.3B shapes with random weights: tokens/s, exact peak device bytes, bytes moved per step,
# and the time compute waited for uploads, side by side in one run per shape.
#   bench/offload.sh [BATCH] [SEQ] [THREADS] [SLOTS]
# Writes the raw output to bench/results/offload-<date>.txt as well.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
batch=${1:-4} seq=${2:-128} threads=${3:-2} slots=${4:-2}
out="$root/bench/results/offload-$(date +%Y%m%d-%H%M).txt"

"$root/scripts/setup.sh"
swift build -c release --package-path "$root" >&2
{
    echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "# command: bench/offload.sh $batch $seq $threads $slots ($(date -u +%FT%TZ))"
    for shape in opt-125m opt-350m opt-1.3b; do
        "$root/.build/release/zotune" bench zo-step --offload --slots "$slots" --shape "$shape" \
            --batch "$batch" --seq "$seq" --threads "$threads" --iterations 2
    done
} | tee "$out"
