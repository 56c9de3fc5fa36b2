package mesh

import (
	"github.com/dogwood/dogwood/mesh/catalog"
)

// reservedAppNames are the words of the .internal grammar (SPEC §4) that sit where
// an app name sits: an app called "vms" or "all" would make names like
// "vms.internal" and "all.vms.web.internal" mean two things.
var reservedAppNames = map[string]bool{
	"all": true, "global": true, "vms": true, "vm": true, "regions": true, "nearest": true,
	"of": true, "process": true, "kv": true, "internal": true, "metadata": true,
}

// validNewApp checks the name of an app being created. Existing apps are not
// re-checked (one made before a word was reserved can still be listed and removed).
func validNewApp(name string) error {
	if err := ValidApp(name); err != nil {
		return err
	}
	return checkReservedApp(name)
}

// checkReservedApp refuses an app name that is a reserved DNS word.
func checkReservedApp(name string) error {
	if reservedAppNames[name] {
		return invalid("app name %q is reserved: it is a word of .internal DNS names (all, global, vms, vm, regions, nearest, of, process, kv, internal, metadata)", name)
	}
	return nil
}

// checkPeerKey refuses a user peer whose WireGuard key is already a host's (its
// gateway's own included) or another peer's: WireGuard keys peers by public key, so
// the gateway could never install it, and admitting it would hand the caller an
// address for a tunnel that cannot exist (or, worse, traffic meant for a host).
func checkPeerKey(cat Reader, key string) error {
	for _, h := range cat.Snapshot().Hosts {
		if h.PublicKey == key {
			return invalid("public key %s is the WireGuard key of host %s: a peer needs a key of its own (`wg genkey | wg pubkey`)", key, h.Name)
		}
	}
	for _, r := range cat.List(catalog.KindPeer) {
		if r.Peer.PublicKey == key {
			return conflict("public key %s is already used by peer %q of org %q", key, r.Peer.Name, r.Peer.Org)
		}
	}
	return nil
}
