// Package peers owns a host's WireGuard data plane (SPEC §5): the one WireGuard
// interface, its peers (every other host that has not left, plus the user peers this
// host is gateway for), the routes into it, the machines attached to their network
// namespaces through veths, the DNS service addresses, and the nftables isolation
// between networks. It turns catalog snapshots into that state, level-triggered:
//
//	dp, err := peers.New(peers.Config{...})  // creates or adopts the interface
//	dp.Apply(snapshot)                       // after every catalog change; converges
//	dp.DNSAddrs()                            // addresses the DNS server must serve
//	dp.Status()                              // for `dogwood status`
//	dp.Close()                               // agent stops: machines stay attached
//	dp.Teardown()                            // host leaves for good: remove everything
//
// The work is split by what it touches, each part testable on its own:
// peers/plan (pure desired state), peers/wgsync (peer diff against a wgctrl device),
// peers/device (kernel or wireguard-go interface), peers/link (routes, DNS addresses,
// forwarding), peers/attach (machine namespaces), peers/filter (nftables).
// peers/config and peers/tunnel (user peer configuration files and the userspace
// client tunnel) are separate packages.
package peers
