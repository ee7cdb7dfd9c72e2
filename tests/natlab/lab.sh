#!/usr/bin/env bash
# The NAT lab: network namespaces joined by veth pairs, with nftables routers that behave like the
# NATs P2P software meets in the wild. Nothing leaves the machine: every address lives inside a namespace.
#
#   lab.sh check                      exit 0 when the lab can run here, 77 (with a reason) when it cannot
#   lab.sh up SITE=KIND[:2][:hairpin][:nopmp][:v6][:via=CARRIER] ...   build the lab (the server plus one
#                                     site per argument)
#   lab.sh down                       remove everything this lab created (namespaces, daemons, state)
#   lab.sh exec NODE CMD...           run CMD in a node: srv, r-SITE (router), h-SITE (host), h-SITE-2
#   lab.sh wan SITE down|up           take a site's uplink down / bring it back
#   lab.sh flush SITE                 flush the router's conntrack table (every mapping gets a new port)
#   lab.sh readdress SITE             move the router to its other public address
#   lab.sh upnp-list SITE             the port mappings miniupnpd holds (its nftables chain)
#   lab.sh late NODE MS               delay NODE's TCP to the server's control port by MS ms each way (a
#                                     user-space proxy in NODE: that host learns of every session later)
#   lab.sh info                       sites, addresses and kinds
#
# KIND: none (public host, plain routing), full (EIM + EIF: "full cone"), prc (EIM + APDF: "port-restricted
# cone", the common home router), sym (APDM with random ports: "symmetric"), upnp (prc plus miniupnpd serving
# UPnP IGD and NAT-PMP/PCP), masq (plain `masquerade` and no firewall at all: unsolicited packets from the WAN
# reach the router itself and stay in conntrack as UNREPLIED entries, as on many Linux NAT boxes). ":2" puts two hosts behind the router, ":hairpin" makes the router hairpin,
# ":nopmp" (upnp only) turns miniupnpd's NAT-PMP/PCP off so that clients have to use UPnP IGD.
# Carrier NAT: KIND cgnat is a carrier's NAT (RFC 6888: endpoint-independent mapping, port-restricted
# filtering, hairpinning with ":hairpin"), with no hosts of its own; a site with ":via=CARRIER" (listed
# after its carrier) is a home router whose WAN is in the carrier's 100.64.0.0/10 instead of public.
# ":v6" gives the site routed global IPv6 besides its IPv4 NAT (no NAT66), with a stateful firewall on the
# router that lets in only replies (as home routers do).
#
# Addresses: public segment 198.18.0.0/16 (server 198.18.0.1 and .0.2; router N: 198.18.10.N, after
# `readdress` 198.18.11.N), reached through its ISP's router isp-SITE (198.18.20.N, proxy ARP: one routed
# hop between every site and the rest of the public segment, as on the Internet); site LAN 192.168.N.0/24
# (router .1, hosts .2 and .3); a `none` site's hosts sit on 198.19.N.0/24, routed by its router. A carrier
# (cgnat) N has the shared address space 100.64.N.0/24 inside (itself .1, customer router M at .(10+M)).
# IPv6 (documentation space, no proxy NDP: plain routes): public segment 2001:db8::/64 (server 2001:db8::1
# and ::2, ISP N 2001:db8::20:N); ISP-router link 2001:db8:100:N::/64 (ISP ::1, router ::2); a `:v6`
# site's LAN 2001:db8:N::/64 (router ::1, hosts ::2 and ::3). See docs/NATLAB.md for how each behaviour is made.
set -euo pipefail

P=${NATLAB_PREFIX:-nl}
STATE=${NATLAB_STATE:-${TMPDIR:-/tmp}/natlab-$P}
PUB=$P-pub
SRV=$P-srv
UDP_TIMEOUT=30

die() { echo "lab.sh: $*" >&2; exit 1; }
ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

# -- prerequisites ---------------------------------------------------------------------------------

cmd_check() {
    if [ "$(id -u)" != 0 ]; then echo "natlab: SKIP: needs root (network namespaces, nftables)"; exit 77; fi
    command -v ip >/dev/null || { echo "natlab: SKIP: iproute2 missing and not installable"; exit 77; }
    if ! ip netns add "$P-probe" 2>/dev/null; then
        echo "natlab: SKIP: network namespaces are not available here (ip netns add failed)"; exit 77
    fi
    local ok=1
    ns "$P-probe" nft add table ip probe 2>/dev/null || ok=0
    ip netns del "$P-probe"
    [ $ok = 1 ] || { echo "natlab: SKIP: nftables does not work in a namespace (kernel without nf_tables?)"; exit 77; }
}

