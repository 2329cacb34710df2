#!/usr/bin/env bash
# ZOTune's forward pass against PyTorch's on the same shape and thread count, one right
# after the other, and their ratio. Needs torch + transformers (pip) for the reference.
#   bench/forward.sh [SHAPE] [BATCH] [SEQ] [THREADS]
# Writes the raw output to bench/results/forward-SHAPE-<date>.txt as well.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shape=${1:-opt-125m} batch=${2:-4} seq=${3:-128} threads=${4:-2}
out="$root/bench/results/forward-$shape-$(date +%Y%m%d-%H%M).txt"

"$root/scripts/setup.sh"
swift build -c release --package-path "$root" >&2
{
    echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "# command: bench/forward.sh $shape $batch $seq $threads ($(date -u +%FT%TZ))"
    z=$("$root/.build/release/zotune" bench forward --shape "$shape" --batch "$batch" --seq "$seq" --threads "$threads")
    echo "$z"
    p=$(python3 "$root/bench/pytorch_forward.py" --shape "$shape" --batch "$batch" --seq "$seq" --threads "$threads")
    echo "$p"
    python3 - "$z" "$p" <<'PY'
import json, sys
z, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"ratio_tokens_per_s": z["tokens_per_s"] / p["tokens_per_s"],
                  "zotune_tokens_per_s": z["tokens_per_s"], "pytorch_tokens_per_s": p["tokens_per_s"],
                  "zotune_effective_gflops": z["effective_gflops"],
                  "pytorch_effective_gflops": z["gflop_per_forward"] / p["seconds_median"]}))
PY
} | tee "$out"
