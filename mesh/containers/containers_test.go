package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// fakeNode keeps machines in a list; its creates record before they "attach",
// and attachFail makes the attach step fail (as the data plane would).
type fakeNode struct {
	mu         sync.Mutex
	machines   []catalog.Machine
	next       uint32
	attachFail error
	destroyed  []string
	creates    int
	lastSpec   mesh.MachineSpec
}

func (f *fakeNode) Create(_ context.Context, spec mesh.MachineSpec) (*catalog.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	f.lastSpec = spec
	if spec.Org == "nope" {
		return nil, &mesh.Error{Code: http.StatusNotFound, Msg: "org nope not found"}
	}
	f.next++
	a := spec.Attachment
	m := catalog.Machine{ID: fmt.Sprintf("%014x", f.next), MachinePlace: &catalog.MachinePlace{App: spec.App, Org: spec.Org, Host: "h1", HostID: 1, NetworkID: 0x18},
		Field: 0x10000 + f.next, Address: sixpn.MachineAddr(0x18, 1, 0x10000+f.next), Netns: a.Netns,
		MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted, Source: catalog.SourceCNI, Ifname: a.Ifname, CNINetwork: a.Network,
			Metadata: map[string]string{catalog.MetaContainerID: a.ContainerID}}}
	f.machines = append(f.machines, m)
	if f.attachFail != nil {
		return &m, f.attachFail
	}
	return &m, nil
}

func (f *fakeNode) Action(_ context.Context, id, action string) (*catalog.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.machines {
		if m.ID == id && action == "destroy" {
			f.machines = append(f.machines[:i], f.machines[i+1:]...)
			f.destroyed = append(f.destroyed, id)
			return &m, nil
		}
	}
	return nil, &mesh.Error{Code: http.StatusNotFound, Msg: "machine " + id + " not found"}
}

func (f *fakeNode) Snapshot() *catalog.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return catalog.Build("h1", nil, nil, nil, nil, append([]catalog.Machine(nil), f.machines...), nil)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func req(cid, ifname, netns string) AddRequest {
	return AddRequest{Key: Key{ContainerID: cid, Ifname: ifname}, Netns: netns, CNINetwork: "acme-web", Org: "acme", App: "web"}
}

