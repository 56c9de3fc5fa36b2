// Package attach owns the machines' side of the data plane: for every local machine
// with a network namespace it makes sure the namespace exists, a veth pair joins it to
// the host (host side named from the machine field, so a restarted agent finds it), the
// machine has its ::2/112 address and a default route via the host side (::1), and
// /etc/netns/<ns>/resolv.conf points at fdaa::3. Sync is idempotent: an agent restart
// re-adopts every existing attachment without touching it, and detaches (veth, resolv
// file, and the namespace if Dogwood created it) machines that are no longer wanted.
//
// Ownership is recorded in the host veth's alias ("dogwood:<machine>:<created>:<ns>"),
// so cleanup after a restart needs no state file.
//
// A container runtime's machine (plan.Machine.External: CNI_NETNS, a path) is
// attached once: the namespace is the runtime's, so when it dies its veth goes with
// it and Sync reports ErrNamespaceGone instead of re-creating anything at that path
// (a /proc/PID path may name another process's namespace by then). The agent's CNI
// reaper destroys such machines.
package attach

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// PeerIface is the machine side of the veth, inside the machine's namespace.
const PeerIface = plan.MachineIface

// ErrNamespaceGone is a container's machine whose namespace no longer exists, or is
// no longer the one it was attached to.
var ErrNamespaceGone = errors.New("the container's network namespace is gone")

const aliasPrefix = "dogwood:"

// Config configures an Attacher.
type Config struct {
	MTU    int          // veth MTU; match the WireGuard MTU so PMTU never bites
	Logger *slog.Logger // required
	// EtcNetns is where per-namespace files go; default /etc/netns (what `ip netns
	// exec` bind-mounts over /etc).
	EtcNetns string
}

// Attacher attaches machines in the network namespace it was created in.
type Attacher struct {
	cfg Config
	h   *netlink.Handle
	log *slog.Logger
	// attached holds the External machines this process attached or adopted: their
	// veth missing later means their namespace died.
	attached map[string]bool
}

// New returns an Attacher for the current network namespace.
func New(cfg Config) (*Attacher, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	if cfg.EtcNetns == "" {
		cfg.EtcNetns = "/etc/netns"
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	return &Attacher{cfg: cfg, h: h, log: cfg.Logger, attached: map[string]bool{}}, nil
}

// Close releases the netlink socket; attachments stay.
func (a *Attacher) Close() { a.h.Close() }

// MachineError is one machine's attach failure, so a caller waiting for its own
// machine can tell it apart from another machine's trouble.
type MachineError struct {
	ID  string
	Err error
}

func (e *MachineError) Error() string { return e.Err.Error() }
func (e *MachineError) Unwrap() error { return e.Err }

// Result counts what Sync did.
type Result struct{ Attached, Adopted, Detached int }

// Sync makes the attachments exactly want.
func (a *Attacher) Sync(want []plan.Machine) (Result, error) {
	var res Result
	var errs []error
	wanted := map[string]bool{}
	for _, m := range want {
		wanted[m.HostIface] = true
		created, err := a.attach(m)
		switch {
		case err != nil:
			errs = append(errs, &MachineError{ID: m.ID, Err: fmt.Errorf("attach machine %s (netns %s): %w", m.ID, m.Netns, err)})
		case created:
			res.Attached++
		default:
			res.Adopted++
		}
	}
	owned, err := a.owned()
	if err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	for _, o := range owned {
		if wanted[o.iface] {
			continue
		}
		// The netns may now belong to a wanted machine (re-created under a new
		// field): then only the stale veth goes.
		keepNs := false
		for _, m := range want {
			keepNs = keepNs || m.Netns == o.netns
		}
		if err := a.detach(o, keepNs); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(a.attached, o.machine)
		res.Detached++
	}
	return res, errors.Join(errs...)
}

// DetachAll removes every attachment this host made (the host is leaving for good).
func (a *Attacher) DetachAll() error {
	owned, err := a.owned()
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range owned {
		errs = append(errs, a.detach(o, false))
	}
	return errors.Join(errs...)
}

type ownedLink struct {
	iface, machine, netns string
	created               bool
	link                  netlink.Link
}

func (a *Attacher) owned() ([]ownedLink, error) {
	links, err := a.h.LinkList()
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		links, err = a.h.LinkList()
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []ownedLink
	for _, l := range links {
		at := l.Attrs()
		if !strings.HasPrefix(at.Name, plan.VethPrefix) {
			continue
		}
		if o, ok := parseAlias(at.Alias); ok {
			o.iface, o.link = at.Name, l
			out = append(out, o)
		}
	}
	return out, nil
}

func alias(m plan.Machine, created bool) string {
	c := "0"
	if created {
		c = "1"
	}
	return aliasPrefix + m.ID + ":" + c + ":" + m.Netns
}

func parseAlias(s string) (ownedLink, bool) {
	rest, ok := strings.CutPrefix(s, aliasPrefix)
	if !ok {
		return ownedLink{}, false
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 {
		return ownedLink{}, false
	}
	return ownedLink{machine: parts[0], created: parts[1] == "1", netns: parts[2]}, true
}

func (a *Attacher) detach(o ownedLink, keepNs bool) error {
	a.log.Info("detaching machine", "machine", o.machine, "netns", o.netns, "veth", o.iface)
	var errs []error
	if err := a.h.LinkDel(o.link); err != nil && !errors.Is(err, unix.ENODEV) {
		errs = append(errs, fmt.Errorf("delete %s: %w", o.iface, err))
	}
	if !keepNs && plan.ValidNetnsName(o.netns) == nil {
		dir := filepath.Join(a.cfg.EtcNetns, o.netns)
		if err := os.Remove(filepath.Join(dir, "resolv.conf")); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		os.Remove(dir) // only if empty: other files are the user's
		if o.created {
			if err := netns.DeleteNamed(o.netns); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("delete netns %s: %w", o.netns, err))
			}
		}
	}
	return errors.Join(errs...)
}

