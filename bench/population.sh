#!/usr/bin/env bash
# Which estimator learns fastest: MeZO against population ZO (FZOO's one-sided rule with
# N = 4, 8, 16 Rademacher perturbations, a small learning-rate sweep, two-sided, low-rank) on
# SmolLM2-135M's sentiment task (held-out accuracy on the 1000 test examples) and an `lm`
# task (held-out loss), and LoRA (r 8, the base frozen) trained by MeZO and by a population. Each run gets about the forward passes of MeZO's default run (200
# steps × 2); one run at a time, so step times compare.
#   bench/population.sh [OUT_DIR] [RUNS...]     (RUNS: names below; default all)
# Writes OUT_DIR/<run>/metrics.jsonl and OUT_DIR/<run>.log; bench/population_report.py turns
# them into a table, and `zotune report` into charts (against forward passes and against training time).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=${1:-$root/bench/results/population-$(date +%Y%m%d)}
shift || true
"$root/bench/convergence_setup.sh" "$out" "bench/population.sh $out $*"
zotune="$out/zotune"

s=(--task sentiment)
lm=(--task lm --data "$out/lm-train.jsonl" --eval-data "$out/lm-dev.jsonl")
declare -A runs=(
    [sentiment-mezo]="${s[*]} --zo mezo --lr 3e-5 --steps 200 --eval-every 40"
    [sentiment-n8-lr3e-3]="${s[*]} --zo population --queries 8 --lr 3e-3 --steps 50 --eval-every 10"
    [sentiment-n8-lr6e-3]="${s[*]} --zo population --queries 8 --lr 6e-3 --steps 50 --eval-every 10"
    [sentiment-n8-lr1.5e-3]="${s[*]} --zo population --queries 8 --lr 1.5e-3 --steps 50 --eval-every 10"
    [sentiment-n4-lr2e-3]="${s[*]} --zo population --queries 4 --lr 2e-3 --steps 90 --eval-every 18"
    [sentiment-n4-lr1e-3]="${s[*]} --zo population --queries 4 --lr 1e-3 --steps 90 --eval-every 18"
    [sentiment-n4-lr4e-3]="${s[*]} --zo population --queries 4 --lr 4e-3 --steps 90 --eval-every 18"
    [sentiment-n16-lr4e-3]="${s[*]} --zo population --queries 16 --lr 4e-3 --steps 26 --eval-every 5"
    [sentiment-n4-twosided-lr2e-3]="${s[*]} --zo population --queries 4 --no-one-sided --lr 2e-3 --steps 50 --eval-every 10"
    [sentiment-n8-rank2-lr3e-3]="${s[*]} --zo population --queries 8 --rank 2 --lr 3e-3 --steps 50 --eval-every 10"
    [sentiment-n4-rank2-lr2e-3]="${s[*]} --zo population --queries 4 --rank 2 --lr 2e-3 --steps 90 --eval-every 18"
    [sentiment-n16-lr2e-3]="${s[*]} --zo population --queries 16 --lr 2e-3 --steps 26 --eval-every 5"
    [sentiment-n4-rank2-lr4e-3]="${s[*]} --zo population --queries 4 --rank 2 --lr 4e-3 --steps 90 --eval-every 18"
    [sentiment-n8-rank2-only-lr6e-3]="${s[*]} --zo population --queries 8 --rank 2 --low-rank-only --lr 6e-3 --steps 50 --eval-every 10"
    [sentiment-n16-rank2-lr4e-3]="${s[*]} --zo population --queries 16 --rank 2 --lr 4e-3 --steps 26 --eval-every 5"
    [sentiment-n8-rank2-lr1.5e-3]="${s[*]} --zo population --queries 8 --rank 2 --lr 1.5e-3 --steps 50 --eval-every 10"
    [sentiment-n8-twosided-lr3e-3]="${s[*]} --zo population --queries 8 --no-one-sided --lr 3e-3 --steps 26 --eval-every 5"
    [sentiment-n16-twosided-lr4e-3]="${s[*]} --zo population --queries 16 --no-one-sided --lr 4e-3 --steps 14 --eval-every 3"
    [sentiment-n4-twosided-lr1e-3]="${s[*]} --zo population --queries 4 --no-one-sided --lr 1e-3 --steps 50 --eval-every 10"
    [sentiment-n8-rank2-only-lr3e-3]="${s[*]} --zo population --queries 8 --rank 2 --low-rank-only --lr 3e-3 --steps 50 --eval-every 10"
    [sentiment-hybrid4-mezo]="${s[*]} --zo mezo --lr 3e-5 --fo-blocks 4 --fo-lr 1e-5 --steps 200 --eval-every 40"
    [sentiment-hybrid4-n4-lr2e-3]="${s[*]} --zo population --queries 4 --lr 2e-3 --fo-blocks 4 --fo-lr 1e-5 --steps 90 --eval-every 18"
    [sentiment-fo4]="${s[*]} --fo-blocks 4 --zo off --fo-lr 1e-5 --steps 200 --eval-every 40"
    [sentiment-mezo-lora8-lr3e-3]="${s[*]} --zo mezo --lora 8 --eps 1e-2 --lr 3e-3 --steps 200 --eval-every 50"
    [sentiment-n4-lora8-lr2e-2]="${s[*]} --zo population --queries 4 --lora 8 --eps 1e-2 --lr 2e-2 --steps 90 --eval-every 30"
    [sentiment-mezo-lora8-lr1e-3]="${s[*]} --zo mezo --lora 8 --eps 1e-2 --lr 1e-3 --steps 200 --eval-every 50"
    [sentiment-n4-lora8-lr1e-2]="${s[*]} --zo population --queries 4 --lora 8 --eps 1e-2 --lr 1e-2 --steps 90 --eval-every 30"
    [lm-mezo]="${lm[*]} --zo mezo --lr 1e-5 --steps 100 --eval-every 25"
    [lm-n4-lr2e-3]="${lm[*]} --zo population --queries 4 --lr 2e-3 --steps 40 --eval-every 10"
    [lm-n4-lr1e-3]="${lm[*]} --zo population --queries 4 --lr 1e-3 --steps 40 --eval-every 10"
)
order=(sentiment-mezo sentiment-n8-lr3e-3 sentiment-n4-lr2e-3 sentiment-n4-lr4e-3 sentiment-hybrid4-n4-lr2e-3 sentiment-fo4
       lm-mezo lm-n4-lr2e-3 lm-n4-lr1e-3 sentiment-n8-lr6e-3 sentiment-n16-lr4e-3 sentiment-n8-lr1.5e-3 sentiment-n4-twosided-lr2e-3
       sentiment-n8-rank2-lr3e-3 sentiment-hybrid4-mezo sentiment-n4-rank2-lr2e-3 sentiment-n4-lr1e-3
       sentiment-n8-rank2-only-lr3e-3 sentiment-n16-lr2e-3 sentiment-n4-rank2-lr4e-3 sentiment-n8-rank2-only-lr6e-3
       sentiment-n16-rank2-lr4e-3 sentiment-n8-rank2-lr1.5e-3 sentiment-n8-twosided-lr3e-3 sentiment-n16-twosided-lr4e-3
       sentiment-n4-twosided-lr1e-3 sentiment-n4-lora8-lr2e-2 sentiment-mezo-lora8-lr3e-3 sentiment-n4-lora8-lr1e-2
       sentiment-mezo-lora8-lr1e-3)
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=("${order[@]}")
for name in "${names[@]}"; do
    [[ -n "${runs[$name]:-}" ]] || { echo "unknown run $name (one of: ${order[*]})" >&2; exit 2; }
    echo "== $name: ${runs[$name]}" >&2
    # shellcheck disable=SC2086  # the run's options are words
    "$zotune" train --model smollm2-135m --output "$out/$name" ${runs[$name]} > "$out/$name.log" 2>&1
    rm -rf "$out/$name/model"  # 538 MB each; the metrics are what is measured
    tail -2 "$out/$name.log" >&2
done
# The charts: every run of a task side by side, by forwards and by training time.
for task in sentiment lm; do
    set -- "$out/$task"-*/
    [[ -e "$1" ]] || continue
    for axis in forwards time; do "$zotune" report "$@" --x "$axis" --output "$out/$task-by-$axis.html"; done
done
rm -f "$zotune"
python3 "$root/bench/population_report.py" "$out"
