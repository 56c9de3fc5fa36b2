package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// TestCNILibcni drives the plugin through libcni, the CNI project's runtime
// library (what containerd, CRI-O and podman build on), with configs of spec
// 0.4.0, 1.0.0 and 1.1.0: ADD (twice: the same machine), CHECK, GC, STATUS, DEL
// (twice: nothing to do is success), and a container killed with SIGKILL whose
// namespace (/proc/PID/ns/net) went with it, reaped by the agent.
func TestCNILibcni(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping network-namespace test in -short mode")
	}
	requireEnv(t, "unshare")
	w := newWorld(t, "lc")
	h1 := w.addHost(1, hostOpts{region: "ord", hostMounts: true})
	w.cli(h1, "orgs", "create", "acme")
	w.cli(h1, "apps", "create", "web", "--org", "acme")
	cni := libcni.NewCNIConfigWithCacheDir([]string{cniPluginDir(t)}, filepath.Join(w.dir, "cni-cache"), nil)
	ctx := context.Background()

	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			list, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(
				`{"cniVersion":%q,"name":"acme-web-%s","plugins":[{"type":"dogwood","org":"acme","app":"web","agent":%q,"metadata":{"role":"db"}}]}`,
				v, strings.ReplaceAll(v, ".", ""), h1.sock)))
			if err != nil {
				t.Fatal(err)
			}
			ns := w.netns("n" + strings.ReplaceAll(v, ".", ""))
			rt := &libcni.RuntimeConf{ContainerID: "ctr-" + strings.ReplaceAll(v, ".", "-"), NetNS: "/run/netns/" + ns, IfName: "eth0",
				Args: [][2]string{{"IgnoreUnknown", "1"}, {"DOGWOOD_PROCESS_GROUP", "worker"}, {"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "db-0"}}}
			res, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			cur, err := current.NewResultFromResult(res)
			if err != nil {
				t.Fatal(err)
			}
			if len(cur.IPs) != 1 || cur.IPs[0].Address.IP.To16() == nil || !strings.HasPrefix(cur.IPs[0].Address.IP.String(), "fdaa:") ||
				len(cur.DNS.Nameservers) != 1 || cur.DNS.Nameservers[0] != "fdaa::3" || len(cur.Routes) != 2 {
				t.Fatalf("ADD result: %s", cur)
			}
			addr := cur.IPs[0].Address.IP.String()
			m := w.machineOf(h1, rt.ContainerID)
			if m.Address != addr || m.Metadata["role"] != "db" || m.Metadata["k8s_pod_namespace"] != "shop" || m.Metadata["k8s_pod_name"] != "db-0" || m.Netns != rt.NetNS || m.Group != "worker" {
				t.Errorf("machine %+v, result address %s", m, addr)
			}
			// The container's view: the address, and DNS through fdaa::3.
			if out := nsMust(t, ns, "ip", "-6", "addr", "show", "eth0"); !strings.Contains(out, addr+"/112") {
				t.Errorf("eth0 in the container: %s", out)
			}
			if err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
				got, status, err := digAAAA(ns, "fdaa::3", m.ID+".vm.web.internal")
				if err != nil || status != "NOERROR" || len(got) != 1 || got[0] != addr {
					return fmt.Errorf("dig @fdaa::3 %s.vm.web.internal: %s %v %v", m.ID, status, got, err)
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
			// A retried ADD returns the same machine and address.
			res2, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				t.Fatalf("second ADD: %v", err)
			}
			cur2, _ := current.NewResultFromResult(res2)
			if cur2.IPs[0].Address.IP.String() != addr || len(w.containerMachines(h1)) != 1 {
				t.Errorf("second ADD: %s, machines %+v", cur2, w.containerMachines(h1))
			}
			if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if v == "1.1.0" {
				// The agent restarts: it adopts the attachment without touching it,
				// and CHECK, and later DEL, still work.
				h1.agent.stop(5 * time.Second)
				h1.start(h1.args)
				if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
					t.Errorf("CHECK after an agent restart: %v", err)
				}
				if out := nsMust(t, ns, "ip", "-6", "addr", "show", "eth0"); !strings.Contains(out, addr+"/112") {
					t.Errorf("eth0 after an agent restart: %s", out)
				}
			}
			// CHECK fails once the container lost its address.
			nsMust(t, ns, "ip", "-6", "addr", "del", addr+"/112", "dev", "eth0")
			if err := cni.CheckNetworkList(ctx, list, rt); err == nil {
				t.Errorf("CHECK passed with the address removed")
			}
			if v == "1.1.0" {
				if err := cni.GetStatusNetworkList(ctx, list); err != nil {
					t.Errorf("STATUS: %v", err)
				}
				// GC keeps what is valid, and removes this network's machines the
				// runtime does not list (one made behind libcni's cache's back).
				other := libcni.NewCNIConfigWithCacheDir([]string{cniPluginDir(t)}, filepath.Join(w.dir, "other-cache"), nil)
				ns2 := w.netns("g" + strings.ReplaceAll(v, ".", ""))
				rt2 := &libcni.RuntimeConf{ContainerID: "stale", NetNS: "/run/netns/" + ns2, IfName: "eth0"}
				if _, err := other.AddNetworkList(ctx, list, rt2); err != nil {
					t.Fatalf("ADD stale: %v", err)
				}
				valid := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: rt.ContainerID, IfName: "eth0"}}}
				if err := cni.GCNetworkList(ctx, list, valid); err != nil {
					t.Errorf("GC: %v", err)
				}
				if ms := w.containerMachines(h1); len(ms) != 1 || ms[0].Metadata["container_id"] != rt.ContainerID {
					t.Errorf("after GC: %+v", ms)
				}
			}
			if v == "1.0.0" {
				// The machine destroyed behind the runtime's back: CHECK says the
				// container is unknown, and DEL has nothing left to do.
				w.cli(h1, "machines", "destroy", m.ID)
				var ce *types.Error
				if err := cni.CheckNetworkList(ctx, list, rt); !errors.As(err, &ce) || ce.Code != types.ErrUnknownContainer {
					t.Errorf("CHECK with the machine destroyed: %v, want CNI error code 3", err)
				}
			}
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if ms := w.containerMachines(h1); len(ms) != 0 {
				t.Errorf("after DEL: %+v", ms)
			}
			if out, err := e2eproc.NSRun(5*time.Second, ns, "ip", "link", "show", "eth0"); err == nil {
				t.Errorf("eth0 still in the container after DEL: %s", out)
			}

			// DEL again, and DEL after the namespace is gone: nothing to do.
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("second DEL: %v", err)
			}
			gone := *rt
			gone.NetNS = "/run/netns/" + w.name("nope")
			if err := cni.DelNetworkList(ctx, list, &gone); err != nil {
				t.Errorf("DEL with the namespace gone: %v", err)
			}
		})
	}

	// A container killed with SIGKILL whose namespace was its own (/proc/PID/ns/net):
	// no DEL ever comes; the agent reaps its machine.
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.1.0","name":"acme-web-k","plugins":[{"type":"dogwood","org":"acme","app":"web","agent":"` + h1.sock + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("unshare", "--net", "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	nsPath := fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid)
	if err := e2eproc.Eventually(5*time.Second, 20*time.Millisecond, func() error {
		self, _ := os.Readlink("/proc/self/ns/net")
		if got, err := os.Readlink(nsPath); err != nil || got == self {
			return fmt.Errorf("sleeper not in its own namespace yet: %s %v", got, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rt := &libcni.RuntimeConf{ContainerID: "killed", NetNS: nsPath, IfName: "eth0"}
	if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	m := w.machineOf(h1, "killed")
	sleeper.Process.Signal(syscall.SIGKILL)
	sleeper.Wait()
	t0 := time.Now()
	if err := e2eproc.Eventually(40*time.Second, 250*time.Millisecond, func() error {
		if len(w.containerMachines(h1)) != 0 {
			return fmt.Errorf("machine %s of the killed container still there", m.ID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed container's machine reaped %v after SIGKILL", time.Since(t0).Round(100*time.Millisecond))

	// Errors surface through libcni as CNI errors with the spec's codes.
	bad, _ := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"dogwood","org":"acme","app":"web","agent":"` + h1.sock + `","ipam":{}}]}`))
	_, err = cni.AddNetworkList(ctx, bad, &libcni.RuntimeConf{ContainerID: "bad", NetNS: "/run/netns/" + w.netns("b"), IfName: "eth0"})
	var ce *types.Error
	if !errors.As(err, &ce) || ce.Code != types.ErrInvalidNetworkConfig {
		t.Errorf("ADD with an unknown key: %v, want CNI error code 7", err)
	}
}
