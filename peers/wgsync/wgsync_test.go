package wgsync

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/plan"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func testKey(i uint32) wgtypes.Key {
	var k wgtypes.Key
	// 0xff first: above the test device's public key, so the device starts
	// keepalives on add (keepsWarm) and one reconcile converges.
	k[0] = 0xff
	binary.BigEndian.PutUint32(k[1:5], i)
	k[31] = 0x40
	return k
}

func hostPeer(i uint32, nets ...uint32) plan.Peer {
	p := plan.Peer{PublicKey: testKey(i), Kind: plan.KindHost, Name: "h",
		Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 51820)}
	for _, n := range nets {
		p.AllowedIPs = append(p.AllowedIPs, sixpn.HostPrefix(n, i))
	}
	return p
}

func userPeer(i uint32, index int) plan.Peer {
	a, _ := sixpn.PeerAddr(0x18, 1, index)
	return plan.Peer{PublicKey: testKey(0x100000 + i), Kind: plan.KindUser, Name: "u", AllowedIPs: []netip.Prefix{sixpn.PeerPrefix(a)}}
}

var priv = func() wgtypes.Key {
	k, _ := wgtypes.ParseKey("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8hIQ==")
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}()

func TestKeepsWarm(t *testing.T) {
	low, high := testKey(1), testKey(9)
	low[0] = 0
	host := hostPeer(5, 0x18)
	user := userPeer(1, 0)
	cases := []struct {
		own  wgtypes.Key
		p    plan.Peer
		age  time.Duration
		want bool
	}{
		{low, host, 0, false},                       // nobody sends a handshake the moment a peer appears
		{low, host, WarmupDelay, true},              // the lower key starts first…
		{high, host, WarmupDelay, false},            // …the higher key waits…
		{high, host, 2 * WarmupDelay, true},         // …and then starts
		{low, user, time.Duration(1 << 62), false},  // user peers roam: never ours to keep warm
		{high, user, time.Duration(1 << 62), false}, //
	}
	for i, c := range cases {
		if got := keepsWarm(c.own, &c.p, c.age); got != c.want {
			t.Errorf("case %d: got %v", i, got)
		}
	}
}

