package attach

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netns"
)

// DialIn opens a connection from inside the named network namespace (a
// machine's), as a process there would: the socket belongs to that
// namespace whatever thread later uses it. doctor asks fdaa::3 this way, on
// the path machines take through the host's firewall, instead of over
// loopback.
func DialIn(ctx context.Context, nsName, network, address string) (net.Conn, error) {
	var c net.Conn
	err := InNamespace(nsName, func() error {
		// The dial (and for TCP its handshake) happens inside the namespace.
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

// InNamespace runs f on an OS thread inside the network namespace nsName (a name
// under /run/netns, or a path such as /proc/PID/ns/net); sockets f opens stay in
// that namespace. The thread goes back to its own namespace afterwards, or is
// discarded if it cannot.
func InNamespace(nsName string, f func() error) error {
	open := netns.GetFromName
	if strings.HasPrefix(nsName, "/") {
		open = netns.GetFromPath // a container's namespace (plan.Machine.External)
	}
	target, err := open(nsName)
	if err != nil {
		return fmt.Errorf("netns %s: %w", nsName, err)
	}
	defer target.Close()
	return onLockedThread(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("enter netns %s: %w", nsName, err)
		}
		return f()
	})
}
