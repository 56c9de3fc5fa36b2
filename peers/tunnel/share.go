package tunnel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dogwood/dogwood/peers/config"
)

// Sharing one session per key. Every userspace tunnel of a config is a
// WireGuard session with the same key, and the gateway follows the newest
// one: a `dogwood dig --config` next to a running `dogwood proxy --config`
// would take the gateway's session away from the proxy until its next
// handshake. A Tunnel started with Options.Share therefore offers its stack
// to later commands of the same user on a unix socket (mode 0600, in a
// directory only the user can enter), and Open uses it when it answers.
//
// The protocol is one request line per connection, "TCP <addr:port>",
// "UDP <addr:port>" or "PING <addr>", answered by "OK" or "ERR <message>";
// then TCP is a byte stream, and UDP and PING carry one datagram per frame
// with a 2-byte big-endian length (the framing miekg/dns uses on a stream).

// shareDir is where share sockets live: $XDG_RUNTIME_DIR/dogwood, else
// <tmp>/dogwood-<uid>; it must be a directory owned by the user with no
// access for others. Only a sharing tunnel creates it.
func shareDir(create bool) (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dogwood-%d", os.Getuid()))
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		dir = filepath.Join(x, "dogwood")
	}
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Getuid() || st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a private directory of this user", dir)
	}
	return dir, nil
}

func sharePath(dir string, cfg config.Config) string {
	pub := cfg.PrivateKey.PublicKey()
	h := sha256.Sum256(pub[:])
	return filepath.Join(dir, "tunnel-"+hex.EncodeToString(h[:8])+".sock")
}

// findShared returns a stack served by another process for cfg, if one answers.
func findShared(dir string, cfg config.Config) (stack, bool) {
	path := sharePath(dir, cfg)
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err != nil {
		return nil, false
	}
	c.Close()
	return sharedStack{path: path}, true
}

// shareServer serves a tunnel's stack on a unix socket.
type shareServer struct {
	ln     net.Listener
	path   string
	ctx    context.Context // cancelled by close: ends every forwarding
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (t *Tunnel) serveShare(dir string, cfg config.Config) error {
	path := sharePath(dir, cfg)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("%s is served by another process", path)
	}
	os.Remove(path) // stale: its process is gone
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	s := &shareServer{ln: ln, path: path}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	t.share = s
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				stop := context.AfterFunc(s.ctx, func() { c.Close() })
				defer stop()
				t.handleShared(s, c)
			}()
		}
	}()
	t.log.Debug("sharing the tunnel with later commands", "socket", path)
	return nil
}

func (s *shareServer) close() {
	s.ln.Close()
	os.Remove(s.path)
	s.cancel()
	s.wg.Wait()
}

func (t *Tunnel) handleShared(s *shareServer, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReaderSize(c, 512)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	kind, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	fail := func(err error) { fmt.Fprintf(c, "ERR %s\n", strings.ReplaceAll(err.Error(), "\n", " ")) }
	ctx, cancel := context.WithTimeout(s.ctx, t.opts.DialTimeout)
	defer cancel()
	switch kind {
	case "TCP":
		dst, err := netip.ParseAddrPort(arg)
		if err != nil {
			fail(err)
			return
		}
		rc, err := t.currentStack().DialTCP(ctx, dst)
		if err != nil {
			fail(err)
			return
		}
		defer rc.Close()
		stop := context.AfterFunc(s.ctx, func() { rc.Close() })
		defer stop()
		io.WriteString(c, "OK\n")
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			io.Copy(rc, br)
			if cw, ok := rc.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				rc.Close()
			}
		}()
		io.Copy(c, rc)
	case "UDP", "PING":
		var remote io.ReadWriteCloser
		if kind == "UDP" {
			dst, err := netip.ParseAddrPort(arg)
			if err != nil {
				fail(err)
				return
			}
			remote, err = t.currentStack().DialUDP(ctx, dst)
			if err != nil {
				fail(err)
				return
			}
		} else {
			dst, err := netip.ParseAddr(arg)
			if err != nil {
				fail(err)
				return
			}
			pc, err := t.currentStack().DialPing(dst)
			if err != nil {
				fail(err)
				return
			}
			remote = pingRW{pc}
		}
		defer remote.Close()
		io.WriteString(c, "OK\n")
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			buf := make([]byte, 65535)
			for {
				n, err := remote.Read(buf)
				if err != nil || writeFrame(c, buf[:n]) != nil {
					c.Close()
					return
				}
			}
		}()
		for {
			b, err := readFrame(br)
			if err != nil {
				return
			}
			if _, err := remote.Write(b); err != nil {
				return
			}
		}
	default:
		fail(fmt.Errorf("unknown request %q", kind))
	}
}

type pingRW struct{ pingConn }

func (p pingRW) Read(b []byte) (int, error) { n, _, err := p.ReadFrom(b); return n, err }

func writeFrame(w io.Writer, b []byte) error {
	out := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(out, uint16(len(b)))
	copy(out[2:], b)
	_, err := w.Write(out)
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// sharedStack reaches the network through another process's tunnel.
type sharedStack struct{ path string }

func (s sharedStack) dial(ctx context.Context, req string) (net.Conn, *bufio.Reader, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("the tunnel shared by another dogwood process is gone: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		c.Close()
		return nil, nil, err
	}
	line, err := br.ReadString('\n')
	c.SetDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("shared tunnel: %w", err)
	}
	if line != "OK\n" {
		c.Close()
		return nil, nil, errors.New(strings.TrimSpace(strings.TrimPrefix(line, "ERR ")))
	}
	return c, br, nil
}

// DialUDP returns a stream: miekg/dns frames messages on a stream exactly as
// the owner expects.
func (s sharedStack) DialUDP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	c, br, err := s.dial(ctx, "UDP "+dst.String())
	if err != nil {
		return nil, err
	}
	return bufConn{c, br}, nil
}

func (s sharedStack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	c, br, err := s.dial(ctx, "TCP "+dst.String())
	if err != nil {
		return nil, err
	}
	return bufConn{c, br}, nil
}

func (s sharedStack) DialPing(dst netip.Addr) (pingConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, br, err := s.dial(ctx, "PING "+dst.String())
	if err != nil {
		return nil, err
	}
	return &framedPing{c: c, br: br, from: &net.IPAddr{IP: dst.AsSlice()}}, nil
}

// bufConn is a conn whose first bytes may already sit in a bufio.Reader.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c bufConn) Read(b []byte) (int, error) { return c.br.Read(b) }

func (c bufConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type framedPing struct {
	c    net.Conn
	br   *bufio.Reader
	from net.Addr
}

func (p *framedPing) ReadFrom(b []byte) (int, net.Addr, error) {
	f, err := readFrame(p.br)
	if err != nil {
		return 0, nil, err
	}
	return copy(b, f), p.from, nil
}

func (p *framedPing) Write(b []byte) (int, error) {
	if err := writeFrame(p.c, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *framedPing) Close() error { return p.c.Close() }
