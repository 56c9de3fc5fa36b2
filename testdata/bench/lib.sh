# Shared by the benchmark scripts (sourced). Callers set P (name prefix), S (state
# dir) and BIN. Every name starts with $P; every address is in 198.18.0.0/15 on a
# bridge inside a namespace of our own.

down() {
	set +e
	for f in "$S"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
	for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do
		ip netns pids "$ns" | xargs -r kill -9
		ip netns del "$ns"
	done
	rm -rf /etc/netns/"$P"-*
	rm -f /var/run/wireguard/"$P"*.sock
	rm -rf "$S"
}

underlay() { # NAME THIRD_OCTET: two hosts $P-NAME1, $P-NAME2 on a bridge, 198.18.THIRD.{1,2}
	ip netns add "$P-$1net"
	ip netns exec "$P-$1net" ip link add br0 type bridge
	ip netns exec "$P-$1net" ip link set br0 up
	for i in 1 2; do
		ip netns add "$P-$1$i"
		ip link add "${P}$1$i" type veth peer name eth0 netns "$P-$1$i"
		ip link set "${P}$1$i" netns "$P-$1net"
		ip netns exec "$P-$1net" ip link set "${P}$1$i" master br0 up
		ip netns exec "$P-$1$i" ip addr add 198.18.$2.$i/24 dev eth0
		ip netns exec "$P-$1$i" ip link set eth0 up
		ip netns exec "$P-$1$i" ip link set lo up
	done
}

agents() { # [h1 flags…]: an agent on $P-h1 and $P-h2 (h2 joins h1); waits until both are alive
	"$BIN" keygen >"$S/key"
	for i in 1 2; do
		local extra=(--join 198.18.0.1:7946)
		[ $i = 1 ] && extra=("$@")
		ip netns exec "$P-h$i" "$BIN" agent --name h$i --region ord --data-dir "$S/h$i" \
			--gossip-addr 198.18.0.$i:7946 --gossip-key-file "$S/key" --wireguard userspace \
			--wg-interface "${P}w$i" --api-socket "$S/h$i.sock" --upstream-dns 127.0.0.1:1 \
			--log-level error "${extra[@]}" >"$S/h$i.log" 2>&1 &
		echo $! >"$S/h$i.pid"
		disown
	done
	for _ in $(seq 100); do
		[ "$("$BIN" --agent "$S/h2.sock" members --json 2>/dev/null | grep -c '"alive"')" = 2 ] && return 0
		sleep 0.1
	done
	echo "agents did not form a cluster" >&2
	return 1
}