func mustReconcile(t *testing.T, f *Fake, want []plan.Peer, s Settings) Changes {
	t.Helper()
	ch, err := Reconcile(f, want, s)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestReconcileExactDiff(t *testing.T) {
	f := NewFake("wg0", priv)
	port := 51820
	base := []plan.Peer{hostPeer(2, 0x18), hostPeer(3, 0x18, 0x19), userPeer(1, 0)}

	ch := mustReconcile(t, f, base, Settings{PrivateKey: &priv, ListenPort: &port})
	if ch != (Changes{Added: 3, Device: true}) {
		t.Fatalf("first run: %s", ch)
	}
	cfgs := f.Configs()
	if len(cfgs) != 1 || cfgs[0].ReplacePeers || cfgs[0].PrivateKey != nil || *cfgs[0].ListenPort != 51820 || len(cfgs[0].Peers) != 3 {
		t.Fatalf("first config: %+v", cfgs)
	}
	for _, pc := range cfgs[0].Peers {
		if pc.UpdateOnly || pc.Remove || !pc.ReplaceAllowedIPs {
			t.Errorf("new peer config %+v", pc)
		}
	}
	// Sessions are simulated: a reconcile must never reset them.
	hs := time.Unix(1700000000, 0)
	for _, p := range base {
		f.Touch(p.PublicKey, hs, 100, 200)
	}

	t.Run("no change applies nothing", func(t *testing.T) {
		if ch := mustReconcile(t, f, base, Settings{PrivateKey: &priv, ListenPort: &port}); !ch.Empty() {
			t.Fatalf("got %s", ch)
		}
		if c := f.Configs(); len(c) != 0 {
			t.Fatalf("applied %+v", c)
		}
	})

	t.Run("adding one host touches only that host", func(t *testing.T) {
		want := append(append([]plan.Peer{}, base...), hostPeer(4, 0x18))
		if ch := mustReconcile(t, f, want, Settings{}); ch != (Changes{Added: 1}) {
			t.Fatalf("got %s", ch)
		}
		c := f.Configs()
		if len(c) != 1 || len(c[0].Peers) != 1 || c[0].Peers[0].PublicKey != testKey(4) || c[0].ReplacePeers {
			t.Fatalf("config %+v", c)
		}
		if c[0].Peers[0].Endpoint.String() != "198.18.0.4:51820" || len(c[0].Peers[0].AllowedIPs) != 1 {
			t.Fatalf("peer config %+v", c[0].Peers[0])
		}
	})

	t.Run("host joins a network: update only, allowed ips replaced", func(t *testing.T) {
		want := []plan.Peer{hostPeer(2, 0x18, 0x20), hostPeer(3, 0x18, 0x19), userPeer(1, 0), hostPeer(4, 0x18)}
		if ch := mustReconcile(t, f, want, Settings{}); ch != (Changes{Updated: 1}) {
			t.Fatalf("got %s", ch)
		}
		c := f.Configs()
		pc := c[0].Peers[0]
		if len(c[0].Peers) != 1 || pc.PublicKey != testKey(2) || !pc.UpdateOnly || !pc.ReplaceAllowedIPs || pc.Endpoint != nil || len(pc.AllowedIPs) != 2 {
			t.Fatalf("config %+v", c)
		}
	})

	t.Run("endpoint move updates endpoint only", func(t *testing.T) {
		moved := hostPeer(3, 0x18, 0x19)
		moved.Endpoint = netip.MustParseAddrPort("[2001:db8::3]:51821")
		want := []plan.Peer{hostPeer(2, 0x18, 0x20), moved, userPeer(1, 0), hostPeer(4, 0x18)}
		if ch := mustReconcile(t, f, want, Settings{}); ch != (Changes{Updated: 1}) {
			t.Fatalf("got %s", ch)
		}
		pc := f.Configs()[0].Peers[0]
		if pc.PublicKey != testKey(3) || pc.ReplaceAllowedIPs || pc.AllowedIPs != nil || pc.Endpoint.String() != "[2001:db8::3]:51821" {
			t.Fatalf("config %+v", pc)
		}
	})

	t.Run("removing one peer removes only it and keeps other sessions", func(t *testing.T) {
		moved := hostPeer(3, 0x18, 0x19)
		moved.Endpoint = netip.MustParseAddrPort("[2001:db8::3]:51821")
		want := []plan.Peer{hostPeer(2, 0x18, 0x20), moved, hostPeer(4, 0x18)}
		if ch := mustReconcile(t, f, want, Settings{}); ch != (Changes{Removed: 1}) {
			t.Fatalf("got %s", ch)
		}
		c := f.Configs()
		if len(c[0].Peers) != 1 || !c[0].Peers[0].Remove || c[0].Peers[0].PublicKey != userPeer(1, 0).PublicKey {
			t.Fatalf("config %+v", c)
		}
		d, _ := f.Device()
		for _, p := range d.Peers {
			if p.PublicKey == testKey(4) {
				continue // added after Touch
			}
			if !p.LastHandshakeTime.Equal(hs) || p.ReceiveBytes != 100 {
				t.Errorf("peer %s lost its session state: %+v", p.PublicKey, p)
			}
		}
		if len(d.Peers) != 3 {
			t.Fatalf("device has %d peers", len(d.Peers))
		}
	})

	t.Run("user peer endpoints are left to roaming", func(t *testing.T) {
		u := userPeer(7, 3)
		want := []plan.Peer{u}
		mustReconcile(t, f, want, Settings{})
		f.Configs()
		// The peer roams: WireGuard learned an endpoint. Reconcile must keep it.
		_ = f.ConfigureDevice(wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: u.PublicKey, UpdateOnly: true, Endpoint: udpAddr(netip.MustParseAddrPort("203.0.113.9:4000"))}}})
		f.Configs()
		if ch := mustReconcile(t, f, want, Settings{}); !ch.Empty() {
			t.Fatalf("got %s", ch)
		}
	})
}

func TestReconcileForeignChangesConverge(t *testing.T) {
	// Someone ran `wg set` by hand, or the agent crashed half way: level-triggered
	// reconcile converges from any state.
	f := NewFake("wg0", priv)
	want := []plan.Peer{hostPeer(2, 0x18), hostPeer(3, 0x19)}
	_ = f.ConfigureDevice(wgtypes.Config{Peers: []wgtypes.PeerConfig{
		{PublicKey: testKey(9), AllowedIPs: ipNets([]netip.Prefix{sixpn.HostPrefix(0x18, 2)})}, // stranger holds host 2's /80
		{PublicKey: testKey(3), AllowedIPs: ipNets([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})},
		{PublicKey: priv.PublicKey()}, // ignored by the device, like wireguard-go
	}})
	f.Configs()
	ch := mustReconcile(t, f, append(want, plan.Peer{PublicKey: priv.PublicKey(), Kind: plan.KindHost}), Settings{})
	if ch != (Changes{Added: 1, Updated: 1, Removed: 1}) {
		t.Fatalf("got %s", ch)
	}
	if c := f.Configs(); !c[0].Peers[0].Remove {
		t.Fatalf("removal must come first so moved allowed ips stay with the new owner: %+v", c[0].Peers)
	}
	d, _ := f.Device()
	cfg, ch := Diff(d, want, Settings{})
	if !ch.Empty() || len(cfg.Peers) != 0 {
		t.Fatalf("not converged: %s %+v", ch, cfg)
	}
	for _, p := range d.Peers {
		if p.PublicKey == testKey(2) && len(p.AllowedIPs) != 1 {
			t.Fatalf("host 2 lost its /80: %+v", p)
		}
	}
}

