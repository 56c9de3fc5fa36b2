#!/usr/bin/env bash
# Dogwood .internal DNS vs Knot DNS, same catalog, same queries, loopback only.
#
#   dns/bench/run.sh            (from the repository root; `make bench` calls it)
#
# Catalog: 1,000 apps x 10 machines over 4 regions in one network (fdaa:0:18::/48).
# Queries: a shuffled mix of <app>.internal AAAA, <region>.<app>.internal AAAA and
# regions.<app>.internal TXT, every one carrying EDNS Client Subnet fdaa:0:18::/48
# (dnsperf -E 8:...), so Dogwood scopes them with SPEC §4 rule 3 exactly as in
# production. Knot serves a zone file generated from the same catalog and ignores ECS.
#
# Both servers get the same CPU budget: with taskset, servers run on the first half
# of the CPUs and dnsperf on the rest (Knot gets as many UDP workers as the servers'
# CPUs; Go sees the same count through its affinity mask). PIN=0 disables pinning.
# Runs alternate Knot/Dogwood for ROUNDS rounds and report medians, so noise from
# other work on the machine hits both alike.
#
# A third server, Dogwood with RECORDS custom records (`dogwood dns add`: AAAA, TXT,
# ALIAS, CNAME, wildcards) in the same network and, with HEALTH=1, health filtering
# (a tenth of the machines critical, one host of four unreachable: `bench serve
# -health`), runs in the same rounds, so the cost of both is measured against the
# same Knot. Filtered answers are not in Knot's zone, so that server is verified
# against the resolver in process instead. The machine's load average is printed
# before and after: on a shared machine, read the ratios, not the qps.
#
# Latency: each server at half of its own peak (the median of the throughput
# rounds), ROUNDS alternating runs, median p50 and p99; each run also reads the
# server's CPU time from /proc, so the CPU each one spends per query at that load
# is printed too (a figure the machine's load moves much less than latency). The
# faster server is asked more at half of its own peak, so each round also runs
# Dogwood at half of Knot's peak: the same rate for both.
#
# Knobs: DURATION (s per run, 5), ROUNDS (3), CLIENTS (dnsperf -c, 4), PIN (1),
# RECORDS (10000; 0 skips the third server), HEALTH (1).
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
PIN=${PIN:-1}
RECORDS=${RECORDS:-10000}
HEALTH=${HEALTH:-1}
RECS_NAME="with $RECORDS records"
[ "$HEALTH" = 1 ] && RECS_NAME="$RECS_NAME + health filtering"
ECS="8:00023000fdaa00000018" # family 2, source /48, scope 0, fdaa:0000:0018

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
for tool in dnsperf knotd dig go; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 1; }
done

TMP=$(mktemp -d -t dogwood-dns-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NCPU=$(nproc)
SRV_N=$(( NCPU / 2 )); [ "$SRV_N" -ge 1 ] || SRV_N=1
SRV_PIN=() ; CLI_PIN=()
if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
	SRV_PIN=(taskset -c "0-$(( SRV_N - 1 ))")
	CLI_PIN=(taskset -c "$SRV_N-$(( NCPU - 1 ))")
else
	SRV_N=$NCPU
fi

echo "== building"
(cd "$ROOT" && go build -o "$TMP/bench" ./dns/bench)
B="$TMP/bench"
"$B" gen -dir "$TMP" | sed 's/^/   /'
OURS_PORT=$("$B" freeport)
KNOT_PORT=$("$B" freeport)
while [ "$KNOT_PORT" = "$OURS_PORT" ]; do KNOT_PORT=$("$B" freeport); done
RECS_PORT=$("$B" freeport)
while [ "$RECS_PORT" = "$OURS_PORT" ] || [ "$RECS_PORT" = "$KNOT_PORT" ]; do RECS_PORT=$("$B" freeport); done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== starting Knot DNS on 127.0.0.1:$KNOT_PORT (${SRV_N} UDP workers) and Dogwood on 127.0.0.1:$OURS_PORT"
mkdir -p "$TMP/knot/run" "$TMP/knot/db"
USER_LINE=""
if [ "$(id -u)" = 0 ]; then
	# Never run the benchmark's Knot as root.
	USER_LINE="    user: nobody:nogroup"
	chmod 755 "$TMP"
	chown -R nobody:nogroup "$TMP/knot"
	chmod 644 "$TMP/internal.zone"
fi
cat >"$TMP/knot/knot.conf" <<EOF
server:
    rundir: "$TMP/knot/run"
$USER_LINE
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: $SRV_N
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$TMP/knot/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$TMP"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
zone:
  - domain: internal
    file: internal.zone
EOF
"${SRV_PIN[@]}" knotd -c "$TMP/knot/knot.conf" >"$TMP/knot.log" 2>&1 &
KNOT_PID=$!
PIDS+=("$KNOT_PID")
"${SRV_PIN[@]}" "$B" serve -addr "127.0.0.1:$OURS_PORT" >"$TMP/ours.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")
if [ "$RECORDS" -gt 0 ]; then
	HFLAG=()
	[ "$HEALTH" = 1 ] && HFLAG=(-health)
	"${SRV_PIN[@]}" "$B" serve -records "$RECORDS" "${HFLAG[@]}" -addr "127.0.0.1:$RECS_PORT" >"$TMP/recs.log" 2>&1 &
	RECS_PID=$!
	PIDS+=("$RECS_PID")
