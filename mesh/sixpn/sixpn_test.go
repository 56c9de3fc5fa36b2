package sixpn

import (
	"net/netip"
	"testing"
)

func TestLayout(t *testing.T) {
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"network prefix", NetworkPrefix(0x18).String(), "fdaa:0:18::/48"},
		{"network prefix high", NetworkPrefix(0xdeadbeef).String(), "fdaa:dead:beef::/48"},
		{"host prefix", HostPrefix(0x18, 0x0a7b007d).String(), "fdaa:0:18:a7b:7d::/80"},
		{"machine prefix", MachinePrefix(0x18, 0x0a7b007d, 0xf066b83b).String(), "fdaa:0:18:a7b:7d:f066:b83b:0/112"},
		{"machine addr", MachineAddr(0x18, 0x0a7b007d, 0xf066b83b).String(), "fdaa:0:18:a7b:7d:f066:b83b:2"},
		{"machine gateway", MachineGateway(0x18, 0x0a7b007d, 0xf066b83b).String(), "fdaa:0:18:a7b:7d:f066:b83b:1"},
		{"network dns", NetworkDNS(0x18).String(), "fdaa:0:18::3"},
		{"machine dns", MachineDNS().String(), "fdaa::3"},
		{"the whole space", Prefix().String(), "fdaa::/16"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: got %s want %s", c.name, c.got, c.want)
		}
	}
}

func TestPeerAddr(t *testing.T) {
	cases := []struct {
		index  int
		want   string
		prefix string
	}{
		{0, "fdaa:0:18:a7b:d6b:0:a:2", "fdaa:0:18:a7b:d6b:0:a:0/120"},
		{1, "fdaa:0:18:a7b:d6b:0:a:102", "fdaa:0:18:a7b:d6b:0:a:100/120"},
		{255, "fdaa:0:18:a7b:d6b:0:a:ff02", "fdaa:0:18:a7b:d6b:0:a:ff00/120"},
		{256, "fdaa:0:18:a7b:d6b:0:b:2", "fdaa:0:18:a7b:d6b:0:b:0/120"},
		{513, "fdaa:0:18:a7b:d6b:0:c:102", "fdaa:0:18:a7b:d6b:0:c:100/120"},
	}
	for _, c := range cases {
		a, err := PeerAddr(0x18, 0x0a7b0d6b, c.index)
		if err != nil {
			t.Fatal(err)
		}
		if a.String() != c.want {
			t.Errorf("index %d: got %s want %s", c.index, a, c.want)
		}
		if p := PeerPrefix(a); p.String() != c.prefix {
			t.Errorf("index %d: prefix %s want %s", c.index, p, c.prefix)
		}
		if i, ok := PeerIndex(a); !ok || i != c.index {
			t.Errorf("index %d: PeerIndex = %d, %v", c.index, i, ok)
		}
	}
	if _, err := PeerAddr(1, 1, MaxPeerIndex); err == nil {
		t.Error("index past the peer range must fail")
	}
	last, err := PeerAddr(1, 1, MaxPeerIndex-1)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := Parse(last); p.Field >= MinMachineField {
		t.Errorf("last peer field %#x reaches the machine range", p.Field)
	}
}

func TestParse(t *testing.T) {
	p, ok := Parse(netip.MustParseAddr("fdaa:0:18:a7b:7d:f066:b83b:2"))
	if !ok || p != (Parts{Net: 0x18, Host: 0x0a7b007d, Field: 0xf066b83b, Low: 2}) {
		t.Fatalf("got %+v %v", p, ok)
	}
	for _, s := range []string{"fd00::1", "127.0.0.1", "::ffff:10.0.0.1", "fdab::1"} {
		if _, ok := Parse(netip.MustParseAddr(s)); ok {
			t.Errorf("%s parsed as 6PN", s)
		}
	}
	if _, ok := PeerIndex(MachineAddr(1, 2, 0x20000)); ok {
		t.Error("machine address taken for a peer")
	}
}

func TestRandom(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if Random32() == 0 {
			t.Fatal("zero id")
		}
		if RandomMachineField() < MinMachineField {
			t.Fatal("reserved field")
		}
		id := NewMachineID()
		if len(id) != 14 {
			t.Fatalf("id %q", id)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("fdaa:0:18:a7b:7d:f066:b83b:2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := netip.ParseAddr(string(b))
		if err != nil {
			return
		}
		p, ok := Parse(a)
		if !ok {
			return
		}
		if back := build(p.Net, p.Host, p.Field, p.Low); back != a.Unmap() && back != a {
			t.Fatalf("round trip %s -> %s", a, back)
		}
	})
}