func TestReconcileErrors(t *testing.T) {
	f := NewFake("wg0", priv)
	f.Err = ErrFake
	if _, err := Reconcile(f, []plan.Peer{hostPeer(2)}, Settings{}); !errors.Is(err, ErrFake) {
		t.Fatalf("read error not reported: %v", err)
	}
	// A failed apply leaves the state as it was; the next run retries the whole diff.
	fail := &failingConfigure{f}
	if _, err := Reconcile(fail, []plan.Peer{hostPeer(2)}, Settings{}); err == nil {
		t.Fatal("configure error not reported")
	}
	if ch := mustReconcile(t, f, []plan.Peer{hostPeer(2)}, Settings{}); ch != (Changes{Added: 1}) {
		t.Fatalf("retry: %s", ch)
	}
}

type failingConfigure struct{ *Fake }

func (failingConfigure) ConfigureDevice(wgtypes.Config) error { return ErrFake }

func TestSettings(t *testing.T) {
	f := NewFake("wg0", wgtypes.Key{})
	port := 4242
	ch := mustReconcile(t, f, nil, Settings{PrivateKey: &priv, ListenPort: &port})
	if !ch.Device {
		t.Fatal("settings not applied")
	}
	c := f.Configs()
	if *c[0].PrivateKey != priv || *c[0].ListenPort != 4242 {
		t.Fatalf("config %+v", c)
	}
	if ch := mustReconcile(t, f, nil, Settings{PrivateKey: &priv, ListenPort: &port}); !ch.Empty() {
		t.Fatalf("second run %s", ch)
	}
}

type countingDevice struct {
	*Fake
	reads int
}

func (c *countingDevice) Device() (*wgtypes.Device, error) {
	c.reads++
	return c.Fake.Device()
}

func TestReconcilerMemory(t *testing.T) {
	f := NewFake("wg0", priv)
	dev := &countingDevice{Fake: f}
	now := time.Unix(1000, 0)
	r := NewReconciler(dev, time.Minute, func() time.Time { return now })
	base := []plan.Peer{hostPeer(2, 0x18), userPeer(1, 0)}

	if ch, err := r.Reconcile(base, Settings{}); err != nil || ch.Added != 2 {
		t.Fatalf("%s %v", ch, err)
	}
	if ch, err := r.Reconcile(append(base, hostPeer(3, 0x18)), Settings{}); err != nil || ch != (Changes{Added: 1}) {
		t.Fatalf("%s %v", ch, err)
	}
	if ch, err := r.Reconcile(base, Settings{}); err != nil || ch != (Changes{Removed: 1}) {
		t.Fatalf("%s %v", ch, err)
	}
	if dev.reads != 1 {
		t.Fatalf("device read %d times, want once", dev.reads)
	}
	f.Configs()

	// Someone removes a peer behind our back: invisible until the memory expires.
	_ = f.ConfigureDevice(wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: testKey(2), Remove: true}}})
	f.Configs()
	if ch, _ := r.Reconcile(base, Settings{}); !ch.Empty() {
		t.Fatalf("memory should hide drift until it expires: %s", ch)
	}
	now = now.Add(2 * time.Minute)
	if ch, err := r.Reconcile(base, Settings{}); err != nil || ch != (Changes{Added: 1}) {
		t.Fatalf("after expiry: %s %v", ch, err)
	}
	if dev.reads != 2 {
		t.Fatalf("reads %d", dev.reads)
	}

	// A failed apply forgets the model.
	f.Err = nil
	fail := &failingConfigure{f}
	r2 := NewReconciler(fail, time.Minute, nil)
	if _, err := r2.Reconcile(append(base, hostPeer(9)), Settings{}); err == nil {
		t.Fatal("error swallowed")
	}
	if r2.model != nil {
		t.Fatal("model kept after failed apply")
	}
	r.Invalidate()
	if ch, err := r.Reconcile(base, Settings{}); err != nil || !ch.Empty() || dev.reads != 3 {
		t.Fatalf("after invalidate: %s %v reads=%d", ch, err, dev.reads)
	}
}
