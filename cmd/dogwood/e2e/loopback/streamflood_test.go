package loopback

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssKiB reads a process's resident set size.
func rssKiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}

// TestUnauthenticatedStreamFlood is issue 21 item 2 against a real agent: 8 source
// addresses × 32 gossip streams, each declaring a 19 MB encrypted message (what
// memberlist reads whole before it can authenticate it) and sending it, with no
// gossip key. The agent's RSS may grow by at most 64 MiB and the unix-socket
// `status` must answer within 200 ms throughout (before: +1 GB and 2.7 s).
func TestUnauthenticatedStreamFlood(t *testing.T) {
	if raceEnabled {
		t.Skip("memory is measured on a binary without the race detector")
	}
	c := newCluster(t)
	a := c.add("h1", "ord")
	a.start()
	pid := a.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond) // let start-up allocation settle
	base := rssKiB(pid)

	const sources, perSource, declared = 8, 32, 19_000_000
	stop := make(chan struct{})
	var peak int64
	var statusMax time.Duration
	var statusN, statusSlow int
	var mon sync.WaitGroup
	mon.Add(1)
	go func() {
		defer mon.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := rssKiB(pid); r > peak {
				peak = r
			}
			// The API itself over its unix socket (the CLI's own start-up on a
			// loaded 2-core machine is not the agent's latency).
			st := time.Now()
			if err := unixGet(a.sock, "/v1/status"); err != nil {
				t.Errorf("status during the flood: %v", err)
			}
			d := time.Since(st)
			statusMax = max(statusMax, d)
			if d > 200*time.Millisecond {
				statusSlow++
			}
			statusN++
			time.Sleep(50 * time.Millisecond)
		}
	}()

	var sent, cut sync.Map
	var wg sync.WaitGroup
	chunk := make([]byte, 64<<10)
	for s := 0; s < sources; s++ {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 21, byte(s+1))}
		for i := 0; i < perSource; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
				conn, err := d.Dial("tcp", a.gossipAddr())
				if err != nil {
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				hdr := []byte{10, 0, 0, 0, 0} // memberlist's encryptMsg, then the length
				binary.BigEndian.PutUint32(hdr[1:], declared)
				if _, err := conn.Write(hdr); err != nil {
					return
				}
				n := 0
				for n < declared {
					w, err := conn.Write(chunk[:min(len(chunk), declared-n)])
					n += w
					if err != nil {
						cut.Store(conn.LocalAddr().String(), true)
						break
					}
				}
				sent.Store(conn.LocalAddr().String(), n)
			}()
		}
	}
	wg.Wait()
	// What the agent still holds once the flood is over counts too.
	time.Sleep(time.Second)
	close(stop)
	mon.Wait()
	total, streams, cuts := 0, 0, 0
	sent.Range(func(_, v any) bool { total += v.(int); streams++; return true })
	cut.Range(func(_, _ any) bool { cuts++; return true })
	grow := (peak - base) / 1024
	t.Logf("flood: %d streams from %d sources sent %d MB (%d cut by the agent); agent RSS %d MiB → peak %d MiB (+%d MiB); status %d times, slowest %v",
		streams, sources, total/1_000_000, cuts, base/1024, peak/1024, grow, statusN, statusMax.Round(time.Millisecond))
	if grow > 64 {
		t.Errorf("the agent's RSS grew by %d MiB under the flood, want ≤ 64 MiB", grow)
	}
	// One probe over 200 ms is scheduling noise on a loaded 2-core machine (the flood
	// itself runs in this process); two are the agent.
	if statusSlow > 1 || statusMax > time.Second {
		t.Errorf("status took over 200 ms %d times during the flood (slowest %v), want < 200 ms", statusSlow, statusMax)
	}
	if !a.running() {
		t.Fatalf("the agent died under the flood:\n%s", a.logTail(30))
	}
}

func unixGet(sock, path string) error {
	cl := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	resp, err := cl.Get("http://agent" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}