// attach converges one machine; created reports whether its veth had to be made.
func (a *Attacher) attach(m plan.Machine) (created bool, err error) {
	if m.Ifname == "" {
		m.Ifname = PeerIface
	}
	var ns netns.NsHandle
	nsCreated := false
	if m.External {
		ns, err = netns.GetFromPath(m.Netns)
		if errors.Is(err, os.ErrNotExist) {
			return false, ErrNamespaceGone
		}
		if err == nil && !isNetns(ns) {
			ns.Close()
			return false, ErrNamespaceGone
		}
	} else {
		ns, nsCreated, err = openOrCreateNetns(m.Netns)
	}
	if err != nil {
		return false, err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false, fmt.Errorf("netlink in netns %s: %w", m.Netns, err)
	}
	defer nh.Close()

	host, err := a.h.LinkByName(m.HostIface)
	createdBefore := nsCreated
	if err == nil {
		o, ok := parseAlias(host.Attrs().Alias)
		inner, ierr := nh.LinkByName(m.Ifname)
		switch {
		case m.External && (!ok || o.machine != m.ID || o.netns != m.Netns || ierr != nil || !pairedWith(inner, host)):
			// Its namespace was replaced under the same path: never follow it.
			return false, ErrNamespaceGone
		case !ok || o.machine != m.ID || o.netns != m.Netns:
			a.log.Warn("replacing veth that belongs to something else", "veth", m.HostIface, "alias", host.Attrs().Alias)
		case ierr != nil || !pairedWith(inner, host):
			a.log.Warn("replacing veth whose peer is not in the machine's netns", "veth", m.HostIface, "netns", m.Netns)
		default:
			createdBefore = createdBefore || o.created
			host = nil // adopt
		}
		if host != nil {
			if err := a.h.LinkDel(host); err != nil {
				return false, fmt.Errorf("delete stale %s: %w", m.HostIface, err)
			}
			err = errLinkGone
		}
	}
	if err != nil && m.External && a.attached[m.ID] {
		return false, ErrNamespaceGone // its veth died with its namespace
	}
	if err != nil {
		// The machine side may exist alone if it was moved in by hand; it would
		// block the new pair's name. A runtime's namespace is not ours to clean.
		if stale, serr := nh.LinkByName(m.Ifname); serr == nil {
			if m.External {
				return false, fmt.Errorf("interface %s already exists in %s", m.Ifname, m.Netns)
			}
			nh.LinkDel(stale)
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: m.HostIface, MTU: a.cfg.MTU},
			PeerName:      m.Ifname,
			PeerMTU:       uint32(a.cfg.MTU),
			PeerNamespace: netlink.NsFd(int(ns)),
		}
		if err := a.h.LinkAdd(veth); err != nil {
			return false, fmt.Errorf("create veth %s: %w", m.HostIface, err)
		}
		created = true
		if err := disableDAD(m.HostIface); err != nil {
			a.log.Warn("new machines may be unreachable from other hosts for a second or two", "veth", m.HostIface, "err", err)
		}
		a.log.Info("attached machine", "machine", m.ID, "netns", m.Netns, "veth", m.HostIface, "addr", m.Addr)
	}
	host, err = a.h.LinkByName(m.HostIface)
	if err != nil {
		return created, err
	}
	if want := alias(m, createdBefore); host.Attrs().Alias != want {
		if err := a.h.LinkSetAlias(host, want); err != nil {
			return created, fmt.Errorf("label %s: %w", m.HostIface, err)
		}
	}
	// Everything below is idempotent and cheap, so an adopted attachment is checked
	// and repaired field by field without being torn down. The machine side gets
	// its address before the host side comes up: the host side's prefix route is
	// what lets traffic (a ping from another host that saw the machine in DNS)
	// reach the veth, and a neighbor solicitation sent before the machine holds
	// its address waits a full second (RetransTimer) for the next try.
	if m.External {
		a.attached[m.ID] = true
	}
	inner, err := nh.LinkByName(m.Ifname)
	if err != nil {
		return created, fmt.Errorf("machine side: %w", err)
	}
	if lo, err := nh.LinkByName("lo"); err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		nh.LinkSetUp(lo)
	}
	if err := ensureUp(nh, inner, a.cfg.MTU, netip.PrefixFrom(m.Addr, m.Prefix.Bits())); err != nil {
		return created, fmt.Errorf("machine side in %s: %w", m.Netns, err)
	}
	if err := ensureUp(a.h, host, a.cfg.MTU, netip.PrefixFrom(m.Gateway, m.Prefix.Bits())); err != nil {
		return created, fmt.Errorf("host side %s: %w", m.HostIface, err)
	}
	// Each end knows the other's MAC for the pair's life: permanent neighbor entries
	// spare the first packets neighbor discovery, whose retry waits a second.
	if err := errors.Join(
		pinNeighbor(a.h, host, m.Addr, inner.Attrs().HardwareAddr),
		pinNeighbor(nh, inner, m.Gateway, host.Attrs().HardwareAddr)); err != nil {
		return created, fmt.Errorf("neighbor entries for %s: %w", m.HostIface, err)
	}
	for _, dst := range Routes(m) {
		r := &netlink.Route{LinkIndex: inner.Attrs().Index, Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 128)},
			Gw: m.Gateway.AsSlice(), Table: unix.RT_TABLE_MAIN}
		if err := nh.RouteReplace(r); err != nil {
			return created, fmt.Errorf("route %s in %s: %w", dst, m.Netns, err)
		}
	}
	if m.External {
		return created, nil
	}
	return created, a.writeResolv(m.Netns)
}

