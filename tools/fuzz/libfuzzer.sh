#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (the engine cargo-fuzz drives) of the decoders that take bytes
# from the network or a file: native/fuzz/fuzz_targets/*.rs. Needs a nightly toolchain (for
# -Zsanitizer=address and the sanitizer-coverage passes); cargo-fuzz itself is not needed, the flags it
# would pass are set here. Each target runs for SECONDS under AddressSanitizer with overflow checks and
# debug assertions, keeps its growing corpus in target/libfuzzer/corpus/NAME (so later runs resume
# from it) and writes any crashing input to target/libfuzzer/crashes/NAME/.
#
#   tools/fuzz/libfuzzer.sh              # 300 s per target
#   tools/fuzz/libfuzzer.sh 60 session   # 60 s, only targets whose name contains "session"
#
# Prints per target: executions, corpus size, coverage (edges) and crashes. Exit status 1 when any
# target crashed, 2 when no nightly toolchain is installed.
set -u
cd "$(dirname "$0")/../.."

SECONDS_PER_TARGET="${1:-300}"
FILTER="${2:-}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
TARGETS=(wire frame control packet_open session provisioning)

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "libfuzzer.sh: needs the '$TOOLCHAIN' toolchain (rustup toolchain install nightly);" \
        "tools/fuzz/run.sh runs the proptest targets on stable" >&2
    exit 2
fi
HOST="$(rustup run "$TOOLCHAIN" rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$PWD/target/libfuzzer"
# The flags cargo-fuzz passes for libFuzzer with AddressSanitizer. An explicit --target keeps them off
# build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address \
-Cdebug-assertions -Coverflow-checks"
cargo +"$TOOLCHAIN" build --release --manifest-path native/fuzz/Cargo.toml --target "$HOST" --bins || exit 1
BIN="$CARGO_TARGET_DIR/$HOST/release"

failed=0
for t in "${TARGETS[@]}"; do
    [[ -n "$FILTER" && "$t" != *"$FILTER"* ]] && continue
    corpus="$CARGO_TARGET_DIR/corpus/$t"
    crashes="$CARGO_TARGET_DIR/crashes/$t"
    log="$CARGO_TARGET_DIR/$t.log"
    mkdir -p "$corpus" "$crashes"
    # 1500 bytes: the largest datagram (and far longer than any control message's interesting part).
    "$BIN/$t" -max_total_time="$SECONDS_PER_TARGET" -max_len=1500 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    found=$(find "$crashes" -type f | wc -l)
    printf '%-13s %12s executions  corpus %5s  edges %6s  crashes %s  (exit %s, log %s)\n' \
        "$t" "${runs:-?}" "$(find "$corpus" -type f | wc -l)" "${edges:-?}" "$found" "$rc" "$log"
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then failed=1; fi
done
exit "$failed"
