#!/usr/bin/env bash
# ZOTune's MeZO step against PyTorch's (MeZO's algorithm) on the same shape and thread count,
# one right after the other, and their ratio; with QUERIES N > 0, both take a step of FZOO's
# rule (population, N one-sided Rademacher perturbations) instead. Needs torch + transformers.
#   bench/zo_step.sh [SHAPE] [BATCH] [SEQ] [THREADS] [QUERIES]
# Writes the raw output to bench/results/zo-step-SHAPE-<date>.txt as well.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shape=${1:-opt-125m} batch=${2:-4} seq=${3:-128} threads=${4:-2} queries=${5:-0}
out="$root/bench/results/zo-step-$shape$([[ $queries == 0 ]] || echo "-n$queries")-$(date +%Y%m%d-%H%M).txt"
population=()
[[ $queries == 0 ]] || population=(--zo population --queries "$queries")

"$root/scripts/setup.sh"
swift build -c release --package-path "$root" >&2
{
    echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "# command: bench/zo_step.sh $shape $batch $seq $threads $queries ($(date -u +%FT%TZ))"
    z=$("$root/.build/release/zotune" bench zo-step --shape "$shape" --batch "$batch" --seq "$seq" --threads "$threads" "${population[@]}")
    echo "$z"
    p=$(cd "$root/bench" && python3 pytorch_mezo_step.py --shape "$shape" --batch "$batch" --seq "$seq" --threads "$threads" \
        --queries "$queries")
    echo "$p"
    python3 - "$z" "$p" <<'PY'
import json, sys
z, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"ratio_tokens_per_s": z["tokens_per_s"] / p["tokens_per_s"],
                  "zotune_seconds_per_step": z["seconds_per_step_median"],
                  "pytorch_seconds_per_step": p["seconds_per_step_median"]}))
PY
} | tee "$out"
