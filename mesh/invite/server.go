package invite

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"
)

// Request is what `join` sends: the code's secret and the laptop's public key.
type Request struct {
	Secret    string `json:"secret"` // base64url, no padding
	PublicKey string `json:"public_key"`
}

// Response is everything the laptop needs to write its config.
type Response struct {
	Name             string `json:"name"`
	Org              string `json:"org"`
	Network          string `json:"network"`
	Gateway          string `json:"gateway"`
	Region           string `json:"region"`
	Address          string `json:"address"`
	DNS              string `json:"dns"`
	DNSMode          string `json:"dns_mode"`
	NetworkPrefix    string `json:"network_prefix"`
	GatewayPublicKey string `json:"gateway_public_key"`
	GatewayEndpoint  string `json:"gateway_endpoint"`
}

// Redeemer creates the invitation's peer with publicKey, claiming the
// invitation in the gateway's Book.
type Redeemer func(ctx context.Context, secret [SecretLen]byte, publicKey string) (*Response, error)

// BadRequest marks an error in what the client sent (an invalid key).
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

// Limits bound what the listener accepts from the Internet. The rate limits count
// failed attempts (unknown, used or expired codes, malformed requests), never a
// redemption of a valid code: with Server.Check set, a source or a listener that
// used up its failures still redeems a code that Check accepts, so forged codes
// from behind the same NAT cannot lock a developer out, while what they cost the
// gateway stays a hash and a lookup each.
type Limits struct {
	MaxConns     int           // concurrent connections (default 64)
	PerIPBurst   int           // failures an address may make at once (default 5)
	PerIPEvery   time.Duration // then one per this interval (default 10 s)
	GlobalPerSec float64       // failures from all addresses together (default 5/s, burst 20)
	Timeout      time.Duration // whole request, TLS handshake included (default 10 s)
	MaxAddrs     int           // addresses remembered by the limiter (default 10,000)
}

func (l *Limits) setDefaults() {
	if l.MaxConns <= 0 {
		l.MaxConns = 64
	}
	if l.PerIPBurst <= 0 {
		l.PerIPBurst = 5
	}
	if l.PerIPEvery <= 0 {
		l.PerIPEvery = 10 * time.Second
	}
	if l.GlobalPerSec <= 0 {
		l.GlobalPerSec = 5
	}
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	if l.MaxAddrs <= 0 {
		l.MaxAddrs = 10000
	}
}

// Server is a gateway's invite listener. It serves one thing, POST
// /v1/redeem, over TLS with the gateway's Identity.
type Server struct {
	Redeem Redeemer
	// Check, when set, says without side effects whether a secret is redeemable
	// (nil) — the book's Check. A request whose source is over its failure limits is
	// refused unless Check accepts its secret.
	Check    func(secret [SecretLen]byte) error
	Identity *Identity
	Logger   *slog.Logger
	Now      func() time.Time
	Limits   Limits
	// Counted, when set, is called with each redemption attempt's result (ok,
	// unknown, used, expired, bad, failed, rate_limited): the agent counts them in
	// dogwood_invite_redemptions_total. A function rather than a Prometheus
	// registerer: the CLI links this package for codes and redemption, and
	// Prometheus' package init would cost every CLI call its CPU.
	Counted func(result string)

	mu     sync.Mutex
	perIP  map[string]*rate.Limiter
	global *rate.Limiter
	srv    *http.Server
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.Limits.setDefaults()
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Counted == nil {
		s.Counted = func(string) {}
	}
	s.mu.Lock()
	s.perIP = map[string]*rate.Limiter{}
	s.global = rate.NewLimiter(rate.Limit(s.Limits.GlobalPerSec), 4*int(s.Limits.GlobalPerSec))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/redeem", s.redeem)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, "unknown", "this listener only redeems invitations")
	})
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.Limits.Timeout,
		ReadTimeout:       s.Limits.Timeout,
		WriteTimeout:      3 * s.Limits.Timeout, // redemption waits for the peer's install
		IdleTimeout:       s.Limits.Timeout,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.Logger.Handler(), slog.LevelDebug),
	}
	srv := s.srv
	s.mu.Unlock()
	tl := tls.NewListener(netutil.LimitListener(ln, s.Limits.MaxConns), &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.Identity.Cert},
	})
	err := srv.Serve(tl)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the listener, letting requests in flight finish within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// limiter returns the failure budget of one address.
