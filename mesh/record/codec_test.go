package record

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/sixpn"
)

// codecSamples are records of every kind, with the edge values the encoding has
// special cases for.
func codecSamples() []*Record {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.UTC)
	exp := t0.Add(24 * time.Hour)
	st := Stamp{Clock: 1 << 40, Node: 0x0be00001}
	key := "3d8e2c1a9b0f47" // a machine id
	maddr := sixpn.MachineAddr(0xb00001, 0x0be00001, 0x1234)
	return []*Record{
		{Kind: KindHost, Key: "h1", Gen: 1, Created: Stamp{1, 7}, Version: Stamp{9, 7},
			Host: &Host{Name: "h1", ID: 7, Region: "ord", Addr: netip.MustParseAddr("198.18.0.1"), GossipPort: 7946, WGPort: 51820,
				PublicKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", Gateway: true, PublicEndpoint: "gw.example:51820"}},
		{Kind: KindHost, Key: "h6", Gen: 1, Created: Stamp{1, 8}, Version: Stamp{1, 8},
			Host: &Host{Name: "h6", ID: 8, Addr: netip.MustParseAddr("2001:db8::1"), PublicKey: "not base64!"}},
		{Kind: KindOrg, Key: "acme", Gen: 3, Created: Stamp{5, 1}, Version: Stamp{5, 1}, Org: &Org{Slug: "acme", CreatedAt: t0}},
		{Kind: KindOrg, Key: "zero-time", Gen: 1, Created: Stamp{5, 1}, Version: Stamp{6, 1}, Org: &Org{Slug: "zero-time"}},
		{Kind: KindNetwork, Key: "acme/default", Gen: 1, Created: Stamp{2, 1}, Version: Stamp{2, 1},
			Network: &Network{Org: "acme", Name: "default", ID: 0xb00001}},
		{Kind: KindApp, Key: "acme/web", Gen: 1, Created: Stamp{3, 1}, Version: Stamp{3, 1},
			App: &App{Name: "web", Org: "acme", Network: "default", NetworkID: 0xb00001, RequestID: "req-1"}},
		{Kind: KindMachine, Key: key, Gen: 1, Created: st, Version: Stamp{st.Clock + 5, 0x0be00001},
			Machine: &Machine{
				ID:           key,
				MachinePlace: &MachinePlace{App: "web", Org: "acme", Network: "default", NetworkID: 0xb00001, Host: "h1", HostID: 0x0be00001, Region: "ord"},
				Field:        0x1234,
				Address:      maddr,
				CreatedAt:    t0,
				RequestID:    "r-2",
				MachineAttrs: &MachineAttrs{State: StateStarted, ProcessGroup: "app", Metadata: map[string]string{"role": "web", "a": "", "zz": "9"}, Services: []Service{{"http", "tcp", 8080}, {"dns", "udp", 53}}}, Netns: "dw-m1",
			}},
		// An address that is not the derived one, an unusual state, no metadata.
		{Kind: KindMachine, Key: "m2", Gen: 2, Created: Stamp{10, 3}, Version: Stamp{4, 9},
			Machine: &Machine{
				ID:           "m2",
				MachinePlace: &MachinePlace{App: "web", Org: "acme", NetworkID: 1, HostID: 2},
				Field:        3,
				Address:      netip.MustParseAddr("fdaa::99"),
				CreatedAt:    t0,
				MachineAttrs: &MachineAttrs{State: "replacing"},
			}},
		{Kind: KindMachine, Key: "m3", Gen: 1, Created: Stamp{10, 3}, Version: Stamp{11, 3},
			Machine: &Machine{ID: "m3", MachinePlace: &MachinePlace{}, MachineAttrs: &MachineAttrs{State: StateStopped}}},
		// A container runtime's machine: its source, interface and CNI network travel as
		// reserved metadata entries (see attrsext.go).
		{Kind: KindMachine, Key: "m5", Gen: 1, Created: Stamp{12, 3}, Version: Stamp{12, 3},
			Machine: &Machine{ID: "m5", MachinePlace: &MachinePlace{App: "web", Org: "acme", NetworkID: 1, HostID: 2}, Field: 0x10001,
				Address: sixpn.MachineAddr(1, 2, 0x10001), Netns: "/run/netns/cni-1234", MachineAttrs: &MachineAttrs{State: StateStarted,
					Metadata: map[string]string{MetaContainerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
					Source:   SourceCNI, Ifname: "eth0", CNINetwork: "acme-web"}}},
		{Kind: KindPeer, Key: "acme/laptop", Gen: 1, Created: Stamp{4, 2}, Version: Stamp{4, 2},
			Peer: &Peer{Name: "laptop", Org: "acme", Network: "default", NetworkID: 0xb00001, Region: "ord", Gateway: "h1", GatewayID: 7,
				Address: netip.MustParseAddr("fdaa:0:b000:1::a:102"), PublicKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
				CreatedAt: t0, ExpiresAt: &exp}},
		{Kind: KindDNSRecord, Key: "00b00001/db.internal/TXT/0011223344556677", Gen: 1, Created: Stamp{8, 2}, Version: Stamp{8, 2},
			DNS: &DNSRecord{Org: "acme", Network: "default", NetworkID: 0xb00001, Name: "db.internal", Type: "TXT", Value: "hello \"world\"", TTL: 5, CreatedAt: t0}},
		// Tombstones, with and without body, with a delete time.
		{Kind: KindMachine, Key: "m4", Gen: 1, Created: Stamp{1, 1}, Version: Stamp{1<<63 + 5, 1}, Deleted: true, DeletedAt: 1764400000},
		{Kind: KindApp, Key: "acme/old", Gen: 4, Created: Stamp{1, 1}, Version: Stamp{2, 1}, Deleted: true, DeletedAt: -5,
			App: &App{Name: "old", Org: "acme"}},
		// Invalid (two bodies, empty key) but must still round-trip: Validate decides.
		{Kind: KindOrg, Key: "", Org: &Org{}, App: &App{}},
	}
}

// jsonRoundTrip is what the agent did before: the binary encoding must lose no more.
func jsonRoundTrip(t *testing.T, r *Record) *Record {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out Record
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestCodecRoundTrip(t *testing.T) {
	for _, r := range codecSamples() {
		b := AppendRecord([]byte("prefix"), r)
		got, n, err := DecodeRecord(b[len("prefix"):])
		if err != nil {
			t.Fatalf("%s: %v", r.ID(), err)
		}
		if n != len(b)-len("prefix") {
			t.Errorf("%s: used %d of %d bytes", r.ID(), n, len(b)-len("prefix"))
		}
		if want := jsonRoundTrip(t, r); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", r.ID(), got, want)
		}
		js, _ := json.Marshal(r)
		t.Logf("%-60s %4d bytes binary, %4d JSON", r.ID(), n, len(js))
	}
}

// TestCodecAttrsExtReadByOlderAgents: a machine with the fields added since the
// binary encoding was released encodes exactly as a machine whose metadata holds
// them under reserved keys, which is what an agent from before reads (as metadata);
// records without them encode as before, so old data dirs and old peers' records
// decode unchanged.
func TestCodecAttrsExtReadByOlderAgents(t *testing.T) {
	var r *Record
	for _, s := range codecSamples() {
		if s.Key == "m5" {
			r = s
		}
	}
	plain := *r
	pm := *r.Machine
	pa := MachineAttrs{State: StateStarted, Metadata: map[string]string{
		MetaContainerID: r.Machine.Metadata[MetaContainerID], "dogwood.source": "cni", "dogwood.ifname": "eth0", "dogwood.cni_network": "acme-web"}}
	pm.MachineAttrs, plain.Machine = &pa, &pm
	if a, b := AppendRecord(nil, r), AppendRecord(nil, &plain); !reflect.DeepEqual(a, b) {
		t.Fatalf("extension fields are not plain metadata on the wire:\n%x\n%x", a, b)
	}
	got, _, err := DecodeRecord(AppendRecord(nil, &plain))
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Machine.MachineAttrs; a.Source != SourceCNI || a.Ifname != "eth0" || a.CNINetwork != "acme-web" || len(a.Metadata) != 1 {
		t.Errorf("lifted attrs = %+v", a)
	}
	// A record without them is byte for byte what the encoding wrote before.
	old := codecSamples()[6]
	b := AppendRecord(nil, old)
	if d, _, err := DecodeRecord(b); err != nil || d.Machine.Source != "" || len(d.Machine.Metadata) != 3 {
		t.Errorf("plain machine: %v %+v", err, d.Machine.MachineAttrs)
	}
}

func TestCodecMachineSize(t *testing.T) {
	r := codecSamples()[6]
	r.Machine.Metadata, r.Machine.Netns, r.Machine.RequestID = map[string]string{"role": "web"}, "", ""
	r.Machine.Services = r.Machine.Services[:1]
	b := AppendRecord(nil, r)
	js, _ := json.Marshal(r)
	// The figure the wire and disk budgets are computed from; a change that grows it
	// should be a decision, not an accident.
	if len(b) > 120 {
		t.Errorf("machine record takes %d bytes (JSON %d), want ≤ 120", len(b), len(js))
	}
}

func TestCodecRecords(t *testing.T) {
	rs := codecSamples()
	b := AppendRecords(nil, rs)
	got, err := DecodeRecords(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rs) {
		t.Fatalf("decoded %d of %d records", len(got), len(rs))
	}
	if _, err := DecodeRecords(append(b, 0)); !errors.Is(err, ErrCodec) {
		t.Errorf("trailing byte: %v", err)
	}
	if got, err := DecodeRecords(AppendRecords(nil, nil)); err != nil || len(got) != 0 {
		t.Errorf("empty list: %v %v", got, err)
	}
	// A count that the input cannot hold must not size an allocation.
	if _, err := DecodeRecords([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}); !errors.Is(err, ErrCodec) {
		t.Errorf("huge count: %v", err)
	}
}

func TestCodecMalformed(t *testing.T) {
	full := AppendRecord(nil, codecSamples()[6])
	// Every truncation fails cleanly.
	for i := 0; i < len(full); i++ {
		if _, _, err := DecodeRecord(full[:i]); !errors.Is(err, ErrCodec) {
			t.Fatalf("truncated to %d bytes: err %v", i, err)
		}
	}
	for name, b := range map[string][]byte{
		"json":          []byte(`{"k":5}`),
		"format":        {0x02, 5},
		"string length": {codecFormat, 5, 0x7f, 'a'},
		"key reference": {codecFormat, 5, 0}, // the key may not refer to itself
		"flags":         {codecFormat, 5, 2, 'k', 1, 1, 1, 0, 1, 0x80, 0},
		"bodies":        {codecFormat, 5, 2, 'k', 1, 1, 1, 0, 1, 0, 0x80},
		"gen > 32 bits": {codecFormat, 5, 2, 'k', 0x80, 0x80, 0x80, 0x80, 0x10, 1, 1, 0, 1, 0, 0},
		"version back":  {codecFormat, 5, 2, 'k', 1, 1, 1, 9, 1, flagVersionBack, 0},
	} {
		if _, _, err := DecodeRecord(b); !errors.Is(err, ErrCodec) {
			t.Errorf("%s: err %v, want ErrCodec", name, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range append(codecSamples(), extSamples()...) {
		f.Add(AppendRecord(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		// Whatever decodes re-encodes to something that decodes to the same record.
		again, _, err := DecodeRecord(AppendRecord(nil, r))
		if err != nil {
			t.Fatalf("re-encoding failed: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding changed the record:\n%+v\n%+v", r, again)
		}
	})
}

func BenchmarkCodecMachine(b *testing.B) {
	r := codecSamples()[6]
	buf := AppendRecord(nil, r)
	b.Run("encode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf = AppendRecord(buf[:0], r)
		}
	})
	b.Run("decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := DecodeRecord(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	js, _ := json.Marshal(r)
	b.Run("json-decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var out Record
			if err := json.Unmarshal(js, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
