//go:build agent

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/dns/server"
	"github.com/dogwood/dogwood/mesh/catalog"
)

// latestSource hands DNS the lock-free latest snapshot.
type latestSource struct{ c *catalog.Catalog }

func (s latestSource) Snapshot() *catalog.Snapshot { return s.c.Latest() }

type dnsService struct {
	srv    *server.Server
	cancel func()
	log    *slog.Logger
	// closed keeps the agent loop from resyncing listeners of a closed server (it
	// keeps applying while the agent leaves the cluster).
	closed atomic.Bool
}

// startDNS serves .internal on --dns-listen. Answers read the catalog's latest
// snapshot; the listeners on fdaa::3 and fdaa:<net>::3 (port 53) are the agent
// loop's to move (SyncListeners), after the data plane put those addresses up.
func startDNS(o agentOptions, cat *catalog.Catalog, near resolve.Nearness, rv *reachView, log *slog.Logger, reg prometheus.Registerer) (*dnsService, error) {
	var listen []netip.AddrPort
	for _, l := range o.DNSListen {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			return nil, usagef("invalid --dns-listen %q: want IP:PORT", l)
		}
		listen = append(listen, ap)
	}
	for _, u := range o.UpstreamDNS {
		if _, err := netip.ParseAddrPort(u); err != nil {
			if _, err := netip.ParseAddr(u); err != nil {
				return nil, usagef("invalid --upstream-dns %q: want IP or IP:PORT", u)
			}
		}
	}
	ch, cancel := cat.Watch()
	var reach resolve.Reachability
	if rv != nil {
		reach = rv
	}
	srv, err := server.New(server.Config{
		Reachability: reach,
		Source:       latestSource{cat}, Changed: ch, Nearness: near, Listen: listen,
		Upstreams: o.UpstreamDNS, ResolvConf: o.ResolvConf, Logger: log, Registerer: reg, RRL: o.DNSRRL,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	if err := srv.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("dns: %w", err)
	}
	return &dnsService{srv: srv, cancel: cancel, log: log}, nil
}

// SyncListeners serves on exactly the static listeners and addrs.
func (s *dnsService) SyncListeners(addrs []netip.AddrPort) error {
	if s.closed.Load() {
		return nil
	}
	return s.srv.SyncListeners(addrs)
}

func (s *dnsService) resolve(ctx context.Context, network uint32, name string, qtype uint16) (*dns.Msg, error) {
	return s.srv.Dig(ctx, network, name, qtype)
}

func (s *dnsService) close() {
	s.closed.Store(true)
	s.cancel()
	s.srv.Close()
}
