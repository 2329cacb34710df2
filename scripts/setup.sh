#!/usr/bin/env bash
# Installs what ZOTune needs to build on a fresh Debian/Ubuntu machine (idempotent):
# OpenBLAS (headers, library, pkg-config file), and the Debian packages named as arguments.
set -euo pipefail

need=()
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
# Extra Debian packages named as arguments (the test command's chromium).
for extra in "$@"; do dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra"); done

if ((${#need[@]})); then
    echo "setup: installing ${need[*]}" >&2
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
