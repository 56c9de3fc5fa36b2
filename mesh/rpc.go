package mesh

// Operations one host asks another to run: machine changes go to the host that runs
// the machine, peer operations to the peer's gateway (each record has one writer).
const (
	opMachine    = "machine"
	opPeerCreate = "peer.create"
	opPeerRemove = "peer.remove"
	opPeerStatus = "peer.status"
)
