#!/usr/bin/env python3
"""`zotune report` rendered by a real browser: headless Chromium (Debian's chromium package).

    python3 scripts/check-report.py --zotune .build/release/zotune [--keep DIR]

Trains a fixture model three ways (resident; offloaded; resumed from a checkpoint) and fakes a
run still being written (its metrics.jsonl cut mid-line), then for each run alone and for all
four side by side:
- the HTML is self-contained: no script, nothing fetched (no src/href/url() to anywhere);
- Chromium loads it with no console message (a page that logs an error is detected, so the
  check can fail) and its DOM holds every run's name and an SVG per chart;
- the PNG `zotune report` rendered is not blank: its size is the page's, it has many colours,
  much of it is not white, and each run's line colour is in it (Pillow, installed once into
  $ZOTUNE_HOME/report-check).
With --keep DIR the reports are copied there (for looking at them). Exits non-zero on failure.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from checklib import FIXTURE, install
import checklib

PINNED = ["pillow==13.0.0"]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def fail(message):
    checklib.fail("check-report", message)


def chromium():
    for name in ["chromium", "chromium-browser", "google-chrome"]:
        path = shutil.which(name)
        if path:
            return path
    fail("no Chromium in PATH (apt-get install chromium)")


def run(*args):
    result = subprocess.run(list(args), capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"{' '.join(args)}: {result.stderr}")
    return result.stdout


def console_messages(browser, page):
    """Chromium's console lines for `page` and its DOM."""
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                             "--dump-dom", "file://" + os.path.abspath(page)], capture_output=True, text=True, timeout=120)
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line], result.stdout


def check_page(browser, html, names, charts):
    text = open(html, encoding="utf-8").read()
    if re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(", text, re.IGNORECASE):
        fail(f"{html} is not self-contained")
    messages, dom = console_messages(browser, html)
    if messages:
        fail(f"{html}: console messages {messages}")
    missing = [name for name in names if name not in dom]
    if missing or dom.count("<svg") != charts:
        fail(f"{html}: DOM lacks {missing} or has {dom.count('<svg')} charts, {charts} expected")


def check_png(image_module, png, colors):
    image = image_module.open(png).convert("RGB")
    width, height = image.size
    pixels = list(image.get_flattened_data()) if hasattr(image, "get_flattened_data") else list(image.getdata())
    distinct = len(set(pixels))
    coloured = sum(1 for p in pixels if p != (255, 255, 255)) / len(pixels)
    present = {c for c in colors if tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) in set(pixels)}
    if width != 1210 or height < 600 or distinct < 50 or coloured < 0.05 or present != set(colors):
        fail(f"{png}: {width}×{height}, {distinct} colours, {coloured:.1%} not white, line colours {sorted(present)} "
             f"of {colors}: blank or incomplete")
    return f"{width}×{height}, {distinct} colours, {coloured:.0%} not white"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    parser.add_argument("--keep")
    arguments = parser.parse_args()
    binary = os.path.abspath(arguments.zotune)
    install("report-check", PINNED)
    from PIL import Image
    browser = chromium()
    with tempfile.TemporaryDirectory() as tmp:
        # The detector sees an error when there is one.
        bad = os.path.join(tmp, "bad.html")
        with open(bad, "w") as f:
            f.write('<!DOCTYPE html><html><body><script>console.error("deliberate")</script></body></html>')
        if not console_messages(browser, bad)[0]:
            fail("a page that logs an error showed no console message: the check could not fail")

        data = os.path.join(tmp, "train.jsonl")
        with open(data, "w") as f:
            for k in range(24):
                f.write(json.dumps({"ids": [(7 * k + 3 * j) % 100 for j in range(8 + k % 9)]}) + "\n")
        train = [binary, "train", "--model", FIXTURE, "--task", "lm", "--data", data, "--eval-data", data,
                 "--batch-size", "4", "--lr", "2e-3", "--eval-every", "10", "--steps", "40"]
        runs = {name: os.path.join(tmp, name) for name in ["resident", "offloaded", "resumed", "running"]}
        run(*train, "--output", runs["resident"])
        run(*train, "--output", runs["offloaded"], "--zo", "mezo", "--offload", "--slots", "1", "--device-memory", "1MiB")
        run(*train, "--output", runs["resumed"], "--save-every", "20")
        run(*train, "--output", runs["resumed"], "--save-every", "20",
            "--resume", glob.glob(os.path.join(runs["resumed"], "checkpoints", "*20"))[0])
        # A run still being written: the first 25 lines and half of the next; run.json plans 40 steps.
        shutil.copytree(runs["resident"], runs["running"])
        lines = open(os.path.join(runs["resident"], "metrics.jsonl")).read().splitlines(keepends=True)
        with open(os.path.join(runs["running"], "metrics.jsonl"), "w") as f:
            f.write("".join(lines[:25]) + lines[25][:len(lines[25]) // 2])

        reports = [(name, [path]) for name, path in runs.items()] + [("side-by-side", list(runs.values()))]
        for name, folders in reports:
            html = os.path.join(tmp, name + ".html")
            out = run(binary, "report", *folders, "--output", html, "--x", "forwards" if len(folders) > 1 else "step")
            if "wrote " + html[:-5] + ".png" not in out:
                fail(f"zotune report did not render a PNG: {out}")
            names = [os.path.basename(folder) for folder in folders]
            charts = 6 if "offloaded" in names else 5  # loss, eval_loss, step time, throughput, memory (+ link traffic)
            check_page(browser, html, names, charts)
            described = check_png(Image, html[:-5] + ".png", COLORS[:len(folders)])
            print(f"{name}: no console messages, {len(names)} run(s) and {charts} charts in the DOM; PNG {described}", flush=True)
            if arguments.keep:
                os.makedirs(arguments.keep, exist_ok=True)
                shutil.copy(html[:-5] + ".png", os.path.join(arguments.keep, f"report-{name}.png"))
        status = open(os.path.join(tmp, "running.html")).read()
        if "running or stopped" not in status:
            fail("the cut-off run is not reported as running")
    print("check-report: passed")


if __name__ == "__main__":
    main()
