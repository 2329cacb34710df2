#!/usr/bin/env python3
"""Distributed ZO under a real MPI launcher: Open MPI's mpirun, TCP over loopback.

    python3 scripts/check-mpi.py --zotune .build/release/zotune

Trains a fixture model alone and as ranks of `mpirun --oversubscribe` (TCP over loopback, so the
network path is exercised), then checks:
- data 2 and 3 ranks, directions 2 ranks (MeZO and a population), a 2 × 2 grid and offloaded
  ranks (fp32 and bf16 links) equal the one-process run: metrics (every loss, coefficient,
  evaluation) and the saved weights byte for byte; `zotune replay` of a distributed run's
  trajectory rebuilds its weights; a hybrid run (`--fo-blocks`) ends with identical replicas;
- a bit flipped on one rank's replica is found by the replica check, naming the tensor and rank;
- a rank killed with SIGKILL stops the others at once (mpirun names the rank), a hung rank is
  named after --rank-timeout, and a run resumed from the last checkpoint (on another number of
  ranks) ends with the uninterrupted run's weights; SIGTERM to every rank stops all after the
  same step, rank 0 saving;
- a batch that does not split, more direction ranks than forward passes, and a different binary,
  data or model on one rank are refused before training, naming what differs.
Prints what it compared and the step times; exits non-zero on the first failure.
"""
import argparse
import array
import filecmp
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

from checklib import FIXTURE
import checklib

