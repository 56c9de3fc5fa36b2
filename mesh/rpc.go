package mesh

// Operations one host asks another to run: machine changes go to the host that runs
// the machine, peer operations to the peer's gateway (each record has one writer).
const (
	opMachine    = "machine"
	opPeerCreate = "peer.create"
	opPeerRemove = "peer.remove"
	opPeerStatus = "peer.status"
)

// registerRPC installs the operations other hosts call. They are served only once
// the host's identity stands (start registers them last): an operation sent while a
// host is still starting, or to a host that turns out removed, is refused, not run
// half-started. The identity lookup itself is served from the beginning.
func (n *Node) registerRPC() {
	n.Machines.register(n.gossip)
	n.Peers.register(n.gossip)
}
