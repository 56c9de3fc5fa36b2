// Package device owns the WireGuard interface itself: creating it in kernel mode (a
// netlink link of type wireguard) or userspace mode (an embedded wireguard-go device
// on a TUN, with the UAPI socket in /var/run/wireguard so `wg show` and wgctrl work),
// setting its key, port and MTU, bringing it up, and destroying it. Both modes are
// configured and read through the same wgctrl client, so the reconciler
// (peers/wgsync) never knows which one runs.
package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Mode selects the WireGuard implementation.
type Mode string

const (
	// Auto uses the kernel module when the kernel has it, else userspace.
	Auto Mode = "auto"
	// Kernel requires the kernel module.
	Kernel Mode = "kernel"
	// Userspace runs wireguard-go inside the agent.
	Userspace Mode = "userspace"
)

// ParseMode checks a --wireguard value other than "off".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Kernel, Userspace:
		return m, nil
	}
	return "", fmt.Errorf("wireguard mode %q: want auto, kernel or userspace", s)
}

// DefaultMTU leaves room for WireGuard's 80 bytes of IPv6+UDP+WireGuard overhead
// inside a 1500-byte underlay.
const DefaultMTU = 1420

// SocketDir is where wireguard-go and `wg` look for userspace devices.
const SocketDir = "/var/run/wireguard"

// Config is everything Open needs.
type Config struct {
	Name       string // interface name, ≤ 15 bytes
	Mode       Mode
	MTU        int // 0 means DefaultMTU
	PrivateKey wgtypes.Key
	ListenPort int
	Logger     *slog.Logger
	// TUNGrace is how long Open waits for an existing TUN of this name to go away
	// (0: DefaultTUNGrace).
	TUNGrace time.Duration
}

// Device is an open WireGuard interface. Its Device and ConfigureDevice methods make
// it a wgsync.Device. Safe for concurrent use.
type Device struct {
	name string
	mode Mode
	log  *slog.Logger

	client *wgctrl.Client

	// userspace only
	wg      *wgdevice.Device
	uapi    net.Listener
	done    chan struct{}
	noLink  bool // in-memory TUN: no kernel link to configure
	closeMu sync.Mutex
	closed  bool
}

// Open creates (or, for a kernel link that survived an agent restart, adopts) the
// interface, sets key, port and MTU, and brings it up.
func Open(cfg Config) (*Device, error) {
	if cfg.Name == "" || len(cfg.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("wireguard interface name %q: want 1..15 bytes", cfg.Name)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Device{name: cfg.Name, log: cfg.Logger.With("interface", cfg.Name)}
	var err error
	switch cfg.Mode {
	case Kernel:
		err = d.openKernel(cfg)
	case Userspace:
		err = d.openUserspace(cfg, nil)
	case Auto, "":
		err = d.openKernel(cfg)
		if errors.Is(err, errNoKernelSupport) {
			d.log.Info("kernel has no WireGuard, using embedded wireguard-go")
			err = d.openUserspace(cfg, nil)
		}
	default:
		err = fmt.Errorf("unknown wireguard mode %q", cfg.Mode)
	}
	if err != nil {
		return nil, err
	}
	if err := d.configure(cfg); err != nil {
		d.Destroy()
		return nil, err
	}
	return d, nil
}

// openOn is Open in userspace mode on a caller-provided TUN.
func openOn(cfg Config, t tun.Device) (*Device, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Device{name: cfg.Name, log: cfg.Logger}
	if err := d.openUserspace(cfg, t); err != nil {
		return nil, err
	}
	if err := d.configure(cfg); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

var errNoKernelSupport = errors.New("kernel has no WireGuard support")

// DefaultTUNGrace is how long Open waits for a TUN interface of its name to go away. A
// wireguard-go TUN lives as long as the file descriptor of the process that made it;
// when an agent restarts (an upgrade, systemd's Restart=) the kernel may still be
// tearing down the previous process's TUN as the new one starts, and on a loaded host
// that takes a moment. Without the wait the new agent fails with "interface exists".
// A TUN that outlives it belongs to a running process: then it is an error.
const DefaultTUNGrace = 5 * time.Second

// lingering looks the interface up, waiting up to grace for a TUN to disappear.
// It returns the link that exists, or the lookup error when there is none.
func (d *Device) lingering(name string, grace time.Duration) (netlink.Link, error) {
	if grace == 0 {
		grace = DefaultTUNGrace
	}
	deadline := time.Now().Add(grace)
	logged := false
	for {
		l, err := netlink.LinkByName(name)
		if err != nil || l.Type() != "tuntap" && l.Type() != "tun" || !time.Now().Before(deadline) {
			return l, err
		}
		if !logged {
			d.log.Info("waiting for the previous TUN interface to go away", "up_to", grace)
			logged = true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *Device) openKernel(cfg Config) error {
	if l, err := d.lingering(cfg.Name, cfg.TUNGrace); err == nil {
		if l.Type() != "wireguard" {
			return fmt.Errorf("interface %s exists and is a %s, not a kernel WireGuard link (another agent running?)", cfg.Name, l.Type())
		}
		// A kernel link outlives the agent: adopt it so a restart keeps every
		// tunnel; the reconciler fixes whatever drifted.
		d.log.Info("adopting existing kernel WireGuard interface")
	} else {
		err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: cfg.Name, MTU: cfg.MTU}})
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EAFNOSUPPORT) {
			return fmt.Errorf("%w: %v", errNoKernelSupport, err)
		}
		if err != nil {
			return fmt.Errorf("create kernel WireGuard link %s: %w", cfg.Name, err)
		}
	}
	c, err := wgctrl.New()
	if err != nil {
		return fmt.Errorf("wgctrl: %w", err)
	}
	d.client, d.mode = c, Kernel
	return nil
}

