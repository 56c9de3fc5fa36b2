package record

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
)

func limitsSample() (*Record, *Record) {
	rs := codecSamples()
	org, nw := rs[2], rs[4].Network
	if org.Org == nil || nw == nil {
		panic("codecSamples changed: want an org third and a network fifth")
	}
	return org, LimitsRecord(org, nw, OrgLimits{Machines: 5, Peers: 20000}, Stamp{Clock: 9, Node: 2})
}

func TestOrgLimitsRoundTrip(t *testing.T) {
	_, r := limitsSample()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	b := AppendRecord(nil, r)
	got, n, err := DecodeRecord(b)
	if err != nil || n != len(b) {
		t.Fatalf("%v (%d of %d bytes)", err, n, len(b))
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("got %+v / %+v\nwant %+v / %+v", got, got.App, r, r.App)
	}
	// The JSON an RPC carries to either release.
	js, _ := json.Marshal(r.Portable())
	if bytes.Contains(js, []byte(`"limits"`)) {
		t.Fatalf("Portable JSON has a field the previous release drops: %s", js)
	}
	var back Record
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	back.Unportable()
	if !reflect.DeepEqual(back.App, r.App) {
		t.Fatalf("JSON via Portable: got %+v want %+v", back.App, r.App)
	}
	// The previous release sees an app whose request id holds the values, and its
	// encoding of that app is these very bytes.
	p := r.Portable()
	if p.App.Limits != nil || p.App.RequestID != "dogwood.limits:machines=5,apps=0,dns_records=0,peers=20000" {
		t.Fatalf("portable form: %+v", p.App)
	}
	if !bytes.Equal(appendOld(p), b) {
		t.Fatal("encoding differs from the previous release's")
	}
}

// TestOrgRecordEncodingUnchanged: an org record (which carries no overrides) is the
// bytes the previous release wrote.
func TestOrgRecordEncodingUnchanged(t *testing.T) {
	org, _ := limitsSample()
	const prev = "01020561636d65030501000100020080cfe0b00d959aef3a" // layout in codec.go: slug 00 is "the key"
	if got := hex.EncodeToString(AppendRecord(nil, org)); got != prev {
		t.Errorf("org record encodes as %s, the previous release wrote %s", got, prev)
	}
}

func TestOrgLimitsParse(t *testing.T) {
	for in, want := range map[string]*OrgLimits{
		"machines=1,apps=2,dns_records=3,peers=4":          {1, 2, 3, 4},
		"machines=1,apps=0,dns_records=0,peers=0,future=9": {Machines: 1},
		"machines=-1,apps=0,dns_records=0,peers=0":         nil,
		"machines":   nil,
		"machines=x": nil,
	} {
		l, ok := parseOrgLimits(in)
		if ok != (want != nil) || ok && l != *want {
			t.Errorf("%q: %+v %v, want %+v", in, l, ok, want)
		}
	}
	// A user app whose request id merely looks like a carrier stays an app.
	a := App{Name: "web", Org: "acme", RequestID: limitsPrefix + "machines=1,apps=0,dns_records=0,peers=0"}
	liftAppExt(&a)
	if a.Limits != nil {
		t.Errorf("a user app was read as a limits carrier: %+v", a)
	}
}
