#!/usr/bin/env bash
# The NAT lab system test: real routers in network namespaces (lab.sh), the real p2p-server and
# connectd. Prints and saves (target/natlab/) a behaviour x behaviour matrix of Direct/Relayed and
# time-to-connect, the same pairs with one side learning of the session 300 ms late, the self-test table (connectd -n vs the lab's behaviour), port-mapping checks, the
# relay-fallback-and-back timing and the roaming events. Exit 0 when everything held (or the lab cannot
# run here: "SKIP"), 1 otherwise.
#
#   tests/natlab/run.sh [--write-doc]     --write-doc also puts the results into docs/NATLAB.md
#
# Environment: P2P_BIN_DIR (default target/debug), NATLAB_OUT (default target/natlab).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${P2P_BIN_DIR:-$ROOT/target/debug}
export NATLAB_PREFIX=${NATLAB_PREFIX:-nlt}
export NATLAB_STATE=${NATLAB_STATE:-${TMPDIR:-/tmp}/natlab-$NATLAB_PREFIX}
LAB=$HERE/lab.sh
OUT=${NATLAB_OUT:-$ROOT/target/natlab}
WRITE_DOC=0
[ "${1:-}" = --write-doc ] && WRITE_DOC=1

KINDS=(none full prc sym upnp masq)
# Endpoint-independent mapping: every pair of these must go direct within 3 s of the session, whichever
# side learns of it first.
EIM=(none full prc upnp masq)
LATE_MS=300
SERVER=198.18.0.1:5980
LEASE=30            # short port-mapping lease, so a renewal happens during the run
FAILS=0

"$LAB" check || { rc=$?; [ $rc = 77 ] && exit 0; exit $rc; }
for b in p2p-server connectd; do
    [ -x "$BIN/$b" ] || { echo "natlab: FAIL: $BIN/$b is missing (cargo build -p p2p-server -p connectd)"; exit 1; }
done
command -v curl >/dev/null || { echo "natlab: FAIL: curl is missing"; exit 1; }

fail() { echo "natlab: FAIL: $*"; FAILS=$((FAILS + 1)); }
. "$HERE/lib.sh"

cleanup() { lab down >/dev/null 2>&1; }
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$OUT"; mkdir -p "$OUT/logs" "$OUT/www"
T0=$(now_ms)

