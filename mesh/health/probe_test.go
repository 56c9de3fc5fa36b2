package health

import (
	"bufio"
	"context"
	"fmt"
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

// serve answers every connection on l: HTTP requests for /code/NNN with status NNN,
// others with 200; "/hang" never answers.
func serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) < 2 {
				return
			}
			code := "200"
			if rest, ok := strings.CutPrefix(f[1], "/code/"); ok {
				code = rest
			}
			if f[1] == "/hang" {
				time.Sleep(time.Second)
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 %s X\r\nContent-Length: 0\r\n\r\n", code)
		}()
	}
}

func listen(t testing.TB) netip.AddrPort {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go serve(l)
	return netip.MustParseAddrPort(l.Addr().String())
}

func TestNetProber(t *testing.T) {
	ap := listen(t)
	closed := func() netip.AddrPort {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return netip.MustParseAddrPort(l.Addr().String())
	}()
	for _, tc := range []struct {
		kind, path string
		addr       netip.AddrPort
		pass       bool
		out        string
	}{
		{"tcp", "", ap, true, "connected"},
		{"tcp", "", closed, false, "connection refused"},
		{"http", "/", ap, true, "HTTP 200"},
		{"http", "/code/302", ap, true, "HTTP 302"},
		{"http", "/code/404", ap, false, "HTTP 404"},
		{"http", "/code/503", ap, false, "HTTP 503"},
		{"http", "/hang", ap, false, "timeout"},
		{"http", "/", closed, false, "connection refused"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		pass, out := NetProber{}.Probe(ctx, Probe{Kind: tc.kind, Addr: tc.addr, Path: tc.path, Timeout: time.Second})
		cancel()
		if pass != tc.pass || out != tc.out {
			t.Errorf("%s %s%s: %v %q, want %v %q", tc.kind, tc.addr, tc.path, pass, out, tc.pass, tc.out)
		}
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
	go serve(l)
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
	go serve(l2)
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
		serve(l)
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
