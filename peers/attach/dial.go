package attach

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// DialIn opens a connection from inside the named network namespace (a
// machine's), as a process there would: the socket belongs to that
// namespace whatever thread later uses it. doctor asks fdaa::3 this way, on
// the path machines take through the host's firewall, instead of over
// loopback.
func DialIn(ctx context.Context, nsName, network, address string) (net.Conn, error) {
	target, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", nsName, err)
	}
	defer target.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter netns %s: %w", nsName, err)}
			return
		}
		// The dial (and for TCP its handshake) happens inside the namespace.
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if serr := netns.Set(orig); serr != nil {
			if c != nil {
				c.Close()
			}
			ch <- result{err: errors.Join(err, fmt.Errorf("restore thread netns: %w", serr))}
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		ch <- result{c: c, err: err}
	}()
	r := <-ch
	return r.c, r.err
}
