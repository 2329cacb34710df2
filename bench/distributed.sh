#!/usr/bin/env bash
# Distributed ZO on this machine, side by side in one run: one process with 2 threads against 2
# MPI ranks with 1 thread each (--parallel data and directions), on SmolLM2-135M with the main
# job's estimator (population, N = 4: 5 forward passes of the batch a step) and batch 16 of
# Rotten Tomatoes snippets as SST-2 (8 held-out examples, so that evaluation stays short). Runs
# alternate, ROUNDS times; prints each run's mean step time (steps 2.., the first warms up),
# the bytes rank 0 exchanged per step, and whether the ranks' metrics and weights equal the
# one-process run's.
# Runs go to a temporary folder (their models are 0.5 GB each); OUT_DIR gets summary.txt and the logs.
#   bench/distributed.sh [OUT_DIR] [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results=${1:-$root/bench/results/distributed-$(date +%Y%m%d)}
rounds=${2:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$results"
zotune="$root/.build/release/zotune"
[ -x "$zotune" ] || swift build -c release --product zotune --package-path "$root"
"$zotune" assets fetch > /dev/null
snippets="$(find "${ZOTUNE_HOME:-$HOME/.cache/zotune}/assets/rotten-tomatoes" -name '*.txt' | head -1)"
python3 - "$snippets" "$out" <<'PY'
import json, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1], encoding="latin-1") if line.count("\t") == 2]
examples = [{"sentence": text, "label": int(float(score) > 0)} for _, score, text in rows if abs(float(score)) > 0.5]
with open(sys.argv[2] + "/train.jsonl", "w") as f:
    f.writelines(json.dumps(e) + "\n" for e in examples[:512])
with open(sys.argv[2] + "/eval.jsonl", "w") as f:
    f.writelines(json.dumps(e) + "\n" for e in examples[512:520])
PY
mpirun=(mpirun --oversubscribe --mca btl tcp,self --mca btl_tcp_if_include lo -np 2)
[ "$(id -u)" -ne 0 ] || mpirun+=(--allow-run-as-root)
common=(train --model smollm2-135m --task sst2 --data "$out/train.jsonl" --eval-data "$out/eval.jsonl" --batch-size 16
        --zo population --queries 4 --lr 2e-3 --steps 8 --seed 1)
{
    echo "# bench/distributed.sh $results $rounds  ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$root" rev-parse --short HEAD))"
    echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB"
    echo "# $("${mpirun[0]}" --version | head -1)"
} > "$out/summary.txt"
for round in $(seq 1 "$rounds"); do
    "$zotune" "${common[@]}" --threads 2 --output "$out/alone-$round" > "$out/alone-$round.log" 2>&1
    "${mpirun[@]}" "$zotune" "${common[@]}" --parallel data --output "$out/data-$round" > "$out/data-$round.log" 2>&1
    "${mpirun[@]}" "$zotune" "${common[@]}" --parallel directions --output "$out/directions-$round" > "$out/directions-$round.log" 2>&1
done
python3 - "$out" "$rounds" >> "$out/summary.txt" <<'PY'
import filecmp, json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def steps(run):
    return [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl") if '"loss_plus"' in l]
def same(a, b):
    strip = lambda run: [{k: v for k, v in s.items() if k not in ("seconds", "system")} for s in steps(run)]
    return strip(a) == strip(b) and filecmp.cmp(f"{out}/{a}/model/model.safetensors", f"{out}/{b}/model/model.safetensors", shallow=False)
print(f"{'run':<26}{'s/step (steps 2-8)':>20}{'vs 1 × 2 threads':>18}{'bytes/step (sent+recv)':>24}{'exchange s/step':>17}  equal to one process")
base = None
for name in ["alone", "data", "directions"]:
    times = [s["seconds"] for r in range(1, rounds + 1) for s in steps(f"{name}-{r}")[1:]]
    mean = sum(times) / len(times)
    base = base or mean
    exchange = [s["system"].get("exchange") for s in steps(f"{name}-1")]
    moved = "-" if exchange[0] is None else f"{exchange[-1]['sent'] + exchange[-1]['received']}"
    waits = [s["system"]["exchange"]["seconds"] for r in range(1, rounds + 1) for s in steps(f"{name}-{r}")[1:]] if exchange[0] else []
    wait = "-" if not waits else f"{sum(waits) / len(waits):.4f}"
    label = {"alone": "1 process × 2 threads", "data": "2 ranks × 1 (data)", "directions": "2 ranks × 1 (directions)"}[name]
    equal = "-" if name == "alone" else ("yes" if all(same(f"alone-{r}", f"{name}-{r}") for r in range(1, rounds + 1)) else "NO")
    print(f"{label:<26}{mean:>20.3f}{base / mean:>17.2f}×{moved:>24}{wait:>17}  {equal}")
PY
cp "$out/summary.txt" "$out"/*.log "$results/"
cat "$results/summary.txt"
