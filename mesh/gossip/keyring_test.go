package gossip

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestKeyringOps(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	kr, err := memberlist.NewKeyring(nil, k1)
	if err != nil {
		t.Fatal(err)
	}
	g := keyring{kr}
	if err := g.RemoveKey(k1); !errors.Is(err, errPrimaryKey) {
		t.Fatalf("remove primary: %v", err)
	}
	if err := g.UseKey(k2); !errors.Is(err, errUnknownKey) {
		t.Fatalf("use uninstalled: %v", err)
	}
	if err := g.InstallKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := g.UseKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := g.RemoveKey(k1); err != nil {
		t.Fatal(err)
	}
	keys, _ := g.Keys()
	if len(keys) != 1 || !bytes.Equal(keys[0], k2) {
		t.Fatalf("keys %x", keys)
	}
	// The file round-trips through the parser the agent starts with.
	p, extra, err := ParseKeys(FormatKeyFile([][]byte{k2, k1}))
	if err != nil || !bytes.Equal(p, k2) || len(extra) != 1 || !bytes.Equal(extra[0], k1) {
		t.Fatalf("round trip: %x %x %v", p, extra, err)
	}
	if _, err := (&Gossip{}).Keys(); !errors.Is(err, errNoKeyring) {
		t.Fatalf("unencrypted: %v", err)
	}
}
