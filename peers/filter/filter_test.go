package filter

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/internal/nstest"
	"github.com/dogwood/dogwood/peers/plan"
)

func nft(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nft", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestSyncInstallsAndReplacesAtomically(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	// A foreign table must survive everything we do.
	nft(t, "add", "table", "inet", "other")
	nft(t, "add", "chain", "inet", "other", "c", "{ type filter hook forward priority 0; }")

	f := New("")
	spec := Spec{WGIface: "dogwood0", Networks: []uint32{0x18, 0x19}, Machines: []plan.Machine{
		{HostIface: plan.VethName(0x10001), Prefix: sixpn.MachinePrefix(0x18, 7, 0x10001)},
	}}
	if changed, err := f.Sync(spec); err != nil || !changed {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	out := nft(t, "list", "table", "inet", "dogwood")
	t.Log(out)
	for _, want := range []string{
		"fdaa:0:18:: . fdaa:0:18::", "fdaa:0:19:: . fdaa:0:19::",
		`"dwm00010001" . fdaa:0:18:0:7:1:1:2`,
		"hook prerouting", "hook forward", "hook input",
		`iifname "dogwood0"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	rules := strings.Count(out, "counter")
	if changed, err := f.Sync(spec); err != nil || changed {
		t.Fatalf("unchanged spec rewrote the table: %v %v", changed, err)
	}

	// Growing the fleet grows set elements, not rules.
	spec.Networks = append(spec.Networks, 0x20, 0x21, 0x22)
	for i := uint32(2); i < 50; i++ {
		spec.Machines = append(spec.Machines, plan.Machine{HostIface: plan.VethName(0x10000 + i), Prefix: sixpn.MachinePrefix(0x18, 7, 0x10000+i)})
	}
	if changed, err := f.Sync(spec); err != nil || !changed {
		t.Fatalf("grown sync: %v %v", changed, err)
	}
	out = nft(t, "list", "table", "inet", "dogwood")
	if got := strings.Count(out, "counter"); got != rules {
		t.Errorf("rule count grew from %d to %d with machines and networks", rules, got)
	}
	if !strings.Contains(out, "fdaa:0:22:: . fdaa:0:22::") || !strings.Contains(out, `"dwm00010031"`) {
		t.Errorf("new elements missing:\n%s", out)
	}

	// Someone flushed the ruleset table: the next sync puts it back.
	nft(t, "delete", "table", "inet", "dogwood")
	if changed, err := f.Sync(spec); err != nil || !changed {
		t.Fatalf("resync after deletion: %v %v", changed, err)
	}
	if err := f.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if out := nft(t, "list", "tables"); strings.Contains(out, "dogwood") || !strings.Contains(out, "inet other") {
		t.Fatalf("after delete: %s", out)
	}
}
