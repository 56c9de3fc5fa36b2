package forward

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseUpstream(t *testing.T) {
	cases := map[string]string{
		"1.1.1.1":          "1.1.1.1:53",
		"1.1.1.1:5353":     "1.1.1.1:5353",
		"::1":              "[::1]:53",
		"[::1]:5353":       "[::1]:5353",
		"::ffff:127.0.0.1": "127.0.0.1:53",
		"fe80::1%eth0":     "[fe80::1%eth0]:53",
	}
	for in, want := range cases {
		got, err := ParseUpstream(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseUpstream(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "example.com", "1.1.1.1:", "1.2.3.4:99999"} {
		if _, err := ParseUpstream(bad); err == nil {
			t.Errorf("ParseUpstream(%q) accepted", bad)
		}
	}
}

func TestResolvConfAndExclude(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.com\n"), 0o644)
	f, err := New(Config{ResolvConf: path, Exclude: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Upstreams(); !slices.Equal(got, []string{"192.0.2.1:53"}) {
		t.Fatalf("upstreams %v", got)
	}
	f, err = New(Config{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil || len(f.Upstreams()) != 0 {
		t.Fatalf("missing resolv.conf: %v %v", f.Upstreams(), err)
	}
	if _, err := f.Exchange(context.Background(), query("example.com."), false); !errors.Is(err, ErrNoUpstream) {
		t.Fatalf("no upstreams: %v", err)
	}
	if _, err := New(Config{Upstreams: []string{"nope"}}); err == nil {
		t.Fatal("bad upstream accepted")
	}
}

func query(name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	return m
}

// fake serves UDP on 127.0.0.1:0; rcode answers with that rcode, delay holds replies.
func fake(t *testing.T, rcode int, delay time.Duration, hits *atomic.Int32) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			hits.Add(1)
			time.Sleep(delay)
			m := new(dns.Msg)
			m.SetRcode(r, rcode)
			w.WriteMsg(m)
		})}
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

func TestFailoverOrder(t *testing.T) {
	var failHits, goodHits atomic.Int32
	bad := fake(t, dns.RcodeServerFailure, 0, &failHits)
	good := fake(t, dns.RcodeNameError, 0, &goodHits)
	var failures atomic.Int32
	f, err := New(Config{Upstreams: []string{bad, good}, Attempt: 500 * time.Millisecond,
		OnFailure: func(string, error) { failures.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r, err := f.Exchange(context.Background(), query("x.example."), false)
		if err != nil || r.Rcode != dns.RcodeNameError {
			t.Fatalf("exchange: %v %v", r, err)
		}
	}
	// SERVFAIL from the first upstream moves us to the second, and we stay there.
	if failHits.Load() != 1 || goodHits.Load() != 3 || failures.Load() != 1 {
		t.Fatalf("hits bad=%d good=%d failures=%d", failHits.Load(), goodHits.Load(), failures.Load())
	}

	// All upstreams SERVFAIL: the SERVFAIL answer itself is returned.
	f, _ = New(Config{Upstreams: []string{bad}})
	r, err := f.Exchange(context.Background(), query("x.example."), false)
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("all SERVFAIL: %v %v", r, err)
	}
}

func TestBoundedAndBusy(t *testing.T) {
	var hits atomic.Int32
	slow := fake(t, dns.RcodeSuccess, 700*time.Millisecond, &hits)
	f, _ := New(Config{Upstreams: []string{slow}, Attempt: 200 * time.Millisecond, Total: 300 * time.Millisecond, MaxInFlight: 1})
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := f.Exchange(context.Background(), query("slow.example."), false)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := f.Exchange(context.Background(), query("second.example."), false); !errors.Is(err, ErrBusy) {
		t.Errorf("second query while one is in flight: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrNoUpstream) {
		t.Errorf("slow upstream: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("timeout not bounded: %v", d)
	}
	// Let the fake finish its sleeping handler before goleak looks.
	time.Sleep(700 * time.Millisecond)
}
