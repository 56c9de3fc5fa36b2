#!/bin/sh
# Runs inside a fresh network namespace (gen.sh): two agents of one old binary on
# loopback write orgs, apps (the same name in two orgs), machines (started and
# stopped, with metadata and services), a user peer and, where the binary has them,
# custom DNS records; then both stop gracefully and h1's data dir is the golden copy.
set -eu
B=$1 dir=$2
mkdir -p "$dir"
ip link set lo up
cleanup() { for p in "$dir"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done; }
trap cleanup EXIT
"$B" keygen >"$dir/key"
start() { # name port [join]
	# --flag=value: some commits' argument reordering took a value for a flag name.
	"$B" agent --name="$1" --data-dir="$dir/$1" --region=ord --gossip-addr="127.0.0.1:$2" \
		--gossip-key-file="$dir/key" --wireguard=userspace --wg-interface="gd$$$1" --wg-port="$(($2 + 100))" \
		--gateway --public-endpoint="127.0.0.1:$(($2 + 100))" --api-socket="$dir/$1.sock" \
		--upstream-dns=127.0.0.1:9 $3 >"$dir/$1.log" 2>&1 &
	echo $! >"$dir/$1.pid"
	i=0
	until DOGWOOD_AGENT="$dir/$1.sock" "$B" status >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/$1.log"; exit 1; }; sleep 0.1
	done
}
start h1 7946 ""
start h2 7947 "--join=127.0.0.1:7946"
h1() { DOGWOOD_AGENT="$dir/h1.sock" "$B" "$@"; }
h2() { DOGWOOD_AGENT="$dir/h2.sock" "$B" "$@"; }
h1 orgs create acme
h1 orgs create o2
h1 apps create web --org acme
h1 apps create api --org o2
h1 apps create api --org acme 2>/dev/null || true # names are per org since 7b13a38
h1 machines create --app web --region ord --metadata role=front --service http:tcp:8080
h1 machines create --app api --org o2 --stopped 2>/dev/null || h1 machines create --app api --stopped
h1 machines create --app web --stopped
gone=$(h1 machines create --app web --json | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p' | head -1)
h1 machines destroy "$gone"
h1 wireguard create acme ord laptop "$dir/laptop.conf"
if h1 dns --help >/dev/null 2>&1; then
	h1 dns add acme www CNAME web.internal
	h1 dns add acme db AAAA fdaa:0:1::5
fi
# h2's records reach h1's disk by gossip.
sleep 1
h2 machines create --app web --region ord
i=0
until [ "$(h1 machines list --json | grep -o '"id"' | wc -l)" -ge 3 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "h2's machine never reached h1" >&2; exit 1; }; sleep 0.1
done
sleep 1 # the batching writer's window
h1 machines list >&2
kill -TERM "$(cat "$dir/h2.pid")" "$(cat "$dir/h1.pid")"
while kill -0 "$(cat "$dir/h1.pid")" 2>/dev/null || kill -0 "$(cat "$dir/h2.pid")" 2>/dev/null; do sleep 0.1; done
