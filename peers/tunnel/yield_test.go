package tunnel

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestLongRunningTunnelYields: a proxy's tunnel (Share) that sees the
// config's address come up on this machine (wg-quick up of the same file)
// closes its own session, says so at WARN and dials through the machine's
// stack; when the address goes away it has its own session again. Before,
// both sessions stayed up and took the gateway's session from each other.
func TestLongRunningTunnelYields(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	var up atomic.Bool
	addrs := func() ([]netip.Addr, error) {
		if up.Load() {
			return []netip.Addr{clientAddr}, nil
		}
		return nil, nil
	}
	logs := &syncBuffer{}
	tun, err := Open(ctx, e.cfg, Options{Bind: &loopbackBind{}, Share: true, ShareDir: t.TempDir(), LocalAddrs: addrs,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	if r, err := tun.Dig(ctx, "web.internal", dns.TypeAAAA); err != nil || len(r.Answer) != 1 {
		t.Fatalf("Dig through its own session: %v %v", r, err)
	}
	own := func() bool { return !tun.Shared() }
	if !own() {
		t.Fatal("started without its own session")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s\nlogs:\n%s", what, logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	up.Store(true) // wg-quick up of the same config
	waitFor("closing its own session", func() bool { return !own() })
	if _, ok := tun.currentStack().(systemStack); !ok {
		t.Errorf("after yielding it dials through %T, want the machine's stack", tun.currentStack())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "wg-quick up of the same file") {
		t.Errorf("no warning that names what happened:\n%s", logs)
	}

	up.Store(false) // wg-quick down
	waitFor("its own session again", own)
	if r, err := tun.Dig(ctx, "web.internal", dns.TypeAAAA); err != nil || len(r.Answer) != 1 {
		t.Fatalf("Dig after taking its session back: %v %v\nlogs:\n%s", r, err, logs)
	}
}
