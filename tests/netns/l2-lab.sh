#!/bin/sh
# A hand-run lab for Portico's L2 announcer, the same topology the tests build:
#   <prefix>c   client namespace, bridge br0 10.77.0.1/24 fd77::1/64
#   <prefix>eN  edge namespaces, eth0 10.77.0.1N/24 fd77::1N/64, MAC 02:77:00:00:00:0N
# Usage (root):  tests/netns/l2-lab.sh up [PREFIX] [EDGES]   then e.g.
#   ip netns exec labe1 gateway announce-debug --iface eth0 --ip 10.77.0.100 --node edge-1 \
#       --gossip-listen 10.77.0.11:7946 --peer 10.77.0.12:7946
#   ip netns exec labc arping -i br0 10.77.0.100
#                tests/netns/l2-lab.sh down [PREFIX]
# Needs: iproute2 arping ndisc6 netcat-openbsd
set -eu
cmd=${1:-up}
p=${2:-lab}
n=${3:-2}
case "$cmd" in
up)
    ip netns add "${p}c"
    ip -n "${p}c" link set lo up
    ip -n "${p}c" link add br0 type bridge stp_state 0 mcast_snooping 0
    ip -n "${p}c" addr add 10.77.0.1/24 dev br0
    ip -n "${p}c" addr add fd77::1/64 dev br0 nodad
    ip -n "${p}c" link set br0 up
    i=1
    while [ "$i" -le "$n" ]; do
        e="${p}e$i"
        ip netns add "$e"
        ip link add "v$i" netns "${p}c" type veth peer name eth0 netns "$e"
        ip -n "$e" link set lo up
        ip -n "$e" link set eth0 address "02:77:00:00:00:0$i"
        ip -n "$e" addr add "10.77.0.1$i/24" dev eth0
        ip -n "$e" addr add "fd77::1$i/64" dev eth0 nodad
        ip -n "$e" link set eth0 up
        # Only the userspace responder answers for LoadBalancer IPs (strict ARP).
        ip netns exec "$e" sysctl -q -w net.ipv4.conf.all.arp_ignore=1
        ip -n "${p}c" link set "v$i" master br0
        ip -n "${p}c" link set "v$i" up
        i=$((i + 1))
    done
    ;;
down)
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^${p}(c|e[0-9]+)$"); do
        ip netns del "$ns"
    done
    ;;
*)
    echo "usage: $0 up|down [PREFIX] [EDGES]" >&2
    exit 2
    ;;
esac