// Routes are the destinations a machine routes via its gateway (::1). A --netns
// machine gets the default route. A container's namespace may have other networks
// (the runtime's bridge for the internet), so it gets only its network's /48 and
// fdaa::3: with two Dogwood attachments in one container, each keeps its own /48.
func Routes(m plan.Machine) []netip.Prefix {
	if !m.External {
		return []netip.Prefix{netip.PrefixFrom(netip.IPv6Unspecified(), 0)}
	}
	return []netip.Prefix{sixpn.NetworkPrefix(m.NetworkID), netip.PrefixFrom(sixpn.MachineDNS(), 128)}
}

// isNetns reports whether h is a network namespace (a path can name any file).
func isNetns(h netns.NsHandle) bool {
	if t, err := unix.IoctlRetInt(int(h), unix.NS_GET_NSTYPE); err == nil {
		return t == unix.CLONE_NEWNET
	}
	var st unix.Statfs_t // kernels before 4.11 lack the ioctl
	return unix.Fstatfs(int(h), &st) == nil && st.Type == unix.NSFS_MAGIC
}

var errLinkGone = errors.New("link removed")

func pinNeighbor(h *netlink.Handle, l netlink.Link, ip netip.Addr, mac net.HardwareAddr) error {
	if len(mac) == 0 {
		return nil
	}
	return h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET6, State: netlink.NUD_PERMANENT,
		IP: ip.AsSlice(), HardwareAddr: mac})
}

