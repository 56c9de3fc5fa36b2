// Package link owns the host-side IP plumbing of the WireGuard data plane through
// netlink: the routes that send remote hosts' /80s and local user peers' /120s into
// the WireGuard interface, the DNS service addresses (fdaa::3, fdaa:<net>::3) on the
// loopback interface where the DNS server binds them, and IPv6 forwarding. Every
// call is idempotent and converges to the given desired list, touching only 6PN
// (fdaa::/16) routes and addresses so nothing else on the host is disturbed.
package link

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Links manipulates the links of the network namespace it was created in.
type Links struct {
	h   *netlink.Handle
	log *slog.Logger
}

// New returns Links bound to the current network namespace.
func New(log *slog.Logger) (*Links, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &Links{h: h, log: log}, nil
}

// Close releases the netlink socket.
func (l *Links) Close() { l.h.Close() }

// retry repeats a netlink dump the kernel interrupted because the table changed
// under it (other agents' work in tests, or the system's own churn).
func retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for i := 0; i < 5; i++ {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// SyncRoutes makes the 6PN routes through iface exactly want.
func (l *Links) SyncRoutes(iface string, want []netip.Prefix) (added, removed int, err error) {
	link, err := l.h.LinkByName(iface)
	if err != nil {
		return 0, 0, fmt.Errorf("find %s: %w", iface, err)
	}
	idx := link.Attrs().Index
	have, err := retry(func() ([]netlink.Route, error) {
		return l.h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: idx, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("list routes on %s: %w", iface, err)
	}
	wantSet := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		wantSet[p.Masked()] = true
	}
	var errs []error
	for _, r := range have {
		p, ok := prefixOf(r.Dst)
		if !ok || !sixpn.Prefix().Contains(p.Addr()) {
			continue // link-local, multicast: the kernel's, not ours
		}
		if wantSet[p] {
			delete(wantSet, p)
			continue
		}
		if err := l.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", p, err))
			continue
		}
		removed++
	}
	missing := make([]netip.Prefix, 0, len(wantSet))
	for p := range wantSet {
		missing = append(missing, p)
	}
	slices.SortFunc(missing, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, p := range missing {
		r := &netlink.Route{LinkIndex: idx, Dst: ipNet(p), Table: unix.RT_TABLE_MAIN}
		if err := l.h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("add route %s dev %s: %w", p, iface, err))
			continue
		}
		added++
	}
	return added, removed, errors.Join(errs...)
}

// DNSLink is where the DNS service addresses live: loopback is always up, has no
// DAD, and is never removed, so the DNS server's sockets survive WireGuard restarts.
const DNSLink = "lo"

// IsDNSAddr reports whether a is a Dogwood DNS service address (fdaa:<net>::3, host
// field 0): the only addresses SyncDNS ever adds or removes.
func IsDNSAddr(a netip.Addr) bool {
	p, ok := sixpn.Parse(a)
	return ok && p.Host == 0 && p.Field == 0 && p.Low == 3
}

// SyncDNS makes the DNS service addresses on loopback exactly want.
func (l *Links) SyncDNS(want []netip.Addr) error {
	lo, err := l.h.LinkByName(DNSLink)
	if err != nil {
		return fmt.Errorf("find %s: %w", DNSLink, err)
	}
	// A fresh network namespace starts with loopback down.
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := l.h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring %s up: %w", DNSLink, err)
		}
	}
	have, err := retry(func() ([]netlink.Addr, error) { return l.h.AddrList(lo, netlink.FAMILY_V6) })
	if err != nil {
		return fmt.Errorf("list addresses on %s: %w", DNSLink, err)
	}
	wantSet := map[netip.Addr]bool{}
	for _, a := range want {
		wantSet[a] = true
	}
	var errs []error
	for _, a := range have {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !IsDNSAddr(ip) {
			continue
		}
		if wantSet[ip] {
			delete(wantSet, ip)
			continue
		}
		if err := l.h.AddrDel(lo, &a); err != nil {
			errs = append(errs, fmt.Errorf("remove %s from %s: %w", ip, DNSLink, err))
		}
	}
	for _, a := range want {
		if !wantSet[a] {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a, 128)), Flags: unix.IFA_F_NODAD}
		if err := l.h.AddrReplace(lo, addr); err != nil {
			errs = append(errs, fmt.Errorf("add %s to %s: %w", a, DNSLink, err))
		}
	}
	return errors.Join(errs...)
}

// ForwardingPath is the sysctl that lets the host route between veths and WireGuard.
const ForwardingPath = "/proc/sys/net/ipv6/conf/all/forwarding"

// EnableForwarding turns IPv6 forwarding on in the current network namespace.
func EnableForwarding() error {
	b, err := os.ReadFile(ForwardingPath)
	if err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	if err := os.WriteFile(ForwardingPath, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv6 forwarding: %w", err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}