# -- the lab: a target site and an initiator site per behaviour (with an endpoint-independent mapping, a
# second host at each whose control channel is late), two-host sites, UPnP-only, roaming pair
is_eim() { case " ${EIM[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
sites=()
for k in "${KINDS[@]}"; do
    if is_eim "$k"; then sites+=("t$k=$k:2" "i$k=$k:2"); else sites+=("t$k=$k" "i$k=$k"); fi
done
sites+=(hp=prc:2:hairpin nohp=prc:2 igd=upnp:nopmp rt=prc ri=prc)
# Carrier NAT: home routers (port-restricted) behind carrier ca (hairpinning) and carrier cb (none).
sites+=(ca=cgnat:hairpin cb=cgnat ca1=prc:via=ca ca2=prc:via=ca cb1=prc:via=cb cb2=prc:via=cb)
# IPv6: two dual-stack sites behind symmetric IPv4 NATs (routed IPv6, replies-only firewalls).
sites+=(t6=sym:v6 i6=sym:v6)
lab up "${sites[@]}" >"$OUT/lab.txt" || { echo "natlab: FAIL: the lab did not come up"; exit 1; }
cat "$OUT/lab.txt"
for k in "${EIM[@]}"; do
    for n in "h-t$k-2" "h-i$k-2"; do lab late "$n" $LATE_MS || { echo "natlab: FAIL: lab late $n"; exit 1; }; done
done

# -- the server: accounts and one device per target
TARGETS=()
for k in "${KINDS[@]}"; do TARGETS+=("t$k"); done
for k in "${EIM[@]}"; do TARGETS+=("t$k-2"); done
TARGETS+=(hp nohp igd rt ca2 cb1 cb2 t6)
start_server "${TARGETS[@]}"

# -- content: a 2 MB random file, served on 127.0.0.1:8080 in every target host
head -c 2000000 /dev/urandom >"$OUT/www/blob"
SUM=$(sha256sum "$OUT/www/blob" | cut -d' ' -f1)
export RUST_LOG=info,p2p_net::portmap=debug P2P_PORTMAP_LEASE=$LEASE
for t in "${TARGETS[@]}"; do start_target "$t"; done
for t in "${TARGETS[@]}"; do wait_registered "$t" || fail "target $t did not register"; done

# -- the matrix: initiator behaviour (rows) x target behaviour (columns), the late pairs ("lt-I-T": the
# target learns late, "li-I-T": the initiator does), plus the extra pairs
declare -A PORT START NODE_OF TGT_OF
PAIRS=()
port=20000
add_pair() { # add_pair NAME INITIATOR_NODE TARGET
    port=$((port + 1)); PAIRS+=("$1"); PORT[$1]=$port; NODE_OF[$1]=$2; TGT_OF[$1]=$3
    START[$1]=$(now_ms)
    start_initiator "$1" "$2" "$3" $port
    sleep 0.15
}
for i in "${KINDS[@]}"; do for t in "${KINDS[@]}"; do add_pair "$i-$t" "h-i$i" "t$t"; done; done
# Two kinds both ways round, each side once the late one; a kind against itself only with the target
# late (the initiator-late twin tells nothing more, and CI time is scarce).
for i in "${EIM[@]}"; do for t in "${EIM[@]}"; do
    add_pair "lt-$i-$t" "h-i$i" "t$t-2"
    [ "$i" = "$t" ] || add_pair "li-$i-$t" "h-i$i-2" "t$t"
done; done
add_pair hairpin-on h-hp-2 hp
add_pair hairpin-off h-nohp-2 nohp
add_pair sym-igd h-isym igd
add_pair cgn-hairpin h-ca1 ca2
add_pair cgn-nohairpin h-cb1 cb2
add_pair cgn-cross h-ca1 cb1
add_pair cgn-cross-back h-cb2 ca2
# IPv6 (the family each must use): dual-stack to dual-stack, both IPv4 NATs symmetric; an IPv4-only host
# (full cone) to the dual-stack target.
declare -A FAMILY
add_pair v6-sym-sym h-i6 t6; FAMILY[v6-sym-sym]=IPv6
add_pair v6-v4only h-ifull t6; FAMILY[v6-v4only]=IPv4

# Everyone connects (relay first), then has the 5 s punch window and a margin to settle.
deadline=$(( $(now_ms) + 20000 ))
while [ "$(now_ms)" -lt $deadline ]; do
    pending=0
    for p in "${PAIRS[@]}"; do
        c=$(first_ms "$OUT/logs/init-$p.log" '!!connected')
        if [ -z "$c" ] || [ $(( $(now_ms) - c )) -lt 7000 ]; then pending=1; fi
    done
    [ $pending = 0 ] && break
    sleep 0.5
done

expected() { # expected INITIATOR_KIND TARGET_KIND -> direct|relayed
    # Two symmetric NATs: neither side's port toward the other can be predicted, so there is nothing to
    # aim at (the birthday spray needs one side with one public port). Every other pair is direct: a
    # symmetric NAT facing a filtering one by the spray (PROTOCOL.md, "Hard NATs").
    case "$1-$2" in sym-sym) echo relayed ;; *) echo direct ;; esac
}
session_bytes() { # the relay's forwarded bytes of a session, from the server's stats file
    python3 - "$OUT/stats.json" "$1" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print(0); sys.exit()
for s in d["relay"]["sessions"] + d["relay"].get("closed", []):
    if s.get("session_id") == sys.argv[2]:
        print(s.get("forwarded_bytes", 0)); break
else:
    print(0)
EOF
}
sleep 1.2
declare -A BEFORE CELL
for p in "${PAIRS[@]}"; do
    sid=$(grep -E -m1 -o 'session=[0-9a-f]+' "$OUT/logs/init-$p.log" | cut -d= -f2)
    BEFORE[$p]=$(session_bytes "${sid:-none}")
