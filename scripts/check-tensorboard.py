#!/usr/bin/env python3
"""ZOTune's TensorBoard event files read by TensorBoard's own reader.

    python3 scripts/check-tensorboard.py --zotune .build/release/zotune

Trains a fixture model with `--report-to jsonl,tensorboard` (resident, then offloaded: link
bytes), and a run resumed from a checkpoint, then:
- checks every record's framing and masked CRC-32C itself (an independent implementation);
- reads the event files with tensorboard's EventAccumulator (tensorboard from PyPI, installed
  once into $ZOTUNE_HOME/tensorboard) and compares every scalar with metrics.jsonl: each number
  of each line is a scalar at that line's step, equal within float32 rounding (TensorBoard's
  simple_value is a float32), and TensorBoard holds no scalar metrics.jsonl lacks;
- the resumed run: TensorBoard shows each step once, with the resumed values.
Prints what it compared; exits non-zero on the first mismatch.
"""
import argparse
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

from checklib import FIXTURE, install
import checklib

PINNED = ["tensorboard==2.21.0"]


def fail(message):
    checklib.fail("check-tensorboard", message)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def check_framing(path):
    """Every record's length and data CRCs; returns the record count."""
    data = open(path, "rb").read()
    offset = records = 0
    while offset < len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        payload = data[offset + 12:offset + 12 + length]
        (data_crc,) = struct.unpack("<I", data[offset + 12 + length:offset + 16 + length])
        if length_crc != masked(header) or data_crc != masked(payload) or len(payload) != length:
            fail(f"{path}: record {records} at byte {offset} has a wrong CRC or length")
        offset += 16 + length
        records += 1
    return records


def train(binary, directory, data, *extra):
    result = subprocess.run([binary, "train", "--model", FIXTURE, "--task", "lm", "--data", data, "--eval-data", data,
                             "--batch-size", "2", "--lr", "1e-3", "--eval-every", "3", "--output", directory,
                             "--report-to", "jsonl,tensorboard", *extra], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"zotune train {' '.join(extra)}: {result.stderr}")


def expected_scalars(metrics_path):
    """{(tag, step): value} of every number in metrics.jsonl, named as ZOTune names them."""
    expected = {}
    for line in open(metrics_path):
        record = json.loads(line)
        step = record.get("step")
        for key, value in record.items():
            if key == "step" or step is None:
                continue
            if isinstance(value, dict):
                for name, inner in value.items():
                    if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                        expected[(f"{key}/{name}", step)] = inner
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                expected[(f"train/{key}", step)] = value
    return expected


def compare(event_accumulator, run):
    files = glob.glob(os.path.join(run, "runs", "events.out.tfevents.*"))
    records = sum(check_framing(f) for f in files)
    accumulator = event_accumulator.EventAccumulator(os.path.join(run, "runs"), size_guidance={"scalars": 0})
    accumulator.Reload()
    seen = {}
    for tag in accumulator.Tags()["scalars"]:
        for event in accumulator.Scalars(tag):
            if (tag, event.step) in seen:
                fail(f"{run}: {tag} has two values at step {event.step}")
            seen[(tag, event.step)] = event.value
    expected = expected_scalars(os.path.join(run, "metrics.jsonl"))
    if set(seen) != set(expected):
        fail(f"{run}: TensorBoard has {sorted(set(seen) ^ set(expected))[:6]} on one side only")
    for key, value in expected.items():
        want = struct.unpack("<f", struct.pack("<f", value))[0]
        if seen[key] != want:
            fail(f"{run}: {key} is {seen[key]} in TensorBoard, {value} in metrics.jsonl")
    tags = sorted({tag for tag, _ in seen})
    print(f"{os.path.basename(run)}: {len(files)} event file(s), {records} records with good CRCs; "
          f"{len(seen)} scalars equal metrics.jsonl's ({', '.join(tags)})", flush=True)
    return tags


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    binary = os.path.abspath(parser.parse_args().zotune)
    install("tensorboard", PINNED)
    from tensorboard.backend.event_processing import event_accumulator
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "train.jsonl")
        with open(data, "w") as f:
            for ids in [[5, 9, 3, 17, 2, 11], [8, 1, 4, 4, 30], [60, 61, 62, 63, 64, 65, 66], [7, 7, 8, 9]]:
                f.write(json.dumps({"ids": ids}) + "\n")
        resident, offloaded = os.path.join(tmp, "resident"), os.path.join(tmp, "offloaded")
        train(binary, resident, data, "--steps", "6")
        train(binary, offloaded, data, "--steps", "6", "--offload", "--slots", "1", "--device-memory", "1MiB")
        compare(event_accumulator, resident)
        tags = compare(event_accumulator, offloaded)
        for tag in ["train/loss", "train/lr", "train/projected_grad", "train/grad_spread", "eval/eval_loss",
                    "system/tokens_per_s", "system/device_high_water_bytes", "system/link_bytes_up"]:
            if tag not in tags:
                fail(f"no {tag} scalar")
        # Resumed from the checkpoint after step 3 of a finished 6-step run: steps 4..6 are logged twice
        # (their timings differ), and TensorBoard shows each once, with the resumed run's values.
        resumed = os.path.join(tmp, "resumed")
        train(binary, resumed, data, "--steps", "6", "--save-every", "3")
        train(binary, resumed, data, "--steps", "6", "--save-every", "3", "--resume", os.path.join(resumed, "checkpoints", "step-00000003"))
        compare(event_accumulator, resumed)
    print("check-tensorboard: passed")


if __name__ == "__main__":
    main()
