#!/usr/bin/env bash
# The `lm` task's data for the convergence benchmarks: Rotten Tomatoes review snippets (text
# only), 1000 for training and 200 held out, outside the sentiment task's examples.
#   bench/lm_data.sh OUT_DIR     (writes OUT_DIR/lm-train.jsonl and OUT_DIR/lm-dev.jsonl)
set -euo pipefail
python3 - "$HOME/.cache/zotune/assets/rotten-tomatoes/movieReviewSnippets_GroundTruth.txt" "$1" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
texts = [l.split("\t", 2)[2].strip() for l in lines if l.count("\t") >= 2]
with open(sys.argv[2] + "/lm-train.jsonl", "w") as f:
    for t in texts[6000:7000]: f.write(json.dumps({"text": t}) + "\n")
with open(sys.argv[2] + "/lm-dev.jsonl", "w") as f:
    for t in texts[7000:7200]: f.write(json.dumps({"text": t}) + "\n")
PY
