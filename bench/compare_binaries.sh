#!/usr/bin/env bash
# Two zotune binaries side by side: the same `train` command, alternating, ROUNDS rounds each;
# prints each binary's mean step time (the first step of each run left out) and their ratio.
#   bench/compare_binaries.sh OUT_DIR BASE_BINARY NEW_BINARY ROUNDS TRAIN_ARGS...
# (e.g. a build of the previous commit against this one, on bench/distributed.sh's SST-2 data).
set -euo pipefail
out=$1 base=$2 new=$3 rounds=$4
shift 4
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
    "$base" train "$@" --output "$out/base-$round" > "$out/base-$round.log" 2>&1
    "$new" train "$@" --output "$out/new-$round" > "$out/new-$round.log" 2>&1
done
python3 - "$out" "$rounds" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
mean = {}
for which in ["base", "new"]:
    times = [t for r in range(1, rounds + 1)
             for t in [json.loads(l)["seconds"] for l in open(f"{out}/{which}-{r}/metrics.jsonl") if '"loss_plus"' in l][1:]]
    mean[which] = sum(times) / len(times)
    print(f"{which}: {mean[which]:.3f} s/step over {len(times)} steps")
print(f"new/base: {mean['new'] / mean['base']:.3f}")
PY
