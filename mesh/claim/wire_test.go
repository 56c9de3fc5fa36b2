package claim

import (
	"encoding/json"
	"testing"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// TestWireFormat pins the JSON of the claim messages: hosts of earlier releases
// arbitrate for this one, so these bytes must not change.
func TestWireFormat(t *testing.T) {
	r, me := orgRecord("acme", 10, 1)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{claimRequest{Keys: []string{"id/org/acme"}, Holder: me, Record: r},
			`{"keys":["id/org/acme"],"holder":{"host":"h1","gen":1,"created":{"c":10,"n":1}},"record":{"k":2,"key":"acme","g":1,"cr":{"c":10,"n":1},"v":{"c":10,"n":1},"org":{"slug":"acme","created_at":"0001-01-01T00:00:00Z"}}}`},
		{claimRequest{Keys: []string{"id/org/acme"}, Holder: me},
			`{"keys":["id/org/acme"],"holder":{"host":"h1","gen":1,"created":{"c":10,"n":1}},"record":null}`},
		{claimReply{Granted: true}, `{"granted":true}`},
		{claimReply{Holder: &me}, `{"granted":false,"holder":{"host":"h1","gen":1,"created":{"c":10,"n":1}}}`},
		{claimReply{Records: []*catalog.Record{r}}, `{"granted":false,"records":[{"k":2,"key":"acme","g":1,"cr":{"c":10,"n":1},"v":{"c":10,"n":1},"org":{"slug":"acme","created_at":"0001-01-01T00:00:00Z"}}]}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T:\n got %s (%v)\nwant %s", tc.v, b, err, tc.want)
		}
	}
	if opClaim != "claim" || opRelease != "claim.release" || opWritten != "claim.written" {
		t.Errorf("ops renamed: %q %q %q", opClaim, opRelease, opWritten)
	}
}

// TestDecodeWrittenRejectsBadInput: a written request is one valid record.
func TestDecodeWrittenRejectsBadInput(t *testing.T) {
	bad := []string{
		`[]`,
		`[{"k":2,"key":"x","cr":{"c":1,"n":1},"v":{"c":1,"n":1},"org":{"slug":"x"}},{"k":2,"key":"y","cr":{"c":1,"n":1},"v":{"c":1,"n":1},"org":{"slug":"y"}}]`,
		`not json`,
		`[null]`,
		`[{"k":1,"key":"h","cr":{"c":1,"n":1},"v":{"c":1,"n":1}}]`,
		`[{"k":9,"key":"x","cr":{"c":1,"n":1},"v":{"c":1,"n":1},"org":{"slug":"x"}}]`,
		`[{"k":2,"key":"x","cr":{"c":1,"n":1},"v":{"c":1,"n":1},"org":{"slug":"other"}}]`,
		`[{"k":2,"key":"x","cr":{"c":0,"n":0},"v":{"c":1,"n":1},"org":{"slug":"x"}}]`,
		`[{"k":2,"key":"x","cr":{"c":1,"n":1},"v":{"c":1,"n":1},"org":{"slug":"x"},"app":{}}]`,
	}
	for _, b := range bad {
		if _, err := decodeWritten([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
	good := `[{"k":2,"key":"x","cr":{"c":1,"n":1},"v":{"c":1,"n":1},"org":{"slug":"x"}}]`
	if r, err := decodeWritten([]byte(good)); err != nil || r.Key != "x" {
		t.Fatalf("good batch: %v", err)
	}
}
