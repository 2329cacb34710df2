#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser (libFuzzer, with AddressSanitizer and
# UndefinedBehaviorSanitizer): builds the Fuzz package and runs each target for SECONDS from its seed
# corpus (Fuzz/Corpus/<target> and the test fixtures of its kind), JOBS targets at a time.
# Any crash, sanitizer report, hang (over 10 s on one input) or allocation over 2 GB fails the run;
# the input that caused it is kept in OUT/<target>/ (reproduce: ZOTUNE_FUZZ_TARGET=<target>
# .build-fuzz/debug/ZOTuneFuzz OUT/<target>/crash-…). OUT/summary.txt has each target's executions
# and coverage.
#   scripts/fuzz.sh [--seconds 60] [--jobs 2] [--out DIR] [target …]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds=60 jobs=2 out="$(mktemp -d)/fuzz"
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) break ;;
    esac
done
targets=("$@")
# --sanitize=fuzzer for the link of libFuzzer's main; one -sanitize= list after it, as swiftc keeps only the last.
swift build --package-path Fuzz --scratch-path .build-fuzz --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library \
    -Xcc -fsanitize=fuzzer-no-link,address,undefined
binary=.build-fuzz/debug/ZOTuneFuzz
fixtures=Tests/ZOTuneTests/Fixtures
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ZOTUNE_FUZZ_TARGET=list "$binary")  # every target

# The seed inputs of a target: its committed corpus and the fixtures that are inputs of its kind.
seeds() {
    case "$1" in
        safetensors) ls $fixtures/peft/*/adapter_model.safetensors $fixtures/llama/qwen3-f32/expected.safetensors ;;
        safetensors-index) ls $fixtures/opt/opt-nobias-sharded-f32/model.safetensors.index.json ;;
        gguf) ls $fixtures/tokenizers/*.gguf $fixtures/gguf/quants.gguf ;;
        tokenizer-json) ls $fixtures/tokenizers/small-tokenizer.json $fixtures/tokenizers/llama3-tokenizer.json ;;
        config-json) ls $fixtures/opt/*/config.json $fixtures/llama/*/config.json ;;
        chat-template) ls $fixtures/chat-templates/*.jinja $fixtures/sft/*.jinja ;;
        peft-adapter) ls $fixtures/peft/*/adapter_config.json ;;
    esac
    [ ! -d "Fuzz/Corpus/$1" ] || find "Fuzz/Corpus/$1" -type f
}

run() {
    set -euo pipefail
    local target="$1" corpus="$out/$1/corpus" scratch
    mkdir -p "$corpus"
    # Seeds named by their folder too: fixtures of one kind share a file name (config.json).
    seeds "$target" | while read -r seed; do cp "$seed" "$corpus/$(basename "$(dirname "$seed")")-$(basename "$seed")"; done
    scratch="$(mktemp -d "$([ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/zotune-fuzz.XXXXXX")"
    # -max_len fits the largest seed; -rss_limit_mb and -malloc_limit_mb make a runaway allocation a finding.
    if ZOTUNE_FUZZ_TARGET="$target" ZOTUNE_FUZZ_SCRATCH="$scratch" SWIFT_BACKTRACE=enable=no \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=0 \
        "$binary" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/$target/" > "$out/$target/log.txt" 2>&1; then
        rm -rf "$scratch"
        echo "$target: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$target/log.txt" | grep -o '[0-9]*$') runs," \
             "$(grep -o 'cov: [0-9]* ft: [0-9]*' "$out/$target/log.txt" | tail -1), corpus $(ls "$corpus" | wc -l) inputs"
    else
        rm -rf "$scratch"
        echo "$target: FAILED (log: $out/$target/log.txt)"
        grep -m 20 -A 20 "ERROR\|==ERROR\|runtime error\|Fatal error\|deadly signal\|timeout\|out-of-memory" "$out/$target/log.txt" | head -40
        return 1
    fi
}

mkdir -p "$out"
status=0
export out binary fixtures seconds
# Each target in a shell of its own, its name an argument (not pasted into the script).
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c "$(declare -f seeds run)"'; run "$1"' _ {} > "$out/summary.txt" || status=1
cat "$out/summary.txt"
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, $jobs at a time: $out"
exit $status
