// Package server owns Dogwood's DNS service on the wire (SPEC §4): the UDP and TCP
// listeners (static --dns-listen ones and the fdaa::3 / fdaa:<net>::3 addresses the
// WireGuard layer brings and takes away), deciding which network each query is for,
// EDNS and truncation, forwarding names that are not ours, metrics, and the
// `dogwood dig` entry point with its dig-like formatter.
//
// Answers come from package resolve, upstream traffic from package forward; this
// package only wires them to sockets. It uses miekg/dns servers with its own
// handler (never the global mux).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/dns/forward"
	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/mesh/netlimit"
)

// Config configures a Server. Build it whole before New; it is not read afterwards.
type Config struct {
	// Source hands out the latest catalog snapshot (required).
	Source resolve.Source
	// Changed, if set, signals catalog changes; the server then prebuilds indexes so
	// the first query after a change does not pay for it. Answers never wait for it.
	Changed <-chan struct{}
	// Nearness orders top<N>.nearest.of answers; nil orders remote hosts by name.
	Nearness resolve.Nearness
	// Reachability, if set, leaves out machines on hosts this host cannot reach.
	Reachability resolve.Reachability
	// Listen are the static --dns-listen addresses, served over UDP and TCP. A
	// loopback one honours EDNS Client Subnet for scoping. Port 0 picks a free port
	// (the same one for UDP and TCP); Addrs reports it.
	Listen []netip.AddrPort
	// Upstreams, ResolvConf: see forward.Config.
	Upstreams  []string
	ResolvConf string
	// ForwardAttempt and ForwardTimeout bound one upstream try and the whole
	// failover (defaults 1.5 s and 4 s).
	ForwardAttempt, ForwardTimeout time.Duration
	// MaxUDPSize caps UDP responses whatever the client's EDNS buffer says (default
	// 1232, the size that avoids IP fragmentation on any path).
	MaxUDPSize int
	// MaxTCPConns caps open TCP connections over all listeners together (default
	// 512), and MaxTCPPerSource those from one source (a machine's /112, an IPv6
	// /64, an IPv4 address; default 32): a new network's listener adds no file
	// descriptors to the budget, and one client cannot hold the others out.
	MaxTCPConns     int
	MaxTCPPerSource int
	// UDPSockets is how many UDP sockets serve each address bound to one IP (joined
	// with SO_REUSEPORT, each read by its own goroutine); default GOMAXPROCS, so one
	// per core the process may use. Wildcard addresses always get one socket, served
	// by miekg/dns (a reply there must leave from the address the query came to).
	UDPSockets int
	// RRL, when above 0, limits UDP responses to RRL a second per client prefix
	// (IPv4 /24, IPv6 /56); past it every second response is truncated and empty
	// and the rest dropped (rrl.go). Off by default.
	RRL int
	// Clock is for RRL; nil is time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
	// Registerer receives the dogwood_dns_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Server serves .internal over UDP and TCP on a changing set of addresses.
type Server struct {
	res     *resolve.Resolver
	fwd     *forward.Forwarder
	log     *slog.Logger
	met     *metrics
	maxUDP  int
	tcpPool *netlimit.Pool
	perSrc  int
	sockets int
	static  []netip.AddrPort
	changed <-chan struct{}
	rrl     *rrl

	scratch sync.Pool

	mu        sync.Mutex
	listeners map[netip.AddrPort]*listener
	closed    bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// New builds a server; nothing listens until Start.
func New(cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, errors.New("dns: Config.Source is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dns: metrics: %w", err)
	}
	var exclude []netip.AddrPort
	for _, a := range cfg.Listen {
		if a.Port() != 0 {
			exclude = append(exclude, a)
		}
	}
	fwd, err := forward.New(forward.Config{
		Upstreams: cfg.Upstreams, ResolvConf: cfg.ResolvConf, Exclude: exclude,
		Attempt: cfg.ForwardAttempt, Total: cfg.ForwardTimeout,
		OnFailure: func(up string, err error) {
			met.upstream.WithLabelValues(up).Inc()
			log.Debug("upstream failed", "upstream", up, "err", err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	s := &Server{
		res:       resolve.New(cfg.Source, cfg.Nearness),
		fwd:       fwd,
		log:       log,
		met:       met,
		maxUDP:    cfg.MaxUDPSize,
		perSrc:    cfg.MaxTCPPerSource,
		sockets:   cfg.UDPSockets,
		static:    append([]netip.AddrPort(nil), cfg.Listen...),
		changed:   cfg.Changed,
		rrl:       newRRL(cfg.RRL, cfg.Clock),
		listeners: map[netip.AddrPort]*listener{},
		stop:      make(chan struct{}),
	}
	if cfg.Reachability != nil {
		s.res.SetReachability(cfg.Reachability)
	}
	if s.maxUDP < 512 {
		s.maxUDP = 1232
	}
	if s.maxUDP > resolve.MaxMsg {
		s.maxUDP = resolve.MaxMsg
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = 512
	}
	s.tcpPool = netlimit.NewPool(cfg.MaxTCPConns)
	if s.perSrc <= 0 {
		s.perSrc = 32
	}
	if s.sockets <= 0 {
		s.sockets = runtime.GOMAXPROCS(0)
	}
	s.scratch.New = newScratch
	if len(fwd.Upstreams()) == 0 {
		log.Warn("no upstream resolvers: names outside .internal will get SERVFAIL")
	}
	return s, nil
}

// Resolver exposes the resolver (for tests and the agent's own lookups).
func (s *Server) Resolver() *resolve.Resolver { return s.res }

// Start binds the static listeners and, with Config.Changed, starts prebuilding
// indexes on changes. A static address that cannot be bound is an error.
func (s *Server) Start() error {
	if s.changed != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-s.stop:
					return
				case _, ok := <-s.changed:
					if !ok {
						return
					}
					s.res.Refresh()
				}
			}
		}()
	}
	return s.SyncListeners(nil)
}

// SyncListeners makes the server listen on exactly the static addresses plus addrs
// (typically fdaa::3:53 and fdaa:<net>::3:53 for the networks this host serves):
// new ones are bound, gone ones closed, the rest untouched. It is level-triggered:
// call it with the whole wanted set whenever it may have changed; addresses that
// failed to bind are retried on the next call. The error joins every failure.
func (s *Server) SyncListeners(addrs []netip.AddrPort) error {
	want := map[netip.AddrPort]bool{}
	static := map[netip.AddrPort]bool{}
	for _, a := range s.static {
		want[a], static[a] = true, true
	}
	for _, a := range addrs {
		want[a] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dns: server closed")
	}
	var errs []error
	for a, l := range s.listeners {
		if !want[a] {
			l.close()
			delete(s.listeners, a)
		}
	}
	for a := range want {
		if s.listeners[a] != nil {
			continue
		}
		l, err := s.listen(a, static[a])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.listeners[a] = l
	}
	return errors.Join(errs...)
}

// Addrs returns the bound addresses (UDP; TCP uses the same ones), sorted.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.AddrPort
	for _, l := range s.listeners {
		out = append(out, l.bound)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	return out
}

// Close stops every listener and waits for in-flight queries (bounded by the
// forward timeout).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for a, l := range s.listeners {
		l.close()
		delete(s.listeners, a)
	}
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	return nil
}