done
declare -A GOT SUMOK
for p in "${PAIRS[@]}"; do
    # The late pairs check the path only: the matrix shows every pair of kinds carrying the file.
    case $p in l[ti]-*) SUMOK[$p]=1; continue ;; esac
    got=$(lab exec "${NODE_OF[$p]}" curl -s --max-time 30 "http://127.0.0.1:${PORT[$p]}/blob" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$SUM" ] && SUMOK[$p]=1 || SUMOK[$p]=0
done
sleep 1.5
for p in "${PAIRS[@]}"; do
    log=$OUT/logs/init-$p.log
    sid=$(grep -E -m1 -o 'session=[0-9a-f]+' "$log" | cut -d= -f2)
    relayed=$(( $(session_bytes "${sid:-none}") - ${BEFORE[$p]} ))
    c=$(first_ms "$log" '!!connected'); d=$(first_ms "$log" '!!status path=(direct|port-mapped)')
    path=$(last_path "$log")
    kinds=${p#l[ti]-}; ik=${kinds%-*}; tk=${kinds#*-}
    case $p in
        hairpin-*|v6-*) want=direct ;;
        sym-igd) want=direct ;;
        # Both customers know each other only by the carrier's public address, which a carrier NAT
        # without hairpinning never sends back inside.
        cgn-nohairpin) want=relayed ;;
        cgn-*) want=direct ;;
        *) want=$(expected "$ik" "$tk") ;;
    esac
    if [ -z "$c" ]; then
        CELL[$p]="FAILED (no connection)"; fail "$p: never connected"; continue
    fi
    if [ "$path" = direct ] || [ "$path" = port-mapped ]; then
        cell="Direct $(secs "${START[$p]}" "$d") s"
        case $p in l[ti]-*) cell="Direct $(secs "$c" "$d") s" ;; esac
        # Endpoint-independent mappings on both sides: direct within 3 s of the session, whoever learns
        # of it first.
        if is_eim "$ik" && is_eim "$tk" && [ "$d" -gt $(( c + 3000 )) ]; then
            cell="$cell ✗ (> 3 s after the session)"; fail "$p: direct only $(secs "$c" "$d") s after the session"
        fi
        [ $relayed -lt 200000 ] || { cell="$cell (relay carried $relayed B!)"; fail "$p: direct but the relay carried $relayed bytes"; }
    else
        cell="Relayed $(secs "${START[$p]}" "$c") s"
    fi
    [ "${path:-relayed}" = port-mapped ] && cell="$cell (mapped)"
    got=$([ "$path" = direct ] || [ "$path" = port-mapped ] && echo direct || echo relayed)
    [ "$got" = "$want" ] || { cell="$cell ✗ expected $want"; fail "$p: $got, expected $want"; }
    [ "${SUMOK[$p]}" = 1 ] || { cell="$cell, transfer FAILED"; fail "$p: the 2 MB transfer failed or was corrupt"; }
    CELL[$p]=$cell
    GOT[$p]=$got
done

late_cell() { local c=${CELL[$1]:--}; echo "${c#Direct }"; }
# The IPv6 pairs: Direct over the family each must use (the path line's family=).
for p in "${!FAMILY[@]}"; do
    fam=$(grep -E -o 'path=(direct|port-mapped) family=IPv[46]' "$OUT/logs/init-$p.log" | tail -1 | cut -d= -f3)
    if [ "${GOT[$p]:-}" = direct ]; then
        CELL[$p]="${CELL[$p]} over ${fam:-?}"
        [ "$fam" = "${FAMILY[$p]}" ] || { CELL[$p]="${CELL[$p]} ✗ expected ${FAMILY[$p]}"; fail "$p: direct over ${fam:-?}, expected ${FAMILY[$p]}"; }
    fi
