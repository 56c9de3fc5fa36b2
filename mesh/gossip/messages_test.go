package gossip

import (
	"encoding/base64"

	"strings"
	"testing"

	"github.com/dogwood/dogwood/mesh/record"
)

func TestDecodeRejectsBadInput(t *testing.T) {
	for _, in := range [][]byte{nil, {99, '{', '}'}, {0}} {
		if _, _, err := decode(in); err == nil {
			t.Errorf("decoded %v", in)
		}
	}
}

// Records on the wire are binary: a batch that does not decode, or decodes to an
// invalid record, is rejected whole.
func TestDecodeRecordListRejectsBadInput(t *testing.T) {
	org := &record.Record{Kind: record.KindOrg, Key: "x", Gen: 1, Created: record.Stamp{Clock: 1, Node: 1},
		Version: record.Stamp{Clock: 1, Node: 1}, Org: &record.Org{Slug: "x"}}
	good := encodeRecordList([]*record.Record{org})
	if rs, err := decodeRecordList(good); err != nil || len(rs) != 1 || rs[0].Org.Slug != "x" {
		t.Fatalf("good batch: %v %v", rs, err)
	}
	other := *org
	other.Org = &record.Org{Slug: "other"} // body disagrees with the key
	bad := [][]byte{
		nil,
		{0},
		[]byte(`[{"k":2}]`), // JSON is not the wire form
		good[:len(good)-1],
		append(append([]byte(nil), good...), 0),
		encodeRecordList([]*record.Record{org, &other}),
	}
	for _, b := range bad {
		if _, err := decodeRecordList(b); err == nil {
			t.Errorf("accepted %x", b)
		}
	}
}

func TestParseKeys(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("a", 32)))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("b", 16)))
	p, extra, err := ParseKeys("# rotation in progress\n" + k1 + "\n\n" + k2 + "\n")
	if err != nil || string(p) != strings.Repeat("a", 32) || len(extra) != 1 {
		t.Fatalf("got %q %d %v", p, len(extra), err)
	}
	for _, in := range []string{"", "# only a comment\n", "not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, _, err := ParseKeys(in); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func FuzzReceive(f *testing.F) {
	f.Add([]byte{1, '[', ']'})
	f.Add([]byte{2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if typ, body, err := decode(b); err == nil && typ == msgRecords {
			decodeRecordList(body)
		}
	})
}
