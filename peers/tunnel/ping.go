package tunnel

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

const (
	pingPayload   = 56 // ping's default: 64 bytes with the ICMP header
	protoICMPv6   = 58
	echoReplyType = ipv6.ICMPTypeEchoReply
)

type pingReply struct {
	seq  int
	from netip.Addr
	size int
	rtt  time.Duration
}

// Ping resolves target (a name through the tunnel's DNS, or a literal
// address) and sends count ICMPv6 echo requests (count <= 0: until ctx is
// cancelled), printing one line per reply and a summary to out, like ping.
// It returns an error only when no reply came back at all.
func (t *Tunnel) Ping(ctx context.Context, target string, count int, out io.Writer) error {
	addrs, err := t.Resolve(ctx, target)
	if err != nil {
		return err
	}
	dst := addrs[0]
	if !dst.Is6() || dst.Is4In6() {
		return fmt.Errorf("ping %s: %s is not an IPv6 address", target, dst)
	}
	// The netstack ping socket fills in the echo identifier (its "port")
	// and the checksum, and only delivers replies carrying that identifier.
	pc, err := t.currentStack().DialPing(dst)
	if err != nil {
		return fmt.Errorf("ping %s: %w", target, err)
	}

	payload := make([]byte, pingPayload)
	for i := range payload {
		payload[i] = byte(i)
	}
	var (
		mu       sync.Mutex
		sentAt   = map[int]time.Time{}
		replies  = make(chan pingReply)
		readDone = make(chan struct{})
		quit     = make(chan struct{}) // closed when the main loop stops listening
	)
	// The reader must run before the first request is written: netstack's
	// PingConn only wakes on a "readable" event, so a reply that arrives
	// before a Read is waiting would sit unnoticed until the deadline.
	go func() {
		defer close(readDone)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			now := time.Now()
			msg, err := icmp.ParseMessage(protoICMPv6, buf[:n])
			if err != nil || msg.Type != echoReplyType {
				continue
			}
			echo, ok := msg.Body.(*icmp.Echo)
			if !ok || !bytes.Equal(echo.Data, payload) {
				continue
			}
			mu.Lock()
			t0, ok := sentAt[echo.Seq]
			delete(sentAt, echo.Seq) // a duplicate is not a second reply
			mu.Unlock()
			if !ok {
				continue
			}
			src := addrOf(from)
			select {
			case replies <- pingReply{seq: echo.Seq, from: src, size: n, rtt: now.Sub(t0)}:
			case <-quit:
				return
			}
		}
	}()

	fmt.Fprintf(out, "PING %s (%s): %d data bytes\n", target, dst, pingPayload)
	var (
		sent, received int
		minRTT, maxRTT time.Duration
		sumRTT         time.Duration
		ticker         = time.NewTicker(t.opts.PingInterval)
		deadline       <-chan time.Time // set after the last request
		deadlineTimer  *time.Timer
		sendErr        error
	)
	defer ticker.Stop()
	send := func() {
		sent++
		seq := sent & 0xffff
		b, _ := (&icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{Seq: seq, Data: payload}}).Marshal(nil)
		mu.Lock()
		sentAt[seq] = time.Now()
		mu.Unlock()
		if _, err := pc.Write(b); err != nil && sendErr == nil {
			sendErr = err
			t.log.Debug("ping write failed", "err", err)
		}
	}
	send()
	if count > 0 && sent >= count {
		deadlineTimer = time.NewTimer(t.opts.PingWait)
		deadline = deadlineTimer.C
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case r := <-replies:
			received++
			if received == 1 || r.rtt < minRTT {
				minRTT = r.rtt
			}
			maxRTT = max(maxRTT, r.rtt)
			sumRTT += r.rtt
			fmt.Fprintf(out, "%d bytes from %s: icmp_seq=%d time=%s ms\n", r.size, r.from, r.seq, ms(r.rtt))
			if count > 0 && received >= count {
				break loop
			}
		case <-ticker.C:
			if deadline != nil {
				continue
			}
			send()
			if count > 0 && sent >= count {
				ticker.Stop()
				deadlineTimer = time.NewTimer(t.opts.PingWait)
				deadline = deadlineTimer.C
			}
		case <-deadline:
			break loop
		}
	}
	if deadlineTimer != nil {
		deadlineTimer.Stop()
	}
	close(quit)
	pc.Close() // wakes the reader if it is blocked in ReadFrom
	<-readDone

	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-received) / float64(sent)
	}
	fmt.Fprintf(out, "\n--- %s ping statistics ---\n", target)
	fmt.Fprintf(out, "%d packets transmitted, %d received, %.0f%% packet loss\n", sent, received, loss)
	if received > 0 {
		fmt.Fprintf(out, "rtt min/avg/max = %s/%s/%s ms\n", ms(minRTT), ms(sumRTT/time.Duration(received)), ms(maxRTT))
		return nil
	}
	if sendErr != nil {
		return fmt.Errorf("ping %s: %w", dst, sendErr)
	}
	return fmt.Errorf("no reply from %s", dst)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))
}
