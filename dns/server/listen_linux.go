package server

import (
	"syscall"

	"golang.org/x/sys/unix"
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

// msgTrunc is set on a datagram that did not fit the read buffer.
const msgTrunc = syscall.MSG_TRUNC

// reusePort lets several sockets bind one address and port; the kernel spreads
// datagrams over them by source, so each core reads its own socket. Only sockets of
// the same user may join the group.
func reusePort(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
