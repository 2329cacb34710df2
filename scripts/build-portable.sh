#!/usr/bin/env bash
# One x86-64 `zotune` executable for machines without Swift (a GPU machine with only an NVIDIA
# driver): the Swift standard library and Foundation linked statically, OpenBLAS linked
# statically (with libgfortran and libquadmath); it needs only glibc ≥ 2.34, libstdc++ and
# libgcc_s. CUDA stays a run-time dlopen. Output: dist/zotune (stripped), and its size.
#   scripts/build-portable.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
# Static archives: OpenBLAS's (libopenblas-dev) and gfortran's runtime (libgfortran-12-dev).
gcc_lib=$(dirname "$(gcc -print-libgcc-file-name)")
if [ ! -f "$gcc_lib/libgfortran.a" ]; then
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "libgfortran-$(gcc -dumpversion | cut -d. -f1)-dev" >/dev/null
fi
openblas=$(find /usr/lib/x86_64-linux-gnu/openblas-pthread /usr/lib/x86_64-linux-gnu -maxdepth 1 -name 'libopenblas.a' | head -1)
# OpenBLAS, libgfortran and libquadmath as archives alone in a folder that a pkg-config file
# puts first on the library path (SwiftPM reads it instead of the system's openblas.pc), so
# the linker's -lopenblas finds the archive, not the shared library.
pc=.build/portable-pkgconfig
mkdir -p "$pc"
cp "$openblas" "$pc/libopenblas.a"
cp "$gcc_lib/libgfortran.a" "$gcc_lib/libquadmath.a" "$pc/"
cat > "$pc/openblas.pc" <<PC
Name: openblas
Description: OpenBLAS linked statically (scripts/build-portable.sh)
Version: 0
Cflags: $(pkg-config --cflags openblas)
Libs: -L$root/$pc -lopenblas -lgfortran -lquadmath -lpthread -lm
PC
PKG_CONFIG_PATH="$root/$pc" swift build -c release --static-swift-stdlib --scratch-path .build/portable --product zotune
mkdir -p dist
cp .build/portable/release/zotune dist/zotune
strip dist/zotune
needs=$(ldd dist/zotune | awk '{print $1}' | tr '\n' ' ')
megabytes=$(( $(stat -c %s dist/zotune) / 1000000 ))
echo "dist/zotune: $megabytes MB; needs: $needs"
# The promises: at most 50 MB, and nothing beyond glibc, libstdc++ and libgcc_s.
if (( megabytes > 50 )); then echo "dist/zotune is larger than 50 MB" >&2; exit 1; fi
if grep -qE 'swift|openblas|gfortran|quadmath|Foundation|icu' <<<"$needs"; then echo "dist/zotune needs a library it should carry" >&2; exit 1; fi
env -i dist/zotune plan --shape opt-125m --seq 128 >/dev/null