fi

ready() { # port, extra dig args
	local port=$1; shift
	for _ in $(seq 100); do
		if dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short "$@" app1.internal AAAA 2>/dev/null | grep -q fdaa; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: server on port $port did not come up" >&2
	cat "$TMP/knot.log" "$TMP/ours.log" >&2
	exit 1
}
ready "$KNOT_PORT"
ready "$OURS_PORT" +subnet=fdaa:0:18::/48
[ "$RECORDS" -gt 0 ] && ready "$RECS_PORT" +subnet=fdaa:0:18::/48

echo "== verifying answers (sample, TCP, compared as sets)"
"$B" verify -ours "127.0.0.1:$OURS_PORT" -knot "127.0.0.1:$KNOT_PORT" -n 500 | sed 's/^/   /'
if [ "$RECORDS" -gt 0 ]; then
	if [ "$HEALTH" = 1 ]; then
		"$B" verify -self -records "$RECORDS" -health -ours "127.0.0.1:$RECS_PORT" -n 500 | sed "s/^/   ($RECS_NAME) /"
	else
		"$B" verify -ours "127.0.0.1:$RECS_PORT" -knot "127.0.0.1:$KNOT_PORT" -n 500 | sed "s/^/   ($RECS_NAME) /"
	fi
fi

perf() { # port, extra args...
	local port=$1; shift
	"${CLI_PIN[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$TMP/queries.txt" -c "$CLIENTS" -q 200 -E "$ECS" "$@" 2>&1
}
qps() { awk '/Queries per second/ {printf "%d\n", $4}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== throughput: $ROUNDS alternating rounds of ${DURATION}s, dnsperf -c $CLIENTS"
: >"$TMP/knot.qps"; : >"$TMP/ours.qps"; : >"$TMP/recs.qps"
for r in $(seq "$ROUNDS"); do
	k=$(perf "$KNOT_PORT" -l "$DURATION" | qps)
	o=$(perf "$OURS_PORT" -l "$DURATION" | qps)
	echo "$k" >>"$TMP/knot.qps"; echo "$o" >>"$TMP/ours.qps"
	line="   round $r: knot $k qps, dogwood $o qps"
	if [ "$RECORDS" -gt 0 ]; then
		c=$(perf "$RECS_PORT" -l "$DURATION" | qps)
		echo "$c" >>"$TMP/recs.qps"
		line="$line, dogwood+records $c qps"
	fi
	echo "$line"
done
KQ=$(median <"$TMP/knot.qps"); OQ=$(median <"$TMP/ours.qps")
RQ=$( [ "$RECORDS" -gt 0 ] && median <"$TMP/recs.qps" || echo 0)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One latency run: port, rate, server pid. Prints "p99_ms p50_ms queries cpu_us_per_query".
latency() {
	local c0 c1
	c0=$(cpu_ticks "$3")
	perf "$1" -l "$DURATION" -Q "$2" -v | awk '/^> / {print $NF}' | sort -g >"$TMP/lat"
	c1=$(cpu_ticks "$3")
	awk -v ticks=$(( c1 - c0 )) -v hz="$(getconf CLK_TCK)" '{a[NR]=$1} END {
		if (NR == 0) {print "n/a n/a 0 n/a"; exit}
		i=int(NR*0.99); if (i < 1) i=1
		printf "%.3f %.3f %d %.2f\n", a[i]*1000, a[int((NR+1)/2)]*1000, NR, ticks/hz*1e6/NR}' "$TMP/lat"
}
col() { awk -v c="$1" '{print $c}' "$2" | median; }
echo "== latency at half of each server's peak: $ROUNDS alternating rounds of ${DURATION}s"
: >"$TMP/knot.lat"; : >"$TMP/ours.lat"; : >"$TMP/recs.lat"; : >"$TMP/same.lat"
for r in $(seq "$ROUNDS"); do
	k=$(latency "$KNOT_PORT" $(( KQ / 2 )) "$KNOT_PID"); echo "$k" >>"$TMP/knot.lat"
	o=$(latency "$OURS_PORT" $(( OQ / 2 )) "$OURS_PID"); echo "$o" >>"$TMP/ours.lat"
	line="   round $r (load $(cut -d' ' -f1 /proc/loadavg)): p99 knot $(cut -d' ' -f1 <<<"$k") ms, dogwood $(cut -d' ' -f1 <<<"$o") ms"
	if [ "$RECORDS" -gt 0 ]; then
		c=$(latency "$RECS_PORT" $(( RQ / 2 )) "$RECS_PID"); echo "$c" >>"$TMP/recs.lat"
		line="$line, dogwood $RECS_NAME $(cut -d' ' -f1 <<<"$c") ms"
	fi
	s=$(latency "$OURS_PORT" $(( KQ / 2 )) "$OURS_PID"); echo "$s" >>"$TMP/same.lat"
	echo "$line; dogwood at knot's rate $(cut -d' ' -f1 <<<"$s") ms"
