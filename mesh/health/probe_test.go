package health

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// serve answers HTTP/1.1 requests on l's connections, keeping them open unless
// asked to close: "/code/NNN" answers NNN, "/hang" never answers, and the rest of
// the paths in answer below misbehave as named; others answer 200. accepts (if
// not nil) counts connections.
func serve(l net.Listener, accepts *atomic.Int64) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if accepts != nil {
			accepts.Add(1)
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				closing := false
				for {
					h, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.EqualFold(strings.TrimSpace(h), "Connection: close") {
						closing = true
					}
					if h == "\r\n" {
						break
					}
				}
				f := strings.Fields(line)
				if len(f) < 2 || !answer(c, f[1]) || closing {
					return
				}
			}
		}()
	}
}

// answer writes the answer to a GET for path and reports whether the connection
// stays open.
func answer(c net.Conn, path string) bool {
	switch path {
	case "/hang":
		time.Sleep(time.Second)
		return false
	case "/slowhead": // the status line, then nothing within the timeout
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		time.Sleep(time.Second)
		return false
	case "/garbage":
		io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
		return false
	case "/badline":
		io.WriteString(c, "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	case "/badheader":
		io.WriteString(c, "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")
		return true
	case "/badlength":
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n")
		return true
	case "/cut": // the status line, then the connection closes
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		return false
	case "/nothing":
		return false
	case "/idleclose": // a kept connection the server closes before the next probe
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return false
	case "/askclose":
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		return false
	case "/body":
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n%s", strings.Repeat("x", 100))
		return true
	case "/chunked": // where the body ends is not read: the connection is not kept
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
		return true
	case "/extra": // more than the answer: not kept
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n")
		return true
	case "/http10":
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
		return false
	}
	code := "200"
	if rest, ok := strings.CutPrefix(path, "/code/"); ok {
		code = rest
	}
	fmt.Fprintf(c, "HTTP/1.1 %s X\r\nContent-Length: 0\r\n\r\n", code)
	return true
}

func listen(t testing.TB, accepts *atomic.Int64) netip.AddrPort {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go serve(l, accepts)
	return netip.MustParseAddrPort(l.Addr().String())
}

// TestNetProber runs each case twice, on a fresh connection per probe and on a
// kept one (two probes in a row, the way the Runner runs them), and counts the
// connections the kept runs opened.
func TestNetProber(t *testing.T) {
	closed := func() netip.AddrPort {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return netip.MustParseAddrPort(l.Addr().String())
	}()
	for _, tc := range []struct {
		kind, path string
		refused    bool
		pass       bool
		out        string
		dials      int64 // connections two kept probes open
	}{
		{"tcp", "", false, true, "connected", 2},
		{"tcp", "", true, false, "connection refused", 0},
		{"http", "/", false, true, "HTTP 200", 1},
		{"http", "/code/302", false, true, "HTTP 302", 1},
		{"http", "/code/404", false, false, "HTTP 404", 1},
		{"http", "/code/503", false, false, "HTTP 503", 1},
		{"http", "/code/101", false, false, "HTTP 101", 2},
		{"http", "/", true, false, "connection refused", 0},
		{"http", "/hang", false, false, "timeout", 2},
		{"http", "/slowhead", false, false, "timeout", 2},
		{"http", "/garbage", false, false, "not an HTTP response", 2},
		{"http", "/badline", false, false, "bad HTTP status line", 2},
		{"http", "/badheader", false, false, "bad HTTP header", 2},
		{"http", "/badlength", false, false, "bad Content-Length", 2},
		{"http", "/cut", false, false, "answer cut short", 2},
		{"http", "/nothing", false, false, "connection closed without an answer", 2},
		{"http", "/idleclose", false, true, "HTTP 200", 2},
		{"http", "/askclose", false, true, "HTTP 200", 2},
		{"http", "/body", false, true, "HTTP 200", 1},
		{"http", "/chunked", false, true, "HTTP 200", 2},
		{"http", "/extra", false, true, "HTTP 200", 2},
		{"http", "/http10", false, true, "HTTP 200", 2},
	} {
		var accepts atomic.Int64
		ap, keptAP := closed, closed
		if !tc.refused {
			ap, keptAP = listen(t, nil), listen(t, &accepts)
		}
		probe := func(ap netip.AddrPort, conn *keptConn) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			pass, out := NetProber{}.Probe(ctx, Probe{Kind: tc.kind, Addr: ap, Path: tc.path, Timeout: time.Second, conn: conn})
			if pass != tc.pass || out != tc.out {
				t.Errorf("%s %s%s (kept %v): %v %q, want %v %q", tc.kind, ap, tc.path, conn != nil, pass, out, tc.pass, tc.out)
			}
		}
		probe(ap, nil)
		conn := newKeptConn()
		probe(keptAP, conn)
		if tc.path == "/idleclose" {
			time.Sleep(20 * time.Millisecond) // the server's close arrives first
		}
		probe(keptAP, conn)
		conn.Close()
		// The server counts a connection when it gets round to accepting it.
		for deadline := time.Now().Add(time.Second); accepts.Load() < tc.dials && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		if n := accepts.Load(); n != tc.dials {
			t.Errorf("%s %s: %d connections for two kept probes, want %d", tc.kind, tc.path, n, tc.dials)
		}
	}
}

