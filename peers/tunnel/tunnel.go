// Package tunnel owns the rootless developer tunnel behind `dogwood dig|ping|proxy
// --config FILE` (SPEC §6): it brings up a userspace WireGuard device
// (wireguard-go) whose "interface" is a gVisor TCP/IP stack inside the process
// (tun/netstack), so no TUN device, no kernel module and no root are needed,
// and then speaks DNS, ICMPv6 echo and TCP through it.
//
// A Tunnel lives as long as one CLI command. Everything it starts is stopped
// by Close or by the cancellation of the context given to the method that
// started it.
package tunnel

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/config"
)

// DefaultMTU matches wg-quick's default for an IPv6 underlay (1500 minus the
// 80 bytes of IPv6+UDP+WireGuard overhead), so one config behaves the same
// under wg-quick and here.
const DefaultMTU = 1420

// Options tunes a Tunnel. The zero value is ready to use.
type Options struct {
	// Logger receives the tunnel's own messages and wireguard-go's (at
	// Debug); nil discards them.
	Logger *slog.Logger
	// Resolver resolves an endpoint given as a host name; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
	// Bind carries WireGuard's UDP packets; nil means conn.NewDefaultBind().
	// A Bind belongs to one tunnel: Close closes it.
	Bind conn.Bind
	// DNSTimeout bounds one DNS attempt over the tunnel (default 2 s); a
	// query makes at most two UDP attempts per server and one TCP attempt.
	DNSTimeout time.Duration
	// PingInterval is the gap between echo requests (default 1 s).
	PingInterval time.Duration
	// PingWait is how long Ping waits for outstanding replies after its
	// last request (default 2 s).
	PingWait time.Duration
	// DialTimeout bounds each TCP connection attempt of the proxy (default 10 s).
	DialTimeout time.Duration
	// LocalAddrs lists this machine's interface addresses, for Open to find
	// a tunnel that is already up; nil means the real interfaces.
	LocalAddrs func() ([]netip.Addr, error)
	// Share makes a tunnel Open starts serve its session to later Opens of
	// the same config by the same user (see share.go); for long-running
	// commands such as proxy.
	Share bool
	// ShareDir overrides where share sockets live (tests).
	ShareDir string
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Bind == nil {
		o.Bind = conn.NewDefaultBind()
	}
	if o.DNSTimeout <= 0 {
		o.DNSTimeout = 2 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = time.Second
	}
	if o.PingWait <= 0 {
		o.PingWait = 2 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.LocalAddrs == nil {
		o.LocalAddrs = localAddrs
	}
}

// Tunnel is a running userspace WireGuard device with its own TCP/IP stack.
// Its methods may be called concurrently.
type Tunnel struct {
	opts      Options
	log       *slog.Logger
	dnsServer []netip.Addr
	share     *shareServer // when this tunnel serves its session to others
	closeOnce sync.Once
	stop      chan struct{} // closed by Close; ends the watch (see yield.go)

	mu    sync.Mutex
	dev   *device.Device // nil when the tunnel was already up (system stack)
	net   *netstack.Net  // likewise
	stack stack
}

// currentStack is what the tunnel dials through now: its own session, or a
// tunnel of the same config that came up on this machine since (yield.go).
func (t *Tunnel) currentStack() stack {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stack
}

// Open is Up, unless the config's tunnel is already up on this machine (its
// address is on an interface, as after `wg-quick up` of the same file): then
// the returned Tunnel speaks through the machine's own routes and that
// tunnel. A second WireGuard session with the same key would take the
// gateway's session away from the live tunnel, which then stalls until its
// next handshake.
func Open(ctx context.Context, cfg config.Config, opts Options) (*Tunnel, error) {
	opts.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	if src, ok := liveAddress(cfg, opts.LocalAddrs); ok {
		opts.Logger.Debug("tunnel already up on this machine: using its route", "address", src)
		t := &Tunnel{opts: opts, log: opts.Logger, stack: systemStack{src: src}, dnsServer: dnsServers(cfg), stop: make(chan struct{})}
		if opts.Share {
			go t.watch(cfg) // its own session once that tunnel goes down
		}
		return t, nil
	}
	dir := opts.ShareDir
	if dir == "" {
		var err error
		if dir, err = shareDir(opts.Share); err != nil {
			opts.Logger.Debug("not sharing tunnels", "err", err)
		}
	}
	if dir != "" {
		if st, ok := findShared(dir, cfg); ok {
			opts.Logger.Debug("using the tunnel another dogwood process runs for this config")
			return &Tunnel{opts: opts, log: opts.Logger, stack: st, dnsServer: dnsServers(cfg), stop: make(chan struct{})}, nil
		}
	}
	t, err := Up(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	if opts.Share && dir != "" {
		if err := t.serveShare(dir, cfg); err != nil {
			t.log.Debug("not sharing this tunnel", "err", err)
		}
	}
	if opts.Share {
		// Long-running (a proxy): make way for a tunnel of the same config
		// brought up on this machine later (wg-quick up of the same file).
		go t.watch(cfg)
	}
	return t, nil
}

// Shared reports whether the Tunnel uses a tunnel that was already up on
// this machine (wg-quick, or another dogwood process) instead of its own
// session.
func (t *Tunnel) Shared() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dev == nil
}

// dnsServers are the config's resolvers; an older or hand-trimmed file (or a
// split or none DNS mode) has none, and every 6PN network has its resolver
// at fdaa:<net>::3 (SPEC §2).
func dnsServers(cfg config.Config) []netip.Addr {
	if len(cfg.DNS) > 0 {
		return cfg.DNS
	}
	if id, ok := sixpn.NetworkOf(cfg.Address[0].Addr()); ok {
		return []netip.Addr{sixpn.NetworkDNS(id)}
	}
	return nil
}

// Up starts a tunnel for cfg and waits (at most 2 s) for the first handshake
// with the gateway. ctx bounds only the start; the tunnel runs until Close.
func Up(ctx context.Context, cfg config.Config, opts Options) (*Tunnel, error) {
	opts.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	dnsServers := dnsServers(cfg)
	endpoint, err := resolveEndpoint(ctx, opts.Resolver, cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	local := make([]netip.Addr, len(cfg.Address))
	for i, p := range cfg.Address {
		local[i] = p.Addr()
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	tdev, tnet, err := netstack.CreateNetTUN(local, dnsServers, mtu)
	if err != nil {
		return nil, fmt.Errorf("tunnel: creating userspace network stack: %w", err)
	}
	log := opts.Logger
	dev := device.NewDevice(tdev, opts.Bind, &device.Logger{
		Verbosef: func(f string, a ...any) { log.Debug("wireguard: " + fmt.Sprintf(f, a...)) },
		// wireguard-go's "errors" are mostly transient (a lost handshake
		// packet); the user sees real failures as timeouts of the command.
		Errorf: func(f string, a ...any) { log.Debug("wireguard error: " + fmt.Sprintf(f, a...)) },
	})
	if err := dev.IpcSet(uapiConfig(cfg, endpoint)); err != nil {
		dev.Close()
		return nil, fmt.Errorf("tunnel: configuring WireGuard: %w", err)
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("tunnel: starting WireGuard: %w", err)
	}
	log.Debug("tunnel up", "address", local, "endpoint", endpoint, "dns", dnsServers)
	t := &Tunnel{opts: opts, log: log, dev: dev, net: tnet, stack: userStack{tnet}, dnsServer: dnsServers, stop: make(chan struct{})}
	t.awaitHandshake(ctx, cfg, endpoint)
	return t, nil
}

// handshakeWait bounds how long Up waits for the first handshake; handshakeKicks
// are the times (since Up) at which it re-initiates one that got no answer.
var (
	handshakeWait  = 2 * time.Second
	handshakeKicks = []time.Duration{250 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond}
)

// awaitHandshake waits, bounded by handshakeWait and ctx, until the first
// handshake with the gateway completed, so the command's first packets are not
// queued behind it, and re-initiates it quickly when it got no answer.
//
// Every `dogwood dig|ping|proxy --config` is a new WireGuard instance with the
// same key, and a gateway drops an initiation that comes within ~20 ms of the
// previous one from that key (WireGuard's flood protection, and replay
// protection: wireguard-go rounds handshake timestamps to ~16 ms), which is what
// back to back commands in a script do. wireguard-go itself would retry only
// after 5 s (REKEY_TIMEOUT), longer than a dig or a ping waits. Re-creating the
// peer resets its handshake timers, and with persistent keepalive on (as in every
// config Dogwood writes) it sends a fresh initiation at once. A gateway that
// never answers costs the wait once; the command then times out as before.
func (t *Tunnel) awaitHandshake(ctx context.Context, cfg config.Config, endpoint netip.AddrPort) {
	if cfg.PersistentKeepalive == 0 {
		return // nothing initiates a handshake before the first packet
	}
	pub := hex.EncodeToString(cfg.PublicKey[:])
	full := uapiConfig(cfg, endpoint)
	peer := full[strings.Index(full, "public_key="):]
	start := time.Now()
	kicks := handshakeKicks
	for time.Since(start) < handshakeWait {
		st, err := t.dev.IpcGet()
		if err != nil || !strings.Contains(st, "last_handshake_time_sec=0\n") {
			return // handshake done (or the device is gone)
		}
		if len(kicks) > 0 && time.Since(start) >= kicks[0] {
			kicks = kicks[1:]
			t.log.Debug("no handshake yet: initiating a new one")
			if err := t.dev.IpcSet("public_key=" + pub + "\nremove=true\n" + peer); err != nil {
				t.log.Debug("re-initiating handshake", "err", err)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.log.Debug("no handshake with the gateway yet", "waited", handshakeWait)
}

// Close stops the WireGuard device and the network stack; connections made
// through the tunnel fail afterwards. It is safe to call more than once.
func (t *Tunnel) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		if t.share != nil {
			t.share.close()
		}
		t.mu.Lock()
		dev := t.dev
		t.dev, t.net = nil, nil
		t.mu.Unlock()
		if dev != nil {
			dev.Close()
		}
	})
	return nil
}

// uapiConfig renders cfg in wireguard-go's UAPI "set" syntax. It must not
// start with a blank line: the UAPI parser treats an empty line as the end of
// the operation and would silently apply nothing.
func uapiConfig(cfg config.Config, endpoint netip.AddrPort) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", hex.EncodeToString(cfg.PrivateKey[:]))
	if cfg.ListenPort != 0 {
		fmt.Fprintf(&b, "listen_port=%d\n", cfg.ListenPort)
	}
	b.WriteString("replace_peers=true\n")
	fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(cfg.PublicKey[:]))
	if cfg.PresharedKey != [32]byte{} {
		fmt.Fprintf(&b, "preshared_key=%s\n", hex.EncodeToString(cfg.PresharedKey[:]))
	}
	fmt.Fprintf(&b, "endpoint=%s\n", endpoint)
	fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", cfg.PersistentKeepalive)
	b.WriteString("replace_allowed_ips=true\n")
	for _, p := range cfg.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", p.Masked())
	}
	return b.String()
}

// resolveEndpoint turns host:port into an address, since the UAPI only takes
// literal addresses.
func resolveEndpoint(ctx context.Context, r *net.Resolver, ep string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(ep); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("endpoint %q: %w", ep, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("endpoint %q: bad port", ep)
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolving endpoint %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving endpoint %s: no addresses", host)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(p)), nil
}

// Dig opens a tunnel for cfg, sends one query and tears the tunnel down.
func Dig(ctx context.Context, cfg config.Config, name string, qtype uint16) (*dns.Msg, error) {
	t, err := Open(ctx, cfg, Options{})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return t.Dig(ctx, name, qtype)
}

// Handshaked reports whether the tunnel's own session completed a handshake
// with the gateway; a tunnel that uses one already up on this machine has no
// session of its own and reports false.
func (t *Tunnel) Handshaked() bool {
	t.mu.Lock()
	dev := t.dev
	t.mu.Unlock()
	if dev == nil {
		return false
	}
	st, err := dev.IpcGet()
	return err == nil && strings.Contains(st, "last_handshake_time_sec=") && !strings.Contains(st, "last_handshake_time_sec=0\n")
}
