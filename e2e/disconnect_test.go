package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// dcUpstreamDelay is how long the slow upstream takes to answer: the 499
// must come well before it.
const dcUpstreamDelay = 5 * time.Second

// TestDisconnectHTTP1Cancels: an HTTP/1.1 client that goes away while the
// upstream is still working cancels the upstream attempt: the access log
// says 499 long before the upstream would have answered, the upstream
// sees its request cancelled, and the inflight limit slot is free at once.
// Without a body, and with one (watched once it was sent upstream).
func TestDisconnectHTTP1Cancels(t *testing.T) {
	t.Parallel()
	for name, req := range map[string]string{
		"GET":          "GET /slow HTTP/1.1\r\nHost: x\r\nX-Client: c\r\n\r\n",
		"POST":         "POST /slow HTTP/1.1\r\nHost: x\r\nX-Client: c\r\nContent-Length: 5\r\n\r\nhello",
		"POST chunked": "POST /slow HTTP/1.1\r\nHost: x\r\nX-Client: c\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dcAbandon(t, req)
		})
	}
}

func dcAbandon(t *testing.T, request string) {
	upCancelled := make(chan struct{}, 1)
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			// net/http notices a closed connection only once the body is read.
			io.ReadAll(r.Body)
			select {
			case <-time.After(dcUpstreamDelay):
			case <-r.Context().Done():
				upCancelled <- struct{}{}
				return
			}
		}
		w.Write([]byte("ok"))
	}))
	cfg := plSite(up.Addr, plugin("one", "limit", `type = "inflight"`, `key = "header:X-Client"`, "max = 1"), loc("l", "a", "", "one"))
	cfg.Basic = "access_log = true"
	cfg.Upstreams[0].Opts = `read_timeout = "30s"`
	p, _ := serve(t, cfg.String())

	conn, err := net.Dial("tcp", p.waitAddr("main"))
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	fmt.Fprint(conn, request)
	time.Sleep(300 * time.Millisecond)
	conn.Close()

	l := p.waitLog("access", func(l map[string]any) bool { return l["path"] == "/slow" })
	took := time.Since(sent)
	if l["status"] != 499.0 {
		t.Fatalf("access line for the abandoned request: %v", l)
	}
	if took > dcUpstreamDelay/2 {
		t.Fatalf("the 499 came %v after the request, the upstream answers after %v", took, dcUpstreamDelay)
	}
	select {
	case <-upCancelled:
	case <-time.After(dcUpstreamDelay / 2):
		t.Fatal("the upstream request was not cancelled")
	}
	// The slot came back with the 499: the next request is admitted now.
	resp, b := do(t, "GET", p.url("main")+"/fast", nil, "X-Client: c")
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("next request: %d %s", resp.StatusCode, b)
	}
}