done
{
    printf '| initiator ↓ / target → |'; for t in "${KINDS[@]}"; do printf ' %s |' "$t"; done; echo
    printf '|---|'; for _ in "${KINDS[@]}"; do printf -- '---|'; done; echo
    for i in "${KINDS[@]}"; do
        printf '| **%s** |' "$i"
        for t in "${KINDS[@]}"; do printf ' %s |' "${CELL[$i-$t]}"; done; echo
    done
    echo
    echo "| extra pair | result |"
    echo "|---|---|"
    echo "| two hosts behind one port-restricted router, hairpinning on | ${CELL[hairpin-on]} |"
    echo "| two hosts behind one port-restricted router, hairpinning off | ${CELL[hairpin-off]} |"
    echo "| symmetric initiator → target behind miniupnpd with NAT-PMP off (UPnP IGD only) | ${CELL[sym-igd]} |"
    echo "| two customers of one carrier NAT (home routers port-restricted), carrier hairpinning on | ${CELL[cgn-hairpin]} |"
    echo "| two customers of one carrier NAT, carrier hairpinning off (relayed: each knows the other only by the carrier's public address, which the carrier never sends back inside) | ${CELL[cgn-nohairpin]} |"
    echo "| customer of carrier ca → customer of carrier cb | ${CELL[cgn-cross]} |"
    echo "| customer of carrier cb → customer of carrier ca | ${CELL[cgn-cross-back]} |"
    echo "| sym:v6 → sym:v6 (dual-stack, both IPv4 NATs symmetric) | ${CELL[v6-sym-sym]} |"
    echo "| IPv4-only (full cone) → sym:v6 (dual-stack) | ${CELL[v6-v4only]} |"
    echo
    echo "One side learns of each session $LATE_MS ms late (its control channel is delayed both ways); time from"
    echo "the session (the initiator's \`!!connected\`, over the relay) to Direct, target late / initiator late:"
    echo
    printf '| initiator ↓ / target → |'; for t in "${EIM[@]}"; do printf ' %s |' "$t"; done; echo
    printf '|---|'; for _ in "${EIM[@]}"; do printf -- '---|'; done; echo
    for i in "${EIM[@]}"; do
        printf '| **%s** |' "$i"
        for t in "${EIM[@]}"; do printf ' %s / %s |' "$(late_cell "lt-$i-$t")" "$(late_cell "li-$i-$t")"; done; echo
    done
} >"$OUT/matrix.md"
echo; echo "== matrix (time from start to Direct, or to the relayed connection)"; cat "$OUT/matrix.md"

# -- port mapping: the targets behind miniupnpd hold a mapping, renew it, and the table shows it
{
    echo "| site | what the router holds | connectd says |"
    echo "|---|---|---|"
    for s in tupnp igd; do
        rules=$(lab exec "r-$s" nft list chain inet upnp prerouting_miniupnpd 2>/dev/null | grep -c dnat || true)
        said=$(grep -E -m1 -o 'port mapping: (NAT-PMP|UPnP IGD|unavailable)[^"]*' "$OUT/logs/target-$s.log" | head -1)
        echo "| $s | $rules DNAT rule(s) in miniupnpd's chain | ${said:-nothing} |"
        [ "$rules" -ge 1 ] || fail "$s: miniupnpd holds no mapping"
    done
    said=$(grep -E -m1 -o 'port mapping: unavailable.*' "$OUT/logs/target-tprc.log")
    echo "| tprc (no NAT-PMP, no UPnP) | - | ${said:-nothing} |"
    [ -n "$said" ] || fail "tprc: no 'port mapping: unavailable' status line"
} >"$OUT/portmap.md"