install_missing() {
    local need=()
    command -v ip >/dev/null || need+=(iproute2)
    command -v nft >/dev/null || need+=(nftables)
    command -v conntrack >/dev/null || need+=(conntrack)
    command -v miniupnpd >/dev/null || need+=(miniupnpd)
    [ ${#need[@]} = 0 ] && return 0
    echo "natlab: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y "${need[@]}" >/dev/null; } ||
        die "cannot install ${need[*]}"
    # The Debian package starts nothing without systemd, but make sure no stray daemon holds the host.
    return 0
}

# -- state: one line per site: NAME KIND INDEX HOSTS HAIRPIN PMP CARRIER (- when public) -------------

sites() { [ -f "$STATE/sites" ] && cat "$STATE/sites" || true; }
site_field() { # site_field NAME FIELDNO
    awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$STATE/sites" | grep . || die "no site '$1'"
}
wan_ip() { cat "$STATE/wan-$1"; }
lan_net() { echo "$(lan_prefix "$1").0/24"; }
lan_prefix() { local k; k=$(site_field "$1" 2); local i; i=$(site_field "$1" 3)
    case $k in none) echo "198.19.$i" ;; cgnat) echo "100.64.$i" ;; *) echo "192.168.$i" ;; esac; }

# -- building blocks --------------------------------------------------------------------------------

new_ns() {
    ip netns add "$1"
    ns "$1" ip link set lo up
    ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# router_rules SITE: the nftables ruleset of a site's router (regenerated when its public address changes).
router_rules() {
    local site=$1 kind hairpin wan lan
    kind=$(site_field "$site" 2); hairpin=$(site_field "$site" 5)
    wan=$(wan_ip "$site"); lan=$(lan_net "$site")
    cat <<EOF
table ip lab
delete table ip lab
table ip lab {
    # public UDP port -> the LAN host that owns it (Linux NAT keeps the source port unless it collides),
    # learned from outgoing traffic; used for full cone (EIF) and hairpinning.
    map owner { type inet_service : ipv4_addr; flags dynamic,timeout; timeout ${UDP_TIMEOUT}s; }
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
EOF
    [ "$kind" = full ] && echo "        iifname \"wan\" ip daddr $wan dnat ip to udp dport map @owner"
    [ "$hairpin" = 1 ] && echo "        iifname \"lan\" ip daddr $wan dnat ip to udp dport map @owner"
    cat <<EOF
    }
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
EOF
    # A hairpinned packet leaves with the router's public address so the peer host answers through it.
    [ "$hairpin" = 1 ] && echo "        oifname \"lan\" ip saddr $lan ct status dnat snat ip to $wan"
    case $kind in
        full|prc|upnp|masq|cgnat) echo "        oifname \"wan\" ip saddr $lan masquerade" ;;
        sym) echo "        oifname \"wan\" ip saddr $lan masquerade random" ;;
    esac
    cat <<EOF
    }
    chain learn {
        type filter hook postrouting priority 300; policy accept;
        oifname "wan" meta l4proto udp ct original ip saddr $lan update @owner { udp sport timeout ${UDP_TIMEOUT}s : ct original ip saddr }
    }
EOF
    # masq has no filter at all: what nobody asked for goes to the router itself (nothing listens there),
    # and conntrack keeps it as an UNREPLIED entry that later punches refresh.
    if [ "$kind" != none ] && [ "$kind" != masq ]; then
        # Unsolicited packets are dropped before conntrack confirms them: a rejected probe must not leave
        # an entry that would force the NAT to pick another port for the host's own mapping later.
        cat <<EOF
    chain routed {
        type filter hook forward priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" ct status dnat accept
        iifname "wan" drop
    }
    chain to_router {
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" icmp type echo-request accept
EOF
        # miniupnpd's start-up STUN check (see start_miniupnpd) needs answers from other addresses and ports.
        [ "$kind" = upnp ] &&
            echo "        iifname \"wan\" ip saddr { 198.18.0.1, 198.18.0.2 } udp sport { 3478, 3479 } accept"
        cat <<EOF
        iifname "wan" drop
    }
EOF
    fi
    echo "}"
}

apply_rules() { router_rules "$1" | ns "$P-r-$1" nft -f - || die "nftables rejected the ruleset of $1"; }