// TestKeptConnRedials: a kept connection serves maxKeptUses probes, then a fresh
// one is dialled, so a server that no longer accepts connections is found.
func TestKeptConnRedials(t *testing.T) {
	var accepts atomic.Int64
	ap := listen(t, &accepts)
	conn := newKeptConn()
	defer conn.Close()
	for i := 0; i < 2*maxKeptUses+1; i++ {
		if pass, out := (NetProber{}).Probe(context.Background(), Probe{Kind: "http", Addr: ap, Path: "/", Timeout: time.Second, conn: conn}); !pass {
			t.Fatalf("probe %d: %s", i, out)
		}
	}
	if n := accepts.Load(); n != 3 {
		t.Errorf("%d connections for %d probes, want 3", n, 2*maxKeptUses+1)
	}
}

// TestKeptConnClose: a connection handed back after its check went is closed, not kept.
func TestKeptConnClose(t *testing.T) {
	ap := listen(t, nil)
	conn := newKeptConn()
	conn.Close()
	if pass, out := (NetProber{}).Probe(context.Background(), Probe{Kind: "http", Addr: ap, Path: "/", Timeout: time.Second, conn: conn}); !pass {
		t.Fatal(out)
	}
	if f, _ := conn.take(); f != nil {
		t.Errorf("closed keep holds %v", f.Fd())
	}
}

// TestRunnerWritesTransitions runs real probes against a listener that goes away
// and comes back, with short intervals.
func TestRunnerWritesTransitions(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	go serve(l, nil)
	var mu sync.Mutex
	var got []Transition
	r := NewRunner(RunnerConfig{Prober: NetProber{}, OnTransition: func(tr Transition) {
		mu.Lock()
		got = append(got, tr)
		mu.Unlock()
	}})
	defer r.Close()
	c := catalog.Check{Kind: "http", Target: fmt.Sprintf("%d/x", ap.Port()), Interval: catalog.Duration(50 * time.Millisecond),
		Timeout: catalog.Duration(40 * time.Millisecond), Rise: 2, Fall: 2}
	r.Set([]Target{{ID: "m1", Addr: ap.Addr(), Checks: []catalog.Check{c}}})
	wait := func(n int, to string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := len(got) >= n && got[n-1].To == to
			mu.Unlock()
			if ok {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no transition %d to %s: %+v", n, to, got)
	}
	wait(1, catalog.HealthPassing)
	l.Close()
	wait(2, catalog.HealthCritical)
	l2, err := net.Listen("tcp", ap.String())
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", ap.Port(), err)
	}
	defer l2.Close()
	go serve(l2, nil)
	wait(3, catalog.HealthPassing)
	if live := r.Live("m1"); len(live) != 1 || live[0].Status != catalog.HealthPassing || live[0].Output != "HTTP 200" {
		t.Errorf("live %+v", live)
	}
}

// The benchmark's server runs in a child process, so the CPU measured is the
// checking side's alone (the kernel's handshake work on loopback included).
func TestMain(m *testing.M) {
	if os.Getenv("DOGWOOD_HEALTH_SERVE") == "1" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(1)
		}
		fmt.Println(l.Addr().String())
		serve(l, nil)
		return
	}
	os.Exit(m.Run())
}

func childServer(b *testing.B) netip.AddrPort {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DOGWOOD_HEALTH_SERVE=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return netip.MustParseAddrPort(strings.TrimSpace(line))
}

type countingProber struct {
	Prober
	n atomic.Int64
}

func (c *countingProber) Probe(ctx context.Context, p Probe) (bool, string) {
	ok, out := c.Prober.Probe(ctx, p)
	c.n.Add(1)
	return ok, out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkChecks runs 1,000 machines' checks through a Runner (scheduler, probes,
// results) against a server in another process, and reports the CPU they cost per
// 1,000 checks and what 10,000 checks every 10 s would take of one core. An op is
// 1,000 checks.
func BenchmarkChecks(b *testing.B) {
	ap := childServer(b)
	for _, kind := range []string{"tcp", "http"} {
		b.Run(kind, func(b *testing.B) {
			target := fmt.Sprint(ap.Port())
			if kind == "http" {
				target += "/healthz"
			}
			var ts []Target
			for i := 0; i < 1000; i++ {
				ts = append(ts, Target{ID: fmt.Sprintf("m%013d", i), Addr: ap.Addr(), Checks: []catalog.Check{{Kind: kind, Target: target,
					Interval: catalog.Duration(250 * time.Millisecond), Timeout: catalog.Duration(200 * time.Millisecond)}}})
			}
			p := &countingProber{Prober: NetProber{}}
			r := NewRunner(RunnerConfig{Prober: p, OnTransition: func(Transition) {}})
			defer r.Close()
			r.Set(ts)
			// Warm up one round, then measure b.N rounds of 1,000.
			for p.n.Load() < 1000 {
				time.Sleep(time.Millisecond)
			}
			b.ResetTimer()
			start, cpu0 := p.n.Load(), cpuTime()
			for p.n.Load() < start+int64(b.N)*1000 {
				time.Sleep(time.Millisecond)
			}
			cpu := cpuTime() - cpu0
			done := float64(p.n.Load()-start) / 1000
			per := cpu.Seconds() / done
			b.ReportMetric(per*1000, "cpu-ms/1000checks")
			// 10,000 checks every 10 s is 1,000 a second.
			b.ReportMetric(per*100, "%core@10k/10s")
		})
	}
}
