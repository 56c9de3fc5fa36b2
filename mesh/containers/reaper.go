package containers

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/peers/plan"
)

// Reaper destroys container machines whose namespace died without a DEL (the
// runtime crashed, the container's init was killed, the host rebooted), once it has
// been gone for Grace: a DEL on its way or an ADD still attaching gets that long.
// It only decides; the node destroys, through Destroy.
type Reaper struct {
	Machines func() []*catalog.Machine // this host's machines
	Gone     func(m *catalog.Machine) bool
	Destroy  func(ctx context.Context, id string) error
	Grace    time.Duration
	Log      *slog.Logger

	since map[string]time.Time // when each machine was first seen gone
}

// Sweep looks once and returns the ids it destroyed.
func (r *Reaper) Sweep(ctx context.Context, now time.Time) []string {
	if r.since == nil {
		r.since = map[string]time.Time{}
	}
	seen := map[string]bool{}
	var reaped []string
	for _, m := range r.Machines() {
		if !IsContainer(m) || !r.Gone(m) {
			continue
		}
		seen[m.ID] = true
		first, ok := r.since[m.ID]
		if !ok {
			r.since[m.ID] = now
			continue
		}
		if now.Sub(first) < r.Grace {
			continue
		}
		if err := r.Destroy(ctx, m.ID); err != nil {
			r.Log.Warn("reaping a container's machine", "machine", m.ID, "err", err)
			continue
		}
		r.Log.Info("reaped a container's machine: its network namespace is gone", "machine", m.ID, "netns", m.Netns,
			"container", m.Metadata[catalog.MetaContainerID])
		reaped = append(reaped, m.ID)
	}
	for id := range r.since {
		if !seen[id] {
			delete(r.since, id)
		}
	}
	return reaped
}

// Run sweeps every interval until ctx ends.
func (r *Reaper) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.Sweep(ctx, now)
		}
	}
}

// NamespaceGone is the host's test: the namespace path no longer opens as a network
// namespace, or the machine's veth is gone (a namespace takes its end of the pair,
// and so the pair, with it when it dies, even when its path is reused).
func NamespaceGone(m *catalog.Machine) bool {
	if _, err := net.InterfaceByName(plan.VethName(m.Field)); err != nil {
		return true
	}
	f, err := os.Open(m.Netns)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	return err == nil && t != unix.CLONE_NEWNET || errors.Is(err, unix.ENOTTY)
}