start_miniupnpd() {
    local site=$1 i conf pmp
    i=$(site_field "$site" 3); pmp=$(site_field "$site" 6); conf=$STATE/miniupnpd-$site.conf
    # 198.18.0.0/15 is a reserved range: miniupnpd maps nothing there unless a STUN check (against the lab's
    # STUN server, stun.py) shows that nothing filters in front of its WAN. That is what ext_perform_stun does.
    # miniupnpd's nftables backend adds its rules to these chains; the lab's own table filters and NATs.
    ns "$P-r-$site" nft -f - <<EOF
table inet upnp {
    chain forward { type filter hook forward priority filter - 5; policy accept; jump miniupnpd; }
    chain miniupnpd { }
    chain prerouting { type nat hook prerouting priority dstnat - 5; policy accept; jump prerouting_miniupnpd; }
    chain prerouting_miniupnpd { }
    chain postrouting { type nat hook postrouting priority srcnat - 5; policy accept; jump postrouting_miniupnpd; }
    chain postrouting_miniupnpd { }
}
EOF
    cat >"$conf" <<EOF
ext_ifname=wan
listening_ip=lan
http_port=5000
enable_natpmp=$([ "$pmp" = 1 ] && echo yes || echo no)
enable_upnp=yes
secure_mode=yes
system_uptime=no
notify_interval=30
clean_ruleset_interval=600
uuid=3f1e2d3c-4b5a-6978-8a9b-0000000000$(printf %02x "$i")
upnp_table_name=upnp
upnp_nat_table_name=upnp
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
ext_perform_stun=yes
ext_stun_host=198.18.0.1
ext_stun_port=3478
allow 1024-65535 192.168.$i.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
    ns "$P-r-$site" miniupnpd -f "$conf" -d -P "$STATE/miniupnpd-$site.pid" >"$STATE/miniupnpd-$site.log" 2>&1 &
    echo $! >>"$STATE/pids"
}

# add_isp SITE INDEX: the ISP's router in front of a site: one routed hop (the TTL drops by one) between the
# site's router and the public segment. Proxy ARP on both sides keeps the addressing flat: the site router
# still sees 198.18.0.0/16 on its WAN, and the others reach 198.18.10.N (and 198.18.11.N) through 198.18.20.N.
add_isp() {
    local site=$1 i=$2 isp=$P-isp-$1
    new_ns "$isp"
    ns "$isp" sysctl -qw net.ipv4.ip_forward=1
    ip link add pub netns "$isp" type veth peer name "p-$site" netns "$PUB"
    ns "$PUB" ip link set "p-$site" master br0 up
    ns "$isp" ip addr add "198.18.20.$i/16" dev pub
    ns "$isp" ip link set pub up
    # Answer at once (Linux waits up to proxy_delay before a proxy ARP reply by default).
    ns "$isp" sysctl -qw net.ipv4.conf.pub.proxy_arp=1 net.ipv4.neigh.pub.proxy_delay=0
}

# isp_routes SITE: once the site's link is up, the ISP routes the site's public addresses (and a `none`
# site's hosts) to it.
isp_routes() {
    local site=$1 i isp=$P-isp-$1 k
    i=$(site_field "$site" 3); k=$(site_field "$site" 2)
    ns "$isp" ip route add "198.18.10.$i/32" dev cust
    ns "$isp" ip route add "198.18.11.$i/32" dev cust
    [ "$k" = none ] && ns "$isp" ip route add "198.19.$i.0/24" via "198.18.10.$i" dev cust
    return 0
}

# attach_to_carrier SITE INDEX CARRIER: the site router's WAN is a customer port of the carrier's NAT.
attach_to_carrier() {
    local site=$1 i=$2 carrier=$3 r=$P-r-$1 ci addr
    [ "$(site_field "$carrier" 2)" = cgnat ] || die "site $site: '$carrier' is not a cgnat site listed before it"
    ci=$(site_field "$carrier" 3); addr=100.64.$ci.$((10 + i))
    echo "$addr" >"$STATE/wan-$site"
    ip link add wan netns "$r" type veth peer name "k$i" netns "$P-r-$carrier"
    ns "$P-r-$carrier" ip link set "k$i" master lan up
    ns "$r" ip addr add "$addr/24" dev wan
    ns "$r" ip link set wan up
    ns "$r" ip route add default via "100.64.$ci.1" dev wan
}

