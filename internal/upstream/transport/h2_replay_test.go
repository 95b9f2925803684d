package transport

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
)

// goawayBackend is an h2c upstream whose first connection reads one whole
// request (headers and body) and then answers GOAWAY with last stream 0:
// what a gracefully stopping server does with a stream it did not process.
// Later connections are served by an echo handler, unless refuseAfter is
// set: then the listener closes after the first connection (the resend's
// dial is refused).
type goawayBackend struct {
	ln    net.Listener
	conns atomic.Int32
}

func newGoawayBackend(t *testing.T, refuseAfter bool) *goawayBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &goawayBackend{ln: ln}
	t.Cleanup(func() { ln.Close() })
	srv := &http2.Server{}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if b.conns.Add(1) == 1 {
				if refuseAfter {
					ln.Close()
				}
				go goawayAfterRequest(c)
				continue
			}
			go srv.ServeConn(c, &http2.ServeConnOpts{Handler: echo})
		}
	}()
	return b
}

func goawayAfterRequest(c net.Conn) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				fr.WriteGoAway(0, http2.ErrCodeNo, nil)
				return
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				fr.WriteGoAway(0, http2.ErrCodeNo, nil)
				return
			}
		}
	}
}

func postBody(body string) *httpx.OutRequest {
	return &httpx.OutRequest{Method: "POST", URI: "/", Host: "h", Header: &httpx.Header{},
		Body: strings.NewReader(body), ContentLength: int64(len(body))}
}

// A stream the upstream refused unprocessed (GOAWAY) after its body was
// written is resent on a new connection with the whole body.
func TestH2ResendsBodyAfterGoaway(t *testing.T) {
	b := newGoawayBackend(t, false)
	rt, err := New(config.Upstream{HTTP2: true}, b.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.CloseIdle()
	const body = "the whole request body"
	_, got, _, err := do(t, rt, postBody(body))
	if err != nil {
		t.Fatalf("POST after GOAWAY: %v", err)
	}
	if got != body || b.conns.Load() != 2 {
		t.Fatalf("echo %q over %d connections, want %q over 2", got, b.conns.Load(), body)
	}
}

// When the resend's dial fails, the error is a connect error and the
// request's Body yields the whole body again, so the proxy's retry on
// another addr does not send a truncated one.
func TestH2DialErrorAfterGoawayRewindsBody(t *testing.T) {
	b := newGoawayBackend(t, true)
	rt, err := New(config.Upstream{HTTP2: true}, b.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.CloseIdle()
	const body = "must reach the next addr whole"
	req := postBody(body)
	var resp httpx.Response
	_, err = rt.RoundTrip(t.Context(), req, &resp)
	if !httpx.IsConnectError(err) {
		t.Fatalf("err %v, want a connect error", err)
	}
	again, err := io.ReadAll(req.Body)
	if err != nil || string(again) != body {
		t.Fatalf("req.Body after the failed resend: %q %v, want %q", again, err, body)
	}
}

// An upgrade (WebSocket) cannot go over an HTTP/2 upstream. The error must
// not be a connect error: those are retried elsewhere and mark the addr
// down after unhealthy_threshold, so clients could take an addr down.
func TestH2UpgradeIsNotAConnectError(t *testing.T) {
	rt, err := New(config.Upstream{HTTP2: true}, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	req := get("/ws", "h")
	req.Upgrade = "websocket"
	var resp httpx.Response
	_, err = rt.RoundTrip(t.Context(), req, &resp)
	if err == nil || httpx.IsConnectError(err) {
		t.Fatalf("upgrade over HTTP/2: %v, want an error that is not a connect error", err)
	}
}
