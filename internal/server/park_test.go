package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitConns polls until the server has open connections of which parked
// are parked (without a goroutine), within a bounded time.
func waitConns(t testing.TB, s *Server, open, parked int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		o, p := s.Conns()
		if o == open && (parked < 0 || p == parked) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections: %d open, %d parked; want %d and %d", o, p, open, parked)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// epollExpected reports whether idle connections park in the epoll set
// here (Linux), as opposed to on goroutines.
func epollExpected() bool { return runtime.GOOS == "linux" }

// wantParked is the parked count to expect for n idle connections.
func wantParked(n int) int {
	if epollExpected() {
		return n
	}
	return 0
}

func countingHook(opened, closed *atomic.Int32) func(bool) {
	return func(open bool) {
		if open {
			opened.Add(1)
		} else {
			closed.Add(1)
		}
	}
}

// TestEpollParkResumes: a new connection waits for its first byte parked;
// after each response the connection parks again once idle past the
// release window, and the next request resumes it.
func TestEpollParkResumes(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: 10 * time.Millisecond})
	c := dialRaw(t, addr)
	waitConns(t, s, 1, wantParked(1))
	for i := range 4 {
		path := fmt.Sprintf("/r%d", i)
		c.send("GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != path {
			t.Fatalf("request %d: X-Path %q", i, resp.Header.Get("X-Path"))
		}
		waitConns(t, s, 1, wantParked(1))
	}
}

// TestEpollParkPipelined: requests pipelined in one write to a parked
// connection are all answered, in order; so are a head split across
// writes and a body sent after the head.
func TestEpollParkPipelined(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: 10 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send("GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	waitConns(t, s, 1, wantParked(1))
	c.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
	for _, want := range []string{"/a", "/b", "/c"} {
		method := "GET"
		if want == "/c" {
			method = "POST"
		}
		resp, body := c.read(method)
		if got := resp.Header.Get("X-Path"); got != want {
			t.Fatalf("X-Path %q, want %q", got, want)
		}
		if want == "/c" && body != "hello" {
			t.Fatalf("body %q", body)
		}
	}
	waitConns(t, s, 1, wantParked(1))
	c.send("GET /sp")
	time.Sleep(20 * time.Millisecond) // the rest of the head comes later (not an assertion)
	c.send("lit HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != "/split" {
		t.Fatalf("X-Path %q", resp.Header.Get("X-Path"))
	}
}

// TestEpollParkIdleTimeout: the idle timeout closes a parked connection,
// and the head timeout one that never sent a byte; both are forgotten
// and the OnConn hook hears of each close once.
func TestEpollParkIdleTimeout(t *testing.T) {
	var opened, closed atomic.Int32
	addr, s := startServer(t, HandlerFunc(echo), Options{
		idleRelease:       10 * time.Millisecond,
		IdleTimeout:       150 * time.Millisecond,
		ReadHeaderTimeout: 150 * time.Millisecond,
		OnConn:            countingHook(&opened, &closed),
	})
	served := dialRaw(t, addr)
	served.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	served.read("GET")
	silent := dialRaw(t, addr)
	served.expectClosed()
	silent.expectClosed()
	waitConns(t, s, 0, 0)
	if opened.Load() != 2 || closed.Load() != 2 {
		t.Fatalf("OnConn: %d opens, %d closes, want 2 and 2", opened.Load(), closed.Load())
	}
}

// TestEpollParkShutdown: Shutdown closes parked connections at once
// (new ones and keep-alive ones) and returns.
func TestEpollParkShutdown(t *testing.T) {
	var opened, closed atomic.Int32
	addr, s := startServer(t, HandlerFunc(echo), Options{
		idleRelease: 10 * time.Millisecond,
		OnConn:      countingHook(&opened, &closed),
	})
	var cs []*rawClient
	for i := range 20 {
		c := dialRaw(t, addr)
		if i%2 == 0 {
			c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			c.read("GET")
		}
		cs = append(cs, c)
	}
	waitConns(t, s, 20, wantParked(20))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range cs {
		c.expectClosed()
	}
	if o, p := s.Conns(); o != 0 || p != 0 {
		t.Fatalf("after Shutdown: %d open, %d parked", o, p)
	}
	if opened.Load() != 20 || closed.Load() != 20 {
		t.Fatalf("OnConn: %d opens, %d closes, want 20 and 20", opened.Load(), closed.Load())
	}
}

// TestEpollParkClientClose: a client that goes away while its connection
// is parked is noticed (EOF wakes the poller) and the connection is
// forgotten, without waiting for the idle timeout.
func TestEpollParkClientClose(t *testing.T) {
	var opened, closed atomic.Int32
	addr, s := startServer(t, HandlerFunc(echo), Options{
		idleRelease: 10 * time.Millisecond,
		OnConn:      countingHook(&opened, &closed),
	})
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	a.read("GET")
	waitConns(t, s, 2, wantParked(2))
	a.conn.Close()
	b.conn.Close()
	waitConns(t, s, 0, 0)
	if closed.Load() != 2 {
		t.Fatalf("OnConn: %d closes, want 2", closed.Load())
	}
}

// TestEpollParkChurn: many connections parking, resuming and closing at
// once (fd numbers and poller slots are reused all the time) each get
// their own answers; at the end nothing is left.
func TestEpollParkChurn(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: time.Millisecond})
	const workers, rounds = 8, 25
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				for r := range rounds {
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						return err
					}
					conn.SetDeadline(time.Now().Add(10 * time.Second))
					br := bufio.NewReader(conn)
					for i := range 3 {
						path := fmt.Sprintf("/w%d/r%d/%d", w, r, i)
						if _, err := conn.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")); err != nil {
							return err
						}
						resp, err := readResp(br)
						if err != nil {
							return err
						}
						if got := resp.Header.Get("X-Path"); got != path {
							return fmt.Errorf("X-Path %q, want %q", got, path)
						}
						if i == 1 {
							time.Sleep(3 * time.Millisecond) // past the release window: parks
						}
					}
					conn.Close()
				}
				return nil
			}()
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitConns(t, s, 0, 0)
}

