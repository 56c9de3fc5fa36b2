package mesh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/clock"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/store"
)

// fakeNet is admission's transport: members, their releases and what they answer
// to the name lookup.
type fakeNet struct {
	members []gossip.Member
	old     map[string]bool                            // members of a release that cannot answer
	answer  func(host string) (*catalog.Record, error) // nil: nobody answers
}

func (f *fakeNet) Members() []gossip.Member { return f.members }
func (f *fakeNet) CallError(host string) error {
	if f.old[host] {
		return errors.New("runs a release this one cannot talk to")
	}
	return nil
}
func (f *fakeNet) LocalAddr() (net.IP, uint16) { return net.IPv4(198, 18, 0, 1), 7946 }
func (f *fakeNet) Call(_ context.Context, host, op string, _, resp any) error {
	if op != opHostLookup || f.answer == nil {
		return errors.New("no answer")
	}
	r, err := f.answer(host)
	if err != nil {
		return err
	}
	*resp.(**catalog.Record) = r
	return nil
}

// memWriter is the replica as admission sees it, in memory.
type memWriter struct {
	cat      *catalog.Catalog
	mu       sync.Mutex
	recorded []*catalog.Record
}

func (w *memWriter) RecordAny(rs ...*catalog.Record) error {
	w.mu.Lock()
	w.recorded = append(w.recorded, rs...)
	w.mu.Unlock()
	w.cat.ApplyAll(rs)
	return nil
}
func (w *memWriter) Flush() {}
func (w *memWriter) Tombstones(rs ...*catalog.Record) []*catalog.Record {
	return tombstonesAt(w.cat, rs)
}

// tombstonesAt is what the replica's Tombstones makes, stamped by cat's clock (the
// test writers' shared piece).
func tombstonesAt(cat *catalog.Catalog, rs []*catalog.Record) []*catalog.Record {
	var out []*catalog.Record
	for _, r := range rs {
		t := *r
		t.Deleted, t.Version, t.DeletedAt = true, cat.Tick(), 1
		out = append(out, &t)
	}
	return out
}
func (w *memWriter) Merge(rs []*catalog.Record) []*catalog.Record { return w.cat.ApplyAll(rs) }

type savedIDs struct{ last store.Identity }

func (s *savedIDs) SaveIdentity(id store.Identity) error { s.last = id; return nil }

type admissionWorld struct {
	a     *admission
	cat   *catalog.Catalog
	net   *fakeNet
	ids   *savedIDs
	clock *clock.Fake
}

