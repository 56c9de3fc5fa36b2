#!/usr/bin/env bash
# One TCP stream, machine → machine across two hosts (Dogwood agents, userspace
# WireGuard, machines in namespaces behind veths and the isolation filter), next to
# the same two hosts joined by a bare wireguard-go tunnel configured with `wg`. The
# ratio is our overhead. Root only; every address is inside namespaces made here.
set -euo pipefail
P=${P:-dwip$(printf '%04x' $RANDOM)}
SECS=${SECS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${DOGWOOD_BIN:-$ROOT/bin/dogwood}
S=$(mktemp -d /tmp/dogwood-iperf.XXXX)

. "$(dirname "$0")/lib.sh"
trap down EXIT
[ "$(id -u)" = 0 ] || { echo "iperf.sh: needs root, skipped"; exit 0; }

reach() { # ns addr: wait until the path is up (first handshake, attach)
	for _ in $(seq 50); do ip netns exec "$1" ping -6 -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "no path from $1 to $2" >&2
	return 1
}
gbps() { sed -n 's/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' | tail -1 | awk '{printf "%.2f", $1/1e9}'; }

# Dogwood.
underlay h 0
agents
"$BIN" --agent "$S/h1.sock" orgs create bench >/dev/null
"$BIN" --agent "$S/h1.sock" apps create perf --org bench >/dev/null
for i in 1 2; do
	ip netns add "$P-m$i"
	"$BIN" --agent "$S/h$i.sock" machines create --app perf --netns "$P-m$i" --json >"$S/m$i.json"
done
M2=$(sed -n 's/.*"address": "\(.*\)".*/\1/p' "$S/m2.json")
ip netns exec "$P-m2" iperf3 -s -1 -D -I "$S/iperf-m.pid" >/dev/null
sleep 0.3
reach "$P-m1" "$M2"
OURS=$(ip netns exec "$P-m1" iperf3 -6 -c "$M2" -t "$SECS" -J | gbps)

# Bare wireguard-go between two namespaces, configured with wg.
underlay b 1
for i in 1 2; do
	wg genkey >"$S/b$i.key"
	wg pubkey <"$S/b$i.key" >"$S/b$i.pub"
	ip netns exec "$P-b$i" wireguard-go "${P}b$i"
	ip netns exec "$P-b$i" wg set "${P}b$i" private-key "$S/b$i.key" listen-port 51820
	ip netns exec "$P-b$i" ip addr add fd00::$i/64 dev "${P}b$i"
	ip netns exec "$P-b$i" ip link set "${P}b$i" mtu 1420 up
done
ip netns exec "$P-b1" wg set "${P}b1" peer "$(cat "$S/b2.pub")" endpoint 198.18.1.2:51820 allowed-ips fd00::2/128
ip netns exec "$P-b2" wg set "${P}b2" peer "$(cat "$S/b1.pub")" endpoint 198.18.1.1:51820 allowed-ips fd00::1/128
ip netns exec "$P-b2" iperf3 -s -1 -D -I "$S/iperf-b.pid" >/dev/null
sleep 0.3
reach "$P-b1" fd00::2
BARE=$(ip netns exec "$P-b1" iperf3 -6 -c fd00::2 -t "$SECS" -J | gbps)
for i in 1 2; do pkill -f "wireguard-go ${P}b$i" || true; done

echo "BENCH iperf3_dogwood_machine_to_machine=${OURS}Gbit/s bare_wireguard_go=${BARE}Gbit/s ratio=$(echo "scale=2; $OURS / $BARE" | bc)"