// disableDAD turns off duplicate address detection on a new host-side veth, before
// it goes up. To resolve the neighbor for a packet it forwards (from WireGuard or
// another veth), the kernel sends its solicitation from the outgoing link's
// link-local address, and sends none while that address is tentative; DAD keeps it
// tentative for a second or two, during which a new machine answered local
// traffic but not traffic from other hosts and peers. Nothing else can hold an
// address on this point-to-point link.
func disableDAD(iface string) error {
	return os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", iface, "accept_dad"), []byte("0\n"), 0o644)
}

// pairedWith reports whether veth inner (in the machine netns) is host's peer. A
// veth's IFLA_LINK is its peer's index in the peer's namespace; checking both
// directions rules out a coincidence of indexes across namespaces.
// (netlink.VethPeerIndex would look the name up in the wrong namespace.)
func pairedWith(inner, host netlink.Link) bool {
	if _, ok := inner.(*netlink.Veth); !ok {
		return false
	}
	return inner.Attrs().ParentIndex == host.Attrs().Index && host.Attrs().ParentIndex == inner.Attrs().Index
}

func ensureUp(h *netlink.Handle, l netlink.Link, mtu int, addr netip.Prefix) error {
	if l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return err
		}
	}
	// NODAD: the /112 is ours alone, and DAD would hold the address tentative for
	// a second or two after every attach.
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
	if err := h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("address %s: %w", addr, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return h.LinkSetUp(l)
	}
	return nil
}

// resolvConf is the resolv.conf every machine gets.
func resolvConf() []byte {
	return []byte("# written by dogwood: .internal and everything else via the host's DNS\nnameserver " + sixpn.MachineDNS().String() + "\n")
}

func (a *Attacher) writeResolv(ns string) error {
	dir := filepath.Join(a.cfg.EtcNetns, ns)
	path := filepath.Join(dir, "resolv.conf")
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, resolvConf()) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := path + ".dogwood-tmp"
	if err := os.WriteFile(tmp, resolvConf(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path) // atomic: a process starting now never reads half a file
}

// openOrCreateNetns opens the named namespace, creating it when missing.
func openOrCreateNetns(name string) (netns.NsHandle, bool, error) {
	h, err := netns.GetFromName(name)
	if err == nil {
		return h, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return 0, false, fmt.Errorf("open netns %s: %w", name, err)
	}
	h, err = createNamedNetns(name)
	if err != nil {
		return 0, false, fmt.Errorf("create netns %s: %w", name, err)
	}
	return h, true, nil
}

// createNamedNetns is `ip netns add`: netns.NewNamed moves the calling thread into
// the new namespace, so it runs on a locked thread that is restored afterwards, or
// never unlocked (the runtime then discards it) if restoring fails.
func createNamedNetns(name string) (netns.NsHandle, error) {
	var h netns.NsHandle
	err := onLockedThread(func() error {
		var err error
		h, err = netns.NewNamed(name)
		return err
	})
	if err != nil && h.IsOpen() {
		h.Close()
	}
	return h, err
}

// onLockedThread runs f on a locked OS thread of its own and puts the
// thread back in its original network namespace afterwards, whatever f
// entered; if that fails the thread is never unlocked, so the runtime
// discards it instead of running other goroutines in the wrong namespace.
func onLockedThread(f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer orig.Close()
		err = f()
		if serr := netns.Set(orig); serr != nil {
			ch <- errors.Join(err, fmt.Errorf("restore thread netns: %w", serr))
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		ch <- err
	}()
	return <-ch
}
