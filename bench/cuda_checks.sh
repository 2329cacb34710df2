#!/usr/bin/env bash
# On the GPU machine, the first call of a GPU session (the device tool, carrying .gpu from
# bench/zo2_prepare.sh): the CUDA backend's checks and first measurements, each step's raw
# output in OUTDIR (commit it under bench/results/). Later steps run even when one fails.
#   bash bench/cuda_checks.sh OUTDIR
#   1. zotune devices --compile          GPUs, driver, NVRTC, cuBLAS; every kernel compiled
#   2. zotune selftest --backend cuda    noise, perturbation and codecs bit for bit; logits and
#                                        20 ZO steps within 1e-3 of the CPU (resident, then
#                                        offloaded with the fp32 and bf16 links)
#   3. zotune bench zo-step --backend cuda --offload, OPT-125M and OPT-1.3B, fp32 and bf16 links
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=${1:?usage: bench/cuda_checks.sh OUTDIR}
[ -f "$root/.gpu/zotune.xz" ] || { echo "no .gpu/zotune.xz: run bench/zo2_prepare.sh here and carry .gpu" >&2; exit 2; }
mkdir -p "$out"
zotune=$(mktemp -d /tmp/zotune.XXXXXX)/zotune
xz -dc "$root/.gpu/zotune.xz" > "$zotune" && chmod +x "$zotune"
export ZOTUNE_HOME=/tmp/zotune-home
status=0
step() {  # step NAME COMMAND...: raw output in OUTDIR/NAME.txt, with the command and its exit status
    local name=$1; shift
    { echo "# $* ($(date -u +%FT%TZ))"; "$@"; echo "# exit $?"; } > "$out/$name.txt" 2>&1
    grep -q '^# exit 0$' "$out/$name.txt" || status=1
    tail -3 "$out/$name.txt"
}
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
step devices "$zotune" devices --compile
step selftest "$zotune" selftest --backend cuda
step selftest-offload-fp32 "$zotune" selftest --backend cuda --offload
step selftest-offload-bf16 "$zotune" selftest --backend cuda --offload --offload-format bf16
for shape in opt-125m opt-1.3b; do
    for format in fp32 bf16; do
        step "zo-step-$shape-$format" "$zotune" bench zo-step --backend cuda --shape "$shape" --batch 16 --seq 128 \
            --offload --offload-format "$format" --device-memory 0.5
    done
done
exit $status
