// Command dogwood-cni is Dogwood's CNI plugin (type "dogwood", SPEC §8), installed
// as "dogwood" where container runtimes look for plugins (/usr/lib/cni,
// /opt/cni/bin). It owns the translation between CNI and the local agent's API:
// reading the network config and CNI_ARGS strictly, asking the agent to make, find
// or destroy the container's machine over the agent's unix socket, and answering in
// CNI's result and error formats. The agent does everything else (the machine, its
// veth, address and routes), so nothing is half-made when the plugin dies. It is a
// program of its own, not a mode of the dogwood binary, so that starting it (once
// per container start and stop) costs little.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

// supported are the spec versions of configs we answer; 0.3.x and 0.4.0 results
// are converted by the CNI library.
var supported = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

func main() {
	p := &plugin{dial: dialAgent}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check, GC: p.gc, Status: p.status},
		supported, "dogwood: puts containers on Dogwood's private network (6PN)")
}
