#!/usr/bin/env bash
# Dogwood demo: three hosts as network namespaces in two regions (h1 is a gateway),
# a laptop namespace wired only to the gateway, two orgs, a developer tunnel from an invitation, brought up
# with the real wg-quick. Everything lives in namespaces named $P-* and in $STATE;
# nothing outside them is touched. `demo.sh down` removes leftovers.
set -euo pipefail

P=${DOGWOOD_DEMO_PREFIX:-dwdemo}
STATE=${DOGWOOD_DEMO_STATE:-/tmp/dogwood-demo}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${DOGWOOD_BIN:-$ROOT/bin/dogwood}
LAPIF=${P}lap # the laptop's WireGuard interface (wg-quick names it after the file)

bold=$'\e[1m'; dim=$'\e[2m'; green=$'\e[32m'; red=$'\e[31m'; off=$'\e[0m'
[ -t 1 ] || { bold=; dim=; green=; red=; off=; }
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
run() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; "$@"; }
ok() { printf '%s✔ %s%s\n' "$green" "$*" "$off"; }
fail() { printf '%s✘ %s%s\n' "$red" "$*" "$off"; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
dw() { "$BIN" --agent "$STATE/h1.sock" "$@"; }
CNIBIN=${DOGWOOD_CNI_BIN:-$ROOT/bin/dogwood-cni}
# pm HOST ARGS: podman in HOST's network namespace, with the demo's own storage and
# CNI config (runroot must be short: podman refuses more than 50 characters).
pm() {
	local h=$1; shift
	CONTAINERS_CONF="$STATE/pm-$h/containers.conf" nsenter --net="/run/netns/$P-$h" podman \
		--root "$STATE/pm-$h/storage" --runroot "$(cat "$STATE/pm-run")/$h" --tmpdir "$STATE/pm-$h/tmp" \
		--storage-driver vfs --runtime runc --cgroup-manager=cgroupfs "$@"
}

down() {
	set +e
	# Containers first: podman's DEL needs the agents.
	for h in h1 h3; do [ -d "$STATE/pm-$h" ] && [ -f "$STATE/pm-run" ] && pm "$h" rm -a -f -t 0 >/dev/null 2>&1; done
	if [ -f "$STATE/pm-run" ]; then
		grep -E " ($(cat "$STATE/pm-run")|$STATE)/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
		rm -rf "$(cat "$STATE/pm-run")"
	fi
	[ -f "$STATE/pm-cleanup" ] && rm -rf $(cat "$STATE/pm-cleanup")
	if [ -d "$STATE" ]; then
		for f in "$STATE"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
		sleep 0.3
		for f in "$STATE"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
	fi
	ip netns pids "$P-lap" 2>/dev/null | xargs -r kill -9 2>/dev/null
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf /etc/netns/"$P"-* 2>/dev/null
	rm -f /var/run/wireguard/"$P"*.sock 2>/dev/null
	[ -f "$STATE/laphome" ] && rm -rf "$(cat "$STATE/laphome")"
	rm -rf "$STATE"
	set -e
}

if [ "${1:-}" = down ]; then
	down
	echo "demo cleaned up"
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "the demo needs root (network namespaces, TUN devices)"; exit 1; }
[ -x "$BIN" ] || { echo "build first: make build"; exit 1; }
down
[ -n "${DOGWOOD_DEMO_KEEP:-}" ] || trap down EXIT
trap 'exit 130' INT TERM
mkdir -p "$STATE"
chmod 755 "$STATE"
START=$(date +%s.%N)

step "Setting up: an underlay bridge, three hosts, a laptop (all network namespaces, 198.18.0.0/15)"
ip netns add "$P-net"
in_ns net ip link add br0 type bridge
in_ns net ip link set br0 up
in_ns net ip link set lo up
for i in 1 2 3; do
	ip netns add "$P-h$i"
	ip link add "${P}u$i" type veth peer name eth0 netns "$P-h$i"
	ip link set "${P}u$i" netns "$P-net"
	in_ns net ip link set "${P}u$i" master br0 up
	in_ns h$i ip addr add 198.18.0.$i/24 dev eth0
	in_ns h$i ip link set eth0 up
	in_ns h$i ip link set lo up
