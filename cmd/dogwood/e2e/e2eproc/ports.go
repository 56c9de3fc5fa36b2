package e2eproc

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports hands out loopback ports that are free for both TCP and UDP (gossip and
// DNS listen on both) for processes a test starts later.
//
// It picks them below the kernel's ephemeral range. A port found free through
// bind(":0") comes from that range, and between the check and the agent binding
// it, any outgoing socket in the suite (a DNS forwarder's upstream query, a dig, a
// memberlist stream) may be given the same port by the kernel; CI failed on that
// once. Below the range only another explicit bind can take it, and a port is
// never handed out twice by one Ports.
type Ports struct {
	mu   sync.Mutex
	used map[int]bool
	rng  *rand.Rand
	lo   int
	hi   int // exclusive
}

// NewPorts reads the ephemeral range and seeds the choice from the process id, so
// test binaries running side by side start at different places.
func NewPorts() *Ports {
	hi := ephemeralLow()
	lo := hi - 12000
	if lo < 1024 {
		lo = 1024
	}
	seed := uint64(os.Getpid())
	return &Ports{used: map[int]bool{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), lo: lo, hi: hi}
}

// ephemeralLow is the first port of /proc/sys/net/ipv4/ip_local_port_range, or
// Linux's default when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 1024 {
		return 32768
	}
	return n
}

// Next returns a port free now for TCP and UDP on 127.0.0.1.
func (p *Ports) Next() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 200 {
		port := p.lo + p.rng.IntN(p.hi-p.lo)
		if p.used[port] || !freeBoth(port) {
			continue
		}
		p.used[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no loopback port in %d-%d free for both TCP and UDP", p.lo, p.hi-1)
}

func freeBoth(port int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer tl.Close()
	ul, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	ul.Close()
	return true
}
