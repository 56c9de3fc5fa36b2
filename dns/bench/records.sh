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
PID0=$!; PIDS+=($PID0)
"${SRV_PIN[@]}" "$B" serve -addr "127.0.0.1:$P1" -records "$RECORDS" >"$TMP/s1.log" 2>&1 &
PID1=$!; PIDS+=($PID1)
for p in "$P0" "$P1"; do
	for _ in $(seq 100); do
		dig @127.0.0.1 -p "$p" +time=1 +tries=1 +short +subnet=fdaa:0:18::/48 app1.internal AAAA 2>/dev/null | grep -q fdaa && break
		sleep 0.1
	done
done
if [ "$(dig @127.0.0.1 -p "$P1" +short +subnet=fdaa:0:18::/48 rec6.internal AAAA | wc -l)" = 0 ]; then
	echo "bench: the server with records does not answer rec6.internal (ALIAS)" >&2; exit 1
fi

# On a shared machine throughput swings with other load; the server's CPU time per
# answered query (utime+stime from /proc) is the steadier measure, so both are shown.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
perf() { # port, pid, query file → "qps cpu-us-per-query"
	local t0 t1 out
	t0=$(ticks "$2")
	out=$("${CLI_PIN[@]}" dnsperf -s 127.0.0.1 -p "$1" -d "$3" -c "$CLIENTS" -q 200 -E "$ECS" -l "$DURATION" 2>&1)
	t1=$(ticks "$2")
	echo "$out" | awk -v d=$((t1 - t0)) -v hz="$HZ" '/Queries completed/ {n=$3} /Queries per second/ {q=$4}
		END {printf "%d %.2f\n", q, (n > 0 ? d / hz * 1e6 / n : 0)}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$TMP/q0"; : >"$TMP/q1"; : >"$TMP/c0"; : >"$TMP/c1"
for r in $(seq "$ROUNDS"); do
	# ABBA order, so a load change during a round does not favour one server.
	if [ $(( r % 2 )) = 1 ]; then
		a=$(perf "$P0" "$PID0" "$TMP/queries.txt"); b=$(perf "$P1" "$PID1" "$TMP/queries.txt")
	else
		b=$(perf "$P1" "$PID1" "$TMP/queries.txt"); a=$(perf "$P0" "$PID0" "$TMP/queries.txt")
	fi
	echo "${a% *}" >>"$TMP/q0"; echo "${b% *}" >>"$TMP/q1"
	echo "${a#* }" >>"$TMP/c0"; echo "${b#* }" >>"$TMP/c1"
	echo "round $r: without records ${a% *} qps ${a#* } us/query, with $RECORDS records ${b% *} qps ${b#* } us/query"
done
Q0=$(median <"$TMP/q0"); Q1=$(median <"$TMP/q1")
C0=$(sort -g "$TMP/c0" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
C1=$(sort -g "$TMP/c1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
QR=$(perf "$P1" "$PID1" "$TMP/queries-records.txt")
cat <<EOF

================ custom records ================
catalog            1000 apps x 10 machines, 4 regions, 1 network; query mix of run.sh
without records    $Q0 qps, $C0 us CPU per query (medians of $ROUNDS)
with $RECORDS      $Q1 qps, $C1 us CPU per query
qps change         $(awk -v a="$Q0" -v b="$Q1" 'BEGIN {printf "%+.1f %%", (b-a)*100/a}') (target >= -5 %)
CPU/query change   $(awk -v a="$C0" -v b="$C1" 'BEGIN {printf "%+.1f %%", (b-a)*100/a}') (the steadier measure on a busy machine)
custom names only  ${QR% *} qps, ${QR#* } us CPU per query (one run; ALIAS, CNAME, wildcard, AAAA, TXT)
================================================
EOF