done
ip netns add "$P-lap"
ip link add "${P}gl" type veth peer name eth0 netns "$P-lap"
ip link set "${P}gl" netns "$P-h1"
in_ns h1 ip addr add 198.19.0.1/30 dev "${P}gl"
in_ns h1 ip link set "${P}gl" up
in_ns lap ip addr add 198.19.0.2/30 dev eth0
in_ns lap ip link set eth0 up
in_ns lap ip link set lo up
echo "hosts h1 (ord, gateway), h2 (ord), h3 (ams) on 198.18.0.1-3; laptop 198.19.0.2, linked only to h1"

step "Starting an agent on every host (userspace WireGuard, encrypted gossip)"
(umask 077; "$BIN" keygen >"$STATE/gossip.key")
region=(x ord ord ams)
for i in 1 2 3; do
	extra=()
	[ $i = 1 ] && extra=(--gateway --public-endpoint 198.19.0.1:51820)
	[ $i -gt 1 ] && extra=(--join 198.18.0.1:7946)
	ip netns exec "$P-h$i" "$BIN" agent --name h$i --region "${region[$i]}" \
		--data-dir "$STATE/h$i" --gossip-addr 198.18.0.$i:7946 --gossip-key-file "$STATE/gossip.key" \
		--wireguard userspace --wg-interface "${P}wg$i" --api-socket "$STATE/h$i.sock" \
		--upstream-dns 127.0.0.1:1 --log-level warn "${extra[@]}" >"$STATE/h$i.log" 2>&1 &
	echo $! >"$STATE/h$i.pid"
	disown
done
for _ in $(seq 100); do
	n=$(dw members --json 2>/dev/null | grep -c '"alive"' || true)
	[ "$n" = 3 ] && break
	sleep 0.1
done

step "Proof: the cluster formed — dogwood members (from h1)"
run dw members
[ "$(dw members --json | grep -c '"alive"')" = 3 ] || fail "not all hosts alive"
ok "three hosts alive, h1 is the gateway"

step "Orgs, apps and machines: acme (web ×3, db ×1) and globex (api ×1)"
run dw orgs create acme
run dw orgs create globex
run dw apps create web --org acme
run dw apps create db --org acme
run dw apps create api --org globex
machine() { # host ns app [flags]
	local h=$1 ns=$2 app=$3
	shift 3
	ip netns add "$P-$ns"
	"$BIN" --agent "$STATE/$h.sock" machines create --app "$app" --netns "$P-$ns" "$@" --json >"$STATE/$ns.json"
	mkdir -p "$STATE/www-$ns"
	echo "hello from $app on $h ($ns)" >"$STATE/www-$ns/index.html"
	ip netns exec "$P-$ns" ip link set lo up
	ip netns exec "$P-$ns" busybox httpd -f -p '[::]:80' -h "$STATE/www-$ns" &
	echo $! >"$STATE/$ns.pid"
	disown
}
machine h1 web1 web --service http:tcp:80 --metadata tier=frontend
machine h2 web2 web --service http:tcp:80 --metadata tier=frontend
machine h3 web3 web --service http:tcp:80 --metadata tier=frontend
machine h3 db1 db --process-group primary --metadata role=primary
machine h2 api1 api --service http:tcp:80
run dw machines list
NET=$(dw orgs list --json | tr -d ' \n' | sed 's/.*"slug":"acme"[^]]*"prefix":"\([^"]*\)".*/\1/')
GNET=$(dw orgs list --json | tr -d ' \n' | sed 's/.*"slug":"globex"[^]]*"prefix":"\([^"]*\)".*/\1/')
DNS=${NET%/48}3
GDNS=${GNET%/48}3
echo "acme network $NET (DNS $DNS); globex network $GNET"

