package server

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// memConn is a net.Conn over fixed input; writes are collected (HTTP/2
// writes from its own goroutines, hence the lock).
type memConn struct {
	mu  sync.Mutex
	in  *strings.Reader
	out bytes.Buffer
}

func (m *memConn) Read(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.in.Read(p)
}

func (m *memConn) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.Write(p)
}

func (m *memConn) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

func (m *memConn) Close() error                       { return nil }
func (m *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (m *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzServeConn runs the whole HTTP/1.x connection loop (parser, bodies,
// writer, drain, error answers) over arbitrary client bytes: it must never
// panic or hang, and whatever it writes starts with a status line.
func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
	} {
		f.Add(s)
	}
	s := New(HandlerFunc(echo), Options{Logger: quietLogger(), H2C: true})
	f.Fuzz(func(t *testing.T, in string) {
		mc := &memConn{in: strings.NewReader(in)}
		c := s.newConn(mc)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serve()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection loop hangs on %q", in)
		}
		if out := mc.output(); out != "" && !strings.HasPrefix(out, "HTTP/1.1 ") && !strings.HasPrefix(out, "\x00") {
			t.Fatalf("output does not start with a status line: %q", out)
		}
	})
}
