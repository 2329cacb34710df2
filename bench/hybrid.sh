#!/usr/bin/env bash
# Convergence of MeZO, low-rank ZO (r 2, ν 50), hybrid ZO/FO (k = 1, 2, 4 deepest blocks
# first-order; k = 2 also with the low-rank estimator), the same k blocks trained first-order
# with ZO off (the ablation), and full first-order training, on
# SmolLM2-135M: the sentiment task (held-out accuracy on 1000 test examples) and an `lm` task
# on Rotten Tomatoes review text (held-out loss on 200 reviews). One run at a time, so the
# per-step wall times compare.
#   bench/hybrid.sh [OUT_DIR] [SENTIMENT_STEPS] [LM_STEPS]
# Writes OUT_DIR/<task>-<run>/metrics.jsonl and the console logs, then bench/hybrid_report.py
# turns them into a table, and `zotune report` into charts (<task>-by-step/time.html and .png).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=${1:-$root/bench/results/hybrid-$(date +%Y%m%d)} steps=${2:-200} lm_steps=${3:-100}
"$root/bench/convergence_setup.sh" "$out" "bench/hybrid.sh $out $steps $lm_steps"
zotune="$out/zotune"

run() {  # NAME TASK-ARGS... -- RUN-ARGS...
    local name=$1; shift
    echo "== $name: $*" >&2
    "$zotune" train --model smollm2-135m --output "$out/$name" "$@" > "$out/$name.log" 2>&1
    tail -2 "$out/$name.log" >&2
}

sentiment=(--task sentiment --steps "$steps" --eval-every 50)
run sentiment-mezo "${sentiment[@]}" --lr 3e-5 --zo mezo
run sentiment-lowrank "${sentiment[@]}" --lr 3e-5 --zo low-rank --rank 2 --resample-every 50
run sentiment-hybrid-lowrank-2 "${sentiment[@]}" --lr 3e-5 --zo low-rank --rank 2 --resample-every 50 --fo-blocks 2 --fo-lr 1e-5
for k in 1 2 4; do
    run "sentiment-hybrid-$k" "${sentiment[@]}" --lr 3e-5 --fo-blocks "$k" --fo-lr 1e-5 --zo mezo
    run "sentiment-fo-$k" "${sentiment[@]}" --fo-blocks "$k" --zo off --fo-lr 1e-5
done
run sentiment-full-fo "${sentiment[@]}" --fo-blocks all --zo off --fo-lr 1e-5

lm=(--task lm --data "$out/lm-train.jsonl" --eval-data "$out/lm-dev.jsonl" --steps "$lm_steps" --eval-every 25)
run lm-mezo "${lm[@]}" --lr 1e-5 --zo mezo
run lm-lowrank "${lm[@]}" --lr 1e-5 --zo low-rank --rank 2 --resample-every 50
run lm-hybrid-2 "${lm[@]}" --lr 1e-5 --fo-blocks 2 --fo-lr 1e-5 --zo mezo
run lm-fo-2 "${lm[@]}" --fo-blocks 2 --zo off --fo-lr 1e-5
run lm-full-fo "${lm[@]}" --fo-blocks all --zo off --fo-lr 1e-5
# The charts: every run of a task side by side, by step and by training time.
for task in sentiment lm; do
    set -- "$out/$task"-*/
    [[ -e "$1" ]] || continue
    for axis in step time; do "$zotune" report "$@" --x "$axis" --output "$out/$task-by-$axis.html"; done
done
rm -f "$zotune"
python3 "$root/bench/hybrid_report.py" "$out"