func newAdmissionWorld(t *testing.T, join bool, id store.Identity) *admissionWorld {
	t.Helper()
	cfg := Config{Region: "ord", DataDir: "/var/lib/dogwood", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if join {
		cfg.Join = []string{"198.18.0.2:7946"}
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	x := &admissionWorld{cat: catalog.New(id.Name), net: &fakeNet{}, ids: &savedIDs{}, clock: clock.NewFake(time.Unix(1e9, 0))}
	x.cat.SetSelfID(id.HostID)
	x.a = newAdmission(cfg, x.clock, x.ids, x.cat, id, key, netip.MustParseAddr("198.18.0.1"))
	x.a.w = &memWriter{cat: x.cat}
	x.a.net = x.net
	t.Cleanup(x.a.close)
	return x
}

var selfID = store.Identity{Name: "h0", HostID: 0x0a000001, Gen: 1, Created: catalog.Stamp{Clock: 10, Node: 0x0a000001}}

// hostRec is a host record for name by another incarnation.
func hostRec(name string, hostID uint32, gen uint32, created uint64, deleted bool) *catalog.Record {
	st := catalog.Stamp{Clock: created, Node: hostID}
	return &catalog.Record{Kind: catalog.KindHost, Key: name, Gen: gen, Created: st, Version: st, Deleted: deleted,
		Host: &catalog.Host{Name: name, ID: hostID, Region: "ord", Addr: netip.MustParseAddr("198.18.0.9")}}
}

// syncFor runs syncIdentity with a timeout on the fake clock, advancing it until the
// call returns.
func (x *admissionWorld) syncFor(t *testing.T, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- x.a.syncIdentity(timeout) }()
	deadline := time.After(10 * time.Second)
	for {
		waiting := make(chan struct{})
		go func() { x.clock.WaitTimers(1); close(waiting) }() // left blocked once the call returned
		select {
		case err := <-done:
			return err
		case <-waiting:
			x.clock.Advance(50 * time.Millisecond)
		case <-deadline:
			t.Fatal("syncIdentity did not return within 10 s")
		}
	}
}

// TestGateOpensOnlyWhenTheClusterAnswers: writes are refused (503) until a host of
// the cluster told this one what it holds under its name, or this is the first host,
// or every member it hears runs a release that cannot answer.
func TestGateOpensOnlyWhenTheClusterAnswers(t *testing.T) {
	alive := []gossip.Member{{Name: "h0", Status: catalog.StatusAlive}, {Name: "h1", Status: catalog.StatusAlive}}
	for _, tc := range []struct {
		name    string
		join    bool
		members []gossip.Member
		old     map[string]bool
		answer  func(string) (*catalog.Record, error)
		open    bool
	}{
		{name: "first host", join: false, open: true},
		{name: "nobody answers", join: true, members: alive, open: false},
		{name: "a member answers nothing held", join: true, members: alive, open: true,
			answer: func(string) (*catalog.Record, error) { return nil, nil }},
		{name: "a member answers our record", join: true, members: alive, open: true,
			answer: func(string) (*catalog.Record, error) {
				return hostRec("h0", selfID.HostID, selfID.Gen, selfID.Created.Clock, false), nil
			}},
		{name: "only members of another release", join: true, members: alive, old: map[string]bool{"h1": true}, open: true},
		{name: "a dead member", join: true, members: []gossip.Member{{Name: "h1", Status: catalog.StatusFailed}}, open: false,
			answer: func(string) (*catalog.Record, error) { return nil, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newAdmissionWorld(t, tc.join, selfID)
			x.net.members, x.net.old, x.net.answer = tc.members, tc.old, tc.answer
			if err := x.a.Writable(); StatusCode(err) != http.StatusServiceUnavailable {
				t.Fatalf("writable before the check: %v", err)
			}
			if err := x.syncFor(t, time.Second); err != nil {
				t.Fatal(err)
			}
			if open := x.a.Writable() == nil; open != tc.open {
				t.Fatalf("gate open = %v, want %v", open, tc.open)
			}
			select {
			case <-x.a.opened:
				if !tc.open {
					t.Fatal("opened closed on a shut gate")
				}
			default:
				if tc.open {
					t.Fatal("opened not closed on an open gate")
				}
			}
		})
	}
}

// TestHostRecordSettlesTheName: the name's history in the catalog decides whether
// this host writes its record, takes the name over (a re-image) or must stop.
func TestHostRecordSettlesTheName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		settled bool
		held    *catalog.Record
		err     error
		gen     uint32 // the generation this host writes; 0: none
	}{
		{name: "name free", gen: 1},
		{name: "our own record", held: hostRec("h0", selfID.HostID, 1, selfID.Created.Clock, false), gen: 1},
		{name: "removed", held: hostRec("h0", selfID.HostID, 1, selfID.Created.Clock, true), err: ErrRemoved},
		{name: "older incarnation, fresh host: re-image", held: hostRec("h0", 0x0b000002, 3, 99, false), gen: 4},
		{name: "older incarnation removed, fresh host", held: hostRec("h0", 0x0b000002, 3, 99, true), gen: 4},
		{name: "newer incarnation, settled host: superseded", settled: true, held: hostRec("h0", 0x0b000002, 3, 99, false), err: ErrSuperseded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := selfID
			id.Settled = tc.settled
			x := newAdmissionWorld(t, true, id)
			if tc.held != nil {
				x.cat.Apply(tc.held)
			}
			x.a.alloc.Lock()
			err := x.a.writeHostRecord()
			x.a.alloc.Unlock()
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			w := x.a.w.(*memWriter)
			if tc.gen == 0 {
				if len(w.recorded) != 0 {
					t.Fatalf("wrote %d records", len(w.recorded))
				}
				return
			}
			if len(w.recorded) != 1 || w.recorded[0].Gen != tc.gen || w.recorded[0].Host.ID != selfID.HostID {
				t.Fatalf("wrote %+v, want our record at gen %d", w.recorded, tc.gen)
			}
			if got := x.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: "h0"}); !got.SameIdentity(w.recorded[0]) {
				t.Fatal("our record did not win the name")
			}
			if tc.gen > 1 && (!x.ids.last.Settled || x.ids.last.Gen != tc.gen) {
				t.Fatalf("took the name over without saving it: %+v", x.ids.last)
			}
		})
	}
}

// TestRemovedHostStops: once the cluster removed this host, it stops (Fatal, with
// what to do) and allocation refuses.
func TestRemovedHostStops(t *testing.T) {
	x := newAdmissionWorld(t, true, selfID)
	x.cat.Apply(hostRec("h0", selfID.HostID, 1, selfID.Created.Clock, true))
	x.a.open()
	if err := x.a.checkIdentity(x.cat.Latest()); !errors.Is(err, ErrRemoved) {
		t.Fatalf("checkIdentity: %v, want ErrRemoved", err)
	}
	x.a.fail(ErrRemoved)
	select {
	case <-x.a.Fatal():
	default:
		t.Fatal("Fatal not closed")
	}
	if err := x.a.Err(); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Err: %v", err)
	}
	ran := false
	if err := x.a.Allocate(func(uint32) error { ran = true; return nil }); StatusCode(err) != http.StatusServiceUnavailable || ran {
		t.Fatalf("Allocate on a removed host: %v (ran %v)", err, ran)
	}
}
