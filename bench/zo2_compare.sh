#!/usr/bin/env bash
# On the GPU machine (the device tool, carrying .gpu from bench/zo2_prepare.sh): ZOTune
# against ZO2, each row's runs as JSON lines appended to OUTDIR/rows.jsonl, then
# OUTDIR/report.md and OUTDIR/machine.txt (nvidia-smi, zotune devices).
#   bash bench/zo2_compare.sh OUTDIR [bench/zo2_compare.py run options: --shapes, --workloads,
#        --precisions, --implementations, --deadline, --done earlier/rows.jsonl ...]
# ZO2 runs from a copy outside the repository, with transformers 4.51.3 first on its path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gpu="$root/.gpu" out=${1:?usage: bench/zo2_compare.sh OUTDIR [options]}
shift
[ -f "$gpu/zotune.xz" ] || { echo "no $gpu/zotune.xz: run bench/zo2_prepare.sh here and carry .gpu" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d /tmp/zo2-compare.XXXXXX)
xz -dc "$gpu/zotune.xz" > "$work/zotune" && chmod +x "$work/zotune"
cp -r "$gpu/zo2" "$work/zo2"
python3 -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile --target "$work/site" "$gpu"/whl/*.whl
export ZOTUNE_HOME="$work/home" PYTHONUNBUFFERED=1
{ nvidia-smi; "$work/zotune" devices; echo "ZO2 $(cat "$work/zo2/COMMIT")"; } > "$out/machine.txt" 2>&1 || true
python3 "$root/bench/zo2_compare.py" run --zotune "$work/zotune" --zo2 "$work/zo2" --zo2-pythonpath "$work/site" \
    --out "$out/rows.jsonl" "$@"
python3 "$root/bench/zo2_compare.py" report "$out/rows.jsonl" > "$out/report.md"
