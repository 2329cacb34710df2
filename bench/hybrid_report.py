#!/usr/bin/env python3
"""The table of bench/hybrid.sh's runs: held-out accuracy (sentiment) or loss (lm)
against steps and against training wall time (the sum of the step times metrics.jsonl
records; evaluations excluded).

    python3 bench/hybrid_report.py OUT_DIR
Writes OUT_DIR/report.md; bench/hybrid.sh draws the charts with `zotune report` (<task>-by-step, <task>-by-time).
"""
import json
import os
import sys

from report_common import machine_lines, write_report

LABELS = {"mezo": "MeZO", "lowrank": "low-rank ZO (r 2, ν 50)", "hybrid-lowrank-2": "hybrid k=2, low-rank ZO + AdamW",
          "full-fo": "full first-order"}


def label(run):
    for kind, text in [("hybrid-", "hybrid k={} (ZO + AdamW)"), ("fo-", "AdamW on last {} blocks, ZO off")]:
        if run.startswith(kind) and run[len(kind):].isdigit():
            return text.format(run[len(kind):])
    return LABELS.get(run, run)


def load(path):
    """[(step, training seconds so far, metrics)] at each evaluation, and the mean step time."""
    seconds, evaluations, steps = 0.0, [], []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if "eval" in record:
                evaluations.append((record["step"], seconds, record["eval"]))
            elif "seconds" in record:
                seconds += record["seconds"]
                steps.append(record["seconds"])
    return evaluations, sum(steps) / max(len(steps), 1)


def main():
    out = sys.argv[1]
    runs = sorted(d for d in os.listdir(out) if os.path.isfile(os.path.join(out, d, "metrics.jsonl")))
    lines = ["# Hybrid ZO/FO convergence (bench/hybrid.sh)", ""]
    lines += machine_lines(out)
    for task, metric in [("sentiment", "accuracy"), ("lm", "eval_loss")]:
        names = [r for r in runs if r.startswith(task + "-")]
        if not names:
            continue
        data = {r[len(task) + 1:]: load(os.path.join(out, r, "metrics.jsonl")) for r in names}
        steps = sorted({s for evaluations, _ in data.values() for s, _, _ in evaluations})
        lines += [f"## {task}: held-out {metric} at each evaluation step", "",
                  "| run | s/step | " + " | ".join(f"step {s}" for s in steps) + " | training time |",
                  "|---|---|" + "---|" * len(steps) + "---|"]
        for run, (evaluations, step_seconds) in data.items():
            at = {s: m.get(metric) for s, _, m in evaluations}
            cells = [f"{at[s]:.4f}" if at.get(s) is not None else "" for s in steps]
            lines.append(f"| {label(run)} | {step_seconds:.2f} | " + " | ".join(cells) + f" | {evaluations[-1][1]:.0f} s |")
        lines += ["", f"Charts: {task}-by-step.png, {task}-by-time.png (`zotune report`).", ""]
    write_report(out, lines)


if __name__ == "__main__":
    main()
