package health

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// NetProber runs probes from the host's own network stack: a machine's address is
// routed to its veth, and the tenant boundary lets the host's own connections
// through (replies to connections the host opened), so no namespace is entered.
//
// tcp passes when a fresh connection is accepted. http sends one GET (HTTP/1.1) and
// passes on a 2xx or 3xx status, once the whole head of the answer has arrived within
// the timeout; a head that is not HTTP, or is malformed, fails. Connections close
// with a reset, as HAProxy's checks do: no FIN exchange and no TIME_WAIT socket per
// check (10,000 checks at 10 s would keep about 60,000 in TIME_WAIT).
//
// An http probe that carries a kept connection (the Runner gives each machine+port
// one) reuses
// what its last probe left open: dialling and tearing down a connection
// was two thirds of an http check's CPU, most of it the kernel's. A connection is
// kept only when the answer says where it ends (Content-Length of at most
// maxKeptBody, or no body) and the server did not ask to close; a kept connection
// the server closed meanwhile is re-dialled within the same probe, and one that
// errs or times out is closed. A kept connection is re-dialled after maxKeptUses
// probes, so a server that still answers on an old connection but no longer accepts
// new ones is found within that many intervals.
//
// It uses the socket system calls directly, blocking the worker that runs it (in
// poll for the connect): net.Dial
// cost about twice the CPU per check (its poller round trip, a timer, TCP
// keepalive and address lookups), and checks are the one thing an agent does
// thousands of times a second.
type NetProber struct {
	// UserAgent is sent with http checks (default "dogwood-health").
	UserAgent string
}

