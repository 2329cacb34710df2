# Sourced by scripts/test.sh and scripts/sanitize.sh: the environment the tests run in.
# NVIDIA's NVRTC (it needs no GPU), so that the test compiling every CUDA kernel for real GPUs
# runs: PyPI's nvidia-cuda-nvrtc into $ZOTUNE_HOME/nvrtc, named by ZOTUNE_TEST_NVRTC.
home="${ZOTUNE_HOME:-$HOME/.cache/zotune}"
[ -n "$(find "$home/nvrtc" -name 'libnvrtc.so.*' 2>/dev/null | head -1)" ] ||
    python3 -m pip install --quiet --disable-pip-version-check --target "$home/nvrtc" nvidia-cuda-nvrtc
export ZOTUNE_TEST_NVRTC="$(dirname "$(find "$home/nvrtc" -name 'libnvrtc.so.*' | head -1)")"
# The CUDA stand-in (the driver, NVRTC and cuBLAS on the CPU) as the CUDA libraries, so that
# the CUDA backend runs in every test; its random delays on, so that a missing event wait
# shows up as a wrong result.
export ZOTUNE_CUDA_LIBS="$(scripts/cuda-stand-in)"
export ZOTUNE_CUDA_STAND_IN_DELAY="${ZOTUNE_CUDA_STAND_IN_DELAY:-1,200,20}"
