#!/usr/bin/env bash
# The sanitizer jobs, each in a build folder of its own:
#   thread   ThreadSanitizer over the tests that run threads: the stream engine (events, copy
#            streams, fault propagation), the CUDA stand-in's streams, offloaded training (low-bit
#            links, copy faults), stacked streams, the checkpoint writer, resume and Ctrl-C.
#   address  AddressSanitizer (with LeakSanitizer) over the parsers', tokenizers', templates',
#            kernels' and codecs' tests, the C kernels built with UndefinedBehaviorSanitizer too
#            (swiftc has no UBSan: Swift's own checks are on in these debug builds).
# Any report fails the job (halt_on_error). Usage: scripts/sanitize.sh [thread] [address]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
# NVRTC and the CUDA stand-in, as for scripts/test.sh.
source scripts/test-env.sh
jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(thread address)
for job in "${jobs[@]}"; do
    case "$job" in
    thread)
        swift build --build-tests --sanitize=thread --scratch-path .build-tsan
        # The bit-for-bit offloading test on 10 fixtures and the CUDA stand-in's CLI runs are left to
        # the plain suites (an hour together under TSan), and aFullDiskIsAnErrorNamingTheFile (it runs
        # zotune under `ulimit -f`, where TSan's runtime itself faults in its shadow memory).
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
            swift test --skip-build --disable-xctest --sanitize=thread --scratch-path .build-tsan \
            --filter 'ArenaAndStreamTests|OffloadFaultTests|CheckpointTests|interruptSavesAndExitsCleanly' \
            --filter 'LinkCodecTests|StackedStreamsTests|aMissingEventWaitShowsUpAsAWrongResult' \
            --filter 'plansThatCannotWorkAreRefusedBeforeStarting|memoryAndTraffic|lowBitOffloadingTracksResident' \
            --skip 'aFullDiskIsAnErrorNamingTheFile'
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
