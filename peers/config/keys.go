package config

import (
	"fmt"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// GenerateKey returns a fresh WireGuard key pair. The CLI generates it on the
// developer's machine so that only the public key is ever sent to an agent
// (SPEC §6).
func GenerateKey() (private, public wgtypes.Key, err error) {
	private, err = wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, wgtypes.Key{}, fmt.Errorf("generating WireGuard key: %w", err)
	}
	return private, private.PublicKey(), nil
}
