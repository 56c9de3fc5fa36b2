//go:build !linux

package server

import (
	"net"
	"syscall"
)

func freebind(network, address string, c syscall.RawConn) error { return nil }

const msgTrunc = 0

func reusePort(c syscall.RawConn) error { return nil }

func newPacketBatch(pc net.PacketConn) (packetBatch, error) { return newXNetBatch(pc), nil }
