#!/usr/bin/env bash
# Cost of custom records (`dogwood dns add`) on DNS throughput: two Dogwood servers
# on the same catalog as run.sh (1,000 apps x 10 machines, 4 regions, one network),
# one without custom records and one with RECORDS of them (40 % AAAA, 20 % TXT,
# 20 % ALIAS, 10 % CNAME, 10 % wildcards), the same query mix as run.sh, alternating
# rounds (ABBA order), medians. Target: the second within 5 % of the first. A last run asks
# only custom names, for reference.
#
#   dns/bench/records.sh        Knobs: RECORDS (10000), DURATION (5), ROUNDS (5), CLIENTS (4), PIN (1)
set -euo pipefail

RECORDS=${RECORDS:-10000}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-4}
PIN=${PIN:-1}
ECS="8:00023000fdaa00000018"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
for tool in dnsperf dig go; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 1; }
done
TMP=$(mktemp -d -t dogwood-dns-records.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NCPU=$(nproc)
SRV_N=$(( NCPU / 2 )); [ "$SRV_N" -ge 1 ] || SRV_N=1
SRV_PIN=(); CLI_PIN=()
if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
	SRV_PIN=(taskset -c "0-$(( SRV_N - 1 ))")
	CLI_PIN=(taskset -c "$SRV_N-$(( NCPU - 1 ))")
fi

(cd "$ROOT" && go build -o "$TMP/bench" ./dns/bench)
B="$TMP/bench"
"$B" gen -dir "$TMP" -records "$RECORDS" >/dev/null
P0=$("$B" freeport); P1=$("$B" freeport)
while [ "$P1" = "$P0" ]; do P1=$("$B" freeport); done
"${SRV_PIN[@]}" "$B" serve -addr "127.0.0.1:$P0" >"$TMP/s0.log" 2>&1 &
PIDS+=($!)
"${SRV_PIN[@]}" "$B" serve -addr "127.0.0.1:$P1" -records "$RECORDS" >"$TMP/s1.log" 2>&1 &
PIDS+=($!)
for p in "$P0" "$P1"; do
	for _ in $(seq 100); do
		dig @127.0.0.1 -p "$p" +time=1 +tries=1 +short +subnet=fdaa:0:18::/48 app1.internal AAAA 2>/dev/null | grep -q fdaa && break
		sleep 0.1
	done
done
if [ "$(dig @127.0.0.1 -p "$P1" +short +subnet=fdaa:0:18::/48 rec6.internal AAAA | wc -l)" = 0 ]; then
	echo "bench: the server with records does not answer rec6.internal (ALIAS)" >&2; exit 1
fi

perf() { # port, query file
	"${CLI_PIN[@]}" dnsperf -s 127.0.0.1 -p "$1" -d "$2" -c "$CLIENTS" -q 200 -E "$ECS" -l "$DURATION" 2>&1 |
		awk '/Queries per second/ {printf "%d\n", $4}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$TMP/q0"; : >"$TMP/q1"
for r in $(seq "$ROUNDS"); do
	# ABBA order, so a load change during a round does not favour one server.
	if [ $(( r % 2 )) = 1 ]; then
		a=$(perf "$P0" "$TMP/queries.txt"); b=$(perf "$P1" "$TMP/queries.txt")
	else
		b=$(perf "$P1" "$TMP/queries.txt"); a=$(perf "$P0" "$TMP/queries.txt")
	fi
	echo "$a" >>"$TMP/q0"; echo "$b" >>"$TMP/q1"
	echo "round $r: without records $a qps, with $RECORDS records $b qps"
done
Q0=$(median <"$TMP/q0"); Q1=$(median <"$TMP/q1")
QR=$(perf "$P1" "$TMP/queries-records.txt")
cat <<EOF

================ custom records ================
catalog            1000 apps x 10 machines, 4 regions, 1 network; query mix of run.sh
without records    $Q0 qps (median of $ROUNDS)
with $RECORDS      $Q1 qps (median of $ROUNDS)
change             $(awk -v a="$Q0" -v b="$Q1" 'BEGIN {printf "%+.1f %%", (b-a)*100/a}') (target >= -5 %)
custom names only  $QR qps (one run; ALIAS, CNAME, wildcard, AAAA, TXT)
================================================
EOF
