#!/usr/bin/env bash
# Runs every property ("fuzz") target with many cases and prints, per target, the executions, the
# failures and the time taken. cargo-fuzz needs a nightly toolchain this project does not assume, so the
# targets are proptest properties over random and mutated valid inputs (see
# native/p2p-proto/tests/common/mod.rs); CI runs the same tests with their short defaults.
#
#   tools/fuzz/run.sh                 # 1,000,000 cases per target
#   tools/fuzz/run.sh 20000           # fewer
#   tools/fuzz/run.sh 1000000 session # only targets whose name contains "session"
#
# Builds with optimizations but with overflow checks and debug assertions on (an arithmetic overflow
# must be found, not wrapped silently), in its own target directory so the workspace's normal
# builds are not invalidated. Logs: $CARGO_TARGET_DIR/fuzz-logs/. Exit status 1 when any target failed.
set -u
cd "$(dirname "$0")/../.."

CASES="${1:-1000000}"
FILTER="${2:-}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
LOGS="$CARGO_TARGET_DIR/fuzz-logs"
mkdir -p "$LOGS"

# crate test-file: the property targets (each file holds one or more `fuzz-stat` reporting tests).
TARGETS=(
    "p2p-proto prop_wire"
    "p2p-proto prop_frame"
    "p2p-proto prop_crypto"
    "p2p-proto prop_control"
    "p2p-proto prop_session"
    "p2p-config prop_provisioning"
    "p2p-ffi prop_json"
)

failed=0
summary=()
for t in "${TARGETS[@]}"; do
    read -r crate file <<<"$t"
    if [[ -n "$FILTER" && "$file" != *"$FILTER"* ]]; then
        continue
    fi
    log="$LOGS/$file.log"
    echo "== $crate/$file: $CASES cases per property (log: $log)"
    start=$(date +%s)
    if ! cargo test --release -q -p "$crate" --test "$file" --no-run >"$log" 2>&1; then
        echo "   build failed, see $log"
        summary+=("$(printf '%-28s %s' "$file" 'BUILD FAILED')")
        failed=1
        continue
    fi
    PROPTEST_CASES="$CASES" RUST_BACKTRACE=0 \
        cargo test --release -q -p "$crate" --test "$file" -- --nocapture --test-threads=1 >>"$log" 2>&1
    status=$?
    secs=$(( $(date +%s) - start ))
    stats=$(grep -o 'fuzz-stat .*' "$log" | sed 's/^fuzz-stat /   /')
    echo "$stats"
    if [[ $status -ne 0 ]]; then
        failed=1
        echo "   FAILED (exit $status); the minimal failing input:"
        grep -E "minimal failing input|panicked at|Test failed" "$log" | head -5 | sed 's/^/   /'
    fi
    while read -r line; do
        [[ -n "$line" ]] && summary+=("$(printf "%-55s [%s, %ss]" "$line" "$file" "$secs")")
    done <<<"$stats"
done

echo
echo "== summary ($CASES cases requested per property)"
printf '%s\n' "${summary[@]}"
exit $failed