MPIRUN = ["mpirun", "--oversubscribe", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"]
if os.geteuid() == 0:
    MPIRUN.append("--allow-run-as-root")


def fail(message):
    checklib.fail("check-mpi", message)


def train(binary, directory, data, ranks=1, extra=(), env=None, expect_failure=False, mpmd=None, binaries=None):
    """Runs `zotune train` alone (ranks 1) or under mpirun; with `mpmd`, one rank per list of extra
    arguments (and per binary of `binaries`); returns (stdout + stderr, seconds)."""
    arguments = ["train", "--model", FIXTURE, "--task", "lm", "--data", data, "--eval-data", data, "--batch-size", "6",
                 "--lr", "1e-3", "--seed", "3", "--eval-every", "4", "--output", directory, *extra]
    command = [binary] + arguments
    if mpmd:
        binaries = binaries or [binary] * len(mpmd)
        command = MPIRUN + [part for i, rank_extra in enumerate(mpmd)
                            for part in (([":"] if i else []) + ["-np", "1", binaries[i]] + arguments + rank_extra)]
    elif ranks > 1:
        command = MPIRUN + ["-np", str(ranks)] + command
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    seconds = time.monotonic() - start
    output = result.stdout + result.stderr
    if expect_failure != (result.returncode != 0):
        fail(f"{' '.join(command)} exited {result.returncode}:\n{output[-3000:]}")
    return output, seconds


def metrics(directory):
    """metrics.jsonl without what differs between machines (times, system numbers)."""
    lines = []
    for line in open(os.path.join(directory, "metrics.jsonl")):
        record = json.loads(line)
        record.pop("seconds", None)
        record.pop("system", None)
        lines.append(record)
    return lines


def same_run(reference, directory, label):
    if metrics(reference) != metrics(directory):
        first = next(i for i, (a, b) in enumerate(zip(metrics(reference), metrics(directory))) if a != b)
        fail(f"{label}: metrics.jsonl differs from the one-process run at line {first + 1}")
    if not filecmp.cmp(os.path.join(reference, "model/model.safetensors"), os.path.join(directory, "model/model.safetensors"), shallow=False):
        fail(f"{label}: saved weights differ from the one-process run")
    print(f"check-mpi: {label}: metrics and weights equal the one-process run")


def weights(directory):
    """Every tensor of a run's saved model.safetensors (F32) as a list of floats."""
    raw = open(os.path.join(directory, "model/model.safetensors"), "rb").read()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    tensors = {}
    for name, info in header.items():
        if name != "__metadata__":
            start, end = info["data_offsets"]
            tensors[name] = array.array("f", raw[8 + size + start:8 + size + end])
    return tensors


def expect(output, *phrases, label):
    for phrase in phrases:
        if phrase not in output:
            fail(f"{label}: expected '{phrase}' in:\n{output[-3000:]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    binary = os.path.abspath(parser.parse_args().zotune)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "train.jsonl")
        with open(data, "w") as f:
            for i in range(18):
                f.write(json.dumps({"ids": [(i * 7 + j * 13) % 50 + 4 for j in range(3 + (i * 5) % 11)]}) + "\n")
        path = lambda name: os.path.join(tmp, name)

        for estimator, extra in [("population", ["--steps", "8"]), ("mezo", ["--steps", "8", "--zo", "mezo"])]:
            train(binary, path(f"alone-{estimator}"), data, extra=extra)
            layouts = [("data", 2), ("data", 3), ("directions", 2)] + ([("data=2,directions=2", 4)] if estimator == "population" else [])
            for layout, ranks in layouts:
                name = f"{estimator}-{layout}-{ranks}"
                output, seconds = train(binary, path(name), data, ranks, extra + ["--parallel", layout, "--verify-every", "3"])
                same_run(path(f"alone-{estimator}"), path(name), f"{estimator}, --parallel {layout}, {ranks} ranks ({seconds:.1f} s)")
        output, _ = train(binary, path("offloaded"), data, 2, ["--steps", "8", "--offload", "--slots", "1", "--parallel", "data"])
        same_run(path("alone-population"), path("offloaded"), "population, --parallel data, 2 offloaded ranks")
        bf16 = ["--steps", "8", "--offload", "--slots", "1", "--offload-format", "bf16"]
        train(binary, path("alone-bf16"), data, extra=bf16)
        train(binary, path("bf16"), data, 3, bf16 + ["--parallel", "data"])
        same_run(path("alone-bf16"), path("bf16"), "population, --parallel data, 3 offloaded ranks with bf16 links")

        # The CUDA backend on the CUDA stand-in (scripts/test.sh sets ZOTUNE_CUDA_LIBS): its GEMMs may round by
        # shape as cuBLAS does, so 2 ranks end near the one-process run, and with identical replicas (the last check).
        if os.environ.get("ZOTUNE_CUDA_LIBS"):
            cuda = ["--steps", "4", "--backend", "cuda"]
            train(binary, path("alone-cuda"), data, extra=cuda)
            train(binary, path("cuda"), data, 2, cuda)
            alone, ranks = weights(path("alone-cuda")), weights(path("cuda"))
            error = max(abs(a - b) for name in alone for a, b in zip(alone[name], ranks[name]))
            if error > 1e-4:
                fail(f"2 CUDA ranks end {error} from the one-process CUDA run")
            print(f"check-mpi: 2 ranks on the CUDA backend (stand-in): identical replicas, max |Δw| {error:.1e} from one process")

        # A hybrid run: the tail's gradients summed over the ranks; the last replica check passing
        # means the ranks ended with the same weights.
        output, _ = train(binary, path("hybrid"), data, 2, ["--steps", "4", "--zo", "mezo", "--fo-blocks", "1", "--fo-lr", "1e-3"])
        print("check-mpi: a hybrid run (--fo-blocks 1) on 2 data ranks ends with identical replicas")

        replayed = path("replayed")
        result = subprocess.run([binary, "replay", "--base", FIXTURE, "--trajectory", path("population-data-3/trajectory.zotraj"),
                                 "--output", replayed], capture_output=True, text=True)
        if result.returncode != 0 or not filecmp.cmp(path("population-data-3/model/model.safetensors"),
                                                     os.path.join(replayed, "model.safetensors"), shallow=False):
            fail(f"replay of a 3-rank run does not rebuild its weights: {result.stdout}{result.stderr}")
        print("check-mpi: zotune replay of a 3-rank run's trajectory rebuilds its weights byte for byte")

        output, _ = train(binary, path("corrupted"), data, 2, ["--steps", "8", "--verify-every", "3"],
                          env={"ZOTUNE_FAULT_REPLICA": "1:6"}, expect_failure=True)
        expect(output, "replicas differ after step 6: tensor block 1/", "on rank 1 is not rank 0's", label="a flipped bit")
        print("check-mpi: a bit flipped on rank 1 is found by the replica check after step 6, naming the tensor")

        def fault(name, kind, step, extra, phrase):
            """Rank 1 killed or hung after `step`: the launch must end within a minute saying `phrase`."""
            output, seconds = train(binary, path(name), data, 2, ["--steps", "8", *extra],
                                    env={"ZOTUNE_FAULT_RANK": f"1:{step}:{kind}"}, expect_failure=True)
            expect(output, phrase, label=f"a {kind} rank")
            if seconds > 60:
                fail(f"rank 1 ({kind}) stopped the others only after {seconds:.0f} s")
            print(f"check-mpi: rank 1 made to {kind} after step {step}: the launch ended in {seconds:.1f} s saying '{phrase}'")

        # A rank killed with SIGKILL after step 5 (checkpoints every 2 steps): the launch ends at once.
        fault("killed", "kill", 5, ["--save-every", "2"], "rank 1")
        output, _ = train(binary, path("killed"), data, 3, ["--steps", "8", "--save-every", "2", "--resume", path("killed")])
        expect(output, "resuming after step ", label="resume after a kill")
        step = output.split("resuming after step ")[1].split()[0]
        if not filecmp.cmp(path("alone-population/model/model.safetensors"), path("killed/model/model.safetensors"), shallow=False):
            fail("the run resumed on 3 ranks after a kill does not end with the uninterrupted run's weights")
        print(f"check-mpi: resumed from step {step} on 3 ranks, it ends with the uninterrupted run's weights byte for byte")

        # SIGTERM to every rank (what Slurm sends at its time limit): all stop after the same step, rank 0 saves.
        command = MPIRUN + ["-np", "2", binary, "train", "--model", FIXTURE, "--task", "lm", "--data", data, "--batch-size", "6",
                            "--steps", "1000000", "--rank-timeout", "30", "--output", path("terminated")]
        launch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        metrics_file = path("terminated/metrics.jsonl")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not os.path.exists(metrics_file) or open(metrics_file).read().count("loss_plus") < 5):
            time.sleep(0.2)
        ranks = subprocess.run(["pgrep", "-P", str(launch.pid), "-x", "zotune"], capture_output=True, text=True).stdout.split()
        if len(ranks) != 2:
            launch.kill()
            fail(f"expected mpirun's 2 zotune children, found {ranks}")
        for pid in ranks:
            os.kill(int(pid), 15)
        output = launch.communicate(timeout=120)[0]
        if launch.returncode != 0 or "interrupted after step" not in output or not os.path.exists(path("terminated/model/model.safetensors")):
            fail(f"SIGTERM to both ranks: exit {launch.returncode}, expected a clean stop and a saved model:\n{output[-2000:]}")
        step = output.split("interrupted after step ")[1].split(";")[0]
        print(f"check-mpi: SIGTERM to both ranks: both stopped after step {step}, rank 0 saved the model, exit 0")

        fault("hung", "hang", 3, ["--rank-timeout", "5"], "rank 0: no word from rank 1 for 5 s")

        output, _ = train(binary, path("bad-batch"), data, 4, ["--steps", "2"], expect_failure=True)
        expect(output, "a batch of 6 examples does not split into 4 equal data shards", label="a batch that does not split")
        output, _ = train(binary, path("bad-directions"), data, 3, ["--steps", "2", "--zo", "mezo", "--parallel", "directions"],
                          expect_failure=True)
        expect(output, "3 direction ranks but only 2 forward passes a step", label="too many direction ranks")
        other = path("other.jsonl")
        with open(other, "w") as f:
            f.write(open(data).read().replace("4", "5"))
        output, _ = train(binary, path("bad-data"), data, mpmd=[[], ["--data", other]], extra=["--steps", "2"], expect_failure=True)
        expect(output, "rank 1 run with a different training data than rank 0", label="different data")
        # Another binary (the same bytes and one more: it runs, but its sha256 differs) and another model
        # (one weight changed) on rank 1.
        other_binary = path("zotune-copy")
        with open(binary, "rb") as source, open(other_binary, "wb") as target:
            target.write(source.read() + b"\0")
        os.chmod(other_binary, 0o755)
        output, _ = train(binary, path("bad-binary"), data, mpmd=[[], ["--steps", "2"]], extra=["--steps", "2"], expect_failure=True,
                          binaries=[binary, other_binary])
        expect(output, "rank 1 run with a different binary than rank 0", label="a different binary")
        other_model = path("other-model")
        os.makedirs(other_model)
        for name in os.listdir(FIXTURE):
            with open(os.path.join(FIXTURE, name), "rb") as source:
                content = bytearray(source.read())
            if name == "model.safetensors":
                content[-1] ^= 1  # the last tensor's last byte
            with open(os.path.join(other_model, name), "wb") as target:
                target.write(content)
        output, _ = train(binary, path("bad-model"), data, mpmd=[[], ["--model", other_model]], extra=["--steps", "2"], expect_failure=True)
        expect(output, "rank 1 run with a different model than rank 0 (tensor ", label="a different model")
        print("check-mpi: a batch that does not split, too many direction ranks, and different data, binary or weights on rank 1 "
              "are refused by name")


if __name__ == "__main__":
    main()
