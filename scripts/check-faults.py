#!/usr/bin/env python3
"""ZOTune against resource faults: a full disk, an unreadable model file, an address-space limit.

    python3 scripts/check-faults.py --zotune .build/release/zotune

Each case runs `zotune train` on the OPT fixture (the address-space case also on SmolLM2-135M,
fetched by `zotune assets fetch`) and requires: an exit status of 1 (no signal, so no core dump)
within a time limit (no hang), stderr naming the file or the memory that failed and why, and no
lost data:
- full disk during a checkpoint (a tmpfs with room for one checkpoint, mounted in a mount namespace
  of its own by `unshare`): the earlier checkpoint is whole, and resuming from it ends with the
  weights of the uninterrupted run, byte for byte;
- full disk at the model save (room for metrics and trajectory, not the model): the trajectory
  is whole, and `zotune replay` rebuilds the uninterrupted run's weights from it, byte for byte;
- full disk while metrics are written (a few KB of room, an evaluation every step);
- an unreadable model.safetensors (mode 000; run as nobody through setpriv when this is root);
- `ulimit -v` below what the plan needs: the CPU arena that --device-memory asks for, and
  SmolLM2-135M's host copy.
Prints each case's outcome; exits non-zero on the first failure.
"""
import argparse
import os
import resource
import shutil
import signal
import subprocess
import tempfile

import checklib
from checklib import FIXTURE

TRAIN = ["train", "--model", FIXTURE, "--batch-size", "2", "--lr", "1e-3", "--threads", "1", "--seed", "7"]
LINES = [[5, 9, 3, 17, 2, 11], [8, 1, 4, 4, 30], [40, 41, 42, 43, 44, 45, 46], [7, 7, 7]]


def fail(message):
    checklib.fail("check-faults", message)