// listener is one address served over UDP and TCP.
type listener struct {
	bound netip.AddrPort
	// UDP is served either by our batched loops (batch, one per socket) or, on a
	// wildcard address, by miekg/dns (udp).
	batch []*udpServer
	udp   *dns.Server
	tcp   *dns.Server
	wg    sync.WaitGroup
	log   *slog.Logger
}

func (s *Server) listen(a netip.AddrPort, static bool) (*listener, error) {
	sockets := s.sockets
	if a.Addr().IsUnspecified() {
		sockets = 1
	}
	lc := net.ListenConfig{Control: freebind}
	if sockets > 1 {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			if err := freebind(network, address, c); err != nil {
				return err
			}
			return reusePort(c)
		}
	}
	ctx := context.Background()
	var (
		pc    net.PacketConn
		ln    net.Listener
		bound netip.AddrPort
		err   error
	)
	// With port 0 the kernel picks a free UDP port, which TCP may already use:
	// try a few ports rather than fail.
	for attempt := 0; ; attempt++ {
		pc, err = lc.ListenPacket(ctx, "udp", a.String())
		if err != nil {
			return nil, fmt.Errorf("dns: listen udp %s: %w", a, err)
		}
		bound = netip.AddrPortFrom(a.Addr(), pc.LocalAddr().(*net.UDPAddr).AddrPort().Port())
		ln, err = lc.Listen(ctx, "tcp", bound.String())
		if err == nil {
			break
		}
		pc.Close()
		if a.Port() != 0 || attempt == 20 {
			return nil, fmt.Errorf("dns: listen tcp %s: %w", bound, err)
		}
	}
	pcs := []net.PacketConn{pc}
	for len(pcs) < sockets {
		more, err := lc.ListenPacket(ctx, "udp", bound.String())
		if err != nil {
			for _, c := range pcs {
				c.Close()
			}
			ln.Close()
			return nil, fmt.Errorf("dns: listen udp %s (socket %d): %w", bound, len(pcs)+1, err)
		}
		pcs = append(pcs, more)
	}
	lis := Listener{Addr: a.Addr(), Static: static}
	h := &handler{s: s, l: lis}
	l := &listener{bound: bound, log: s.log}
	if a.Addr().IsUnspecified() {
		// Wildcard sockets need per-packet control messages so a reply leaves from
		// the address the query was sent to; miekg/dns does that.
		l.udp = &dns.Server{
			PacketConn:     pc,
			Handler:        h,
			UDPSize:        resolve.MaxMsg, // read buffer: never cut a large EDNS query
			MsgInvalidFunc: s.invalid,
		}
	} else {
		for _, c := range pcs {
			l.batch = append(l.batch, newUDPServer(s, lis, c))
		}
	}
	l.tcp = &dns.Server{
		Listener:       netlimit.Wrap(ln, s.tcpPool, s.perSrc),
		Handler:        h,
		ReadTimeout:    2 * time.Second,
		WriteTimeout:   2 * time.Second,
		IdleTimeout:    func() time.Duration { return 8 * time.Second },
		MsgInvalidFunc: s.invalid,
	}
	if err := l.start(); err != nil {
		return nil, fmt.Errorf("dns: serve %s: %w", bound, err)
	}
	s.log.Info("dns listening", "addr", bound.String(), "static", static, "udp_sockets", len(pcs))
	return l, nil
}

func (l *listener) servers() []*dns.Server {
	if l.udp != nil {
		return []*dns.Server{l.udp, l.tcp}
	}
	return []*dns.Server{l.tcp}
}

func (l *listener) start() error {
	// The batched loops first: close, on a failure below, waits for them to end.
	for _, u := range l.batch {
		u.start()
	}
	errs := make(chan error, 2)
	for _, srv := range l.servers() {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
		select {
		case <-started:
		case err := <-errs:
			l.close()
			return err
		}
	}
	return nil
}

func (l *listener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range l.servers() {
		if err := srv.ShutdownContext(ctx); err != nil && !isNotStarted(err) {
			l.log.Warn("dns listener shutdown", "addr", l.bound.String(), "err", err)
		}
	}
	// A server that never started still owns its socket.
	if l.udp != nil && l.udp.PacketConn != nil {
		l.udp.PacketConn.Close()
	}
	if l.tcp.Listener != nil {
		l.tcp.Listener.Close()
	}
	for _, u := range l.batch {
		u.close()
	}
	l.wg.Wait()
}

func isNotStarted(err error) bool { return err != nil && err.Error() == "dns: server not started" }

func (s *Server) invalid(_ []byte, _ error) { s.met.malformed.Inc() }