// openUserspace runs wireguard-go on t, or on a new kernel TUN when t is nil
// (benchmarks pass an in-memory TUN so they need no interface).
func (d *Device) openUserspace(cfg Config, t tun.Device) error {
	if t == nil {
		if l, err := d.lingering(cfg.Name, cfg.TUNGrace); err == nil {
			return fmt.Errorf("interface %s already exists (%s): another agent or wireguard-go owns it", cfg.Name, l.Type())
		}
		var err error
		t, err = tun.CreateTUN(cfg.Name, cfg.MTU)
		if err != nil {
			return fmt.Errorf("create TUN %s: %w", cfg.Name, err)
		}
	} else {
		d.noLink = true
	}
	log := d.log
	logger := &wgdevice.Logger{
		Verbosef: wgdevice.DiscardLogf,
		Errorf:   func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...), "component", "wireguard-go") },
	}
	// wireguard-go logs a line per peer on every UAPI set; formatting them only to
	// discard them costs more than the diff itself on large fleets.
	if log.Enabled(context.Background(), slog.LevelDebug) {
		logger.Verbosef = func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...), "component", "wireguard-go") }
	}
	wg := wgdevice.NewDevice(t, conn.NewDefaultBind(), logger)
	f, err := ipc.UAPIOpen(cfg.Name)
	if err != nil {
		wg.Close()
		return fmt.Errorf("open UAPI socket for %s: %w", cfg.Name, err)
	}
	l, err := ipc.UAPIListen(cfg.Name, f)
	f.Close()
	if err != nil {
		wg.Close()
		return fmt.Errorf("listen on UAPI socket for %s: %w", cfg.Name, err)
	}
	d.wg, d.uapi, d.done, d.mode = wg, l, make(chan struct{}), Userspace
	go func() {
		defer close(d.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go wg.IpcHandle(c)
		}
	}()
	c, err := wgctrl.New()
	if err != nil {
		d.Close()
		return fmt.Errorf("wgctrl: %w", err)
	}
	d.client = c
	return nil
}

func (d *Device) configure(cfg Config) error {
	port := cfg.ListenPort
	key := cfg.PrivateKey
	if err := d.client.ConfigureDevice(d.name, wgtypes.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
		return fmt.Errorf("configure %s: %w", d.name, err)
	}
	if d.noLink {
		return d.wg.Up()
	}
	l, err := netlink.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("find %s: %w", d.name, err)
	}
	if l.Attrs().MTU != cfg.MTU {
		if err := netlink.LinkSetMTU(l, cfg.MTU); err != nil {
			return fmt.Errorf("set MTU of %s: %w", d.name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", d.name, err)
	}
	if d.wg != nil {
		// wireguard-go follows the TUN's link state, but bringing it up here makes
		// Open's postcondition independent of that event arriving.
		if err := d.wg.Up(); err != nil {
			return fmt.Errorf("start wireguard-go on %s: %w", d.name, err)
		}
	}
	return nil
}

// Name is the interface name.
func (d *Device) Name() string { return d.name }

// Mode is the mode actually running: Kernel or Userspace.
func (d *Device) Mode() Mode { return d.mode }

// Device reads the interface's configuration and peers.
func (d *Device) Device() (*wgtypes.Device, error) { return d.client.Device(d.name) }

// ConfigureDevice applies a partial configuration.
func (d *Device) ConfigureDevice(cfg wgtypes.Config) error {
	return d.client.ConfigureDevice(d.name, cfg)
}

// Close stops using the interface. A userspace interface disappears with its
// wireguard-go device; a kernel link is left up with its peers, so an agent restart
// does not interrupt tunnels (Open adopts it again). Idempotent.
func (d *Device) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.client != nil {
		d.client.Close()
	}
	if d.wg != nil {
		d.uapi.Close()
		<-d.done
		d.wg.Close()
		// The socket file outlives its listener; a stale one would make `wg show`
		// list a dead interface.
		if err := os.Remove(filepath.Join(SocketDir, d.name+".sock")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Destroy closes the device and removes the interface in both modes (the host is
// leaving the cluster).
func (d *Device) Destroy() error {
	err := d.Close()
	if d.mode == Kernel || d.mode == "" {
		if l, lerr := netlink.LinkByName(d.name); lerr == nil && l.Type() == "wireguard" {
			if derr := netlink.LinkDel(l); derr != nil {
				err = errors.Join(err, fmt.Errorf("delete %s: %w", d.name, derr))
			}
		}
	}
	return err
}
