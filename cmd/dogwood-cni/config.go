package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// defaultAgent is the packaged agent's API socket.
const defaultAgent = "/run/dogwood/api.sock"

// netConf is the plugin's network config: CNI's own keys and ours. Anything else is
// an error, so a misspelt key does not silently do nothing.
type netConf struct {
	CNIVersion       string               `json:"cniVersion"`
	CNIVersions      []string             `json:"cniVersions,omitempty"`
	Name             string               `json:"name"`
	Type             string               `json:"type"`
	Args             json.RawMessage      `json:"args,omitempty"`
	Capabilities     map[string]bool      `json:"capabilities,omitempty"`
	RuntimeConfig    json.RawMessage      `json:"runtimeConfig,omitempty"`
	RawPrevResult    map[string]any       `json:"prevResult,omitempty"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
	// The spec's first name for the same list (libcni sends both).
	Attachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`

	Org          string            `json:"org"`
	App          string            `json:"app"`
	Network      string            `json:"network,omitempty"`
	Region       string            `json:"region,omitempty"`
	ProcessGroup string            `json:"process_group,omitempty"`
	Services     []string          `json:"services,omitempty"`
	Checks       []json.RawMessage `json:"checks,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Agent        string            `json:"agent,omitempty"`
}

// parseConf reads the config from stdin's bytes.
func parseConf(b []byte) (*netConf, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var c netConf
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("dogwood network config: %w", err)
	}
	if c.Type != "dogwood" {
		return nil, fmt.Errorf("dogwood network config: type is %q, want \"dogwood\"", c.Type)
	}
	if c.Name == "" {
		return nil, fmt.Errorf("dogwood network config: \"name\" is missing")
	}
	if c.Agent == "" {
		c.Agent = defaultAgent
	}
	if !strings.HasPrefix(c.Agent, "/") {
		return nil, fmt.Errorf("dogwood network config: \"agent\" must be the agent's API socket path, got %q", c.Agent)
	}
	return &c, nil
}

// needsMachine checks the keys ADD needs (DEL, GC and STATUS work without them).
func (c *netConf) needsMachine(app string) error {
	if c.Org == "" {
		return fmt.Errorf("dogwood network config: \"org\" is missing")
	}
	if app == "" {
		return fmt.Errorf("dogwood network config: \"app\" is missing (or set DOGWOOD_APP in CNI_ARGS)")
	}
	return nil
}

// cniArgs are the per-container values of CNI_ARGS ("K=V;K=V").
type cniArgs struct {
	App, ProcessGroup string
	Metadata          map[string]string
}

// parseArgs reads CNI_ARGS. Keys of ours that we do not know are errors; other
// keys are the runtime's (Kubernetes passes several) and ignored, but for the pod's
// namespace and name, which become metadata.
func parseArgs(s string) (cniArgs, error) {
	var a cniArgs
	if s == "" {
		return a, nil
	}
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return a, fmt.Errorf("CNI_ARGS: %q is not KEY=VALUE", kv)
		}
		switch {
		case k == "DOGWOOD_APP":
			a.App = v
		case k == "DOGWOOD_PROCESS_GROUP":
			a.ProcessGroup = v
		case strings.HasPrefix(k, "DOGWOOD_METADATA_") && len(k) > len("DOGWOOD_METADATA_"):
			a.meta(strings.TrimPrefix(k, "DOGWOOD_METADATA_"), v)
		case strings.HasPrefix(k, "DOGWOOD_"):
			return a, fmt.Errorf("CNI_ARGS: unknown key %s (want DOGWOOD_APP, DOGWOOD_PROCESS_GROUP or DOGWOOD_METADATA_<key>)", k)
		case k == "K8S_POD_NAMESPACE":
			a.meta("k8s_pod_namespace", v)
		case k == "K8S_POD_NAME":
			a.meta("k8s_pod_name", v)
		}
	}
	return a, nil
}

func (a *cniArgs) meta(k, v string) {
	if a.Metadata == nil {
		a.Metadata = map[string]string{}
	}
	a.Metadata[k] = v
}
