package containers

import (
	"context"
	"net"
	"net/http"

	"golang.org/x/sys/unix"
)

type peerKey struct{}

// ConnContext is an http.Server's ConnContext for the unix socket: it notes the
// connecting process's credentials (SO_PEERCRED), so that RootOnly can refuse the
// socket's other users. The socket may be shared with an operator group
// (--api-socket-group); attaching a veth into any namespace path (the host's own,
// /proc/1/ns/net, included) is root's, as running the runtimes that call us is.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, *cred)
}

// RootOnly serves h to root (uid 0) on the unix socket and answers 403 to anyone
// else, and to connections whose credentials are unknown.
func RootOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if cred, ok := r.Context().Value(peerKey{}).(unix.Ucred); !ok || cred.Uid != 0 {
			reply(w, nil, errForbidden)
			return
		}
		h(w, r)
	}
}
