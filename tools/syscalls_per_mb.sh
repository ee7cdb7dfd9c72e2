#!/usr/bin/env bash
# System calls per MB of a bulk transfer through one loopback tunnel, by kind, for both connectd
# processes: `p2p-bench --only soak` keeps one tunnel busy, `perf stat` counts the syscall
# tracepoints of both processes for a window in the middle, and the bytes are what the target wrote
# to the service (its /proc/PID/io wchar: TCP writes go through writev). Needs perf and root (or
# perf_event_paranoid <= 1). Builds nothing: run `cargo build --release --workspace --bins` first.
#
#   tools/syscalls_per_mb.sh [MODE] [SECONDS] [BIN_DIR]   # MODE 0-3 (default 3), window 10 s,
#                                       # connectd and p2p-server from BIN_DIR (default target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-3}"
WINDOW="${2:-10}"
BIN_DIR="${3:-target/release}"
OUT="$(mktemp)"
STAT="$(mktemp)"
trap 'rm -f "$OUT" "$STAT"' EXIT
target/release/p2p-bench --bin-dir "$BIN_DIR" --only soak --soak "$MODE,$((WINDOW + 8))" >"$OUT" 2>&1 &
BENCH=$!
for _ in $(seq 100); do grep -q 'soak: initiator pid' "$OUT" && break; sleep 0.1; done
read -r INIT TARGET < <(sed -n 's/.*initiator pid \([0-9]*\) target pid \([0-9]*\).*/\1 \2/p' "$OUT")
sleep 3
wchar() { awk '/^wchar/ {print $2}' "/proc/$TARGET/io"; }
# User and system CPU of both processes, in clock ticks ("utime stime").
ticks() { awk '{u += $14; s += $15} END {print u, s}' "/proc/$INIT/stat" "/proc/$TARGET/stat"; }
W0=$(wchar)
read -r U0 S0 < <(ticks)
EVENTS=raw_syscalls:sys_enter
for s in sendmsg sendto recvmmsg recvfrom recvmsg writev write read epoll_wait futex; do
    EVENTS="$EVENTS,syscalls:sys_enter_$s"
done
perf stat --no-big-num -x, -e "$EVENTS" -p "$INIT" -o "$STAT.initiator" -- sleep "$WINDOW" &
perf stat --no-big-num -x, -e "$EVENTS" -p "$TARGET" -o "$STAT.target" -- sleep "$WINDOW"
wait %2 2>/dev/null || sleep 0.5
W1=$(wchar)
read -r U1 S1 < <(ticks)
wait "$BENCH" || true
MB=$(awk -v a="$W0" -v b="$W1" 'BEGIN {print (b - a) / 1e6}')
HZ=$(getconf CLK_TCK)
awk -v m="$MB" -v w="$WINDOW" -v u="$((U1 - U0))" -v s="$((S1 - S0))" -v hz="$HZ" -v mode="$MODE" 'BEGIN {
    gb = m / 1000
    printf "mode %s: %.0f MB in %s s (%.0f MB/s); both connectd: %.2f user + %.2f system CPU s/GB\n",
        mode, m, w, m / w, u / hz / gb, s / hz / gb
    print "system calls per MB:" }'
printf "  %-12s %10s %10s\n" "" initiator target
join -t, <(awk -F, '$3 ~ /sys_enter/ {print $3 "," $1}' "$STAT.initiator" | sort) \
    <(awk -F, '$3 ~ /sys_enter/ {print $3 "," $1}' "$STAT.target" | sort) |
    awk -F, -v mb="$MB" '{ name = $1; sub(/.*sys_enter_?/, "", name); if (name == "") name = "all";
        if ($2 + $3 > 0) printf "  %-12s %10.1f %10.1f\n", name, $2 / mb, $3 / mb }'
rm -f "$STAT.initiator" "$STAT.target"
