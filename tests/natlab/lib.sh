# Shared by run.sh and series.sh (sourced): timing helpers and the lab's server and targets.
# Expects LAB (lab.sh), BIN (the binaries), OUT (logs and data) and SERVER (control host:port).

# The server listens on both families; IPv6-only hosts reach it at SERVER6 (server_for tells which a node
# uses: those of a ":v6only" site have no IPv4).
SERVER6='[2001:db8::1]:5980'
server_for() { # server_for NODE (h-SITE or h-SITE-2)
    local site=${1#h-}; site=${site%-2}
    if [ -e "$NATLAB_STATE/v6only-$site" ]; then echo "$SERVER6"; else echo "$SERVER"; fi
}

now_ms() { date +%s%3N; }
lab() { "$LAB" "$@"; }
# bg NODE LOG CMD...: run CMD in NODE, every output line prefixed with the time in ms (for timings).
bg() {
    local node=$1 log=$2; shift 2
    ( lab exec "$node" "$@" 2>&1 | while IFS= read -r l; do printf '%s %s\n' "$(now_ms)" "$l"; done >"$log" ) &
}
# first_ms LOG REGEX: the time of the first matching line (empty if none).
first_ms() { grep -E -m1 "^[0-9]+ $2" "$1" 2>/dev/null | cut -d' ' -f1; }
count() { grep -E -c "^[0-9]+ $2" "$1" 2>/dev/null || true; }
last_path() { grep -E -o 'path=(direct|relayed|port-mapped)' "$1" 2>/dev/null | tail -1 | cut -d= -f2; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
pid_of() { grep -E -m1 -o '!!status - pid=[0-9]+' "$1" | cut -d= -f2; }

# start_server TARGET...: accounts, one device per target, the server running on srv. Sets KEY, PASSWORD,
# UID_OF and SECRET_OF.
declare -A UID_OF SECRET_OF FP_OF
start_server() {
    local sdata=$OUT/server n=0 t
    KEY=$("$BIN/p2p-server" init --data-dir "$sdata" | awk '/server_key/ { print $NF }')
    [ -n "$KEY" ] || { echo "natlab: FAIL: p2p-server init printed no key"; exit 1; }
    PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    echo "$PASSWORD" | "$BIN/p2p-server" user add labuser --data-dir "$sdata" >/dev/null
    for t in "$@"; do
        n=$((n + 1))
        UID_OF[$t]=$(printf '80:00:00:00:01:00:00:%02X' "$n")
        SECRET_OF[$t]=$("$BIN/p2p-server" device add "${UID_OF[$t]}" --owner labuser --generate-secret \
            --data-dir "$sdata" | awk '/^secret/ { print $2 }')
    done
    bg srv "$OUT/logs/server.log" "$BIN/p2p-server" run --data-dir "$sdata" --control "$SERVER,$SERVER6" \
        --udp '198.18.0.1:5959,[2001:db8::1]:5959' --udp2 '198.18.0.1:5960,[2001:db8::1]:5960' \
        --udp3 '198.18.0.2:5961,[2001:db8::2]:5961' --stats-file "$OUT/stats.json" --max-sessions-per-user 500
    for _ in $(seq 50); do grep -q 'listening control' "$OUT/logs/server.log" 2>/dev/null && break; sleep 0.1; done
}

# start_target SITE: connectd -s on h-SITE, forwarding to a web server there that serves $OUT/www.
start_target() {
    local t=$1
    bg "h-$t" "$OUT/logs/http-$t.log" python3 -m http.server 8080 --bind 127.0.0.1 --directory "$OUT/www"
    cat >"$OUT/target-$t.conf" <<EOT
UID ${UID_OF[$t]}
password ${SECRET_OF[$t]}
proxy_dest_ip 127.0.0.1
proxy_dest_port 8080
application_type 1
server $(server_for "h-$t")
server_key $KEY
EOT
    # The device's fingerprint, read on the device as its owner would: initiators pass it (--device-key),
    # as a mode 3 session refuses a device whose key is neither given nor pinned.
    FP_OF[$t]=$(lab exec "h-$t" "$BIN/connectd" --fingerprint -f "$OUT/target-$t.conf")
    bg "h-$t" "$OUT/logs/target-$t.log" "$BIN/connectd" -s -f "$OUT/target-$t.conf"
}

# wait_registered SITE: true once the target there has registered (within 10 s).
wait_registered() {
    for _ in $(seq 100); do grep -q '!!status registered' "$OUT/logs/target-$1.log" && return 0; sleep 0.1; done
    return 1
}

# start_initiator NAME NODE TARGET PORT: connectd -c on NODE toward TARGET's device (its key given with
# --device-key), local port PORT; the log is $OUT/logs/init-NAME.log.
start_initiator() {
    local b64u b64p
    b64u=$(printf labuser | base64); b64p=$(printf %s "$PASSWORD" | base64)
    P2P_SERVER=$(server_for "$2") P2P_SERVER_KEY=$KEY bg "$2" "$OUT/logs/init-$1.log" "$BIN/connectd" -s \
        --device-key "${FP_OF[$3]}" -c "$b64u" "$b64p" \
        "${UID_OF[$3]}" "T$4" 3 127.0.0.1 12
}