// Probe implements Prober.
func (n NetProber) Probe(ctx context.Context, p Probe) (bool, string) {
	deadline := time.Now().Add(p.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if p.Kind != "http" {
		fd, err := connect(p.Addr, deadline)
		if err != nil {
			return false, errText(err)
		}
		unix.Close(fd)
		return true, "connected"
	}
	ua := n.UserAgent
	if ua == "" {
		ua = "dogwood-health"
	}
	code, err := httpProbe(p, ua, deadline)
	if err != nil {
		return false, errText(err)
	}
	return code >= 200 && code < 400, "HTTP " + strconv.Itoa(code)
}

const (
	// maxHead bounds the head of an answer read; a longer head still decides the
	// check by its status, but its connection is not kept.
	maxHead = 4096
	// maxKeptBody is the largest body read (and thrown away) to keep a connection.
	maxKeptBody = 16 << 10
	// maxKeptUses is how many probes one kept connection serves.
	maxKeptUses = 6
)

// keptConn holds the connection an http check keeps open between probes. Runner
// makes one per machine+port and closes it when the check goes.
type keptConn struct {
	mu     sync.Mutex
	f      *os.File // nil: none
	uses   int
	closed bool
}

func newKeptConn() *keptConn { return &keptConn{} }

// take hands out the kept connection (nil if none) and how many probes it served.
func (k *keptConn) take() (*os.File, int) {
	k.mu.Lock()
	f, uses := k.f, k.uses
	k.f, k.uses = nil, 0
	k.mu.Unlock()
	return f, uses
}

// put keeps f for the next probe, or closes it if the keep has gone or holds one.
func (k *keptConn) put(f *os.File, uses int) {
	k.mu.Lock()
	if k.closed || k.f != nil {
		k.mu.Unlock()
		f.Close()
		return
	}
	k.f, k.uses = f, uses
	k.mu.Unlock()
}

// Close closes the kept connection; a probe in flight closes its own on return.
func (k *keptConn) Close() {
	k.mu.Lock()
	f := k.f
	k.f, k.closed = nil, true
	k.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// httpProbe sends the GET, on p.conn when there is one, and returns the answer's
// status code.
//
// The exchange waits in the runtime's poller, not in poll(2) on the worker's
// thread: the waits of many probes end in one epoll_wait, and no thread sleeps
// and wakes per probe (that and the extra system call were a third of a kept
// connection's probe).
func httpProbe(p Probe, ua string, deadline time.Time) (int, error) {
	keep := p.conn != nil
	var reqBuf [256]byte
	req := append(reqBuf[:0], "GET "...)
	req = append(req, p.Path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = p.Addr.AppendTo(req)
	req = append(req, "\r\nUser-Agent: "...)
	req = append(req, ua...)
	req = append(req, "\r\nAccept: */*\r\n"...)
	if !keep {
		req = append(req, "Connection: close\r\n"...)
	}
	req = append(req, "\r\n"...)

	var f *os.File
	uses := 0
	if keep {
		f, uses = p.conn.take()
		if f != nil && uses >= maxKeptUses {
			f.Close()
			f, uses = nil, 0
		}
	}
	for {
		reused := f != nil
		if !reused {
			fd, err := connect(p.Addr, deadline)
			if err != nil {
				return 0, err
			}
			// Non-blocking, so the file waits in the runtime's poller.
			f = os.NewFile(uintptr(fd), "")
		}
		code, reusable, got, err := exchange(f, req, deadline)
		if err != nil && reused && got == 0 && !errors.Is(err, errTimeout) {
			// The server closed the kept connection since the last probe (an idle
			// timeout, a restart): that says nothing of its health, a fresh one does.
			f.Close()
			f = nil
			continue
		}
		if keep && reusable && err == nil {
			p.conn.put(f, uses+1)
		} else {
			f.Close()
		}
		return code, err
	}
}

var (
	errClosed   = errors.New("connection closed without an answer")
	errCut      = errors.New("answer cut short")
	errNotHTTP  = errors.New("not an HTTP response")
	errBadLine  = errors.New("bad HTTP status line")
	errBadHead  = errors.New("bad HTTP header")
	errBadCLen  = errors.New("bad Content-Length")
	httpPrefix  = []byte("HTTP/")
	headEndCRLF = []byte("\r\n\r\n")
)

// heads are exchange's read buffers: one per probe escaped to the heap (the
// file's Read takes it), and was a tenth of a kept connection's probe with the
// garbage collector's share.
var heads = sync.Pool{New: func() any { return new([maxHead]byte) }}

// exchange writes req on f and reads the answer's head, and its body when that
// lets the connection be kept. got is how many bytes of answer arrived (0: the
// connection was dead before answering). reusable says the connection is at the
// start of the next answer, with nothing unread.
func exchange(f *os.File, req []byte, deadline time.Time) (code int, reusable bool, got int, err error) {
	if err := f.SetDeadline(deadline); err != nil {
		return 0, false, 0, err
	}
	if _, err := f.Write(req); err != nil {
		return 0, false, 0, ioErr(err)
	}
	bp := heads.Get().(*[maxHead]byte)
	defer heads.Put(bp)
	buf := bp[:]
	end := -1 // end of the head in buf
	for end < 0 {
		if got == len(buf) {
			// A head this long still has its status line; the rest is not read.
			code, _, _, err := parseHead(buf[:got], false)
			return code, false, got, err
		}
		n, err := f.Read(buf[got:])
		switch {
		case err == io.EOF && got == 0:
			return 0, false, 0, errClosed
		case err == io.EOF:
			if !bytes.HasPrefix(buf[:got], httpPrefix[:min(got, len(httpPrefix))]) {
				return 0, false, got, errNotHTTP
			}
			return 0, false, got, errCut
		case err != nil:
			return 0, false, got, ioErr(err)
		}
		got += n
		if !bytes.HasPrefix(buf[:got], httpPrefix[:min(got, len(httpPrefix))]) {
			return 0, false, got, errNotHTTP
		}
		if i := bytes.Index(buf[:got], headEndCRLF); i >= 0 {
			end = i + len(headEndCRLF)
		}
	}
	code, keep, body, err := parseHead(buf[:end], true)
	if err != nil || !keep {
		return code, false, got, err
	}
	// Read the body away so the next answer starts the connection; anything more
	// than the body is not an answer to us, and the connection is not kept.
	rest := got - end
	for rest < body {
		n, err := f.Read(buf[:min(len(buf), body-rest+1)])
		if err != nil {
			return code, false, got, nil
		}
		rest += n
		got += n
	}
	return code, rest == body, got, nil
}

// ioErr turns the file's errors into the probe's: its deadline is the timeout,
// and a socket error is the errno.
func ioErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errTimeout
	}
	var en unix.Errno
	if errors.As(err, &en) {
		return en
	}
	return err
}

// parseHead reads an answer's head (status line, header lines, blank line when
// complete is set). keep says the connection may serve another request once body
// bytes are read: HTTP/1.1, no "Connection: close", no Transfer-Encoding, and a
// length of at most maxKeptBody (or a status without a body).
func parseHead(head []byte, complete bool) (code int, keep bool, body int, err error) {
	line, rest, ok := bytes.Cut(head, []byte("\n"))
	if !ok {
		return 0, false, 0, errBadLine
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') ||
		line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		if !bytes.HasPrefix(line, httpPrefix) {
			return 0, false, 0, errNotHTTP
		}
		return 0, false, 0, errBadLine
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, 0, errBadLine
		}
	}
	code = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if code < 100 || code > 599 {
		return 0, false, 0, errBadLine
	}
	if !complete {
		return code, false, 0, nil
	}
	keep = line[7] == '1' && code >= 200
	length := -1
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return 0, false, 0, errBadHead
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := digits(value)
			if !ok || (length >= 0 && n != length) {
				return 0, false, 0, errBadCLen
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			keep = false
		case bytes.EqualFold(name, []byte("Connection")):
			for _, tok := range bytes.Split(value, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("close")) {
					keep = false
				}
			}
		}
	}
	switch {
	case code == 204 || code == 304:
		length = 0
	case length < 0 || length > maxKeptBody:
		keep = false
	}
	return code, keep, max(length, 0), nil
}

var errTimeout = errors.New("timeout")

// connect opens a TCP connection to ap by deadline; the socket closes with a reset.
func connect(ap netip.AddrPort, deadline time.Time) (int, error) {
	fam := unix.AF_INET6
	var sa unix.Sockaddr
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		fam = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return -1, err
	}
	switch err := unix.Connect(fd, sa); err {
	case nil:
	case unix.EINPROGRESS:
		rev, err := wait(fd, unix.POLLOUT, deadline)
		if err != nil {
			return -1, err
		}
		// Writable with no error is connected; only a failure needs SO_ERROR for why.
		if rev&(unix.POLLERR|unix.POLLHUP) != 0 || rev&unix.POLLOUT == 0 {
			v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return -1, err
			}
			if v == 0 {
				v = int(unix.ECONNREFUSED) // hung up without saying why
			}
			return -1, unix.Errno(v)
		}
	default:
		return -1, err
	}
	ok = true
	return fd, nil
}

// wait polls fd for events until deadline and returns the events that came.
func wait(fd int, events int16, deadline time.Time) (int16, error) {
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return 0, errTimeout
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, ms)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, errTimeout
		}
		return pfd[0].Revents, nil
	}
}

// digits reads a Content-Length: 1 to 12 decimal digits and nothing else.
func digits(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// errText is a probe error as machines list shows it.
func errText(err error) string {
	var en unix.Errno
	switch {
	case errors.Is(err, errTimeout):
		return "timeout"
	case errors.As(err, &en):
		return en.Error()
	}
	return err.Error()
}