func (s *Server) limiterLocked(host string) *rate.Limiter {
	l := s.perIP[host]
	if l == nil {
		if len(s.perIP) >= s.Limits.MaxAddrs {
			// Forgetting everyone only lets each address start again with
			// its burst; the global limit still holds.
			s.perIP = map[string]*rate.Limiter{}
		}
		l = rate.NewLimiter(rate.Every(s.Limits.PerIPEvery), s.Limits.PerIPBurst)
		s.perIP[host] = l
	}
	return l
}

// limited reports whether host, or the listener as a whole, has no failure left.
func (s *Server) limited(host string) bool {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limiterLocked(host).TokensAt(now) < 1 || s.global.TokensAt(now) < 1
}

// failed charges one failure to host and to the listener.
func (s *Server) failed(host string) {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limiterLocked(host).AllowN(now, 1)
	s.global.AllowN(now, 1)
}

func (s *Server) refuseRate(w http.ResponseWriter) {
	s.Counted("rate_limited")
	w.Header().Set("Retry-After", "60")
	writeErr(w, http.StatusTooManyRequests, "rate", "too many failed invitation attempts from this address: wait a minute and try again")
}

func (s *Server) redeem(w http.ResponseWriter, r *http.Request) {
	host := hostOf(r.RemoteAddr)
	limited := s.limited(host)
	if limited && s.Check == nil {
		s.refuseRate(w)
		return
	}
	var req Request
	d := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		s.fail(w, host, limited, http.StatusBadRequest, "bad", "invalid request: "+err.Error())
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(req.Secret)
	if err != nil || len(raw) != SecretLen {
		s.fail(w, host, limited, http.StatusBadRequest, "bad", "invalid secret")
		return
	}
	var secret [SecretLen]byte
	copy(secret[:], raw)
	// Over the limit, only a secret the book would honour goes further: the real
	// code is checked before the failure limit, so it is never refused for the
	// failures of others.
	if limited && s.Check(secret) != nil {
		s.refuseRate(w)
		return
	}
	resp, err := s.Redeem(r.Context(), secret, req.PublicKey)
	var bad *BadRequest
	switch {
	case err == nil:
		s.Logger.Info("invitation redeemed", "peer", resp.Name, "org", resp.Org, "from", r.RemoteAddr)
		s.Counted("ok")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(resp)
	case errors.Is(err, ErrUnknown):
		s.Logger.Info("invitation refused: unknown code", "from", r.RemoteAddr)
		s.fail(w, host, false, http.StatusNotFound, "unknown", ErrUnknown.Error())
	case errors.Is(err, ErrUsed):
		s.Logger.Info("invitation refused: already used", "from", r.RemoteAddr)
		s.fail(w, host, false, http.StatusGone, "used", ErrUsed.Error())
	case errors.Is(err, ErrExpired):
		s.Logger.Info("invitation refused: expired", "from", r.RemoteAddr)
		s.fail(w, host, false, http.StatusGone, "expired", ErrExpired.Error())
	case errors.As(err, &bad):
		s.fail(w, host, false, http.StatusBadRequest, "bad", bad.Msg)
	default:
		// The gateway's own trouble (the peer could not be created) is not the
		// client's failure: it is not charged.
		s.Logger.Error("invitation redemption failed", "from", r.RemoteAddr, "err", err)
		s.writeErr(w, http.StatusServiceUnavailable, "failed", "the gateway could not create the peer: "+err.Error())
	}
}

// fail answers a failed attempt and charges it; a source already over its limit
// hears only that (what it sent is not judged further).
func (s *Server) fail(w http.ResponseWriter, host string, limited bool, code int, reason, msg string) {
	if limited {
		s.refuseRate(w)
		return
	}
	s.failed(host)
	s.writeErr(w, code, reason, msg)
}

type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"` // unknown, used, expired, rate, bad, failed
}

func (s *Server) writeErr(w http.ResponseWriter, code int, reason, msg string) {
	s.Counted(reason)
	writeErr(w, code, reason, msg)
}

func writeErr(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(errorBody{Error: msg, Reason: reason})
}
