package mesh

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// TestContainerMachines: a container runtime's machine carries its source,
// interface, CNI network and container id to every host (through the gossip
// encoding), and its attachment is checked like any input.
func TestContainerMachines(t *testing.T) {
	c := newCluster(t, 2)
	h0, h1 := c.hosts[0], c.hosts[1]
	ctx := context.Background()
	if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	cid := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	att := func(ifname, netns string) *Attachment {
		return &Attachment{ContainerID: cid, Ifname: ifname, Netns: netns, Network: "acme-web"}
	}
	m, err := h0.Machines.Create(ctx, MachineSpec{App: "web", Metadata: map[string]string{"k8s_pod_name": "web-0.shop"},
		Attachment: att("eth0", "/run/netns/cni-1")})

	if err != nil {
		t.Fatal(err)
	}
	c.eventually(5*time.Second, "the machine on h1", func() bool {
		r, _ := h1.Machines.Get(m.ID)
		return r != nil
	})
	r, _ := h1.Machines.Get(m.ID)
	if r.Source != catalog.SourceCNI || r.Ifname != "eth0" || r.CNINetwork != "acme-web" || r.Netns != "/run/netns/cni-1" ||
		r.Metadata[catalog.MetaContainerID] != cid || r.Metadata["k8s_pod_name"] != "web-0.shop" || len(r.Metadata) != 2 {
		t.Errorf("on h1: %+v %+v", r, r.MachineAttrs)
	}
	// Another interface in the same namespace is fine; the same one is taken.
	if _, err := h0.Machines.Create(ctx, MachineSpec{App: "web", Attachment: att("eth1", "/run/netns/cni-1")}); err != nil {
		t.Errorf("second interface: %v", err)
	}
	if _, err := h0.Machines.Create(ctx, MachineSpec{App: "web", Attachment: att("eth0", "/run/netns/cni-1")}); StatusCode(err) != http.StatusConflict {
		t.Errorf("same interface twice: %v", err)
	}
	// Machines of the API and the CLI say so.
	for src, want := range map[string]string{"": catalog.SourceAPI, "cli": catalog.SourceCLI} {
		m, err := h0.Machines.Create(ctx, MachineSpec{App: "web", Source: src})
		if err != nil || m.Source != want {
			t.Errorf("source %q: %v %v", src, m, err)
		}
	}
	for name, spec := range map[string]MachineSpec{
		"cni from a body":    {App: "web", Source: "cni"},
		"relative path":      {App: "web", Attachment: att("eth0", "run/netns/x")},
		"unclean path":       {App: "web", Attachment: att("eth0", "/run/netns/../x")},
		"bad ifname":         {App: "web", Attachment: att("eth0:1", "/run/netns/x")},
		"long ifname":        {App: "web", Attachment: att("abcdefghijklmnop", "/run/netns/x")},
		"bad container id":   {App: "web", Attachment: &Attachment{ContainerID: "a b", Ifname: "eth0", Netns: "/x", Network: "n"}},
		"netns and attached": {App: "web", Netns: "ns1", Attachment: att("eth0", "/run/netns/x")},
		"dotted value, CLI":  {App: "web", Metadata: map[string]string{"k": "a.b"}},
	} {
		if _, err := h0.Machines.Create(ctx, spec); StatusCode(err) != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
}
