package server

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// countingConn counts the reads and writes the server makes on a
// connection: each is one syscall (or one attempt) on the real socket.
type countingConn struct {
	*net.TCPConn
	reads, writes *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.TCPConn.Read(p)
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.TCPConn.Write(p)
}

type countingListener struct {
	net.Listener
	reads, writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{TCPConn: c.(*net.TCPConn), reads: &l.reads, writes: &l.writes}, nil
}

func startCounting(t *testing.T) (string, *countingListener) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := New(HandlerFunc(echo), Options{Logger: quietLogger()})
	done := make(chan error, 1)
	go func() { done <- s.Serve(cl) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), cl
}

// TestOneReadOneWritePerRequest pins the I/O budget of the keep-alive
// path: within the idle-release window a request costs one read (the head
// arrives whole; the connection's first request costs two) and one write (head and body leave together); keeping
// buffers for that window is what makes pooling them free under load.
func TestOneReadOneWritePerRequest(t *testing.T) {
	addr, cl := startCounting(t)
	c := dialRaw(t, addr)
	const n = 50
	for range n {
		c.send("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
		c.read("GET")
	}
	// The first request costs two reads (a new connection waits for its
	// first byte without buffers, see waitForRequest), and the server may
	// have started the read for request n+1.
	if r, w := cl.reads.Load(), cl.writes.Load(); r > n+2 || w != n {
		t.Fatalf("%d requests: %d reads, %d writes", n, r, w)
	}
}

// TestPipelinedResponsesBatched: responses to pipelined requests leave in
// one write, not one per response.
func TestPipelinedResponsesBatched(t *testing.T) {
	addr, cl := startCounting(t)
	c := dialRaw(t, addr)
	const n = 10
	c.send(strings.Repeat("GET /p HTTP/1.1\r\nHost: h\r\n\r\n", n))
	for range n {
		c.read("GET")
	}
	if w := cl.writes.Load(); w > 2 {
		t.Fatalf("%d pipelined responses took %d writes", n, w)
	}
}
