package netns

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// helperMain is the test binary acting as a small network tool inside a namespace:
//
//	http PORT TAG                  serve "TAG\n" on [::]:PORT
//	stream-server PORT             send an endless paced byte stream to every client
//	stream-client ADDR SECONDS     read that stream; print a JSON report (bytes, max gap)
//	udp-recv PORT                  print "GOT <source>" for every datagram
//	udp-send SRC DST PORT          send three datagrams from SRC (which it need not hold)
//	watch-aaaa SERVER NAME         ask SERVER for NAME AAAA every 100 ms; print
//	                               "<unix nanoseconds> <sorted addresses>" at each change
func helperMain(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	switch args[0] {
	case "http":
		tag := args[2]
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, tag) })
		ln, err := net.Listen("tcp", "[::]:"+args[1])
		if err != nil {
			return fail(err)
		}
		fmt.Println("LISTENING")
		return fail(http.Serve(ln, mux))
	case "stream-server":
		ln, err := net.Listen("tcp", "[::]:"+args[1])
		if err != nil {
			return fail(err)
		}
		fmt.Println("LISTENING")
		for {
			c, err := ln.Accept()
			if err != nil {
				return fail(err)
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 8192)
				// ~1.6 MB/s: enough to notice any stall, little enough not to starve
				// the agents' userspace WireGuard of CPU.
				for t := time.NewTicker(5 * time.Millisecond); ; <-t.C {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	case "stream-client":
		secs, _ := strconv.ParseFloat(args[2], 64)
		rep := struct {
			Bytes  int64   `json:"bytes"`
			MaxGap float64 `json:"max_gap_seconds"`
			Error  string  `json:"error,omitempty"`
		}{}
		c, err := net.DialTimeout("tcp", args[1], 3*time.Second)
		if err != nil {
			rep.Error = err.Error()
		} else {
			end := time.Now().Add(time.Duration(secs * float64(time.Second)))
			last := time.Now()
			buf := make([]byte, 65536)
			for time.Now().Before(end) {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				now := time.Now()
				if gap := now.Sub(last).Seconds(); gap > rep.MaxGap {
					rep.MaxGap = gap
				}
				last = now
				rep.Bytes += int64(n)
				if err != nil {
					rep.Error = err.Error()
					break
				}
			}
			c.Close()
		}
		b, _ := json.Marshal(rep)
		fmt.Println(string(b))
		if rep.Error != "" {
			return 1
		}
		return 0
	case "udp-recv":
		port, _ := strconv.Atoi(args[1])
		c, err := net.ListenUDP("udp6", &net.UDPAddr{Port: port})
		if err != nil {
			return fail(err)
		}
		fmt.Println("LISTENING")
		buf := make([]byte, 2048)
		for {
			_, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return fail(err)
			}
			fmt.Printf("GOT %s\n", from.IP)
		}
	case "udp-send":
		port, _ := strconv.Atoi(args[3])
		// IPV6_FREEBIND: a tenant may send from an address it does not hold (the host's
		// side of its own link) without adding it, which would shadow its gateway.
		d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(args[1])}, Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			}); err != nil {
				return err
			}
			return serr
		}}
		c, err := d.Dial("udp6", net.JoinHostPort(args[2], strconv.Itoa(port)))
		if err != nil {
			return fail(err)
		}
		for i := 0; i < 3; i++ {
			c.Write([]byte("from " + args[1]))
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
		return 0
	case "watch-aaaa":
		c := &dns.Client{Timeout: 500 * time.Millisecond}
		last := "start"
		for {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(args[2]), dns.TypeAAAA)
			r, _, err := c.Exchange(m, net.JoinHostPort(args[1], "53"))
			if err == nil {
				var as []string
				for _, rr := range r.Answer {
					if a, ok := rr.(*dns.AAAA); ok {
						as = append(as, a.AAAA.String())
					}
				}
				sort.Strings(as)
				if cur := strings.Join(as, ","); cur != last {
					fmt.Printf("%d %s\n", time.Now().UnixNano(), cur)
					last = cur
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fail(fmt.Errorf("unknown helper %q", args[0]))
}