func TestAddIsIdempotentOnContainerAndInterface(t *testing.T) {
	f := &fakeNode{}
	s := &Service{Machines: f, Catalog: f, Log: quiet()}
	ctx := context.Background()
	a1, err := s.Add(ctx, req("c1", "eth0", "/run/netns/x"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := s.Add(ctx, req("c1", "eth0", "/run/netns/x"))
	if err != nil || a2.Machine.ID != a1.Machine.ID || a2.Prefix != a1.Prefix || f.creates != 1 {
		t.Fatalf("retried ADD: %+v %v (creates %d)", a2, err, f.creates)
	}
	// Another interface of the same container is another machine.
	a3, err := s.Add(ctx, req("c1", "eth1", "/run/netns/x"))
	if err != nil || a3.Machine.ID == a1.Machine.ID {
		t.Fatalf("second interface: %+v %v", a3, err)
	}
	// The same attachment in another namespace: the runtime lost a DEL; replaced.
	a4, err := s.Add(ctx, req("c1", "eth0", "/run/netns/y"))
	if err != nil || a4.Machine.ID == a1.Machine.ID || len(f.destroyed) != 1 || f.destroyed[0] != a1.Machine.ID {
		t.Fatalf("new namespace: %+v %v destroyed %v", a4, err, f.destroyed)
	}
	if want := sixpn.MachineGateway(0x18, 1, a4.Machine.Field); a4.Gateway != want || a4.Prefix.Bits() != 112 || len(a4.Routes) != 2 || a4.DNS[0] != sixpn.MachineDNS() {
		t.Errorf("view: %+v", a4)
	}
}

func TestAddLeavesNothingHalfMade(t *testing.T) {
	f := &fakeNode{attachFail: errors.New("create veth: file exists")}
	s := &Service{Machines: f, Catalog: f, Log: quiet()}
	if _, err := s.Add(context.Background(), req("c1", "eth0", "/run/netns/x")); err == nil || !strings.Contains(err.Error(), "veth") {
		t.Fatalf("err = %v", err)
	}
	if len(f.machines) != 0 || len(f.destroyed) != 1 {
		t.Errorf("machines %v destroyed %v", f.machines, f.destroyed)
	}
	if _, err := s.Add(context.Background(), AddRequest{Key: Key{ContainerID: "c2", Ifname: "eth0"}, Org: "nope", App: "web", Netns: "/x"}); mesh.StatusCode(err) != http.StatusNotFound {
		t.Errorf("unknown org: %v", err)
	}
	if _, err := s.Add(context.Background(), AddRequest{Key: Key{ContainerID: "c2", Ifname: "eth0"}, Org: "acme", App: "web", Netns: "/x",
		Checks: []json.RawMessage{json.RawMessage(`{"kind":"tcp","colour":"red"}`)}}); mesh.StatusCode(err) != http.StatusBadRequest {
		t.Errorf("a check with an unknown field: %v", err)
	}
	// Checks reach the create in both spellings.
	f.attachFail = nil
	if _, err := s.Add(context.Background(), AddRequest{Key: Key{ContainerID: "c3", Ifname: "eth0"}, Org: "acme", App: "web", Netns: "/x",
		Checks: []json.RawMessage{json.RawMessage(`"http:8080/healthz"`), json.RawMessage(`{"kind":"tcp","target":"5432","rise":1}`)}}); err != nil {
		t.Fatal(err)
	}
	if got := f.lastSpec.Checks; len(got) != 2 || got[0].Kind != "http" || got[0].Target != "8080/healthz" || got[1].Kind != "tcp" || got[1].Rise != 1 {
		t.Errorf("checks passed on: %+v", got)
	}
}

func TestDelAndGC(t *testing.T) {
	f := &fakeNode{}
	s := &Service{Machines: f, Catalog: f, Log: quiet()}
	ctx := context.Background()
	for _, c := range []string{"a", "b", "c"} {
		if _, err := s.Add(ctx, req(c, "eth0", "/run/netns/"+c)); err != nil {
			t.Fatal(err)
		}
	}
	other := req("d", "eth0", "/run/netns/d")
	other.CNINetwork = "acme-db"
	if _, err := s.Add(ctx, other); err != nil {
		t.Fatal(err)
	}
	// A machine of the CLI on this host is never the plugin's to touch.
	f.machines = append(f.machines, catalog.Machine{ID: "cli00000000000", MachinePlace: &catalog.MachinePlace{Host: "h1"},
		MachineAttrs: &catalog.MachineAttrs{Source: catalog.SourceCLI}})
	if err := s.Del(ctx, Key{ContainerID: "a", Ifname: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Del(ctx, Key{ContainerID: "a", Ifname: "eth0"}); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if _, err := s.Check(ctx, Key{ContainerID: "a", Ifname: "eth0"}); mesh.StatusCode(err) != http.StatusNotFound {
		t.Errorf("CHECK after DEL: %v", err)
	}
	removed, err := s.GC(ctx, "acme-web", []Key{{ContainerID: "b", Ifname: "eth0"}})
	if err != nil || len(removed) != 1 {
		t.Fatalf("GC: %v %v", removed, err)
	}
	var left []string
	for _, m := range f.machines {
		left = append(left, m.Metadata[catalog.MetaContainerID]+m.ID[:3])
	}
	if len(f.machines) != 3 || s.Find(Key{ContainerID: "b", Ifname: "eth0"}) == nil || s.Find(Key{ContainerID: "d", Ifname: "eth0"}) == nil {
		t.Errorf("after GC: %v", left)
	}
}

func TestReaperWaitsForGrace(t *testing.T) {
	f := &fakeNode{}
	s := &Service{Machines: f, Catalog: f, Log: quiet()}
	ctx := context.Background()
	a, _ := s.Add(ctx, req("dead", "eth0", "/proc/1234/ns/net"))
	s.Add(ctx, req("alive", "eth0", "/run/netns/alive"))
	f.machines = append(f.machines, catalog.Machine{ID: "cli00000000000", MachinePlace: &catalog.MachinePlace{Host: "h1"}, Netns: "/gone",
		MachineAttrs: &catalog.MachineAttrs{Source: catalog.SourceCLI}})
	gone := map[string]bool{a.Machine.ID: true, "cli00000000000": true}
	r := &Reaper{
		Machines: func() []*catalog.Machine { return f.Snapshot().LocalMachines },
		Gone:     func(m *catalog.Machine) bool { return gone[m.ID] },
		Destroy: func(ctx context.Context, id string) error {
			_, err := f.Action(ctx, id, "destroy")
			return err
		},
		Grace: 10 * time.Second, Log: quiet(),
	}
	t0 := time.Unix(1000, 0)
	if got := r.Sweep(ctx, t0); len(got) != 0 {
		t.Fatalf("reaped at once: %v", got)
	}
	if got := r.Sweep(ctx, t0.Add(9*time.Second)); len(got) != 0 {
		t.Fatalf("reaped before the grace: %v", got)
	}
	if got := r.Sweep(ctx, t0.Add(10*time.Second)); len(got) != 1 || got[0] != a.Machine.ID {
		t.Fatalf("after the grace: %v", got)
	}
	if len(f.machines) != 2 {
		t.Errorf("left: %+v", f.machines)
	}
	// A namespace that comes back within the grace starts the wait again.
	b := s.Find(Key{ContainerID: "alive", Ifname: "eth0"})
	gone[b.ID] = true
	r.Sweep(ctx, t0.Add(20*time.Second))
	gone[b.ID] = false
	r.Sweep(ctx, t0.Add(25*time.Second))
	gone[b.ID] = true
	if got := r.Sweep(ctx, t0.Add(31*time.Second)); len(got) != 0 {
		t.Errorf("reaped %v: its namespace was back in between", got)
	}
}
