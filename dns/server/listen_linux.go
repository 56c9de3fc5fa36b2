package server

import (
	"syscall"
)

// Linux socket options not in package syscall.
const (
	ipFreebind   = 15 // IP_FREEBIND
	ipv6Freebind = 78 // IPV6_FREEBIND (Linux ≥ 4.15)
)

// freebind lets a listener bind fdaa:<net>::3 before the address is configured or
// while it is still tentative (IPv6 DAD): the WireGuard layer adds addresses and the
// agent syncs listeners right after, and a bind must not race that. Errors are
// ignored; on old kernels the bind then simply needs the address to exist.
func freebind(network, address string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipFreebind, 1)
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, ipv6Freebind, 1)
	})
}
