#!/usr/bin/env bash
# The sanitizer jobs, each in a build folder of its own:
#   thread   ThreadSanitizer over the tests that run threads: the stream engine (events, copy
#            streams, fault propagation), the CUDA stand-in's streams, offloaded training equal to
#            resident, stacked streams, low-bit links, the checkpoint writer, resume and Ctrl-C.
#   address  AddressSanitizer (with LeakSanitizer) over the parsers', tokenizers', templates',
#            kernels' and codecs' tests, the C kernels built with UndefinedBehaviorSanitizer too
#            (swiftc has no UBSan: Swift's own checks are on in these debug builds).
# Any report fails the job (halt_on_error). Environment as scripts/test.sh sets it (the CUDA
# stand-in, NVRTC). Usage: scripts/sanitize.sh [thread] [address]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(thread address)
for job in "${jobs[@]}"; do
    case "$job" in
    thread)
        swift build --build-tests --sanitize=thread --scratch-path .build-tsan
        # Not here: aFullDiskIsAnErrorNamingTheFile runs zotune under `ulimit -f`, where
        # ThreadSanitizer's runtime itself faults (SIGBUS in its shadow memory) before ZOTune runs.
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
            swift test --skip-build --disable-xctest --sanitize=thread --scratch-path .build-tsan \
            --filter 'ArenaAndStreamTests|CUDAStandInTests|OffloadTests|StackedStreamsTests|LinkCodecTests|CheckpointTests' \
            --filter 'TrainingTests/interruptSavesAndExitsCleanly' --skip 'aFullDiskIsAnErrorNamingTheFile'
        ;;
    address)
        swift build --build-tests --sanitize=address -Xcc -fsanitize=undefined --scratch-path .build-asan
        # NVRTC finds its builtins library next to itself ($ORIGIN), which ASan's dlopen hides.
        LD_LIBRARY_PATH="${ZOTUNE_TEST_NVRTC:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        ASAN_OPTIONS="halt_on_error=1 detect_leaks=1" LSAN_OPTIONS="suppressions=$root/scripts/sanitizers/lsan.supp" \
        UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
            swift test --skip-build --disable-xctest --sanitize=address --scratch-path .build-asan \
            --filter 'SafetensorsTests|GGUFTests|GGUFExportTests|TokenizerTests|ChatTemplateTests|JinjaSemanticsTests' \
            --filter 'TemplateFuzzTests|JinjaRegressionTests|KernelTests|NoiseTests|LinkCodecTests|SHA256Tests' \
            --filter 'TextAndFileTests|PEFTAdapterTests|SFTTests|ModelInputTests|OPTParityTests|LlamaParityTests'
        ;;
    *) echo "scripts/sanitize.sh: unknown job '$job' (thread, address)" >&2; exit 2 ;;
    esac
done
