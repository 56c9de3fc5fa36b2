package record

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// extSamples are records with the fields added after the binary encoding was fixed.
func extSamples() []*Record {
	rs := codecSamples()
	t0 := time.Date(2026, 12, 6, 7, 0, 0, 5, time.UTC)
	m := rs[6].Machine.WithHealth([]Check{
		{Kind: CheckHTTP, Target: "8080/healthz", Interval: Duration(time.Second), Rise: 2, Status: HealthCritical, Output: "HTTP 503", CheckedAt: &t0},
		{Kind: CheckTCP, Target: "5432", Status: HealthPassing, CheckedAt: &t0},
	})
	a := *rs[5].App
	a.WhenNoneHealthy = WhenNoneNone
	noRID := *rs[5].App
	noRID.RequestID, noRID.WhenNoneHealthy = "", WhenNoneAll
	unknown := rs[7].Machine.WithHealth([]Check{{Kind: CheckTCP, Target: "1"}})
	return []*Record{
		{Kind: KindMachine, Key: rs[6].Key, Gen: 1, Created: rs[6].Created, Version: rs[6].Version, Machine: m},
		{Kind: KindMachine, Key: "m2", Gen: 2, Created: Stamp{10, 3}, Version: Stamp{12, 3}, Machine: unknown},
		{Kind: KindApp, Key: "acme/web", Gen: 1, Created: Stamp{3, 1}, Version: Stamp{3, 1}, App: &a},
		{Kind: KindApp, Key: "acme/web", Gen: 1, Created: Stamp{3, 1}, Version: Stamp{4, 1}, App: &noRID},
	}
}

func TestCodecExtensionsRoundTrip(t *testing.T) {
	for _, r := range extSamples() {
		b := AppendRecord(nil, r)
		got, n, err := DecodeRecord(b)
		if err != nil || n != len(b) {
			t.Fatalf("%s: %v (%d of %d bytes)", r.ID(), err, n, len(b))
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s:\n got %+v\nwant %+v", r.ID(), got, r)
		}
		// The JSON an RPC carries (Portable) comes back whole too.
		js, _ := json.Marshal(r.Portable())
		var back Record
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		back.Unportable()
		if !reflect.DeepEqual(&back, jsonRoundTrip(t, r)) {
			t.Errorf("%s: JSON via Portable:\n got %+v\nwant %+v", r.ID(), &back, r)
		}
	}
}

// TestCodecExtensionsArePreviousFormat: a record with the new fields encodes to the
// very bytes of a record with only the fields the previous release knows (its
// Portable form), so the previous release decodes it, keeps it and sends it on whole.
func TestCodecExtensionsArePreviousFormat(t *testing.T) {
	for _, r := range extSamples() {
		p := r.Portable()
		if p == r {
			t.Fatalf("%s: nothing to carry", r.ID())
		}
		if p.App != nil && p.App.WhenNoneHealthy != "" || p.Machine != nil && (p.Machine.Health != "" || p.Machine.Checks != nil) {
			t.Fatalf("%s: Portable kept a new field: %+v", r.ID(), p)
		}
		if !bytes.Equal(AppendRecord(nil, r), appendOld(p)) {
			t.Errorf("%s: encoding differs from the previous release's", r.ID())
		}
	}
	// Records without the new fields are untouched.
	for _, r := range codecSamples() {
		if r.Machine != nil && r.Machine.MachineAttrs != nil && hasExt(r.Machine.MachineAttrs) {
			continue // a container's machine (source, interface): carried like health
		}
		if r.Portable() != r {
			t.Errorf("%s: Portable copied a record with nothing to carry", r.ID())
		}
	}
}

// appendOld encodes with the extension hooks neutral, as the previous release did:
// it must not see a field it does not know.
func appendOld(r *Record) []byte {
	if r.Machine != nil && (r.Machine.Health != "" || r.Machine.Checks != nil) || r.App != nil && r.App.WhenNoneHealthy != "" {
		panic("appendOld: record has fields the previous release does not know")
	}
	return AppendRecord(nil, r)
}

func TestCodecExtensionUnknownStaysMetadata(t *testing.T) {
	r := codecSamples()[6]
	m := *r.Machine
	a := *m.MachineAttrs
	a.Metadata = map[string]string{"dogwood.future": "x", extHealth: "sideways", extChecks: "not json"}
	m.MachineAttrs = &a
	r.Machine = &m
	got, _, err := DecodeRecord(AppendRecord(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	if got.Machine.Health != "" || got.Machine.Checks != nil || len(got.Machine.Metadata) != 3 {
		t.Errorf("unknown extension entries were not kept as metadata: %+v", got.Machine.MachineAttrs)
	}
	app := *codecSamples()[5].App
	app.RequestID = "r-1 something=else"
	got, _, err = DecodeRecord(AppendRecord(nil, &Record{Kind: KindApp, Key: "acme/web", Gen: 1, Created: Stamp{1, 1}, Version: Stamp{1, 1}, App: &app}))
	if err != nil || got.App.RequestID != app.RequestID || got.App.WhenNoneHealthy != "" {
		t.Errorf("unknown app extension: %+v %v", got.App, err)
	}
}

func TestAggregateHealth(t *testing.T) {
	for _, tc := range []struct {
		st   []string
		want string
	}{
		{nil, ""},
		{[]string{""}, HealthUnknown},
		{[]string{HealthPassing}, HealthPassing},
		{[]string{HealthPassing, HealthUnknown}, HealthUnknown},
		{[]string{HealthPassing, HealthCritical, HealthUnknown}, HealthCritical},
	} {
		var cs []Check
		for _, s := range tc.st {
			cs = append(cs, Check{Kind: CheckTCP, Target: "1", Status: s})
		}
		if got := AggregateHealth(cs); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestParseCheck(t *testing.T) {
	for in, ok := range map[string]bool{
		"tcp:8080": true, "http:8080": true, "http:80/healthz": true, "HTTP:80/a/b": true,
		"tcp:0": false, "tcp:65536": false, "tcp:80/x": false, "udp:53": false, "http": false, "http:x/y": false,
		"http:80/a b": false,
	} {
		if _, err := ParseCheck(in); (err == nil) != ok {
			t.Errorf("%q: err %v", in, err)
		}
	}
	c := Check{Kind: CheckHTTP, Target: "80", Interval: Duration(time.Second), Timeout: Duration(2 * time.Second)}
	if c.Validate() == nil {
		t.Error("a timeout above the interval was accepted")
	}
	var fromJSON []Check
	if err := json.Unmarshal([]byte(`["http:8080/healthz",{"kind":"tcp","target":"22","interval":"1s","timeout":0.5}]`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if fromJSON[0].Spec() != "http:8080/healthz" || fromJSON[1].Interval != Duration(time.Second) || fromJSON[1].Timeout != Duration(500*time.Millisecond) {
		t.Errorf("checks from JSON: %+v", fromJSON)
	}
}
