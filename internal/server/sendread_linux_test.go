//go:build linux

package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/rawsock"
	"github.com/pingap-go/pingap/internal/testutil/syscount"
)

// The client of TestKeepAliveReadsOnce runs in a child process (this test
// binary, re-run with this variable set to the server's address), so that
// the read system calls this process makes are the server's alone.
const syscallClientEnv = "PINGAP_SERVER_SYSCALL_CLIENT"

const syscallRequests = 200

// TestKeepAliveReadsOnce pins the read budget of a keep-alive request on a
// plain-TCP connection: one read system call, the one that gets the
// request (that read sends the previous response and waits for the next
// request first, instead of trying a read the client cannot have answered
// yet: canSendRead).
// Counted by the kernel (/proc/self/io syscr), not timed.
func TestKeepAliveReadsOnce(t *testing.T) {
	if addr := os.Getenv(syscallClientEnv); addr != "" {
		if err := runSyscallClient(addr); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("done")
		syscount.WaitForParent()
	}
	if !rawsock.ReadsCounted {
		t.Skip("socket reads are recvfrom(2) in this build, which /proc/self/io does not count; make test runs this under -race, where they are read(2)")
	}
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	before, err := syscount.Reads()
	if err != nil {
		t.Fatalf("no read counter: %v", err)
	}
	if line := syscount.Peer(t, "TestKeepAliveReadsOnce", syscallClientEnv, addr); line != "done" {
		t.Fatalf("client: %s", line)
	}
	after, _ := syscount.Reads()
	reads := after - before
	// The first request costs two reads (waitForRequest), reading the
	// child's output a few; a spurious readiness (rare) costs one more.
	// Without canSendRead every request costs two.
	const n = syscallRequests
	if reads > n+n/10 {
		t.Fatalf("%d read system calls for %d requests, want about %d", reads, n, n)
	}
	if reads < n {
		t.Fatalf("%d read system calls for %d requests: the counter is not counting", reads, n)
	}
}

// runSyscallClient sends syscallRequests requests one after the other on
// one connection, each after the previous response.
func runSyscallClient(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for i := range syscallRequests {
		if _, err := io.WriteString(c, "GET /r HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("request %d: status %d", i, resp.StatusCode)
		}
	}
	return nil
}

// TestPipelinedWhileHandling: a request pipelined while the previous one
// is in its handler arrives after the read that got that one and before
// the wait after the response began, so the wait cannot see it (see
// canSendRead). It must
// still be answered (after idleRelease at most), and the connection's
// later responses go the ordinary way.
func TestPipelinedWhileHandling(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan string, 4)
	h := HandlerFunc(func(c *httpx.Ctx) {
		entered <- c.Req.Path
		if c.Req.Path == "/slow" {
			<-release
		}
		echo(c)
	})
	addr, _ := startServer(t, h, Options{})
	c := dialRaw(t, addr)
	// A first request, so that the connection is past its first read.
	c.send("GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	<-entered
	c.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	if p := <-entered; p != "/slow" {
		t.Fatalf("handler got %s", p)
	}
	// On loopback the bytes are in the server's socket when Write returns.
	c.send("GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	close(release)
	for _, want := range []string{"/slow", "/next", "/after"} {
		if want == "/after" {
			c.send("GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
		}
		resp, _ := c.read("GET")
		if got := resp.Header.Get("X-Path"); got != want {
			t.Fatalf("response for %s, want %s", got, want)
		}
	}
}

// TestShutdownDeliversLastResponse: a connection becomes idle before its
// last response leaves (the flush goes with the wait for the next
// request), so Shutdown closing idle connections at that instant must not
// lose the response: it only shuts them for reading.
func TestShutdownDeliversLastResponse(t *testing.T) {
	var srv atomic.Pointer[Server]
	var once sync.Once
	opts := Options{afterIdle: func() {
		// Shutdown's sweep of idle connections, between the moment the
		// connection became idle and its flush.
		once.Do(func() { srv.Load().closeIdle() })
	}}
	addr, s := startServer(t, HandlerFunc(echo), opts)
	srv.Store(s)
	c := dialRaw(t, addr)
	c.send("GET /last HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, _ := c.read("GET")
	if got := resp.Header.Get("X-Path"); got != "/last" {
		t.Fatalf("response for %q", got)
	}
	c.expectClosed()
}

// TestResponseEndWaitNotStarted: when the read that sends a response's
// end cannot start its wait (its deadline passed already: here the
// handler's end reading is a second old, so the idle-release deadline
// derived from it is past), it writes nothing; the end then goes out the
// ordinary way, and the connection parks and serves its next request.
func TestResponseEndWaitNotStarted(t *testing.T) {
	h := HandlerFunc(func(c *httpx.Ctx) {
		echo(c)
		c.End = time.Now().Add(-time.Second)
	})
	addr, _ := startServer(t, h, Options{IdleTimeout: time.Minute})
	c := dialRaw(t, addr)
	for _, path := range []string{"/one", "/two"} {
		c.send("GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != path {
			t.Fatalf("response for %q, want %q", resp.Header.Get("X-Path"), path)
		}
	}
}
