// Package forward owns the path of names Dogwood is not authoritative for: it sends
// them to the upstream resolvers (`--upstream-dns`, default the host's resolv.conf)
// with failover between upstreams, a bounded time per attempt and overall, and a cap
// on queries in flight so a dead upstream can never pile up goroutines. When no
// upstream answers the caller gets an error and answers SERVFAIL: never a hang.
package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultResolvConf is where upstreams come from when none are configured.
const DefaultResolvConf = "/etc/resolv.conf"

// Config configures a Forwarder.
type Config struct {
	// Upstreams are "IP" or "IP:PORT" (IPv6 in brackets with a port). Empty: read
	// ResolvConf.
	Upstreams []string
	// ResolvConf is read when Upstreams is empty; default DefaultResolvConf. Tests
	// point it at a temporary file.
	ResolvConf string
	// Exclude drops upstreams equal to these addresses (our own listeners: forwarding
	// to ourselves would loop).
	Exclude []netip.AddrPort
	// Attempt bounds one upstream exchange (default 1.5 s); Total bounds the whole
	// failover (default 4 s).
	Attempt, Total time.Duration
	// MaxInFlight caps concurrent forwarded queries (default 512); beyond it queries
	// fail at once.
	MaxInFlight int
	// OnFailure, if set, is told about every failed upstream attempt.
	OnFailure func(upstream string, err error)
}

// Forwarder sends queries upstream. Safe for concurrent use.
type Forwarder struct {
	upstreams []string
	attempt   time.Duration
	total     time.Duration
	sem       chan struct{}
	onFailure func(string, error)
	// first is the upstream that answered last: failover is sticky so a dead first
	// upstream costs one timeout, not one per query.
	first atomic.Int32
}

// ErrNoUpstream is returned when no upstream answered.
var ErrNoUpstream = errors.New("forward: no upstream answered")

// ErrBusy is returned when MaxInFlight queries are already waiting on upstreams.
var ErrBusy = errors.New("forward: too many queries in flight")

// New builds a Forwarder. It fails only when the configured upstreams are malformed;
// an unreadable resolv.conf gives a forwarder with no upstreams (every query fails
// with ErrNoUpstream) so the agent still serves .internal.
func New(cfg Config) (*Forwarder, error) {
	f := &Forwarder{attempt: cfg.Attempt, total: cfg.Total, onFailure: cfg.OnFailure}
	if f.attempt <= 0 {
		f.attempt = 1500 * time.Millisecond
	}
	if f.total <= 0 {
		f.total = 4 * time.Second
	}
	n := cfg.MaxInFlight
	if n <= 0 {
		n = 512
	}
	f.sem = make(chan struct{}, n)
	list := cfg.Upstreams
	if len(list) == 0 {
		path := cfg.ResolvConf
		if path == "" {
			path = DefaultResolvConf
		}
		var err error
		if list, err = FromResolvConf(path); err != nil {
			list = nil
		}
	}
	excluded := map[netip.AddrPort]bool{}
	for _, a := range cfg.Exclude {
		excluded[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())] = true
	}
	for _, u := range list {
		ap, err := ParseUpstream(u)
		if err != nil {
			return nil, err
		}
		if excluded[ap] {
			continue
		}
		f.upstreams = append(f.upstreams, ap.String())
	}
	return f, nil
}

// Upstreams returns the upstream addresses in use.
func (f *Forwarder) Upstreams() []string { return append([]string(nil), f.upstreams...) }

// ParseUpstream parses "IP" or "IP:PORT" (port 53 by default).
func ParseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("upstream %q: want IP or IP:PORT", s)
	}
	return netip.AddrPortFrom(a.Unmap(), 53), nil
}

// FromResolvConf returns the nameservers of a resolv.conf file as "IP:PORT".
func FromResolvConf(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out, nil
}

// Exchange forwards req and returns the upstream's response with req's id. Over TCP
// when tcp is set (the client came over TCP, typically after a truncated answer).
// Upstreams are tried in turn starting with the last one that worked; an upstream
// answering SERVFAIL or REFUSED is skipped if another one does better.
func (f *Forwarder) Exchange(ctx context.Context, req *dns.Msg, tcp bool) (*dns.Msg, error) {
	if len(f.upstreams) == 0 {
		return nil, ErrNoUpstream
	}
	select {
	case f.sem <- struct{}{}:
		defer func() { <-f.sem }()
	default:
		return nil, ErrBusy
	}
	ctx, cancel := context.WithTimeout(ctx, f.total)
	defer cancel()

	m := req.Copy()
	stripSubnet(m)
	network := "udp"
	if tcp {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: f.attempt}
	if opt := m.IsEdns0(); opt != nil {
		c.UDPSize = opt.UDPSize()
	}

	var fallback *dns.Msg
	n := len(f.upstreams)
	start := int(f.first.Load())
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		idx := (start + i) % n
		up := f.upstreams[idx]
		m.Id = dns.Id() // fresh id per attempt: a late answer to an earlier one is not taken
		resp, _, err := c.ExchangeContext(ctx, m, up)
		if err == nil && resp.Rcode != dns.RcodeServerFailure && resp.Rcode != dns.RcodeRefused {
			f.first.Store(int32(idx))
			resp.Id = req.Id
			return resp, nil
		}
		if err == nil {
			err = errors.New("rcode " + dns.RcodeToString[resp.Rcode])
			fallback = resp
		}
		if f.onFailure != nil {
			f.onFailure(up, err)
		}
	}
	if fallback != nil {
		fallback.Id = req.Id
		return fallback, nil
	}
	return nil, ErrNoUpstream
}

// stripSubnet drops EDNS Client Subnet options: they carry 6PN prefixes that mean
// nothing upstream and should not leave the host.
func stripSubnet(m *dns.Msg) {
	opt := m.IsEdns0()
	if opt == nil {
		return
	}
	kept := opt.Option[:0]
	for _, o := range opt.Option {
		if o.Option() != dns.EDNS0SUBNET {
			kept = append(kept, o)
		}
	}
	opt.Option = kept
}

// String describes the forwarder for logs.
func (f *Forwarder) String() string {
	return "forward(" + strconv.Itoa(len(f.upstreams)) + " upstreams)"
}
