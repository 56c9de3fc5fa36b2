package tunnel

import (
	"context"
	"time"

	"github.com/dogwood/dogwood/peers/config"
)

// watchEvery is how often a long-running tunnel looks for a tunnel of its own
// config on this machine.
const watchEvery = time.Second

// watch makes a long-running tunnel (a proxy, Options.Share) make way for a
// tunnel of the same config that comes up on this machine after it started
// (`wg-quick up` of the same file). Two WireGuard sessions with one key take
// the gateway's session from each other at every handshake, and both paths
// die by turns; so when the config's address appears on an interface, this
// tunnel closes its own session and dials through that tunnel instead, saying
// so at WARN. When the address goes away again (`wg-quick down`), it starts
// its own session again. It runs until Close.
func (t *Tunnel) watch(cfg config.Config) {
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		src, live := liveAddress(cfg, t.opts.LocalAddrs)
		t.mu.Lock()
		own := t.dev != nil
		_, yielded := t.stack.(systemStack)
		t.mu.Unlock()
		switch {
		case live && own:
			t.log.Warn("the config's tunnel came up on this machine (wg-quick up of the same file?): closing this command's own WireGuard session and going through that tunnel; two sessions with one key would take the gateway's session from each other", "address", src)
			t.mu.Lock()
			dev := t.dev
			t.dev, t.net, t.stack = nil, nil, systemStack{src: src}
			t.mu.Unlock()
			if dev != nil {
				dev.Close()
			}
		case !live && yielded:
			t.log.Warn("the config's tunnel on this machine went down: starting this command's own WireGuard session again")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			nt, err := Up(ctx, cfg, t.opts)
			cancel()
			if err != nil {
				t.log.Warn("starting the tunnel again (retrying)", "err", err)
				continue
			}
			t.mu.Lock()
			select {
			case <-t.stop: // closed meanwhile
				t.mu.Unlock()
				nt.Close()
				return
			default:
			}
			t.dev, t.net, t.stack = nt.dev, nt.net, nt.stack
			t.mu.Unlock()
		}
	}
}
