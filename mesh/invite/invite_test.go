package invite

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCodeRoundTripAndTamper(t *testing.T) {
	var c Code
	rand.Read(c.Pin[:])
	rand.Read(c.Secret[:])
	c.Endpoint = "198.18.0.1:51821"
	s := c.Encode()
	if strings.ContainsAny(s, " \n+/=") || !strings.HasPrefix(s, "dwinv1_") {
		t.Fatalf("code %q is not one URL-safe word", s)
	}
	got, err := Decode(" " + s + "\n")
	if err != nil || got != c {
		t.Fatalf("Decode(Encode) = %+v, %v", got, err)
	}
	// Every single-character change is caught.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := len("dwinv1_"); i < len(s); i++ {
		for _, r := range []byte{alphabet[(strings.IndexByte(alphabet, s[i])+1)%64], alphabet[(strings.IndexByte(alphabet, s[i])+31)%64]} {
			bad := s[:i] + string(r) + s[i+1:]
			if _, err := Decode(bad); !errors.Is(err, ErrBadCode) {
				t.Fatalf("altered code (position %d) decoded: %v", i, err)
			}
		}
	}
	for _, bad := range []string{"", "dwinv1_", s[:len(s)-1], "x" + s, strings.Replace(s, "dwinv1_", "dwinv2_", 1)} {
		if _, err := Decode(bad); !errors.Is(err, ErrBadCode) {
			t.Errorf("Decode(%q) = %v", bad, err)
		}
	}
	c.Endpoint = "no-port"
	if _, err := Decode(c.Encode()); !errors.Is(err, ErrBadCode) {
		t.Errorf("a code without port decoded: %v", err)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newSecret() [SecretLen]byte {
	var s [SecretLen]byte
	rand.Read(s[:])
	return s
}

func TestBook(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "invites.json")
	b, err := OpenBook(path, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, ttl time.Duration) [SecretLen]byte {
		s := newSecret()
		if err := b.Add(Invite{Hash: Hash(s), Org: "acme", Network: "default", Name: name, DNS: "full",
			CreatedAt: clk.now(), ExpiresAt: clk.now().Add(ttl)}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := add("laptop", time.Hour)
	s2 := add("short", time.Minute)
	s3 := add("revoked", time.Hour)
	if err := b.Add(Invite{Hash: Hash(newSecret()), Org: "acme", Name: "laptop", ExpiresAt: clk.now().Add(time.Hour)}); !errors.Is(err, ErrNameTaken) {
		t.Errorf("second pending invite for the same name: %v", err)
	}
	if got := b.Pending("acme"); len(got) != 3 || got[0].Name != "laptop" || got[1].Name != "revoked" {
		t.Errorf("Pending = %+v", got)
	}
	if inv, err := b.Claim(s1, "KEY1"); err != nil || inv.Name != "laptop" {
		t.Fatalf("Claim = %+v, %v", inv, err)
	}
	if _, err := b.Claim(s1, "KEY2"); !errors.Is(err, ErrUsed) {
		t.Errorf("second Claim = %v, want ErrUsed", err)
	}
	if ok, err := b.Remove("acme", "revoked"); !ok || err != nil {
		t.Errorf("Remove = %v, %v", ok, err)
	}
	if _, err := b.Claim(s3, "KEY3"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Claim of a revoked invite = %v, want ErrUnknown", err)
	}
	clk.add(2 * time.Minute)
	if _, err := b.Claim(s2, "KEY4"); !errors.Is(err, ErrExpired) {
		t.Errorf("Claim of an expired invite = %v, want ErrExpired", err)
	}
	if _, err := b.Claim(newSecret(), "KEY5"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Claim of a never-issued secret = %v", err)
	}
	if got := b.Pending(""); len(got) != 0 {
		t.Errorf("Pending after use, revoke and expiry: %+v", got)
	}
	// A failed peer creation gives the invitation back.
	s6 := add("retry", time.Hour)
	if _, err := b.Claim(s6, "KEY6"); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(s6); err != nil {
		t.Fatal(err)
	}
	// Everything survives a restart, used state included.
	b2, err := OpenBook(path, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Claim(s1, "KEY7"); !errors.Is(err, ErrUsed) {
		t.Errorf("after reopen, used invite: %v", err)
	}
	if inv, err := b2.Claim(s6, "KEY8"); err != nil || inv.Name != "retry" {
		t.Errorf("after reopen, released invite: %+v %v", inv, err)
	}
}

// testGateway runs a Server with a Book on loopback.
func testGateway(t *testing.T, limits Limits) (*Book, *Identity, string, *clock) {
	b, id, addr, clk, _ := testGatewayServer(t, limits)
	return b, id, addr, clk
}

// testGatewayServer is testGateway that also returns the server's redemption
// results, counted as the agent counts them.
func testGatewayServer(t *testing.T, limits Limits) (*Book, *Identity, string, *clock, *prometheus.CounterVec) {
	t.Helper()
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	id, err := LoadOrCreateIdentity(filepath.Join(dir, "invite.pem"), "gw", clk.now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateIdentity(filepath.Join(dir, "invite.pem"), "gw", clk.now())
	if err != nil || again.Pin != id.Pin {
		t.Fatalf("identity not stable across loads: %v", err)
	}
	book, err := OpenBook(filepath.Join(dir, "invites.json"), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	results := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "results"}, []string{"result"})
	count := func(r string) { results.WithLabelValues(r).Inc() }
	srv := &Server{Identity: id, Now: clk.now, Limits: limits, Counted: count, Check: book.Check,
		Redeem: func(ctx context.Context, secret [SecretLen]byte, pub string) (*Response, error) {
			if pub == "" {
				return nil, &BadRequest{Msg: "missing public key"}
			}
			inv, err := book.Claim(secret, pub)
			if err != nil {
				return nil, err
			}
			return &Response{Name: inv.Name, Org: inv.Org, DNSMode: inv.DNS}, nil
		}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	if err := eventuallyServing(srv); err != nil {
		t.Fatal(err)
	}
	return book, id, ln.Addr().String(), clk, results
}

// eventuallyServing waits until Serve has set up its metrics.
func eventuallyServing(s *Server) error {
	for i := 0; i < 500; i++ {
		s.mu.Lock()
		up := s.srv != nil
		s.mu.Unlock()
		if up {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return errors.New("server did not start")
}

func TestRedeemOverTLS(t *testing.T) {
	book, id, addr, clk := testGateway(t, Limits{PerIPBurst: 100})
	issue := func(name string) Code {
		s := newSecret()
		if err := book.Add(Invite{Hash: Hash(s), Org: "acme", Name: name, DNS: "split", ExpiresAt: clk.now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		c, err := Decode(Code{Endpoint: addr, Pin: id.Pin, Secret: s}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	c := issue("laptop")
	resp, err := Redeem(ctx, c, "PUB")
	if err != nil || resp.Name != "laptop" || resp.DNSMode != "split" {
		t.Fatalf("Redeem = %+v, %v", resp, err)
	}
	if _, err := Redeem(ctx, c, "PUB"); !errors.Is(err, ErrUsed) {
		t.Errorf("second Redeem = %v, want ErrUsed", err)
	}
	c2 := issue("other")
	wrong := c2
	wrong.Pin[0] ^= 1
	if _, err := Redeem(ctx, wrong, "PUB"); !errors.Is(err, ErrPin) {
		t.Errorf("Redeem with a wrong pin = %v, want ErrPin", err)
	}
	// The wrong pin sent nothing: the invitation is still good.
	if got := book.Pending("acme"); len(got) != 1 || got[0].Name != "other" {
		t.Errorf("after a pin failure: pending %+v", got)
	}
	unknown := c2
	unknown.Secret = newSecret()
	if _, err := Redeem(ctx, unknown, "PUB"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Redeem of an unknown secret = %v", err)
	}
	if _, err := Redeem(ctx, c2, ""); err == nil || !strings.Contains(err.Error(), "missing public key") {
		t.Errorf("Redeem without key = %v", err)
	}
	clk.add(2 * time.Hour)
	if _, err := Redeem(ctx, c2, "PUB"); !errors.Is(err, ErrExpired) {
		t.Errorf("Redeem after expiry = %v, want ErrExpired", err)
	}
	// Only redemption is served.
	closed := Code{Endpoint: "127.0.0.1:1", Pin: id.Pin}
	if _, err := Redeem(ctx, closed, "PUB"); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("Redeem against a closed port = %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	_, id, addr, clk, results := testGatewayServer(t, Limits{PerIPBurst: 3, PerIPEvery: time.Minute})
	c := Code{Endpoint: addr, Pin: id.Pin, Secret: newSecret()}
	for i := 0; i < 3; i++ {
		if _, err := Redeem(context.Background(), c, "PUB"); !errors.Is(err, ErrUnknown) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	_, err := Redeem(context.Background(), c, "PUB")
	if err == nil || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("4th attempt in a burst of 3: %v, want rate limited", err)
	}
	clk.add(time.Minute)
	if _, err := Redeem(context.Background(), c, "PUB"); !errors.Is(err, ErrUnknown) {
		t.Errorf("after the refill interval: %v", err)
	}
	if got, lim := testutil.ToFloat64(results.WithLabelValues("unknown")), testutil.ToFloat64(results.WithLabelValues("rate_limited")); got != 4 || lim != 1 {
		t.Errorf("dogwood_invite_redemptions_total: unknown %v, rate_limited %v; want 4 and 1", got, lim)
	}
}

// TestForgedCodesDoNotLockOutARealOne is issue 21 item 4: after forged codes from
// one address (a NAT shared with an attacker) used up its failures, the real code
// from that same address is still redeemed, while the forged ones keep costing the
// gateway no more than a lookup each (they never reach Redeem again).
func TestForgedCodesDoNotLockOutARealOne(t *testing.T) {
	book, id, addr, clk, results := testGatewayServer(t, Limits{PerIPBurst: 3, PerIPEvery: time.Minute, GlobalPerSec: 1})
	ctx := context.Background()
	limited := 0
	for i := 0; i < 20; i++ {
		_, err := Redeem(ctx, Code{Endpoint: addr, Pin: id.Pin, Secret: newSecret()}, "PUB")
		switch {
		case errors.Is(err, ErrUnknown):
		case err != nil && strings.Contains(err.Error(), "too many"):
			limited++
		default:
			t.Fatalf("forged code %d: %v", i, err)
		}
	}
	if limited != 17 {
		t.Errorf("%d of 20 forged codes rate limited, want 17 (burst 3)", limited)
	}
	s := newSecret()
	if err := book.Add(Invite{Hash: Hash(s), Org: "acme", Name: "laptop", DNS: "split", ExpiresAt: clk.now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	resp, err := Redeem(ctx, Code{Endpoint: addr, Pin: id.Pin, Secret: s}, "PUB")
	if err != nil || resp.Name != "laptop" {
		t.Fatalf("the real code after forged ones from the same address: %+v, %v", resp, err)
	}
	// Used now: a second try is a failure like any other, and still limited.
	if _, err := Redeem(ctx, Code{Endpoint: addr, Pin: id.Pin, Secret: s}, "PUB"); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Errorf("the used code from a limited address: %v, want rate limited", err)
	}
	if got := testutil.ToFloat64(results.WithLabelValues("unknown")); got != 3 {
		t.Errorf("%v forged codes reached the book, want only the burst of 3", got)
	}
	if got := testutil.ToFloat64(results.WithLabelValues("ok")); got != 1 {
		t.Errorf("ok redemptions %v, want 1", got)
	}
}
