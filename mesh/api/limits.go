package api

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dogwood/dogwood/mesh/netlimit"
)

// Limits bound one HTTP listener so that idle, slow or numerous clients cannot
// starve the others or the process's file descriptors: every connection has a
// deadline for its headers, its body, its response and its idleness, and the
// listener holds at most MaxConns connections, PerSource of them from one source.
type Limits struct {
	MaxConns, PerSource           int
	ReadHeader, Read, Write, Idle time.Duration
	MaxHeaderBytes                int
}

// TCPAPILimits fit the TLS API: operators and scripts, a few at a time. Write is
// long enough for a backup of a large data file and for operations that wait on
// other hosts.
func TCPAPILimits() Limits {
	return Limits{MaxConns: 64, PerSource: 16, ReadHeader: 5 * time.Second, Read: 30 * time.Second,
		Write: 5 * time.Minute, Idle: 30 * time.Second, MaxHeaderBytes: 16 << 10}
}

// MetricsLimits fit a Prometheus endpoint: a scraper or two.
func MetricsLimits() Limits {
	return Limits{MaxConns: 32, PerSource: 8, ReadHeader: 5 * time.Second, Read: 10 * time.Second,
		Write: 30 * time.Second, Idle: 30 * time.Second, MaxHeaderBytes: 16 << 10}
}

// UnixLimits fit the unix socket: only local root reaches it, so it has timeouts
// but no connection cap (a cap there would let nothing in that the TCP side
// could not already take).
func UnixLimits() Limits {
	return Limits{ReadHeader: 10 * time.Second, Read: time.Minute, Write: 5 * time.Minute, Idle: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}

// NewHTTPServer returns a server for h with l's timeouts. net/http's own complaints
// (TLS handshakes from scanners, timeouts) go to log at debug level; nil discards.
func NewHTTPServer(h http.Handler, l Limits, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeader, ReadTimeout: l.Read,
		WriteTimeout: l.Write, IdleTimeout: l.Idle, MaxHeaderBytes: l.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
}

// Listen opens a TCP listener capped by l; with cert set it serves TLS only.
func Listen(addr string, l Limits, cert *tls.Certificate) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var out net.Listener = netlimit.Wrap(ln, netlimit.NewPool(l.MaxConns), l.PerSource)
	if cert != nil {
		out = tls.NewListener(out, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	}
	return out, nil
}
