package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConf(t *testing.T) {
	for _, c := range []struct {
		name, conf, err string
	}{
		{"minimal", `{"cniVersion":"1.0.0","name":"acme-web","type":"dogwood","org":"acme","app":"web"}`, ""},
		{"everything", `{"cniVersion":"1.1.0","name":"n","type":"dogwood","org":"acme","app":"web","network":"default","region":"ord",
			"process_group":"worker","services":["http:tcp:8080"],"checks":[{"kind":"tcp","port":8080}],"metadata":{"a":"b"},"agent":"/run/x.sock",
			"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[]},"args":{"cni":{}},"prevResult":{"cniVersion":"1.1.0"},
			"cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}],"cni.dev/attachments":[]}`, ""},
		{"unknown key", `{"cniVersion":"1.0.0","name":"n","type":"dogwood","org":"acme","app":"web","colour":"red"}`, `unknown field "colour"`},
		{"ipam is not ours", `{"cniVersion":"1.0.0","name":"n","type":"dogwood","org":"acme","ipam":{"type":"host-local"}}`, `unknown field "ipam"`},
		{"wrong type", `{"cniVersion":"1.0.0","name":"n","type":"bridge"}`, `want "dogwood"`},
		{"no name", `{"cniVersion":"1.0.0","type":"dogwood"}`, `"name" is missing`},
		{"relative agent", `{"cniVersion":"1.0.0","name":"n","type":"dogwood","agent":"api.sock"}`, "socket path"},
		{"not json", `{`, "network config"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, err := parseConf([]byte(c.conf))
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if conf.Agent == "" {
					t.Error("no agent socket")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("err = %v, want %q", err, c.err)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	a, err := parseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=db-0;K8S_POD_INFRA_CONTAINER_ID=abc;DOGWOOD_APP=db;DOGWOOD_PROCESS_GROUP=worker;DOGWOOD_METADATA_role=primary")
	if err != nil {
		t.Fatal(err)
	}
	if a.App != "db" || a.ProcessGroup != "worker" || a.Metadata["role"] != "primary" || a.Metadata["k8s_pod_namespace"] != "shop" ||
		a.Metadata["k8s_pod_name"] != "db-0" || len(a.Metadata) != 3 {
		t.Errorf("args = %+v", a)
	}
	for _, bad := range []string{"DOGWOOD_APPP=x", "noequals", "DOGWOOD_METADATA_=x"} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code uint
		msg  string
	}{
		{&errUnreachable{socket: "/run/dogwood/api.sock", err: errors.New("connection refused")}, types.ErrTryAgainLater, "/run/dogwood/api.sock"},
		{&agentError{status: 404, msg: "org nope not found"}, types.ErrInvalidNetworkConfig, "org nope"},
		{&agentError{status: 400, msg: "invalid metadata"}, types.ErrInvalidNetworkConfig, "invalid metadata"},
		{&agentError{status: 503, msg: "has not reached its cluster"}, types.ErrTryAgainLater, "cluster"},
		{&agentError{status: 500, msg: "disk full"}, types.ErrInternal, "disk full"},
		{context.DeadlineExceeded, types.ErrTryAgainLater, "in time"},
	} {
		e := cniError("dogwood ADD", c.err)
		if e.Code != c.code || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%v: %+v, want code %d with %q", c.err, e, c.code, c.msg)
		}
	}
}

// TestAgentClient checks the request the plugin sends for each command, against
// a fake agent on a unix socket.
func TestAgentClient(t *testing.T) {
	var got []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		b, _ := json.Marshal(body)
		got = append(got, r.Method+" "+r.URL.Path+" "+string(b))
		switch {
		case r.URL.Path == "/v1/attachments/gc":
			w.Write([]byte(`{"removed":[]}`))
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no machine"}`))
		}
	}))
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	p := &plugin{dial: dialAgent}
	conf := `{"cniVersion":"1.1.0","name":"acme-web","type":"dogwood","agent":"` + sock + `","cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]}`
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: "/nonexistent", StdinData: []byte(conf)}
	if err := p.del(args); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if err := p.gc(args); err != nil {
		t.Errorf("GC: %v", err)
	}
	if err := p.status(args); err != nil {
		t.Errorf("STATUS (agent answers): %v", err)
	}
	want := []string{
		"DELETE /v1/attachments/c1/eth0 null",
		`POST /v1/attachments/gc {"cni_network":"acme-web","valid":[{"container_id":"keep","ifname":"eth0"}]}`,
		"GET /v1/attachments/status/probe null",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// No agent: DEL of a container whose namespace is gone succeeds; STATUS is 50.
	gone := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: "/nonexistent",
		StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","type":"dogwood","agent":"/nonexistent.sock"}`)}
	if err := p.del(gone); err != nil {
		t.Errorf("DEL without agent, namespace gone: %v", err)
	}
	var e *types.Error
	if err := p.status(gone); !errors.As(err, &e) || e.Code != errPluginNotAvailable || !strings.Contains(e.Msg, "/nonexistent.sock") {
		t.Errorf("STATUS without agent: %v", err)
	}
}
