package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/net/icmp"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/dogwood/dogwood/peers/config"
)

// stack is the network a Tunnel speaks through: its own userspace stack
// behind a fresh WireGuard session, or the machine's own network when the
// config's tunnel is already up here (wg-quick).
type stack interface {
	DialUDP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	// DialPing opens an ICMPv6 echo socket whose Write sends to dst and
	// whose ReadFrom returns ICMPv6 messages (no IP header).
	DialPing(dst netip.Addr) (pingConn, error)
}

type pingConn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	Write(b []byte) (int, error)
	Close() error
}

// userStack is the gVisor stack of a userspace tunnel.
type userStack struct{ n *netstack.Net }

func (s userStack) DialUDP(_ context.Context, dst netip.AddrPort) (net.Conn, error) {
	return s.n.DialUDPAddrPort(netip.AddrPort{}, dst)
}

func (s userStack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	// Return through an interface only when non-nil: a nil *gonet.TCPConn
	// in a net.Conn would not compare equal to nil.
	c, err := s.n.DialContextTCPAddrPort(ctx, dst)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s userStack) DialPing(dst netip.Addr) (pingConn, error) {
	c, err := s.n.DialPingAddr(netip.Addr{}, dst)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// systemStack uses the machine's routes, with the tunnel's address as the
// source: the interface wg-quick made carries the packets, in the session it
// already has.
type systemStack struct{ src netip.Addr }

func (s systemStack) DialUDP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.UDPAddr{IP: s.src.AsSlice()}}
	return d.DialContext(ctx, "udp6", dst.String())
}

func (s systemStack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.src.AsSlice()}}
	return d.DialContext(ctx, "tcp6", dst.String())
}

// DialPing prefers an unprivileged ICMP socket (allowed by the
// net.ipv4.ping_group_range sysctl, which covers IPv6 too) and falls back to
// a raw socket, which needs root or CAP_NET_RAW.
func (s systemStack) DialPing(dst netip.Addr) (pingConn, error) {
	c, err := icmp.ListenPacket("udp6", s.src.String())
	if err != nil {
		var rawErr error
		if c, rawErr = icmp.ListenPacket("ip6:ipv6-icmp", s.src.String()); rawErr != nil {
			if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				return nil, fmt.Errorf("this user may not open ICMP sockets (sysctl net.ipv4.ping_group_range); "+
					"the tunnel is up on this machine, so plain `ping %s` works too", dst)
			}
			return nil, err
		}
		return &icmpConn{c: c, dst: &net.IPAddr{IP: dst.AsSlice()}}, nil
	}
	return &icmpConn{c: c, dst: &net.UDPAddr{IP: dst.AsSlice()}}, nil
}

// icmpConn makes an unconnected ICMP socket look connected to one address.
type icmpConn struct {
	c   *icmp.PacketConn
	dst net.Addr
}

func (p *icmpConn) ReadFrom(b []byte) (int, net.Addr, error) { return p.c.ReadFrom(b) }
func (p *icmpConn) Write(b []byte) (int, error)              { return p.c.WriteTo(b, p.dst) }
func (p *icmpConn) Close() error                             { return p.c.Close() }

// addrOf extracts the IP of a socket address of either stack.
func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case interface{ Addr() netip.Addr }:
		return v.Addr()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.IPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// localAddrs lists the addresses configured on this machine's interfaces.
func localAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// liveAddress returns the config's address when it is configured on this
// machine: the tunnel is already up (wg-quick with the same file).
func liveAddress(cfg config.Config, list func() ([]netip.Addr, error)) (netip.Addr, bool) {
	local, err := list()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, p := range cfg.Address {
		for _, a := range local {
			if a == p.Addr() {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}
