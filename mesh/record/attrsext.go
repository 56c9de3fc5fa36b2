package record

import "strings"

// Machine attributes added after the binary encoding was released travel as metadata
// entries under reserved keys: "dogwood." and the field's name (user metadata keys are
// DNS labels, so none has a dot). The encoding has no room for a new field an older
// agent could skip: it would misread the record, drop it as malformed, and the
// machine would be missing on every older host of a cluster being upgraded. As
// metadata, an older agent keeps and forwards the record, shows the entries as
// metadata and answers DNS for the machine; this agent lifts them back into their
// fields when it decodes, so they never appear as metadata here.
var attrsExt = [...]struct {
	key   string
	field func(*MachineAttrs) *string
}{
	{"dogwood.source", func(a *MachineAttrs) *string { return &a.Source }},
	{"dogwood.ifname", func(a *MachineAttrs) *string { return &a.Ifname }},
	{"dogwood.cni_network", func(a *MachineAttrs) *string { return &a.CNINetwork }},
}

// extMetadata returns a's metadata with its extension fields added as entries; a
// field set wins over a metadata entry of the same key.
func extMetadata(a *MachineAttrs) map[string]string {
	var out map[string]string
	for _, x := range attrsExt {
		v := *x.field(a)
		if v == "" {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(a.Metadata)+len(attrsExt))
			for k, mv := range a.Metadata {
				out[k] = mv
			}
		}
		out[x.key] = v
	}
	if out == nil {
		return a.Metadata
	}
	return out
}

// liftExt moves extension entries out of a's metadata into their fields.
func liftExt(a *MachineAttrs) {
	found := false
	for k := range a.Metadata {
		if strings.HasPrefix(k, "dogwood.") {
			found = true
			break
		}
	}
	if !found {
		return
	}
	for _, x := range attrsExt {
		if v, ok := a.Metadata[x.key]; ok {
			*x.field(a) = v
			delete(a.Metadata, x.key)
		}
	}
	if len(a.Metadata) == 0 {
		a.Metadata = nil
	}
}
