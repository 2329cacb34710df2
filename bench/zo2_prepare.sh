#!/usr/bin/env bash
# Here (a machine with Swift and network): everything the GPU machine needs for the ZO2
# comparison, in .gpu/ (ignored by git; carry it to the device machine):
#   .gpu/zotune.xz   the portable zotune (scripts/build-portable.sh), compressed
#   .gpu/zo2/        ZO2's Python package, its licence and the commit it came from
#   .gpu/whl/        transformers 4.51.3 and the hub/tokenizers it needs (ZO2 pins it; the
#                    GPU image has transformers 5), installed there into a folder of its own
#   bench/zo2_prepare.sh [ZO2_SOURCE]
# ZO2_SOURCE: a git URL or a local clone (default https://github.com/liangyuwang/zo2).
# None of ZO2's code is committed here: it is fetched into .gpu/ only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source=${1:-https://github.com/liangyuwang/zo2}
gpu="$root/.gpu"
rm -rf "$gpu" && mkdir -p "$gpu/whl"

"$root/scripts/build-portable.sh" >&2
xz -T0 -6 -c "$root/dist/zotune" > "$gpu/zotune.xz"

clone=$(mktemp -d)
trap 'rm -rf "$clone"' EXIT
git clone --quiet --depth 1 "$source" "$clone/zo2" 2>/dev/null || git clone --quiet "$source" "$clone/zo2"
mkdir -p "$gpu/zo2"
cp -r "$clone/zo2/zo2" "$clone/zo2/LICENSE" "$gpu/zo2/"
git -C "$clone/zo2" rev-parse HEAD > "$gpu/zo2/COMMIT"

python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$gpu/whl" transformers==4.51.3 tokenizers==0.21.1 huggingface-hub==0.36.0
du -sh "$gpu"/* >&2
echo "ZO2 $(cat "$gpu/zo2/COMMIT"); carry .gpu and run bench/zo2_compare.sh on the GPU machine" >&2