# -- self-test: connectd -n from each site vs the lab's behaviour
selftest_row() { # selftest_row NODE KIND EXPECT_HAIRPIN EXPECT_PMP EXPECT_UPNP
    local json
    # No P2P_PROBE_ADDR3: the server's probe answers advertise its second IP (198.18.0.2:5961).
    json=$(lab exec "$1" "$BIN/connectd" -y $SERVER --server-key "$KEY" -n --json 2>/dev/null)
    echo "$json" >"$OUT/selftest-$1.json"
    python3 - "$1" "$2" "$3" "$4" "$5" "$json" <<'EOF'
import json, sys
node, kind, hp, pmp, upnp, text = sys.argv[1:]
# Filtering (RFC 5780 change-IP / change-port answers): no NAT and the full cone let anyone in; a
# port-restricted cone (also the one behind miniupnpd) and the symmetric NAT only the exact address+port.
exp = {
    "none": ("False", "EndpointIndependent", "True", "endpoint-independent"),
    "full": ("True", "EndpointIndependent", "True", "endpoint-independent"),
    "prc": ("True", "EndpointIndependent", "True", "address-and-port-dependent"),
    "upnp": ("True", "EndpointIndependent", "True", "address-and-port-dependent"),
    "sym": ("True", "AddressAndPortDependent", "False", "address-and-port-dependent"),
    # No firewall, but nothing is forwarded that conntrack does not know: an answer from another
    # address or port reaches the router itself, not the host.
    "masq": ("True", "EndpointIndependent", "True", "address-and-port-dependent"),
}[kind]
want = {"behind NAT": exp[0], "mapping": exp[1], "filtering": exp[3], "port preservation": exp[2],
        "hairpinning": hp, "NAT-PMP": pmp, "UPnP IGD": upnp}
try:
    r = json.loads(text)
    got = {"behind NAT": str(r["nat"]["behind_nat"]), "mapping": str(r["nat"]["mapping"]),
           "filtering": str(r["nat"]["filtering"]),
           "port preservation": str(r["nat"]["port_preservation"]), "hairpinning": str(r["nat"]["hairpinning"]),
           "NAT-PMP": str(r["nat_pmp"]["found"]), "UPnP IGD": str(r["upnp"]["found"])}
except Exception as e:
    got = {k: "no report" for k in want}
cells, bad = [], 0
for k, w in want.items():
    if w == "*":
        cells.append(got[k]); continue
    ok = got[k] == w
    bad += not ok
    cells.append(got[k] if ok else f"{got[k]} ✗ (expected {w})")
print(f"| {node} ({kind}) | " + " | ".join(cells) + " |")
sys.exit(1 if bad else 0)
EOF
}
selftest_ipv6_row() { # selftest_ipv6_row NODE EXPECTED_ADDRESS (empty: none), from selftest_row's report
    local got
    got=$(python3 -c 'import json, sys; print(",".join(json.load(open(sys.argv[1]))["ipv6"]["global_addresses"]))' \
        "$OUT/selftest-$1.json" 2>/dev/null || echo "no report")
    if [ "$got" = "$2" ]; then echo "| $1 | ${got:-none} | ${2:-none} |"; else echo "| $1 | ${got:-none} ✗ | ${2:-none} |"; return 1; fi
}
{
    echo "| site (behaviour) | behind NAT | mapping | filtering | port preservation | hairpinning | NAT-PMP | UPnP IGD |"
    echo "|---|---|---|---|---|---|---|---|"
    selftest_row h-tnone none '*' False False || fail "self-test tnone"
    selftest_row h-tfull full False False False || fail "self-test tfull"
    selftest_row h-tprc prc False False False || fail "self-test tprc"
    selftest_row h-tsym sym False False False || fail "self-test tsym"
    selftest_row h-tupnp upnp False True True || fail "self-test tupnp"
    selftest_row h-tmasq masq False False False || fail "self-test tmasq"
    selftest_row h-igd upnp False False True || fail "self-test igd"
    selftest_row h-hp prc True False False || fail "self-test hp"
    selftest_row h-nohp prc False False False || fail "self-test nohp"
    # Behind a port-restricted home router behind a carrier NAT: the two behave as one port-restricted
    # NAT. The carrier's hairpinning does not show: the home router filters the hairpinned probe.
    selftest_row h-ca1 prc False False False || fail "self-test ca1 (behind a carrier NAT)"
    selftest_row h-t6 sym False False False || fail "self-test t6"
    echo
    echo "| site | IPv6 global addresses (connectd -n) | expected |"
    echo "|---|---|---|"
    selftest_ipv6_row h-t6 "2001:db8:$(awk '$1 == "t6" { print $3 }' "$NATLAB_STATE/sites")::2" || fail "self-test t6: IPv6"
    selftest_ipv6_row h-tsym "" || fail "self-test tsym: IPv6"
} >"$OUT/selftest.md"
echo; echo "== self-test (connectd -n) vs the lab"; cat "$OUT/selftest.md"

