#!/usr/bin/env bash
# What the convergence benchmarks (bench/hybrid.sh, bench/population.sh) share: a release
# build copied to OUT_DIR/zotune (later rebuilds do not touch the running binary), the model
# and data assets, the `lm` task's data (Rotten Tomatoes review snippets, text only: 1000 for
# training, 200 held out, outside the sentiment task's examples) and the machine's description
# appended to OUT_DIR/machine.txt.
#   bench/convergence_setup.sh OUT_DIR COMMAND-LINE
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=$1
mkdir -p "$out"
"$root/scripts/setup.sh"
swift build -c release --package-path "$root" >&2
cp "$root/.build/release/zotune" "$out/zotune"
"$out/zotune" assets fetch smollm2-135m rotten-tomatoes >&2
python3 - "$HOME/.cache/zotune/assets/rotten-tomatoes/movieReviewSnippets_GroundTruth.txt" "$out" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
texts = [l.split("\t", 2)[2].strip() for l in lines if l.count("\t") >= 2]
with open(sys.argv[2] + "/lm-train.jsonl", "w") as f:
    for t in texts[6000:7000]: f.write(json.dumps({"text": t}) + "\n")
with open(sys.argv[2] + "/lm-dev.jsonl", "w") as f:
    for t in texts[7000:7200]: f.write(json.dumps({"text": t}) + "\n")
PY
{
    echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "# command: $2 ($(date -u +%FT%TZ), $(git -C "$root" rev-parse --short HEAD))"
} >> "$out/machine.txt"
