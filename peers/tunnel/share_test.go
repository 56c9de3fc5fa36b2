package tunnel

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestOpenSharesASession: a second command for the same config while a
// sharing tunnel runs (a proxy) uses that tunnel's session instead of a
// second one with the same key, for DNS, TCP and ping; once the owner closes,
// the next Open makes its own session again.
func TestOpenSharesASession(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	notLocal := func() ([]netip.Addr, error) { return nil, nil }
	opts := func(share bool) Options {
		return Options{Bind: &loopbackBind{}, Share: share, ShareDir: dir, LocalAddrs: notLocal,
			PingInterval: 20 * time.Millisecond, PingWait: 3 * time.Second,
			Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	}
	owner, err := Open(ctx, e.cfg, opts(true))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if owner.Shared() {
		t.Fatal("the first tunnel found something to share")
	}
	user, err := Open(ctx, e.cfg, opts(false))
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	if !user.Shared() || user.dev != nil {
		t.Fatal("the second Open started its own session next to a sharing one")
	}

	udpBefore := e.gw.udpQueries.Load()
	r, err := user.Dig(ctx, "web.internal", dns.TypeAAAA)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("Dig through the shared tunnel: %v %v", r, err)
	}
	if e.gw.udpQueries.Load() != udpBefore+1 {
		t.Errorf("the shared query did not reach the gateway over UDP once")
	}
	r, err = user.Dig(ctx, "big.internal", dns.TypeAAAA)
	if err != nil || len(r.Answer) != bigCount {
		t.Errorf("truncated answer retried over TCP through the shared tunnel: %d answers, %v", len(r.Answer), err)
	}

	c, err := user.stack.DialTCP(ctx, netip.AddrPortFrom(webAddr, webPort))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: web\r\n\r\n")
	body, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(body), "hello from web, you are ["+clientAddr.String()+"]") {
		t.Errorf("HTTP through the shared tunnel: %q", body)
	}
	if _, err := user.stack.DialTCP(ctx, netip.AddrPortFrom(webAddr, 1)); err == nil {
		t.Error("dial of a closed port through the shared tunnel succeeded")
	}

	var out bytes.Buffer
	if err := user.Ping(ctx, "web.internal", 2, &out); err != nil || !strings.Contains(out.String(), "2 received") {
		t.Errorf("ping through the shared tunnel: %v\n%s", err, &out)
	}

	// Only this user can reach the socket.
	st, err := os.Stat(sharePath(dir, e.cfg))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("share socket: %v %v", st, err)
	}
	owner.Close()
	if _, err := net.Dial("unix", sharePath(dir, e.cfg)); err == nil {
		t.Error("share socket still answers after the owner closed")
	}
	if _, err := user.Dig(ctx, "web.internal", dns.TypeAAAA); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("Dig after the owner left: %v", err)
	}
	again, err := Open(ctx, e.cfg, opts(false))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Shared() {
		t.Error("Open after the owner left still shares")
	}
}