add_site() {
    local site=$1 kind=$2 i=$3 hosts=$4 hairpin=$5 pmp=$6 carrier=${7:--} r=$P-r-$1 pfx k h
    [ ${#site} -le 10 ] || die "site name '$site' is longer than 10 characters"
    echo "$site $kind $i $hosts $hairpin $pmp $carrier" >>"$STATE/sites"
    echo "198.18.10.$i" >"$STATE/wan-$site"
    new_ns "$r"
    ns "$r" sysctl -qw net.ipv4.ip_forward=1 \
        net.netfilter.nf_conntrack_udp_timeout=$UDP_TIMEOUT \
        net.netfilter.nf_conntrack_udp_timeout_stream=$UDP_TIMEOUT
    # With br_netfilter loaded (Docker does that) a DNAT on the LAN bridge becomes a bridge-level forward,
    # which never sends a frame back out of the port it came from: hairpinning to the same host would fail.
    ns "$r" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
    if [ "$carrier" != - ]; then
        attach_to_carrier "$site" "$i" "$carrier"
    else
        add_isp "$site" "$i"
        ip link add wan netns "$r" type veth peer name cust netns "$P-isp-$site"
        ns "$P-isp-$site" ip link set cust up
        ns "$P-isp-$site" sysctl -qw net.ipv4.conf.cust.proxy_arp=1 net.ipv4.neigh.cust.proxy_delay=0
        # readdress adds the new address before it removes the old one: the new one must survive that.
        ns "$r" sysctl -qw net.ipv4.conf.wan.promote_secondaries=1
        ns "$r" ip addr add "198.18.10.$i/16" dev wan
        ns "$r" ip link set wan up
        ns "$r" ip route add default dev wan
        isp_routes "$site"
    fi
    ns "$r" ip link add lan type bridge
    pfx=$(lan_prefix "$site")
    ns "$r" ip addr add "$pfx.1/24" dev lan
    ns "$r" ip link set lan up
    for k in $(seq 1 "$hosts"); do
        h=$P-h-$site; [ "$k" = 1 ] || h=$h-$k
        new_ns "$h"
        ip link add eth0 netns "$h" type veth peer name "h$k" netns "$r"
        ns "$r" ip link set "h$k" master lan up
        ns "$h" ip addr add "$pfx.$((k + 1))/24" dev eth0
        ns "$h" ip link set eth0 up
        ns "$h" ip route add default via "$pfx.1"
    done
    apply_rules "$site"
    [ "$kind" = upnp ] && start_miniupnpd "$site"
    return 0
}

# -- IPv6 (":v6" sites) ------------------------------------------------------------------------------

enable_ipv6() { ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0; }
is_v6() { [ -e "$STATE/v6-$1" ]; }
v6_lan() { echo "2001:db8:$(site_field "$1" 3)::"; }

# router_rules6: the router's IPv6 firewall. No NAT: the LAN's global addresses are routed as they are;
# from the WAN, only replies to what the LAN sent (and the ICMPv6 that IPv6 needs) get in.
router_rules6() {
    cat <<EOF
table ip6 lab6
delete table ip6 lab6
table ip6 lab6 {
    chain routed {
        type filter hook forward priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept
        iifname "wan" drop
    }
    chain to_router {
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, echo-request, packet-too-big } accept
        iifname "wan" drop
    }
}
EOF
}

# add_site_v6 SITE INDEX HOSTS: routed IPv6 for a site built by add_site (its ISP, router and hosts).
add_site_v6() {
    local site=$1 i=$2 hosts=$3 r=$P-r-$1 isp=$P-isp-$1 k h n
    touch "$STATE/v6-$site"
    for n in "$isp" "$r"; do enable_ipv6 "$n"; ns "$n" sysctl -qw net.ipv6.conf.all.forwarding=1; done
    ns "$isp" ip addr add "2001:db8::20:$i/64" dev pub nodad
    ns "$isp" ip addr add "2001:db8:100:$i::1/64" dev cust nodad
    ns "$isp" ip route add "2001:db8:$i::/64" via "2001:db8:100:$i::2" dev cust
    ns "$r" ip addr add "2001:db8:100:$i::2/64" dev wan nodad
    ns "$r" ip route add default via "2001:db8:100:$i::1" dev wan
    ns "$r" ip addr add "2001:db8:$i::1/64" dev lan nodad
    for k in $(seq 1 "$hosts"); do
        h=$P-h-$site; [ "$k" = 1 ] || h=$h-$k
        enable_ipv6 "$h"
        ns "$h" ip addr add "2001:db8:$i::$((k + 1))/64" dev eth0 nodad
        ns "$h" ip route add default via "2001:db8:$i::1" dev eth0
    done
    router_rules6 | ns "$r" nft -f - || die "nftables rejected the IPv6 ruleset of $site"
}

# route_ipv6_sites: the server and every IPv6 ISP reach each `:v6` site's LAN through that site's ISP.
route_ipv6_sites() {
    local s idx n o
    while read -r s _ idx _; do
        is_v6 "$s" || continue
        for n in "$SRV" $(for o in $(awk '{ print $1 }' "$STATE/sites"); do
            if is_v6 "$o" && [ "$o" != "$s" ]; then echo "$P-isp-$o"; fi; done); do
            ns "$n" ip route add "2001:db8:$idx::/64" via "2001:db8::20:$idx"
        done
    done <"$STATE/sites"
}

cmd_up() {
    [ $# -gt 0 ] || die "usage: lab.sh up SITE=KIND[:2][:hairpin] ..."
    [ ! -e "$STATE/sites" ] || die "a lab is already up (state in $STATE); run 'lab.sh down' first"
    cmd_check >/dev/null || exit $?
    install_missing
    mkdir -p "$STATE"; : >"$STATE/sites"; : >"$STATE/pids"
    trap 'echo "lab.sh: building the lab failed; cleaning up" >&2; cmd_down' EXIT
    new_ns "$PUB"
    ns "$PUB" ip link add br0 type bridge
    ns "$PUB" ip link set br0 up
    new_ns "$SRV"
    ip link add eth0 netns "$SRV" type veth peer name p-srv netns "$PUB"
    ns "$PUB" ip link set p-srv master br0 up
    ns "$SRV" ip addr add 198.18.0.1/16 dev eth0
    ns "$SRV" ip addr add 198.18.0.2/16 dev eth0
    ns "$SRV" ip link set eth0 up
    ns "$SRV" python3 "$(dirname "$0")/stun.py" 198.18.0.1 198.18.0.2 >"$STATE/stun.log" 2>&1 &
    echo $! >>"$STATE/pids"
    enable_ipv6 "$SRV"
    ns "$SRV" ip addr add 2001:db8::1/64 dev eth0 nodad
    ns "$SRV" ip addr add 2001:db8::2/64 dev eth0 nodad
    local i=0 arg name spec kind hosts hairpin pmp part carrier v6
    for arg in "$@"; do
        i=$((i + 1))
        name=${arg%%=*}; spec=${arg#*=}
        [ "$name" != "$arg" ] || die "site '$arg': expected NAME=KIND"
        kind=${spec%%:*}; hosts=1; hairpin=0; pmp=1; carrier=-; v6=0
        case $kind in none|full|prc|sym|upnp|masq) ;; cgnat) hosts=0 ;; *) die "site $name: unknown kind '$kind'";; esac
        IFS=: read -ra parts <<<"${spec#"$kind"}"
        for part in "${parts[@]}"; do
            case $part in ""|:) ;; 2) hosts=2 ;; hairpin) hairpin=1 ;; nopmp) pmp=0 ;; v6) v6=1 ;; via=*) carrier=${part#via=} ;;
                *) die "site $name: unknown option '$part'";; esac
        done
        add_site "$name" "$kind" "$i" "$hosts" "$hairpin" "$pmp" "$carrier"
        [ $v6 = 0 ] || add_site_v6 "$name" "$i" "$hosts"
    done
    route_ipv6_sites
    # Public hosts (kind none) are routed by their router: everyone on the public segment learns the route
    # (customers of a carrier reach them through the carrier's default route).
    local s k idx nodes n
    nodes="$SRV $(awk -v p="$P" '$7 == "-" || $7 == "" { print p "-r-" $1, p "-isp-" $1 }' "$STATE/sites")"
    while read -r s k idx _; do
        [ "$k" = none ] || continue
        for n in $nodes; do
            case $n in "$P-r-$s"|"$P-isp-$s") ;; *) ns "$n" ip route add "198.19.$idx.0/24" via "198.18.10.$idx" ;; esac
        done
    done <"$STATE/sites"
    trap - EXIT
    cmd_info
}

