package e2e

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/testutil/streamecho"
)

// duplexEcho is a backend that answers while it reads: every byte of the
// request body is written back as it arrives (a streaming echo).
func duplexEcho(t *testing.T) *backend {
	return newBackend(t, streamecho.Handler(16<<10))
}

// TestFullDuplex: a client streams a body to an HTTP/1.1 upstream that
// echoes it as it reads, sending each piece only after the echo of the one
// before came back: both directions flow at once through the proxy (one
// way at a time would deadlock), over HTTP/2 (h2c) and HTTP/1.1 client
// connections.
func TestFullDuplex(t *testing.T) {
	up := duplexEcho(t)
	cfg := siteConfig{
		Upstreams:  []siteUpstream{{Name: "echo", Addrs: []string{up.Addr}}},
		Locations:  []siteLocation{loc("all", "echo", "")},
		ServerOpts: "h2c = true",
	}
	_, base := serve(t, cfg.String())
	for _, tc := range []struct {
		name   string
		client *http.Client
		major  int
	}{
		{"h2c", plH2C(), 2},
		{"http1.1", &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			duplexEchoPieces(t, tc.client, base, tc.major)
			// And again on the same client connection where it can be
			// kept: the exchange ended cleanly.
			duplexEchoPieces(t, tc.client, base, tc.major)
		})
	}
}

func duplexEchoPieces(t *testing.T, client *http.Client, base string, major int) {
	t.Helper()
	const pieces, size = 64, 64 << 10 // 4 MB in all, larger than the socket buffers
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", base+"/echo", pr)
	req.ContentLength = -1
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
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
	if r.resp.ProtoMajor != major || r.resp.StatusCode != 200 {
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
