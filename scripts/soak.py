#!/usr/bin/env python3
"""A long offloaded run killed and resumed, against the same run uninterrupted.

    python3 scripts/soak.py --zotune .build/release/zotune [--steps 2000] [--kills 5] [--out FILE]

Trains a fixture model (Llama with grouped-query attention) on 32-token examples (batches of 16) with --offload --slots 1
and a checkpoint every 50 steps, twice: once uninterrupted, sampling the process's resident memory
(VmRSS) as it goes; once killed with SIGKILL at `--kills` random steps (a seeded draw) and resumed
from its newest checkpoint each time. Checks, and prints the numbers:
- no leak: the uninterrupted run's RSS in its last quarter stays within 10% + 8 MiB of its second
  quarter's peak, and the device arena's high-water mark (metrics.jsonl) is the same at every step;
- the killed-and-resumed run ends with the uninterrupted run's weights, byte for byte.
Exits non-zero on a failed check.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../Tests/ZOTuneTests/Fixtures/llama/llama-gqa-f32")


def fail(message):
    sys.exit(f"soak: FAILED: {message}")


def steps_done(run):
    """The last step metrics.jsonl records (0 before the first)."""
    try:
        with open(os.path.join(run, "metrics.jsonl"), "rb") as file:
            lines = file.read().split(b"\n")
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "loss" in record:
            return record["step"]
    return 0


def stderr_of(log):
    log.seek(0)
    return log.read()[-4000:]


def complete_checkpoints(run):
    folder = os.path.join(run, "checkpoints")
    return [name for name in os.listdir(folder) if name.startswith("step-")] if os.path.isdir(folder) else []


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args()
    if args.steps < 100 + 30 * args.kills:
        fail(f"--steps {args.steps} leaves too little room for {args.kills} kills (at least {100 + 30 * args.kills})")
    zotune = os.path.abspath(args.zotune)
    work = tempfile.mkdtemp(prefix="zotune-soak-")
    data = os.path.join(work, "train.jsonl")
    rng = random.Random(args.seed)
    with open(data, "w") as file:
        for _ in range(64):
            file.write(json.dumps({"ids": [rng.randrange(1, 97) for _ in range(32)]}) + "\n")
    train = [zotune, "train", "--model", FIXTURE, "--data", data, "--batch-size", "16", "--lr", "1e-4", "--threads", "2",
             "--offload", "--slots", "1", "--steps", str(args.steps), "--save-every", "50", "--keep", "2", "--seed", "3"]
    report = []

    # The uninterrupted run, its RSS sampled against the step it has reached.
    reference = os.path.join(work, "reference")
    started = time.time()
    log = open(os.path.join(work, "stderr.txt"), "w+")  # read back on failure (a pipe could fill and block)
    process = subprocess.Popen([*train, "--output", reference], stdout=subprocess.DEVNULL, stderr=log)
    samples = []
    while process.poll() is None:
        rss = rss_bytes(process.pid)
        if rss:
            samples.append((steps_done(reference), rss))
        time.sleep(0.05)
    if process.returncode != 0:
        fail(f"the uninterrupted run: {stderr_of(log)}")
    seconds = time.time() - started
    quarter = args.steps // 4
    second = [rss for step, rss in samples if quarter <= step < 2 * quarter]
    last = [rss for step, rss in samples if step >= 3 * quarter]
    if not second or not last:
        fail(f"too few RSS samples ({len(samples)}) to compare the quarters")
    with open(os.path.join(reference, "metrics.jsonl")) as file:
        marks = [json.loads(line)["system"]["device_high_water_bytes"] for line in file if '"loss"' in line]
    report.append(f"uninterrupted: {args.steps} steps in {seconds:.1f} s ({args.steps / seconds:.1f} steps/s), "
                  f"{len(samples)} RSS samples")
    report.append(f"  RSS peak, steps {quarter}-{2 * quarter}: {max(second) / 2**20:.1f} MiB; "
                  f"steps {3 * quarter}-{args.steps}: {max(last) / 2**20:.1f} MiB")
    report.append(f"  device arena high-water: {min(marks):.0f} to {max(marks):.0f} bytes over {len(marks)} steps")
    if max(last) > max(second) * 1.10 + (8 << 20):
        fail("RSS grew: " + report[-2])
    if min(marks) != max(marks):
        fail("the arena's high-water mark moved: " + report[-1])

    # The same run killed at random steps and resumed each time from its newest checkpoint.
    run = os.path.join(work, "killed")
    targets = sorted(rng.sample(range(60, args.steps - 10), args.kills))
    kills, killed_at = [], 0
    arguments = [*train, "--output", run]
    for target in targets:
        # Past the step of the last kill, so that metrics.jsonl's lines from before the resume
        # (rewritten from the checkpoint's step on) cannot count as this process's progress.
        target = max(target, killed_at + 30)
        if target >= args.steps - 5:
            break  # the report lists the kills that happened
        process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=log)
        # At the target step, or later once a checkpoint is complete (saves finish in the background).
        while process.poll() is None and (steps_done(run) < target or not complete_checkpoints(run)):
            time.sleep(0.01)
        if process.poll() is not None:
            fail(f"the run ended (status {process.returncode}) before step {target}: {stderr_of(log)}")
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = steps_done(run)
        kills.append(f"{killed_at} (newest checkpoint {max(complete_checkpoints(run))[5:].lstrip('0')})")
        arguments = [*train, "--resume", run, "--output", run]
    finished = subprocess.run(arguments, stdout=subprocess.DEVNULL, stderr=log)
    if finished.returncode != 0:
        fail(f"the last resume: {stderr_of(log)}")
    report.append(f"killed (SIGKILL) after steps {', '.join(map(str, kills))} and resumed each time from the newest checkpoint")
    with open(os.path.join(reference, "model", "model.safetensors"), "rb") as a, \
            open(os.path.join(run, "model", "model.safetensors"), "rb") as b:
        if a.read() != b.read():
            fail("the killed-and-resumed run's weights differ from the uninterrupted run's")
    report.append("  final weights: equal to the uninterrupted run's, byte for byte")
    text = "\n".join(report)
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text + "\n")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
