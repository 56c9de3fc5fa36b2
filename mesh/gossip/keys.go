package gossip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Key parsing lives here because it is memberlist's format.

// ParseKeys decodes a gossip key file: one base64 key per line (blank lines and
// '#' comments ignored). The first key encrypts; the others are only accepted, which
// is how a key is rotated without a flag day.
func ParseKeys(s string) (primary []byte, extra [][]byte, err error) {
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if primary == nil {
			primary = k
		} else {
			extra = append(extra, k)
		}
	}
	if primary == nil {
		return nil, nil, errors.New("no key in the file")
	}
	return primary, extra, nil
}

// ParseKey decodes one gossip key: base64 of 16, 24 or 32 bytes.
func ParseKey(s string) ([]byte, error) {
	b, err := decodeBase64(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	}
	return nil, fmt.Errorf("gossip key must be 16, 24 or 32 bytes, got %d", len(b))
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
