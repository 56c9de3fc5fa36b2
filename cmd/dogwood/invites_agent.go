//go:build agent

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/invite"
	"github.com/dogwood/dogwood/mesh/netlimit"
)

// defaultInvitePort is where gateways serve invitation redemption (SPEC §6).
const defaultInvitePort = 51821

// inviteListener is a gateway's invitation service before and after the node
// starts: the book, identity and socket exist first (codes name the socket's
// port), the server needs the node to create peers.
type inviteListener struct {
	cfg *mesh.InviteConfig
	ln  net.Listener
	srv *invite.Server
	log *slog.Logger
}

// openInvites prepares invitations on a gateway: nil (and no error) when the
// host is not a gateway, --invite-listen is off, or the default port is taken
// (then a warning says so; an explicit address that cannot be bound is an
// error).
func openInvites(o agentOptions, publicEndpoint string, log *slog.Logger, reg prometheus.Registerer) (*inviteListener, error) {
	if !o.Gateway || o.InviteListen == "off" {
		if !o.Gateway && o.InviteListen != "" && o.InviteListen != "off" {
			log.Warn("--invite-listen is ignored: only gateways (--gateway) serve invitations")
		}
		return nil, nil
	}
	addr := o.InviteListen
	if addr == "" {
		addr = net.JoinHostPort("", strconv.Itoa(defaultInvitePort))
	}
	pubHost, _, err := net.SplitHostPort(publicEndpoint)
	if err != nil {
		return nil, usagef("--public-endpoint %q: %v", publicEndpoint, err)
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if o.InviteListen == "" {
			log.Warn("not serving invitations: cannot listen on the default port (set --invite-listen)", "addr", addr, "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("--invite-listen %s: %w", addr, err)
	}
	// The server takes 64 connections at a time; one source may hold 16 of them,
	// and its excess is closed at once instead of queueing ahead of everyone else.
	ln = netlimit.Wrap(ln, nil, 16)
	fail := func(err error) (*inviteListener, error) { ln.Close(); return nil, err }
	id, err := invite.LoadOrCreateIdentity(filepath.Join(o.DataDir, "invite-tls.pem"), o.Name, time.Now())
	if err != nil {
		return fail(err)
	}
	book, err := invite.OpenBook(filepath.Join(o.DataDir, "invites.json"), time.Now)
	if err != nil {
		return fail(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := &mesh.InviteConfig{Book: book, Pin: id.Pin, Endpoint: net.JoinHostPort(pubHost, strconv.Itoa(port))}
	results := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_invite_redemptions_total",
		Help: "Invitation redemption attempts by result: ok, unknown, used, expired, bad, failed, rate_limited."}, []string{"result"})
	if reg != nil {
		if err := reg.Register(results); err != nil {
			return fail(err)
		}
	}
	count := func(result string) { results.WithLabelValues(result).Inc() }
	return &inviteListener{cfg: cfg, ln: ln, log: log,
		srv: &invite.Server{Identity: id, Logger: log, Counted: count, Check: book.Check}}, nil
}

// serve starts redemption once the node runs.
func (l *inviteListener) serve(node *mesh.Node) {
	if l == nil {
		return
	}
	l.srv.Redeem = node.Invites.Redeem
	l.log.Info("serving invitations", "listen", l.ln.Addr().String(), "endpoint", l.cfg.Endpoint, "pin", invite.PinOf(l.cfg.Pin))
	go func() {
		if err := l.srv.Serve(l.ln); err != nil {
			l.log.Error("invite listener stopped", "err", err)
		}
	}()
}

// close stops the listener (before the node closes); it may be called again.
func (l *inviteListener) close(ctx context.Context) {
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	l.srv.Shutdown(ctx)
	l.ln.Close()
}

func (l *inviteListener) config() *mesh.InviteConfig {
	if l == nil {
		return nil
	}
	return l.cfg
}
