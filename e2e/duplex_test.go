package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// duplexEcho is a backend that answers while it reads: every byte of the
// request body is written back as it arrives (a streaming echo).
func duplexEcho(t *testing.T) *backend {
	return newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(200)
		buf := make([]byte, 16<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				rc.Flush()
			}
			if err != nil {
				return
			}
		}
	}))
}

// TestFullDuplexH2ClientH1Upstream: an HTTP/2 client streams a body to an
// HTTP/1.1 upstream that echoes it as it reads, sending each piece only
// after the echo of the one before came back: both directions flow at
// once through the proxy (one way at a time would deadlock).
func TestFullDuplexH2ClientH1Upstream(t *testing.T) {
	up := duplexEcho(t)
	cfg := siteConfig{
		Upstreams:  []siteUpstream{{Name: "echo", Addrs: []string{up.Addr}}},
		Locations:  []siteLocation{loc("all", "echo", "")},
		ServerOpts: "h2c = true",
	}
	_, base := serve(t, cfg.String())

	const pieces, size = 64, 64 << 10 // 4 MB in all, larger than the socket buffers
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/echo", pr)
	req.ContentLength = -1
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := plH2C().Do(req)
		got <- result{resp, err}
	}()
	piece := func(i int) []byte {
		return bytes.Repeat([]byte{byte('a' + i%26)}, size)
	}
	if _, err := pw.Write(piece(0)); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	if r.resp.ProtoMajor != 2 || r.resp.StatusCode != 200 {
		t.Fatalf("%s %d", r.resp.Proto, r.resp.StatusCode)
	}
	buf := make([]byte, size)
	for i := 0; i < pieces; i++ {
		if _, err := io.ReadFull(r.resp.Body, buf); err != nil {
			t.Fatalf("echo of piece %d: %v", i, err)
		}
		if !bytes.Equal(buf, piece(i)) {
			t.Fatalf("echo of piece %d differs", i)
		}
		if i+1 < pieces {
			if _, err := pw.Write(piece(i + 1)); err != nil {
				t.Fatalf("piece %d: %v", i+1, err)
			}
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(r.resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after the last piece: %d more bytes, %v", len(rest), err)
	}
}

// TestFullDuplexH1ClientIsCutVisibly: an HTTP/1.1 client connection is not
// full duplex. Once the echo's response started, the rest of the body is
// not forwarded; the upstream, waiting for it, goes quiet, read_timeout
// ends the exchange and the client sees a broken response, never a short
// one that looks complete.
func TestFullDuplexH1ClientIsCutVisibly(t *testing.T) {
	up := duplexEcho(t)
	cfg := siteConfig{
		Upstreams: []siteUpstream{{Name: "echo", Addrs: []string{up.Addr}, Opts: `read_timeout = "1s"`}},
		Locations: []siteLocation{loc("all", "echo", "")},
	}
	_, base := serve(t, cfg.String())
	body := strings.Repeat("x", 32<<20)
	req, _ := http.NewRequest("POST", base+"/echo", strings.NewReader(body))
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Do(req)
	if err != nil {
		return // the proxy closed before the client finished sending: also visible
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && len(b) != len(body) {
		t.Fatalf("a short echo (%d of %d bytes, Content-Length %s) ended like a complete one",
			len(b), len(body), strconv.FormatInt(resp.ContentLength, 10))
	}
}
