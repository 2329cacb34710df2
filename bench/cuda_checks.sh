#!/usr/bin/env bash
# On the GPU machine, the first call of a GPU session (the device tool, carrying .gpu from
# bench/zo2_prepare.sh): the CUDA backend's checks and first measurements, each step's raw
# output in OUTDIR (commit it under bench/results/). Later steps run even when one fails.
#   bash bench/cuda_checks.sh OUTDIR
#   1. zotune devices --compile          GPUs, driver, NVRTC, cuBLAS; every kernel compiled
#   2. zotune selftest --backend cuda    noise, perturbation and codecs bit for bit; for OPT and
#                                        Llama, logits, 20 ZO steps (resident, offloaded, offloaded
#                                        bf16 by tensor) and 6 hybrid ZO/FO steps within 1e-3 of the
#                                        CPU; again with TF32 GEMM inputs within 1e-2, bf16 within 3e-2
#   3. zotune bench zo-step --backend cuda --offload, OPT-125M, OPT-1.3B, SmolLM2-135M and
#      Llama-3.2-1B shapes: fp32 link, and bf16 link with TF32 GEMMs (resident, then offloaded)
# Everything here already runs in CI on the CUDA stand-in (scripts/cuda-stand-in): what this adds
# is the real driver, NVRTC's machine code, cuBLAS's arithmetic and the GPU's speed.
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
step selftest-tf32 "$zotune" selftest --backend cuda --compute-dtype tf32 --tolerance 1e-2
step selftest-bf16 "$zotune" selftest --backend cuda --compute-dtype bf16 --tolerance 3e-2
for shape in opt-125m opt-1.3b smollm2-135m llama-3.2-1b; do
    step "zo-step-$shape-fp32" "$zotune" bench zo-step --backend cuda --shape "$shape" --batch 16 --seq 128 \
        --offload --device-memory 0.5
    step "zo-step-$shape-bf16-tf32" "$zotune" bench zo-step --backend cuda --shape "$shape" --batch 16 --seq 128 \
        --offload --offload-format bf16 --tf32 --device-memory 0.5
done
exit $status