# -- the matrix initiators end: their mappings must go (the initiator behind miniupnpd had one)
count_on() { # sessions started on the hosts of site $1
    local p n=0; for p in "${PAIRS[@]}"; do case ${NODE_OF[$p]} in "h-$1"|"h-$1-2") n=$((n + 1)) ;; esac; done; echo $n; }
mapped_before=$(lab exec r-iupnp nft list chain inet upnp prerouting_miniupnpd 2>/dev/null | grep -c dnat || true)
for p in "${PAIRS[@]}"; do
    pid=$(pid_of "$OUT/logs/init-$p.log"); [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
done
# Each initiator deletes its mapping as it exits; on a loaded machine the last ones take a few seconds.
for _ in $(seq 30); do
    sleep 0.5
    mapped_after=$(lab exec r-iupnp nft list chain inet upnp prerouting_miniupnpd 2>/dev/null | grep -c dnat || true)
    [ "$mapped_after" = 0 ] && break
done
renewals=$(cat "$OUT"/logs/target-tupnp.log "$OUT"/logs/target-igd.log | grep -c 'port mapping: renewed' || true)
{
    echo "| initiator site iupnp: mappings while its $(count_on iupnp) sessions ran | after they ended | renewals seen (lease $LEASE s) |"
    echo "|---|---|---|"
    echo "| $mapped_before | $mapped_after | $renewals |"
} >>"$OUT/portmap.md"
[ "$mapped_before" -ge 1 ] || fail "iupnp: the initiators behind miniupnpd held no mapping"
[ "$mapped_after" = 0 ] || fail "iupnp: $mapped_after mapping(s) left after the initiators ended"
echo; echo "== port mapping"; cat "$OUT/portmap.md"

# -- fallback and return, then roaming, on one autoconnect-2 tunnel (prc initiator ri -> prc target rt)
RPORT=21000
cat >"$OUT/initiator-roam.txt" <<EOF
autoconnect 2
user_id labuser
auth_pass $PASSWORD
proxy_local_port $RPORT
proxy_bind_address 127.0.0.1
remote_address ${UID_OF[rt]}
max_depth 12
server $SERVER
server_key $KEY
EOF
RLOG=$OUT/logs/init-roam.log
bg h-ri "$RLOG" "$BIN/connectd" -s -f "$OUT/initiator-roam.txt"
for _ in $(seq 100); do [ -n "$(first_ms "$RLOG" '!!status path=direct')" ] && break; sleep 0.1; done
[ -n "$(first_ms "$RLOG" '!!status path=direct')" ] || fail "roaming tunnel: never direct"
RT_WAN=$(lab exec r-rt ip -4 -o addr show wan | awk '{ print $4 }' | cut -d/ -f1)
port_open() { lab exec h-ri bash -c "exec 3<>/dev/tcp/127.0.0.1/$RPORT" 2>/dev/null; }
transfer() { # a checksummed transfer, retried for up to $1 s; prints the seconds it took to succeed
    local t0 end got; t0=$(now_ms); end=$(( t0 + $1 * 1000 ))
    while [ "$(now_ms)" -lt $end ]; do
        got=$(lab exec h-ri curl -s --max-time 15 "http://127.0.0.1:$RPORT/blob" | sha256sum | cut -d' ' -f1)
        [ "$got" = "$SUM" ] && { secs "$t0" "$(now_ms)"; return 0; }
        sleep 0.5
    done
    return 1
}
wait_line_after() { # wait_line_after LOG REGEX AFTER_MS TIMEOUT_S: prints seconds from AFTER_MS to the line
    local end=$(( $(now_ms) + $4 * 1000 )) t
    while [ "$(now_ms)" -lt $end ]; do
        t=$(grep -E "^[0-9]+ $2" "$1" | awk -v a="$3" '$1 >= a { print $1; exit }')
        [ -n "$t" ] && { secs "$3" "$t"; return 0; }
        sleep 0.2
    done
    return 1
}
{
    echo "| event | result |"
    echo "|---|---|"
    # Direct UDP between the two sites blocked: the session must notice within 6.5 s and use the relay.
    lab exec r-ri nft -f - <<EOF
table ip block {
    chain c {
        type filter hook forward priority -10;
        ip daddr $RT_WAN drop
        ip saddr $RT_WAN drop
    }
}
EOF
    tb=$(now_ms)
    if s=$(wait_line_after "$RLOG" '!!status path=relayed' "$tb" 15); then
        echo "| direct path blocked | fell back to the relay after $s s |"
        awk -v s="$s" 'BEGIN { exit !(s > 8.5) }' && fail "fallback took $s s (> 6.5 s + keepalive)"
    else
        echo "| direct path blocked | ✗ never fell back |"; fail "no relay fallback"
    fi
    s=$(transfer 20) && echo "| transfer while relayed | ok in $s s |" || { echo "| transfer while relayed | ✗ failed |"; fail "relayed transfer"; }
    lab exec r-ri nft delete table ip block
    tu=$(now_ms)
    if s=$(wait_line_after "$RLOG" '!!status path=direct' "$tu" 25); then
        echo "| direct path unblocked | back to direct after $s s |"
    else
        echo "| direct path unblocked | ✗ stayed relayed |"; fail "never returned to direct"
    fi
    # The uplink goes down for 10 s during a transfer.
    ( lab exec h-ri curl -s --max-time 30 --limit-rate 100k "http://127.0.0.1:$RPORT/blob" >/dev/null ) &
    sleep 1
    lab wan ri down; sleep 5
    port_open && open=yes || open=NO
    sleep 5; lab wan ri up
    s=$(transfer 40) && echo "| uplink down 10 s | recovered; port open during outage: $open; checksummed transfer ok $s s after the uplink came back |" \
        || { echo "| uplink down 10 s | ✗ no transfer within 40 s (port open during outage: $open) |"; fail "uplink outage"; }
    [ $open = yes ] || fail "the local port closed during the outage"
    # The router forgets every mapping.
    lab flush ri
    s=$(transfer 40) && echo "| router conntrack flushed | checksummed transfer ok after $s s |" \
        || { echo "| router conntrack flushed | ✗ no transfer within 40 s |"; fail "conntrack flush"; }
    # The router gets a new public address (and with it a new mapping for everything).
    lab readdress ri >/dev/null
    s=$(transfer 60) && echo "| public address changed | checksummed transfer ok after $s s |" \
        || { echo "| public address changed | ✗ no transfer within 60 s |"; fail "readdress"; }
    port_open || fail "the local port is closed after the events"
    echo "| final path | $(last_path "$RLOG"), $(count "$RLOG" '!!connected') connection(s) in all |"
} >"$OUT/roaming.md"
echo; echo "== fallback, return and roaming (autoconnect 2)"; cat "$OUT/roaming.md"

TOTAL=$(secs "$T0" "$(now_ms)")
echo; echo "natlab: $FAILS failure(s) in $TOTAL s; logs in $OUT/logs"
if [ $WRITE_DOC = 1 ]; then
    python3 - "$ROOT/docs/NATLAB.md" "$OUT" "$TOTAL" "$FAILS" <<'EOF'
import sys, datetime
doc, out, total, fails = sys.argv[1:]
parts = {n: open(f"{out}/{n}.md").read().strip() for n in ("matrix", "selftest", "portmap", "roaming")}
body = (f"_Latest run: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {total} s, {fails} failure(s)._\n\n"
        f"### Matrix\n\n{parts['matrix']}\n\n### Self-test\n\n{parts['selftest']}\n\n"
        f"### Port mapping\n\n{parts['portmap']}\n\n### Fallback, return, roaming\n\n{parts['roaming']}\n")
text = open(doc).read()
start, end = "<!-- natlab:results -->", "<!-- /natlab:results -->"
a, b = text.index(start) + len(start), text.index(end)
open(doc, "w").write(text[:a] + "\n" + body + text[b:])
EOF
fi
[ $FAILS = 0 ]
