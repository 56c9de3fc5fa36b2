package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Proxy listens on listen (a loopback host:port such as 127.0.0.1:8080) and
// forwards every TCP connection to name:remotePort through the tunnel until
// ctx is cancelled. name is resolved for each connection, so a machine that
// moved is found again. It returns nil after cancellation, once every
// forwarded connection is closed.
func (t *Tunnel) Proxy(ctx context.Context, listen, name string, remotePort int) error {
	if remotePort < 1 || remotePort > 65535 {
		return fmt.Errorf("remote port %d out of range 1-65535", remotePort)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return err
	}
	t.log.Info("proxy listening", "addr", ln.Addr().String(),
		"target", net.JoinHostPort(name, strconv.Itoa(remotePort)))
	return t.ServeProxy(ctx, ln, name, remotePort)
}

// ServeProxy is Proxy on a listener the caller opened (and that ServeProxy
// closes).
func (t *Tunnel) ServeProxy(ctx context.Context, ln net.Listener, name string, remotePort int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Like net/http: out of file descriptors and similar are
			// transient; back off instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("proxy accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.forward(ctx, c, name, remotePort)
		}()
	}
}

// forward connects c to name:port through the tunnel and copies both ways,
// passing half-closes along so request/response protocols finish cleanly.
func (t *Tunnel) forward(ctx context.Context, c net.Conn, name string, port int) {
	defer c.Close()
	log := t.log.With("client", c.RemoteAddr().String(), "target", name)
	addrs, err := t.Resolve(ctx, name)
	if err != nil {
		log.Warn("proxy: cannot resolve target", "err", err)
		return
	}
	var rc net.Conn
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, t.opts.DialTimeout)
		tc, derr := t.currentStack().DialTCP(dctx, netip.AddrPortFrom(a, uint16(port)))
		cancel()
		if err = derr; err == nil {
			rc = tc
			break
		}
		log.Debug("proxy: dial failed", "addr", a, "err", err)
	}
	if rc == nil {
		log.Warn("proxy: cannot connect to target", "port", port, "err", err)
		return
	}
	defer rc.Close()
	log.Debug("proxy: connected", "addr", rc.RemoteAddr().String())

	// Cancellation closes both sides, which unblocks the copies.
	stop := context.AfterFunc(ctx, func() { c.Close(); rc.Close() })
	defer stop()
	errc := make(chan error, 2)
	pipe := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
		}
		errc <- err
	}
	go pipe(rc, c)
	go pipe(c, rc)
	if err := <-errc; err != nil {
		// A reset on one side ends the other too.
		c.Close()
		rc.Close()
	}
	<-errc
}
