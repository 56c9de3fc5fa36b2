package gossip

import (
	"encoding/binary"
	"net"
	"sync"

	"github.com/dogwood/dogwood/mesh/netlimit"
)

// Gossip's TCP listener (push/pull, messages too big for a packet) is open to the
// underlay. memberlist accepts every connection and gives each its TCPTimeout (10 s
// on LAN) before closing it, so a flood of idle connections would hold one file
// descriptor each for that long, enough to run the process out of them. The
// limiter below caps streams in total and per source and closes the excess at once;
// a legitimate host uses a handful of short streams at a time.
//
// Bytes are bounded too: memberlist reads an encrypted stream's whole declared
// length (up to 20 MB) into memory before it can authenticate it, so 32 streams from
// one source once held 1 GB. What our streams legitimately carry is bounded by the
// sender: a push/pull state is a digest root plus memberlist's ~120 bytes per member
// (1.2 MB at 10,000 hosts), and anti-entropy records go in messages of at most
// maxRecordsMsg (splitRecordList), so maxStreamBytes is that plus room for a
// frame; a source may hold two such streams at once and all sources together
// maxUnauthBytes. A stream over any of them is cut and its sender retries later
// (anti-entropy runs again), instead of the agent running out of memory.
const (
	maxStreams          = 512
	maxStreamsPerSource = 64

	maxRecordsMsg  = 2 << 20
	maxStreamBytes = maxRecordsMsg + 64<<10
	maxSourceBytes = 2 * maxStreamBytes
	maxUnauthBytes = 16 << 20
)

// streamLimiter is a Transport whose incoming streams are capped.
type streamLimiter struct {
	*Transport
	out   chan net.Conn
	done  chan struct{}
	once  sync.Once
	gate  *netlimit.Gate
	bytes *netlimit.Bytes
}

func newStreamLimiter(nt *Transport, total, perSource int, onDrop func()) *streamLimiter {
	gate := netlimit.NewGate(netlimit.NewPool(total), perSource)
	gate.OnRefuse = onDrop
	l := &streamLimiter{Transport: nt, out: make(chan net.Conn), done: make(chan struct{}), gate: gate,
		bytes: &netlimit.Bytes{PerStream: maxStreamBytes, PerSource: maxSourceBytes, Total: maxUnauthBytes, Declared: declaredSize}}
	go l.run()
	return l
}

func (l *streamLimiter) StreamCh() <-chan net.Conn { return l.out }

func (l *streamLimiter) Shutdown() error {
	l.once.Do(func() { close(l.done) })
	return l.Transport.Shutdown()
}

func (l *streamLimiter) run() {
	for {
		select {
		case <-l.done:
			return
		case c := <-l.Transport.StreamCh():
			c, ok := l.gate.Admit(c)
			if !ok {
				continue
			}
			c = l.bytes.Wrap(c)
			select {
			case l.out <- c:
			case <-l.done:
				c.Close()
				return
			}
		}
	}
}

// mlEncryptMsg is memberlist's message type for an encrypted stream: the type byte,
// a 4-byte big-endian length, then that many bytes it reads whole before decrypting.
const mlEncryptMsg = 10

// declaredSize reads the length an encrypted memberlist stream announces, so one
// announcing more than a real transfer needs is cut before its body is read.
func declaredSize(first []byte) (int64, bool) {
	if len(first) < 5 || first[0] != mlEncryptMsg {
		return 0, false
	}
	return 5 + int64(binary.BigEndian.Uint32(first[1:5])), true
}
