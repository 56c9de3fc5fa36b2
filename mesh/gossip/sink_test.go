package gossip

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// recordingSink is a Sink that keeps what gossip hands it: the state lives in a
// catalog only as the test's bookkeeping (gossip itself never sees it).
type recordingSink struct {
	catalogSink

	mu       sync.Mutex
	merged   []*catalog.Record
	statuses map[string][]string
}

func (s *recordingSink) Merge(rs []*catalog.Record) []*catalog.Record {
	s.mu.Lock()
	s.merged = append(s.merged, rs...)
	s.mu.Unlock()
	return s.catalogSink.Merge(rs)
}

func (s *recordingSink) SetStatus(name, status string) bool {
	s.mu.Lock()
	s.statuses[name] = append(s.statuses[name], status)
	s.mu.Unlock()
	return s.catalogSink.SetStatus(name, status)
}

func (s *recordingSink) last(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.statuses[name]; len(l) > 0 {
		return l[len(l)-1]
	}
	return ""
}

func (s *recordingSink) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.merged {
		if r.Key == key {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting: %s", what)
}

// TestSinkGetsRecordsAndStatuses: what gossip learns (a member's join and leave, a
// record another host published) reaches the Sink, and only through it.
func TestSinkGetsRecordsAndStatuses(t *testing.T) {
	net := &memberlist.MockNetwork{}
	start := func(name string, join []string) (*Gossip, *recordingSink) {
		s := &recordingSink{catalogSink: catalogSink{catalog.New(name)}, statuses: map[string][]string{}}
		g, err := New(Config{Name: name, HostID: uint32(len(name)), Sink: s, Reader: s, Join: join,
			Transport: net.NewTransport(name), AEInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g, s
	}
	g1, s1 := start("h1", nil)
	a1, p1 := g1.LocalAddr()
	g2, s2 := start("h22", []string{(&memberlist.Node{Addr: a1, Port: p1}).Address()})
	eventually(t, "each sees the other alive", func() bool {
		return s1.last("h22") == catalog.StatusAlive && s2.last("h1") == catalog.StatusAlive
	})
	if s1.last("h1") != catalog.StatusAlive {
		t.Errorf("own status: %q", s1.last("h1"))
	}

	st := catalog.Stamp{Clock: 5, Node: 2}
	r := &catalog.Record{Kind: catalog.KindOrg, Key: "acme", Gen: 1, Created: st, Version: st, Org: &catalog.Org{Slug: "acme"}}
	s2.Apply(r)
	g2.Publish(r)
	eventually(t, "the published record reaches the other sink", func() bool { return s1.has("acme") })
	if s2.has("acme") {
		t.Error("a host's own publish came back to its sink")
	}

	if err := g2.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a graceful leave is reported as left", func() bool { return s1.last("h22") == catalog.StatusLeft })
}

// TestRestartedHostSeenAliveBySeed: a host that left and comes back under the same
// name and address is seen alive by its seed even when no gossip round carries its
// refutation (the restarted host's gossip and periodic push/pull are off here): the
// seed held it as left at an incarnation the new process's join does not beat.
func TestRestartedHostSeenAliveBySeed(t *testing.T) {
	quiet := func(c *memberlist.Config) {
		c.GossipInterval, c.PushPullInterval, c.ProbeInterval = time.Hour, 0, time.Hour
	}
	start := func(name string, port int, join []string, tune func(*memberlist.Config)) (*Gossip, *recordingSink) {
		s := &recordingSink{catalogSink: catalogSink{catalog.New(name)}, statuses: map[string][]string{}}
		g, err := New(Config{Name: name, HostID: uint32(len(name)), Sink: s, Reader: s, Join: join,
			BindAddr: "127.0.0.1", BindPort: port, AEInterval: time.Hour, TuneMemberlist: tune,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g, s
	}
	g1, s1 := start("h1", 0, nil, nil)
	a1, p1 := g1.LocalAddr()
	seed := []string{(&memberlist.Node{Addr: a1, Port: p1}).Address()}
	g2, _ := start("h2", 0, seed, nil)
	eventually(t, "the seed sees h2 alive", func() bool { return s1.last("h2") == catalog.StatusAlive })
	_, port := g2.LocalAddr()
	if err := g2.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	g2.Close()
	eventually(t, "the seed holds h2 as left", func() bool { return s1.last("h2") == catalog.StatusLeft })

	start("h2", int(port), seed, quiet)
	eventually(t, "the seed sees the restarted h2 alive", func() bool { return s1.last("h2") == catalog.StatusAlive })
}
