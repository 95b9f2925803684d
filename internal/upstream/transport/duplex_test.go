package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"

	"github.com/pingap-go/pingap/internal/testutil/streamecho"
)

// TestH1FullDuplexEcho: an upstream that answers while it reads the body
// (a streaming echo) gets the whole body, and the whole answer comes
// back, though both are far bigger than the sockets' buffers: the body is
// written while the response is read. (Written first, the body stalled
// once the upstream's unread answer filled the buffers.)
func TestH1FullDuplexEcho(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		io.Copy(w, r.Body)
	}))
	ts.Start()
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{ReadTimeout: config.Duration(30 * time.Second)}, backendAddr(ts))

	body := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16*8) // 32 MB
	for _, chunked := range []bool{false, true} {
		req := &httpx.OutRequest{Method: "POST", URI: "/echo", Host: "h", Header: &httpx.Header{},
			Body: bytes.NewReader(body), ContentLength: int64(len(body)), ReadTimeout: 30 * time.Second}
		if chunked {
			req.Body = struct{ io.Reader }{bytes.NewReader(body)}
			req.ContentLength = -1
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var resp httpx.Response
		_, err := rt.RoundTrip(ctx, req, &resp)
		if err != nil {
			cancel()
			t.Fatalf("chunked=%v: %v", chunked, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		httpx.CloseBody(&resp)
		cancel()
		if err != nil || n != int64(len(body)) || !bytes.Equal(h.Sum(nil), sha256Of(body)) {
			t.Fatalf("chunked=%v: echoed %d of %d bytes (%v), same bytes: %v", chunked, n, len(body), err, bytes.Equal(h.Sum(nil), sha256Of(body)))
		}
	}
	// The connection was reused: the body had ended before the response.
	if dials, _ := rt.Stats(); dials != 1 {
		t.Errorf("%d dials for two echoes on a keep-alive upstream", dials)
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestH1EarlyAnswerWhileBodyBlocked: an upstream that answers at once
// (413) and then reads nothing more, leaving the connection open, is
// heard at once: the answer comes although the body cannot be written
// (before, the body write blocked until read_timeout and the request's
// own deadline passed first). The connection is not reused.
func TestH1EarlyAnswerWhileBodyBlocked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for { // the head only
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n")
				<-release // hold the connection, read nothing
			}()
		}
	}()
	rt := newH1ForTest(t, config.Upstream{ReadTimeout: config.Duration(time.Minute)}, ln.Addr().String())
	body := strings.Repeat("x", 64<<20)
	req := &httpx.OutRequest{Method: "PUT", URI: "/up", Host: "h", Header: &httpx.Header{},
		Body: strings.NewReader(body), ContentLength: int64(len(body)), ReadTimeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var resp httpx.Response
	if _, err := rt.RoundTrip(ctx, req, &resp); err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	httpx.CloseBody(&resp)
	if resp.Status != 413 || string(got) != "too big\n" || err != nil {
		t.Fatalf("got %d %q %v, want the 413", resp.Status, got, err)
	}
	if n := len(rt.idle); n != 0 {
		t.Errorf("%d idle connections: one whose request never ended was pooled", n)
	}
}

// TestH1BodySourceErrorEndsRoundTrip: a body whose source fails (the
// client's upload broke) ends the round trip with that error while the
// upstream still waits for the rest of the body.
func TestH1BodySourceErrorEndsRoundTrip(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(200)
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{ReadTimeout: config.Duration(time.Minute)}, backendAddr(ts))
	src := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), iotest.ErrReader(io.ErrClosedPipe))
	req := &httpx.OutRequest{Method: "POST", URI: "/", Host: "h", Header: &httpx.Header{},
		Body: src, ContentLength: 4 << 20, ReadTimeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var resp httpx.Response
	_, err := rt.RoundTrip(ctx, req, &resp)
	var be *errBodySource
	if !errors.As(err, &be) || !errors.Is(be.err, io.ErrClosedPipe) {
		t.Fatalf("RoundTrip = %v, want the body source's error", err)
	}
}

// TestH1PingPongBody: each piece of the body goes out when it comes, not
// when the buffer fills: the next piece is only sent once the echo of the
// one before came back (a small piece kept in the buffer would wait
// forever), with a declared length and chunked.
func TestH1PingPongBody(t *testing.T) {
	ts := httptest.NewUnstartedServer(streamecho.Handler(1024))
	ts.Start()
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{ReadTimeout: config.Duration(30 * time.Second)}, backendAddr(ts))
	const pieces, size = 20, 100
	for _, cl := range []int64{pieces * size, -1} {
		pr, pw := io.Pipe()
		req := &httpx.OutRequest{Method: "POST", URI: "/", Host: "h", Header: &httpx.Header{}, Body: pr, ContentLength: cl, ReadTimeout: 30 * time.Second}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		piece := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, size) }
		go pw.Write(piece(0))
		var resp httpx.Response
		if _, err := rt.RoundTrip(ctx, req, &resp); err != nil {
			cancel()
			t.Fatalf("length %d: %v", cl, err)
		}
		got := make([]byte, size)
		for i := 0; i < pieces; i++ {
			if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, piece(i)) {
				cancel()
				t.Fatalf("length %d: echo of piece %d: %q, %v", cl, i, got, err)
			}
			if i+1 < pieces {
				go pw.Write(piece(i + 1))
			} else {
				pw.Close()
			}
		}
		rest, err := io.ReadAll(resp.Body)
		httpx.CloseBody(&resp)
		cancel()
		if err != nil || len(rest) != 0 {
			t.Fatalf("length %d: after the last piece: %q, %v", cl, rest, err)
		}
	}
}

// TestH1HeadTimeoutFromBodyEnd: read_timeout bounds the wait for the
// response head from the end of the request body, not from its start: an
// upload that takes longer than read_timeout (each piece well within it)
// gets its answer.
func TestH1HeadTimeoutFromBodyEnd(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	defer ts.Close()
	const rt, gap, pieces = 400 * time.Millisecond, 150 * time.Millisecond, 6 // 900 ms of upload
	tr := newH1ForTest(t, config.Upstream{ReadTimeout: config.Duration(rt)}, backendAddr(ts))
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < pieces; i++ {
			pw.Write([]byte("0123456789"))
			time.Sleep(gap)
		}
		pw.Close()
	}()
	req := &httpx.OutRequest{Method: "POST", URI: "/", Host: "h", Header: &httpx.Header{}, Body: pr, ContentLength: -1, ReadTimeout: rt}
	resp, body, _, err := do(t, tr, req)
	if err != nil || resp.Status != 200 || body != "60" {
		t.Fatalf("slow upload: %v %d %q, want 200 \"60\"", err, resp.Status, body)
	}
}