step "Developer tunnel: an invitation made on h2 (not a gateway), redeemed on the laptop by an unprivileged user"
# --dns none: wg-quick must never touch the host's resolver; the laptop namespace
# gets its own resolv.conf instead (ip netns exec bind-mounts it).
printf '%s$ dogwood wireguard invite acme ord laptop --dns none%s\n' "$dim" "$off"
CODE=$("$BIN" --agent "$STATE/h2.sock" wireguard invite acme ord laptop --dns none)
echo "$CODE"
# The developer: uid 65534 (nobody) with a home of its own, no agent, no root.
LAPHOME=$(mktemp -d /tmp/dogwood-demo-laptop.XXXXXX)
echo "$LAPHOME" >"$STATE/laphome"
chown 65534:65534 "$LAPHOME"
as_dev() { ip netns exec "$P-lap" setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$LAPHOME" DOGWOOD_AGENT=/nonexistent "$BIN" "$@"; }
printf '%s$ (laptop, as nobody) dogwood wireguard join $CODE laptop.conf%s\n' "$dim" "$off"
as_dev wireguard join "$CODE" "$LAPHOME/laptop.conf" 2>&1 | sed 's/^/  /'
echo "${dim}--- laptop.conf (private key hidden) ---${off}"
sed 's/^PrivateKey = .*/PrivateKey = (hidden)/' "$LAPHOME/laptop.conf"
echo "${dim}---${off}"
[ "$(stat -c %a:%u "$LAPHOME/laptop.conf")" = 600:65534 ] || fail "config is not nobody's with mode 0600"
if as_dev wireguard join "$CODE" "$LAPHOME/again.conf" 2>"$STATE/reuse.err"; then fail "the code worked twice"; fi
echo "  a second join with the same code: $(cat "$STATE/reuse.err")"
ok "key pair made on the laptop by nobody; only the public key went to the gateway; the code is spent"
mkdir -p "$STATE/wg" "/etc/netns/$P-lap"
cp "$LAPHOME/laptop.conf" "$STATE/wg/$LAPIF.conf"
chmod 600 "$STATE/wg/$LAPIF.conf"
echo "nameserver $DNS" >"/etc/netns/$P-lap/resolv.conf"
run ip netns exec "$P-lap" env WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wg-quick up "$STATE/wg/$LAPIF.conf" 2>&1 | grep -v '[│┌└]' | sed 's/^/  /'
in_ns lap wg show "$LAPIF" | sed 's/^/  /'

step "Proof: .internal DNS through the tunnel — every name form (dig @$DNS)"
q() { # name type
	printf '%s%-44s %-5s%s ' "$bold" "$1" "$2" "$off"
	in_ns lap dig @"$DNS" +short +time=2 +tries=2 "$1" "$2" | tr '\n' ' '
	echo
}
for _ in $(seq 50); do in_ns lap dig @"$DNS" +short +time=1 +tries=1 web.internal AAAA | grep -q fdaa && break; sleep 0.1; done
WEB1=$(sed -n 's/.*"id": "\(.*\)".*/\1/p' "$STATE/web1.json")
WEB1ADDR=$(sed -n 's/.*"address": "\(.*\)".*/\1/p' "$STATE/web1.json")
q web.internal AAAA
q global.web.internal AAAA
q ams.web.internal AAAA
q top2.nearest.of.web.internal AAAA
q "$WEB1.vm.web.internal" AAAA
q primary.process.db.internal AAAA
q primary.role.kv._metadata.db.internal AAAA
q _http._tcp.web.internal SRV
q laptop._peer.internal AAAA
q vms.web.internal TXT
q regions.web.internal TXT
q _apps.internal TXT
q _peer.internal TXT
q _instances.internal TXT
printf '%s%-44s %-5s%s ' "$bold" "-x $WEB1ADDR" PTR "$off"
in_ns lap dig @"$DNS" +short -x "$WEB1ADDR"
[ "$(in_ns lap dig @"$DNS" +short web.internal AAAA | grep -c fdaa)" = 3 ] || fail "web.internal should have 3 machines"
ok "all name forms answer through the tunnel"

step "Proof: curl http://web.internal through the tunnel, and every web machine by name"
run in_ns lap curl -6 -s --max-time 3 http://web.internal/
for ns in web1 web2 web3; do
	id=$(sed -n 's/.*"id": "\(.*\)".*/\1/p' "$STATE/$ns.json")
	printf '%s$ curl http://%s.vm.web.internal/%s\n' "$dim" "$id" "$off"
	t0=$(date +%s%N)
	body=$(in_ns lap curl -6 -sS --max-time 3 "http://$id.vm.web.internal/" 2>&1) || { for h in h1 h2 h3; do echo "-- $h"; in_ns $h wg show ${P}wg${h#h} | grep -E "peer|handshake|endpoint|transfer"; done; in_ns lap wg show; in_ns lap curl -6 -v --max-time 3 "http://$id.vm.web.internal/" 2>&1 | tail -5; fail "curl $ns failed after $((($(date +%s%N)-t0)/1000000)) ms: $body"; }
	echo "$body"
done
ok "the laptop reaches web machines on h1, h2 and h3 through the gateway h1"

step "Proof: globex is invisible and unreachable from the acme laptop"
API=$(sed -n 's/.*"address": "\(.*\)".*/\1/p' "$STATE/api1.json")
printf '  dig api.internal (globex app) → '
in_ns lap dig @"$DNS" +time=2 api.internal AAAA | grep -o 'status: [A-Z]*'
[ -z "$(in_ns lap dig @"$DNS" +short api.internal AAAA)" ] || fail "globex name visible"
if in_ns lap curl -6 -s --max-time 2 "http://[$API]/" >/dev/null; then fail "globex machine reachable"; fi
echo "  curl http://[$API]/ (globex machine) → no route through the acme tunnel: timed out"
if in_ns lap dig @"$GDNS" +time=1 +tries=1 +short api.internal AAAA >/dev/null 2>&1; then fail "globex DNS reachable"; fi
echo "  dig @$GDNS (globex DNS) → unreachable"
if in_ns api1 busybox wget -q -T 2 -O - "http://[$WEB1ADDR]/" >/dev/null 2>&1; then fail "globex machine reached acme"; fi
echo "  from globex's api machine: wget http://[$WEB1ADDR]/ (acme) → blocked"
ok "no cross-org name or packet"

step "Proof: a stopped machine leaves DNS within a second"
WEB3=$(sed -n 's/.*"id": "\(.*\)".*/\1/p' "$STATE/web3.json")
WEB3ADDR=$(sed -n 's/.*"address": "\(.*\)".*/\1/p' "$STATE/web3.json")
run dw machines stop "$WEB3"
t0=$(date +%s%N)
while in_ns lap dig @"$DNS" +short web.internal AAAA | grep -q "$WEB3ADDR"; do
	[ $(($(date +%s%N) - t0)) -lt 5000000000 ] || fail "still in DNS after 5 s"
	sleep 0.02
done
ms=$((($(date +%s%N) - t0) / 1000000))
in_ns lap dig @"$DNS" +short web.internal AAAA | sed 's/^/  /'
[ $ms -le 1000 ] || fail "took $ms ms"
ok "web3 on h3 gone from web.internal (asked through the gateway h1) ${ms} ms after the stop returned"

step "Proof: every host has a WireGuard handshake with the others (dogwood status on h3)"
run in_ns web1 ping -6 -c 2 -i 0.2 -W 2 "$WEB3ADDR"
"$BIN" --agent "$STATE/h3.sock" status | sed 's/^/  /'
for _ in $(seq 50); do
	[ "$("$BIN" --agent "$STATE/h3.sock" status --json | grep -c '"last_handshake": "')" -ge 2 ] && break
	sleep 0.1
done
[ "$("$BIN" --agent "$STATE/h3.sock" status --json | grep -c '"last_handshake": "')" -ge 2 ] || fail "h3 lacks a handshake"
ok "h3 has WireGuard sessions with h1 and h2"

step "Containers: podman on h1 and h3 puts busybox containers into acme's web through the CNI plugin"
if command -v podman >/dev/null && command -v runc >/dev/null && [ -x "$CNIBIN" ]; then
	# What podman and libcni write outside their flags' directories, if this run made it.
	for d in /var/lib/containers /var/lib/cni; do [ -e "$d" ] || echo "$d" >>"$STATE/pm-cleanup"; done
	mktemp -d /tmp/dwpm.XXXXXX >"$STATE/pm-run"
	mkdir -p "$STATE/image/bin" "$STATE/image/www" "$STATE/cni-bin"
	cp "$(command -v busybox)" "$STATE/image/bin/busybox"
	for a in sh httpd wget nslookup sleep; do ln -sf busybox "$STATE/image/bin/$a"; done
	tar -C "$STATE/image" -cf "$STATE/image.tar" .
	cp "$CNIBIN" "$STATE/cni-bin/dogwood" # runtimes run the plugin by its type
	for h in h1 h3; do
		mkdir -p "$STATE/pm-$h/net.d"
		printf '[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["%s"]\nnetwork_config_dir = "%s"\n[engine]\nevents_logger = "none"\n' \
			"$STATE/cni-bin" "$STATE/pm-$h/net.d" >"$STATE/pm-$h/containers.conf"
		printf '{"cniVersion": "1.0.0", "name": "acme-web",\n "plugins": [{"type": "dogwood", "org": "acme", "app": "web", "agent": "%s",\n              "services": ["http:tcp:80"], "metadata": {"tier": "frontend"}}]}\n' \
			"$STATE/$h.sock" >"$STATE/pm-$h/net.d/acme-web.conflist"
		pm $h import -q "$STATE/image.tar" localhost/dwdemo:1 >/dev/null
		# Low fixed limits: podman's defaults raise them, which a sandboxed root may not.
		run pm $h run -d --name "c-$h" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network acme-web localhost/dwdemo:1 \
			sh -c "echo hello from a container on $h > /www/index.html; exec httpd -f -p 80 -h /www" >/dev/null
	done
	sed 's/^/  /' "$STATE/pm-h1/net.d/acme-web.conflist"
	run dw machines list --source cni
	# The table's columns: ID ORG APP REGION HOST ADDRESS STATE HEALTH PROCESS.
	C3=$("$BIN" --agent "$STATE/h3.sock" machines list --source cni | awk 'NR > 1 && $3 == "web" && $5 == "h3" {print $6; exit}')
	[ -n "$C3" ] || fail "no container machine on h3"
	for _ in $(seq 50); do pm h1 exec c-h1 nslookup -type=AAAA web.internal 2>/dev/null | grep -q "$C3" && break; sleep 0.1; done
	run pm h1 exec c-h1 nslookup -type=AAAA web.internal
	pm h1 exec c-h1 nslookup -type=AAAA web.internal | grep -q "$C3" || fail "the container on h3 is not in web.internal"
	got=$(pm h1 exec c-h1 wget -q -O - "http://[$C3]/")
	echo "  c-h1 → http://[$C3]/: $got"
	[ "$got" = "hello from a container on h3" ] || fail "c-h1 could not fetch from c-h3"
	run pm h3 rm -f -t 0 c-h3
	sleep 1
	in_ns web1 dig @fdaa::3 +short web.internal AAAA | grep -q "$C3" && fail "c-h3 still in DNS a second after podman rm"
	ok "containers resolve web.internal (machines and containers alike), talk across hosts, and leave DNS with podman rm"
else
	echo "podman, runc or bin/dogwood-cni missing: skipped (make deps build)"
fi

step "Proof: dogwood doctor finds no failing check on any host"
for h in h1 h2 h3; do
	for _ in $(seq 40); do
		"$BIN" --agent "$STATE/$h.sock" doctor >"$STATE/doctor-$h.txt" 2>&1 && break
		sleep 0.5
	done
	"$BIN" --agent "$STATE/$h.sock" doctor >"$STATE/doctor-$h.txt" 2>&1 || { cat "$STATE/doctor-$h.txt"; fail "dogwood doctor on $h"; }
done
sed 's/^/  /' "$STATE/doctor-h1.txt"
ok "dogwood doctor on h1, h2, h3: $(tail -1 "$STATE/doctor-h3.txt")"

END=$(date +%s.%N)
printf '\n%sDemo finished in %.1f s. Tearing down.%s\n' "$bold" "$(echo "$END - $START" | bc)" "$off"