def run(name, command, timeout, **options):
    """Runs `command` in a process group of its own; past `timeout` seconds the whole group is
    killed and the case fails as a hang."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               **options)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        fail(f"{name}: no exit within {timeout} s (a hang)")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def expect_clean_failure(name, result, *needles):
    """Exit status 1 (a signal shows as a negative status, or 128 + N through sh), and stderr
    naming every needle."""
    if result.returncode != 1:
        fail(f"{name}: exit status {result.returncode} (expected 1)\n{result.stderr}")
    missing = [needle for needle in needles if needle not in result.stderr]
    if missing:
        fail(f"{name}: stderr does not name {missing}:\n{result.stderr}")
    print(f"{name}: exit 1, {result.stderr.strip().splitlines()[-1]}")


def on_tmpfs(zotune, size, arguments, keep, work, timeout=120):
    """Runs zotune with its output folder, "{run}" in `arguments`, on a fresh tmpfs of `size` (in a
    mount namespace of its own), then copies what it wrote to `keep`."""
    mount = os.path.join(work, "small-disk")
    arguments = [argument.replace("{run}", mount + "/run") for argument in arguments]
    os.makedirs(mount, exist_ok=True)
    script = ('mount -t tmpfs -o size="$1" tmpfs "$2" || exit 97; shift 2; keep="$1"; shift; "$@"; status=$?; '
              f'cp -a "{mount}/run" "$keep" 2>/dev/null; exit $status')
    command = ["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", size, mount, keep, zotune, *arguments]
    result = run(f"zotune on a {size} disk", command, timeout, cwd=work)
    if result.returncode == 97:
        fail(f"cannot mount a tmpfs in a mount namespace (unshare --mount --map-root-user): {result.stderr}")
    return result


def model_bytes(run):
    with open(os.path.join(run, "model", "model.safetensors"), "rb") as file:
        return file.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zotune", required=True)
    args = parser.parse_args()
    zotune = os.path.abspath(args.zotune)
    work = tempfile.mkdtemp(prefix="zotune-faults-")
    os.chmod(work, 0o755)
    data = os.path.join(work, "train.jsonl")
    with open(data, "w") as file:
        file.writelines('{"ids": %s}\n' % line for line in LINES)
    train = TRAIN + ["--data", data]

    # The uninterrupted run, on a disk with room.
    reference = os.path.join(work, "reference")
    result = run("the uninterrupted run", [zotune, *train, "--steps", "6", "--save-every", "2", "--output", reference], 120)
    if result.returncode != 0:
        fail(f"the uninterrupted run: {result.stderr}")
    expected = model_bytes(reference)

    # 1. A checkpoint that does not fit: step 2's is written, a later one is not.
    kept = os.path.join(work, "checkpoint-run")
    result = on_tmpfs(zotune, "160k", [*train, "--steps", "6", "--save-every", "2", "--output", "{run}"], kept, work)
    # Step 4's or, when step 2's save was still being written then, step 6's.
    expect_clean_failure("full disk at a checkpoint", result, "not saved", "model.safetensors", "No space left on device")
    resumed = run("the resume", [zotune, *train, "--steps", "6", "--save-every", "2", "--resume", kept, "--output", kept], 120)
    if resumed.returncode != 0:
        fail(f"resuming from the checkpoint left before the full disk: {resumed.stderr}")
    if model_bytes(kept) != expected:
        fail("the run resumed after the full disk does not end with the uninterrupted run's weights")
    print("  resumed from step 2's checkpoint: the uninterrupted run's weights, byte for byte")

    # 2. The model save does not fit; the trajectory holds the run.
    kept = os.path.join(work, "save-run")
    result = on_tmpfs(zotune, "40k", [*train, "--steps", "6", "--output", "{run}"], kept, work)
    expect_clean_failure("full disk at the model save", result, "model.safetensors", "No space left on device")
    replayed = os.path.join(work, "replayed")
    replay = run("the replay", [zotune, "replay", "--base", FIXTURE, "--trajectory", os.path.join(kept, "trajectory.zotraj"),
                                "--output", replayed], 120)
    if replay.returncode != 0:
        fail(f"replaying the trajectory of the run whose save failed: {replay.stderr}")
    with open(os.path.join(replayed, "model.safetensors"), "rb") as file:
        if file.read() != expected:
            fail("the replayed trajectory does not give the uninterrupted run's weights")
    print("  replayed its trajectory: the uninterrupted run's weights, byte for byte")

    # 3. Metrics that stop fitting part-way.
    result = on_tmpfs(zotune, "8k", [*train, "--steps", "200", "--eval-data", data, "--eval-every", "1", "--output", "{run}"],
                      os.path.join(work, "metrics-run"), work)
    expect_clean_failure("full disk while writing metrics", result, "small-disk/run/metrics.jsonl", "No space left on device")

    # 4. An unreadable model file.
    model = os.path.join(work, "unreadable-model")
    shutil.copytree(FIXTURE, model)
    os.chmod(model, 0o755)
    os.chmod(os.path.join(model, "model.safetensors"), 0)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    result = run("unreadable model file", [*as_nobody, zotune, "train", "--model", model, "--data", data, "--steps", "1"], 60,
                 cwd=work)
    expect_clean_failure("unreadable model file", result, "model.safetensors", "Permission denied")

    # 5. An address space too small for the plan.
    def limited(megabytes):
        return lambda: resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))

    result = run("ulimit -v below the arena", [zotune, *train, "--steps", "1", "--device-memory", "1GiB"], 60, cwd=work,
                 preexec_fn=limited(512))
    expect_clean_failure("ulimit -v below the arena", result, "cannot reserve", "CPU device arena", "ulimit -v")
    result = run("ulimit -v below the model", [zotune, "train", "--model", "smollm2-135m", "--data", data, "--steps", "1"], 120,
                 cwd=work, preexec_fn=limited(400))
    expect_clean_failure("ulimit -v below the model", result, "cannot allocate", "host memory", "ulimit -v")
    if any(name.startswith("core") for name in os.listdir(work)):
        fail(f"a core file was written in {work}")
    shutil.rmtree(work, ignore_errors=True)
    print("check-faults: every fault gave a clean error, and no data was lost")


if __name__ == "__main__":
    main()
