#!/usr/bin/env python3
"""The table of bench/population.sh's runs: held-out accuracy (sentiment) or loss (lm), the
training wall time (the sum of the step times metrics.jsonl records; evaluations excluded), and
when each run first reached the accuracy thresholds. The charts are `zotune report`'s
(bench/population.sh writes OUT_DIR/<task>-by-forwards.html/.png and <task>-by-time.html/.png).

    python3 bench/population_report.py OUT_DIR
Writes OUT_DIR/report.md.
"""
import json
import os
import sys

from report_common import machine_lines, write_report

THRESHOLDS = [0.70, 0.75, 0.77]


def load(path):
    """[(step, forwards so far, training seconds so far, metrics)] at each evaluation, and the
    mean step time and forwards per step."""
    seconds, forwards, evaluations, steps, per_step = 0.0, 0, [], [], 2
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if "eval" in record:
                evaluations.append((record["step"], forwards, seconds, record["eval"]))
            elif "seconds" in record:
                per_step = record.get("forwards", 2)
                seconds += record["seconds"]
                forwards += per_step
                steps.append(record["seconds"])
    return evaluations, sum(steps) / max(len(steps), 1), per_step


def main():
    out = sys.argv[1]
    runs = sorted(d for d in os.listdir(out) if os.path.isfile(os.path.join(out, d, "metrics.jsonl")))
    lines = ["# Estimators compared (bench/population.sh)", ""]
    lines += machine_lines(out)
    lines += ["Training time is the sum of the recorded step times (evaluations excluded); forwards count",
              "passes of the whole batch (MeZO 2 per step, a one-sided population N + 1).", ""]
    for task, metric, better in [("sentiment", "accuracy", max), ("lm", "eval_loss", min)]:
        names = [r for r in runs if r.startswith(task + "-")]
        if not names:
            continue
        data = {r[len(task) + 1:]: load(os.path.join(out, r, "metrics.jsonl")) for r in names}
        header = "| run | forwards/step | s/step | s/forward | steps | start | best | final | training time |"
        if metric == "accuracy":
            header += "".join(f" s to {t:.0%} |" for t in THRESHOLDS)
        lines += [f"## {task}: held-out {metric}", "", header, "|" + "---|" * (header.count("|") - 1)]
        for run, (evaluations, step_seconds, per_step) in data.items():
            values = [(s, n, t, m[metric]) for s, n, t, m in evaluations if metric in m]
            if not values:
                continue
            ys = [v for _, _, _, v in values]
            row = (f"| {run} | {per_step} | {step_seconds:.2f} | {step_seconds / per_step:.2f} | {values[-1][0]} | "
                   f"{ys[0]:.4f} | {better(ys):.4f} | {ys[-1]:.4f} | {values[-1][2]:.0f} s |")
            if metric == "accuracy":
                for threshold in THRESHOLDS:
                    reached = next((t for _, _, t, v in values if v >= threshold), None)
                    row += f" {reached:.0f} |" if reached is not None else " – |"
            lines.append(row)
        lines += ["", f"Charts: {task}-by-forwards.png, {task}-by-time.png (`zotune report`).", ""]
    write_report(out, lines)


if __name__ == "__main__":
    main()
