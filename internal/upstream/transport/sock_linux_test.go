//go:build linux

package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/rawsock"
	"github.com/pingap-go/pingap/internal/testutil/syscount"
)

// The backend of TestRoundTripReadsOnce runs in a child process (this test
// binary, re-run with this variable set), so that the read system calls
// this process makes are the transport's alone.
const syscallBackendEnv = "PINGAP_TRANSPORT_SYSCALL_BACKEND"

// TestRoundTripReadsOnce pins the read budget of a round trip without a
// request body on a pooled plain-TCP connection: one read system call, the
// one that gets the response (the read sends the request and waits for
// the answer first, instead of trying a read the upstream cannot have
// answered yet: rawsock.IO.SendRead). Counted by the
// kernel (/proc/self/io syscr), not timed.
func TestRoundTripReadsOnce(t *testing.T) {
	if os.Getenv(syscallBackendEnv) == "1" {
		runSyscallBackend()
		return
	}
	if !rawsock.ReadsCounted {
		t.Skip("socket reads are recvfrom(2) in this build, which /proc/self/io does not count; make test runs this under -race, where they are read(2)")
	}
	if _, err := syscount.Reads(); err != nil {
		t.Fatalf("no read counter: %v", err)
	}
	addr := syscount.Peer(t, "TestRoundTripReadsOnce", syscallBackendEnv, "1")

	for _, tc := range []struct {
		name string
		req  func() *httpx.OutRequest
	}{
		{"GET", func() *httpx.OutRequest { return get("/r", "h") }},
		// A small body that has arrived whole goes with the head in one
		// write, and the response is waited for in the same step.
		{"small whole POST", func() *httpx.OutRequest {
			return &httpx.OutRequest{Method: "POST", URI: "/r", Host: "h", Header: &httpx.Header{},
				Body: wholeReader{strings.NewReader("0123456789")}, ContentLength: 10}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newH1ForTest(t, config.Upstream{}, addr)
			check := func(i int) {
				t.Helper()
				resp, body, _, err := do(t, rt, tc.req())
				if err != nil || resp.Status != 200 || body != "hello" {
					t.Fatalf("request %d: %v %d %q", i, err, resp.Status, body)
				}
			}
			check(-1) // dial
			const n = 200
			before, _ := syscount.Reads()
			for i := range n {
				check(i)
			}
			after, _ := syscount.Reads()
			reads := after - before
			// A spurious readiness (rare) costs one more read; without
			// SendRead every round trip costs two.
			if reads > n+n/10 {
				t.Fatalf("%d read system calls for %d round trips, want about %d", reads, n, n)
			}
			if reads < n {
				t.Fatalf("%d read system calls for %d round trips: the counter is not counting", reads, n)
			}
			if dials, _ := rt.Stats(); dials != 1 {
				t.Fatalf("%d dials, want 1", dials)
			}
		})
	}
}

// wholeReader is a body that has arrived whole (see smallWhole).
type wholeReader struct{ io.Reader }

func (wholeReader) Whole() bool { return true }

// runSyscallBackend answers every request with a 5-byte body, head and
// body in one write, prints its address, and exits when stdin closes.
func runSyscallBackend() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go syscount.WaitForParent()
	const resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				// The head, then a Content-Length body if any.
				n := 0
				for {
					l, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(l) <= 2 {
						break
					}
					if v, ok := strings.CutPrefix(string(l), "Content-Length: "); ok {
						n, _ = strconv.Atoi(strings.TrimSpace(v))
					}
				}
				if _, err := br.Discard(n); err != nil {
					return
				}
				if _, err := c.Write([]byte(resp)); err != nil {
					return
				}
			}
		}()
	}
}

// TestRequestEndWaitNotStarted: when the read that sends a request's end
// cannot start its wait (the deadlines passed already: the caller's clock
// reading for a pooled round trip is an hour old), the request goes the
// ordinary way, which fails on the passed write deadline: the round trip
// ends in a timeout rather than hanging, the connection is dropped, and
// the next request gets a fresh one.
func TestRequestEndWaitNotStarted(t *testing.T) {
	paths := make(chan string, 4)
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			paths <- req.URL.Path
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	if resp, body, _, err := do(t, rt, get("/first", "h")); err != nil || resp.Status != 200 || body != "ok" {
		t.Fatalf("first: %v %d %q", err, resp.Status, body)
	}
	req := get("/late", "h")
	req.ReadTimeout = time.Second
	req.Now = time.Now().Add(-time.Hour)
	_, _, res, err := do(t, rt, req)
	var te *httpx.TransportError
	if !res.Reused || !errors.As(err, &te) || !te.Timeout {
		t.Fatalf("late round trip: reused %v, err %v; want a timeout on the pooled connection", res.Reused, err)
	}
	if resp, body, res, err := do(t, rt, get("/next", "h")); err != nil || resp.Status != 200 || body != "ok" || res.Reused {
		t.Fatalf("next: %v %d %q reused %v; want a fresh connection", err, resp.Status, body, res.Reused)
	}
	for _, want := range []string{"/first", "/next"} {
		if got := <-paths; got != want {
			t.Fatalf("the backend got %q, want %q", got, want)
		}
	}
}