cmd_down() {
    local pid n
    if [ -f "$STATE/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$STATE/pids"
    fi
    # Processes started by tests inside the namespaces (they record their pids in $STATE/pids too) are
    # gone with the line above; anything else still inside one of our namespaces is ours as well.
    for n in $(ip netns list | awk '{ print $1 }' | grep -E "^$P-(pub|srv|isp-|r-|h-)" || true); do
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    sleep 0.3
    for n in $(ip netns list | awk '{ print $1 }' | grep -E "^$P-(pub|srv|isp-|r-|h-)" || true); do
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || true
    done
    rm -rf "$STATE"
}

cmd_exec() {
    [ $# -ge 2 ] || die "usage: lab.sh exec NODE CMD..."
    local node=$1; shift
    ns "$P-$node" "$@"
}

cmd_wan() {
    local site=$1 dir=${2:-}
    case $dir in
        down) ns "$P-r-$site" ip link set wan down ;;
        up) ns "$P-r-$site" ip link set wan up
            ns "$P-r-$site" ip route replace default dev wan
            ! is_v6 "$site" || ns "$P-r-$site" ip -6 route replace default via "2001:db8:100:$(site_field "$site" 3)::1" dev wan ;;
        *) die "usage: lab.sh wan SITE down|up" ;;
    esac
}