done
lat_line() { # file
	echo "$(col 1 "$1") ms (p50 $(col 2 "$1") ms, CPU $(col 4 "$1") us/query, $(col 3 "$1") queries; medians of $ROUNDS)"
}
KL=$(lat_line "$TMP/knot.lat"); OL=$(lat_line "$TMP/ours.lat"); SL=$(lat_line "$TMP/same.lat")
RL="n/a"
[ "$RECORDS" -gt 0 ] && RL=$(lat_line "$TMP/recs.lat")
ms() { awk '{print $1}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0 && a != "n/a") printf "%.2f", a/b; else print "n/a"}'; }

rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
echo "== memory"
MEM=$("$B" mem)
MEM_BIG=$("$B" mem -apps 10000)

cat <<EOF

================ results ================
catalog           1000 apps x 10 machines, 4 regions, 1 network ($(grep -c . "$TMP/internal.zone") zone lines)
cpus              $NCPU ($( [ ${#SRV_PIN[@]} -gt 0 ] && echo "servers pinned to $SRV_N, dnsperf to the rest" || echo "unpinned"))
load average      before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg) ($NCPU CPUs)
knot qps          $KQ   (median of $ROUNDS)
dogwood qps       $OQ   (median of $ROUNDS)
ratio             $(ratio "$OQ" "$KQ") x Knot (target >= 1.00)
p99 @ half peak   knot $KL
                  dogwood $OL
p99 ratio         $(ratio "$(ms "$OL")" "$(ms "$KL")") x Knot (target <= 1.00)
p99 @ knot's rate dogwood $SL
                  $(ratio "$(ms "$SL")" "$(ms "$KL")") x Knot, both at $(( KQ / 2 )) qps
$RECS_NAME
                  dogwood $RQ qps = $(ratio "$RQ" "$KQ") x Knot, $(ratio "$RQ" "$OQ") x without (target: within 5 % of without)
                  p99 $RL
                  p99 $(ratio "$(ms "$RL")" "$(ms "$KL")") x Knot, $(ratio "$(ms "$RL")" "$(ms "$OL")") x without
rss after runs    knot $(rss "$KNOT_PID"), dogwood $(rss "$OURS_PID")
dogwood index     $(echo "$MEM" | tail -1)
  at 10x scale    $(echo "$MEM_BIG" | tail -1)
==========================================
EOF