// TestGoroutinePark: with the epoll set off, idle connections park on
// goroutines and serve, time out and shut down the same.
func TestGoroutinePark(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: 10 * time.Millisecond, noEpoll: true})
	c := dialRaw(t, addr)
	for i := range 3 {
		time.Sleep(30 * time.Millisecond) // parked (not an assertion)
		c.send(fmt.Sprintf("GET /g%d HTTP/1.1\r\nHost: h\r\n\r\n", i))
		if resp, _ := c.read("GET"); !strings.HasSuffix(resp.Header.Get("X-Path"), fmt.Sprint(i)) {
			t.Fatalf("X-Path %q", resp.Header.Get("X-Path"))
		}
	}
	waitConns(t, s, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
}

// readResp reads one GET response and its body.
func readResp(br *bufio.Reader) (*http.Response, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp, err
}

// TestEpollParkHalfClose: a client that sends its request and half-closes
// while the connection is parked still gets its answer; then the server
// closes too.
func TestEpollParkHalfClose(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: 10 * time.Millisecond})
	for _, served := range []bool{false, true} {
		c := dialRaw(t, addr)
		if served {
			c.send("GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
			c.read("GET")
		}
		waitConns(t, s, 1, wantParked(1))
		c.send("GET /last HTTP/1.1\r\nHost: h\r\n\r\n")
		if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != "/last" {
			t.Fatalf("X-Path %q", resp.Header.Get("X-Path"))
		}
		c.expectClosed()
		waitConns(t, s, 0, 0)
	}
}

// TestEpollParkClientCloseDuringClose: a parked client closing while the
// server closes may make the poller goroutine finish the last connection
// itself; closing the epoll set then must not wait for that very
// goroutine (it deadlocked: Close never returned). Repeated, since it is a
// race between the poller and Close.
func TestEpollParkClientCloseDuringClose(t *testing.T) {
	for i := range 30 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := New(HandlerFunc(echo), Options{Logger: quietLogger(), idleRelease: 10 * time.Millisecond})
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		waitConns(t, s, 1, wantParked(1))
		closed := make(chan struct{})
		go func() {
			c.Close()
			s.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close hung while the parked client closed", i)
		}
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Serve did not return after Close", i)
		}
	}
}

// TestParkAfterBackToBackRequests: the idle-release deadline kept across
// back-to-back requests (setHotDeadline) still ends the wait: the
// connection parks once idle, and the next request resumes it.
func TestParkAfterBackToBackRequests(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: 50 * time.Millisecond})
	c := dialRaw(t, addr)
	for round := range 3 {
		for i := range 50 {
			path := fmt.Sprintf("/r%d-%d", round, i)
			c.send("GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")
			if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != path {
				t.Fatalf("request %s: X-Path %q", path, resp.Header.Get("X-Path"))
			}
		}
		waitConns(t, s, 1, wantParked(1))
	}
}

// TestColdPark: a request that comes to a connection parked after a long
// wait is answered, and the connection parks again at once rather than
// after another idleRelease; the requests of a burst that follows find
// the hot wait again.
func TestColdPark(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: 10 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send("GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	waitConns(t, s, 1, wantParked(1)) // after its hot wait: a long wait
	// From here on a hot wait lasts a minute: only a cold park parks the
	// connection within waitConns's 5 seconds.
	o := s.Options()
	o.idleRelease = time.Minute
	s.SetOptions(o)
	c.send("GET /cold HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != "/cold" {
		t.Fatalf("X-Path %q", resp.Header.Get("X-Path"))
	}
	waitConns(t, s, 1, wantParked(1))
	for _, p := range []string{"/b1", "/b2"} {
		c.send("GET " + p + " HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != p {
			t.Fatalf("X-Path %q, want %q", resp.Header.Get("X-Path"), p)
		}
	}
	time.Sleep(50 * time.Millisecond) // a park would have happened by now (not a timing assertion: it must not happen at all)
	if _, parked := s.Conns(); parked != 0 {
		t.Fatalf("%d parked: a connection in a burst parked right after its response", parked)
	}
}
