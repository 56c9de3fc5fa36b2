// Package netns holds end-to-end tests that run real `dogwood agent` processes in
// throwaway network namespaces: an underlay bridge in a namespace of its own, one
// namespace per host, one per machine and one per developer laptop. They need root
// and the tools listed in the Makefile (ip, wg, wg-quick, wireguard-go, dig, curl,
// busybox); without them they skip. Everything they create carries a per-run prefix
// ("dw" + 4 hex digits) and is removed on cleanup, even when a test fails.
package netns
