#!/usr/bin/env bash
# Success-rate series for chosen pairs, outside CI: each attempt starts a fresh initiator toward a target
# that stays up, waits for the direct path, and ends the initiator. Prints, per pair, how many attempts went
# direct within 3 s of the session (the initiator's `!!connected`, over the relay), the median and worst
# time from the session to direct and from the start of connectd to direct, and how many stayed relayed.
#
#   tests/natlab/series.sh [-n ATTEMPTS] [--late MS] [--wait S] PAIR...
#
# PAIR: INITIATOR-TARGET, each a lab kind (none full prc sym upnp masq), optionally with ":late=i" or
# ":late=t": that side's control channel is delayed by MS ms each way (default 300), so it learns of every
# session later than its peer. Pairs run side by side (one site pair each), attempts one after another; each
# waits up to S seconds (--wait, default 8) for the direct path before it counts as relayed.
# Environment: P2P_BIN_DIR (default target/release), NATLAB_OUT (default target/natlab-series).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${P2P_BIN_DIR:-$ROOT/target/release}
export NATLAB_PREFIX=${NATLAB_PREFIX:-nls}
export NATLAB_STATE=${NATLAB_STATE:-${TMPDIR:-/tmp}/natlab-$NATLAB_PREFIX}
LAB=$HERE/lab.sh
OUT=${NATLAB_OUT:-$ROOT/target/natlab-series}
SERVER=198.18.0.1:5980
N=20
LATE_MS=300
WAIT_S=8
while [ $# -gt 0 ]; do
    case $1 in
        -n) N=$2; shift 2 ;;
        --late) LATE_MS=$2; shift 2 ;;
        --wait) WAIT_S=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
. "$HERE/lib.sh"

"$LAB" check || exit $?
cleanup() { lab down >/dev/null 2>&1; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$OUT"; mkdir -p "$OUT/logs" "$OUT/www"
echo hello >"$OUT/www/index.html"

PAIRS=("$@")
sites=() targets=()
for k in "${!PAIRS[@]}"; do
    p=${PAIRS[$k]%%:*}
    sites+=("i$k=${p%-*}" "t$k=${p#*-}")
    targets+=("t$k")
done
lab up "${sites[@]}" >"$OUT/lab.txt" || { echo "series: the lab did not come up"; exit 1; }
start_server "${targets[@]}"
for k in "${!PAIRS[@]}"; do
    case ${PAIRS[$k]} in
        *:late=t) lab late "h-t$k" "$LATE_MS" || exit 1 ;;
        *:late=i) lab late "h-i$k" "$LATE_MS" || exit 1 ;;
    esac
    start_target "t$k"
done
for t in "${targets[@]}"; do wait_registered "$t" || echo "series: target $t did not register"; done

# series K: N attempts of pair K; one line per attempt in $OUT/result-K (seconds to direct, or "relayed").
series() {
    local k=$1 a log t0 d pid
    for a in $(seq "$N"); do
        log=$OUT/logs/init-$k-$a.log
        t0=$(now_ms)
        start_initiator "$k-$a" "h-i$k" "t$k" $((20000 + k * 100 + a))
        for _ in $(seq $((WAIT_S * 10))); do
            [ -n "$(first_ms "$log" '!!status path=(direct|port-mapped)')" ] && break
            sleep 0.1
        done
        d=$(first_ms "$log" '!!status path=(direct|port-mapped)')
        c=$(first_ms "$log" '!!connected')
        if [ -n "$d" ] && [ -n "$c" ]; then echo "$(secs "$c" "$d") $(secs "$t0" "$d")" >>"$OUT/result-$k"
        else echo relayed >>"$OUT/result-$k"; fi
        pid=$(pid_of "$log"); [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
        sleep 1
    done
}
runs=()
for k in "${!PAIRS[@]}"; do series "$k" & runs+=($!); done
wait "${runs[@]}"

printf '| pair | direct within 3 s | session to direct: median, worst | start to direct: median, worst | relayed |\n'
printf '|---|---|---|---|---|\n'
for k in "${!PAIRS[@]}"; do
    python3 - "${PAIRS[$k]}" "$OUT/result-$k" "$LATE_MS" <<'PY'
import sys
pair, path, late = sys.argv[1:]
rows = [l.strip() for l in open(path) if l.strip()]
direct = [r.split() for r in rows if r != "relayed"]
name = pair.replace(":late=i", f" (initiator {late} ms late)").replace(":late=t", f" (target {late} ms late)")
def spread(col):
    t = sorted(float(d[col]) for d in direct)
    return f"{t[len(t) // 2]:.1f} s, {t[-1]:.1f} s" if t else "-"
fast = sum(float(d[0]) <= 3.0 for d in direct)
print(f"| {name} | {fast}/{len(rows)} | {spread(0)} | {spread(1)} | {len(rows) - len(direct)} |")
PY
done
