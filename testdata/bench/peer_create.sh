#!/usr/bin/env bash
# Peer create latency: wall time of `dogwood wireguard create` (CLI start → the
# gateway has installed the peer; the CLI returns only then), over N creates with
# PRELOAD peers already on the gateway, once against the gateway's own agent (local
# gateway) and once against another host's agent (remote gateway). Two hosts in
# network namespaces on 198.18.0.0/24, userspace WireGuard. Root only.
set -euo pipefail
P=${P:-dwpb$(printf '%04x' $RANDOM)}
N=${N:-200}
PRELOAD=${PRELOAD:-1000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${DOGWOOD_BIN:-$ROOT/bin/dogwood}
S=$(mktemp -d /tmp/dogwood-peerbench.XXXX)

. "$(dirname "$0")/lib.sh"
trap down EXIT
[ "$(id -u)" = 0 ] || { echo "peer_create.sh: needs root, skipped"; exit 0; }

underlay h 0
agents --gateway --public-endpoint 198.18.0.1:51820
"$BIN" --agent "$S/h1.sock" orgs create bench >/dev/null

echo "preloading $PRELOAD peers on the gateway…"
for i in $(seq "$PRELOAD"); do
	"$BIN" --agent "$S/h1.sock" wireguard create bench ord "pre$i" - >/dev/null
done

measure() { # label socket
	local label=$1 sock=$2 f="$S/$1.txt"
	: >"$f"
	for i in $(seq "$N"); do
		t0=$(date +%s%N)
		"$BIN" --agent "$sock" wireguard create bench ord "$label$i" - >/dev/null
		echo $((($(date +%s%N) - t0) / 1000)) >>"$f"
	done
	sort -n "$f" | awk -v label="$label" -v n="$N" '{a[NR]=$1} END {
		p50=a[int(n*0.50)]; p99=a[int(n*0.99)]; printf "BENCH peer_create_%s n=%d p50=%.1fms p99=%.1fms max=%.1fms\n", label, n, p50/1000, p99/1000, a[n]/1000 }'
}
measure local "$S/h1.sock"
measure remote "$S/h2.sock"
echo "gateway peers at the end: $(ip netns exec "$P-h1" wg show "${P}w1" peers | wc -l) (1 host peer + user peers)"