cmd_flush() { ns "$P-r-$1" conntrack -F 2>/dev/null || true; }

cmd_readdress() {
    local site=$1 i old new
    i=$(site_field "$site" 3); old=$(wan_ip "$site")
    if [ "$old" = "198.18.10.$i" ]; then new=198.18.11.$i; else new=198.18.10.$i; fi
    ns "$P-r-$site" ip addr add "$new/16" dev wan
    ns "$P-r-$site" ip addr del "$old/16" dev wan
    ns "$P-r-$site" ip route replace default dev wan
    echo "$new" >"$STATE/wan-$site"
    apply_rules "$site"
    # Mappings made with the old address are useless now: forget them like a real router's reboot would.
    cmd_flush "$site"
    echo "$site: public address $old -> $new"
}

# cmd_late NODE MS: NODE's TCP connections to the server's control port go through a proxy in NODE that
# holds every chunk MS ms in each direction (no tc netem here: nftables redirects, delay.py delays).
cmd_late() {
    local node=$1 ms=${2:-} n=$P-$1
    [ -n "$ms" ] || die "usage: lab.sh late NODE MS"
    ns "$n" python3 "$(dirname "$0")/delay.py" 127.0.0.1:15980 198.18.0.1:5980 "$ms" 0x4c >>"$STATE/delay-$node.log" 2>&1 &
    echo $! >>"$STATE/pids"
    # The proxy's own connection to the server carries mark 0x4c and is not redirected again.
    ns "$n" nft -f - <<EOF
table ip late
delete table ip late
table ip late {
    chain out {
        type nat hook output priority -100; policy accept;
        ip daddr 198.18.0.1 tcp dport 5980 meta mark != 0x4c redirect to :15980
    }
}
EOF
    for _ in $(seq 50); do ns "$n" bash -c 'exec 3<>/dev/tcp/127.0.0.1/15980' 2>/dev/null && return 0; sleep 0.1; done
    die "the delay proxy in $node did not start"
}

cmd_upnp_list() { ns "$P-r-$1" nft list chain inet upnp prerouting_miniupnpd; }

cmd_info() {
    local s k i h hp pmp c
    echo "server: 198.18.0.1 198.18.0.2 2001:db8::1 2001:db8::2 (node srv)"
    while read -r s k i h hp pmp c; do
        printf '%-10s %-5s wan %-13s lan %-16s hosts %s%s%s%s\n' "$s" "$k" "$(wan_ip "$s")" "$(lan_net "$s")" "$h" \
            "$([ "$hp" = 1 ] && echo ' hairpin' || true)" "$([ "$k" = upnp ] && [ "$pmp" = 0 ] && echo ' no-NAT-PMP' || true)" \
            "$([ "${c:--}" != - ] && echo " behind carrier $c" || true)"
        ! is_v6 "$s" || echo "           IPv6 lan $(v6_lan "$s")/64, firewall: replies only"
    done <"$STATE/sites"
}

case ${1:-} in
    check) cmd_check; echo "natlab: namespaces and nftables work" ;;
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    exec) shift; cmd_exec "$@" ;;
    wan) shift; cmd_wan "$@" ;;
    flush) shift; cmd_flush "$@" ;;
    readdress) shift; cmd_readdress "$@" ;;
    upnp-list) shift; cmd_upnp_list "$@" ;;
    late) shift; cmd_late "$@" ;;
    info) cmd_info ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
