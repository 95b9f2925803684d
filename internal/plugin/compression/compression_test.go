package compression

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func mustNew(t testing.TB, opts map[string]any) *Plugin {
	t.Helper()
	p, err := New(plugin.Env{Name: "z"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Plugin)
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{"defaults", map[string]any{}, ""},
		{"all keys", map[string]any{"gzip_level": int64(9), "br_level": int64(11), "zstd_level": int64(22),
			"min_length": "2KB", "types": []any{"text/*", "application/wasm", "+json", "*/*+xml"}}, ""},
		{"all off", map[string]any{"gzip_level": int64(0), "br_level": int64(0), "zstd_level": int64(0)}, ""},
		{"gzip too high", map[string]any{"gzip_level": int64(10)}, "gzip_level"},
		{"gzip negative", map[string]any{"gzip_level": int64(-1)}, "gzip_level"},
		{"br too high", map[string]any{"br_level": int64(12)}, "br_level"},
		{"zstd too high", map[string]any{"zstd_level": int64(23)}, "zstd_level"},
		{"level wrong type", map[string]any{"zstd_level": "fast"}, "zstd_level"},
		{"bad min_length", map[string]any{"min_length": "big"}, "min_length"},
		{"bad type", map[string]any{"types": []any{"json"}}, "types"},
		{"bad wildcard", map[string]any{"types": []any{"*/json"}}, "types"},
		{"types wrong type", map[string]any{"types": "text/html"}, "types"},
		{"unknown", map[string]any{"level": int64(1)}, "level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(plugin.Env{Name: "z"}, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

var body = strings.Repeat(`{"id":12345,"name":"pingap","tags":["proxy","go"]}`+"\n", 200)

func decode(t *testing.T, enc, data string) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(strings.NewReader(data))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(strings.NewReader(data))
	case "zstd":
		zr, err := zstd.NewReader(strings.NewReader(data))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	case "":
		return data
	default:
		t.Fatalf("unknown encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", enc, err)
	}
	return string(out)
}

func TestRoundTrip(t *testing.T) {
	p := mustNew(t, map[string]any{})
	for _, enc := range []string{"gzip", "br", "zstd"} {
		for i := 0; i < 3; i++ { // later runs reuse pooled encoders
			c := plugintest.NewCtx("GET", "/", "Accept-Encoding: "+enc)
			res := plugintest.Run(c, plugintest.Upstream{Header: []string{"Content-Type: application/json", `ETag: "abc"`, "Content-Length: 10400"}, Body: body}, p)
			if got := res.Header.Get("Content-Encoding"); got != enc {
				t.Fatalf("%s: Content-Encoding %q", enc, got)
			}
			if len(res.Body) >= len(body) {
				t.Fatalf("%s: %d bytes compressed from %d", enc, len(res.Body), len(body))
			}
			if got := decode(t, enc, res.Body); got != body {
				t.Fatalf("%s: decoded body differs (%d bytes, want %d)", enc, len(got), len(body))
			}
			if res.Header.Has("Content-Length") || c.Resp.ContentLength != -1 {
				t.Fatalf("%s: Content-Length kept (%v, %d)", enc, res.Header.Get("Content-Length"), c.Resp.ContentLength)
			}
			if got := res.Header.Get("ETag"); got != `W/"abc"` {
				t.Fatalf("%s: ETag %q, want weak", enc, got)
			}
			if res.Header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("%s: Vary %v", enc, res.Header.Fields())
			}
		}
	}
}

func TestNegotiation(t *testing.T) {
	all := map[string]any{}
	tests := []struct {
		name   string
		opts   map[string]any
		accept []string
		want   string
	}{
		{"none", all, nil, ""},
		{"gzip only", all, []string{"gzip"}, "gzip"},
		{"x-gzip", all, []string{"x-gzip"}, "gzip"},
		{"equal q prefers br", all, []string{"gzip, deflate, zstd, br"}, "br"},
		{"equal q zstd over gzip", all, []string{"gzip, zstd"}, "zstd"},
		{"higher q wins", all, []string{"br;q=0.5, gzip;q=0.8"}, "gzip"},
		{"q with spaces", all, []string{"br ; q=0.2 , zstd ; q=0.3"}, "zstd"},
		{"q=0 refuses", all, []string{"gzip;q=0"}, ""},
		{"q=0.000 refuses", all, []string{"br;q=0.000, gzip;q=0.001"}, "gzip"},
		{"bad q refuses", all, []string{"br;q=2, gzip;q=abc, zstd;q=0.5"}, "zstd"},
		{"star any", all, []string{"*"}, "br"},
		{"star with refusals", all, []string{"*, br;q=0, zstd;q=0"}, "gzip"},
		{"star lower than gzip", all, []string{"*;q=0.1, gzip"}, "gzip"},
		{"identity only", all, []string{"identity"}, ""},
		{"two fields", all, []string{"gzip;q=0.5", "zstd;q=0.9"}, "zstd"},
		{"case insensitive", all, []string{"GZIP"}, "gzip"},
		{"br off", map[string]any{"br_level": int64(0)}, []string{"br, gzip;q=0.5"}, "gzip"},
		{"all off", map[string]any{"br_level": int64(0), "gzip_level": int64(0), "zstd_level": int64(0)}, []string{"br, gzip, zstd"}, ""},
		{"only unsupported", all, []string{"deflate, compress"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.opts)
			var hdrs []string
			for _, a := range tt.accept {
				hdrs = append(hdrs, "Accept-Encoding: "+a)
			}
			c := plugintest.NewCtx("GET", "/", hdrs...)
			res := plugintest.Run(c, plugintest.Upstream{Header: []string{"Content-Type: text/html"}, Body: body}, p)
			if got := res.Header.Get("Content-Encoding"); got != tt.want {
				t.Fatalf("Content-Encoding %q, want %q", got, tt.want)
			}
			if got := decode(t, tt.want, res.Body); got != body {
				t.Fatal("body does not decode to the original")
			}
			if tt.want == "" && res.Header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("uncompressed compressible response without Vary: %v", res.Header.Fields())
			}
		})
	}
}

func TestSkips(t *testing.T) {
	tests := []struct {
		name     string
		opts     map[string]any
		method   string
		status   int
		headers  []string
		body     string
		noLength bool
	}{
		{"HEAD", nil, "HEAD", 200, []string{"Content-Type: text/html"}, body, false},
		{"204", nil, "GET", 204, []string{"Content-Type: text/html"}, body, false},
		{"304", nil, "GET", 304, []string{"Content-Type: text/html"}, body, false},
		{"206", nil, "GET", 206, []string{"Content-Type: text/html"}, body, false},
		{"content range", nil, "GET", 200, []string{"Content-Type: text/html", "Content-Range: bytes 0-9/100"}, body, false},
		{"already encoded", nil, "GET", 200, []string{"Content-Type: text/html", "Content-Encoding: gzip"}, body, false},
		{"no-transform", nil, "GET", 200, []string{"Content-Type: text/html", "Cache-Control: public, no-transform"}, body, false},
		{"small", nil, "GET", 200, []string{"Content-Type: text/html"}, "tiny", false},
		{"below custom min", map[string]any{"min_length": "20KB"}, "GET", 200, []string{"Content-Type: text/html"}, body, false},
		{"image", nil, "GET", 200, []string{"Content-Type: image/png"}, body, false},
		{"no content type", nil, "GET", 200, nil, body, false},
		{"not in custom types", map[string]any{"types": []any{"application/json"}}, "GET", 200, []string{"Content-Type: text/html"}, body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == nil {
				opts = map[string]any{}
			}
			p := mustNew(t, opts)
			c := plugintest.NewCtx(tt.method, "/", "Accept-Encoding: gzip, br, zstd")
			res := plugintest.Run(c, plugintest.Upstream{Status: tt.status, Header: tt.headers, Body: tt.body}, p)
			if ce := res.Header.Get("Content-Encoding"); ce != "" && ce != "gzip" {
				t.Fatalf("Content-Encoding %q", ce)
			}
			if len(c.BodyFilters()) != 0 {
				t.Fatalf("a filter was installed")
			}
			if res.Body != tt.body {
				t.Fatalf("body changed")
			}
		})
	}
}

func TestTypes(t *testing.T) {
	p := mustNew(t, map[string]any{})
	for ct, want := range map[string]bool{
		"text/html; charset=utf-8":    true,
		"TEXT/CSS":                    true,
		"application/json":            true,
		"application/problem+json":    true,
		"application/atom+xml":        true,
		"image/svg+xml":               true,
		"application/javascript":      true,
		"application/octet-stream":    false,
		"image/jpeg":                  false,
		"text":                        false,
		"application/jsonx":           false,
		"":                            false,
		"application/vnd.api+json; x": true,
	} {
		if got := p.compressible(ct); got != want {
			t.Errorf("compressible(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestUnknownLengthCompressed(t *testing.T) {
	p := mustNew(t, map[string]any{})
	c := plugintest.NewCtx("GET", "/", "Accept-Encoding: gzip")
	// A streamed (unknown length) body is compressed even when small.
	ch := plugin.NewChain(p)
	ch.Request(c)
	c.Resp.Status = 200
	c.Resp.Header.Add("Content-Type", "text/event-stream")
	c.Resp.Body = strings.NewReader("data: 1\n\n")
	c.Resp.ContentLength = -1
	ch.Response(c, 1)
	if c.Resp.Header.Get("Content-Encoding") != "gzip" || len(c.BodyFilters()) != 1 {
		t.Fatalf("streamed response not compressed: %v", c.Resp.Header.Fields())
	}
}

type flushRecorder struct {
	buf     bytes.Buffer
	flushes int
	closed  bool
}

func (f *flushRecorder) Write(p []byte) (int, error) { return f.buf.Write(p) }
func (f *flushRecorder) Flush() error                { f.flushes++; return nil }
func (f *flushRecorder) Close() error                { f.closed = true; return nil }

// TestFlushPassesThrough checks server-sent events: after Flush, what was
// written so far can be decoded by the client without waiting for the end.
func TestFlushPassesThrough(t *testing.T) {
	p := mustNew(t, map[string]any{})
	for codec, name := range codecNames {
		rec := &flushRecorder{}
		w := p.filters[codec](rec)
		event := "data: hello\n\n"
		if _, err := io.WriteString(w, event); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if rec.flushes != 1 {
			t.Fatalf("%s: next flushed %d times", name, rec.flushes)
		}
		got := readPrefix(t, name, rec.buf.Bytes(), len(event))
		if got != event {
			t.Fatalf("%s: after flush the client decodes %q, want %q", name, got, event)
		}
		if err := w.Close(); err != nil || !rec.closed {
			t.Fatalf("%s: close err %v, next closed %v", name, err, rec.closed)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatalf("%s: write after close succeeded", name)
		}
	}
}

// readPrefix decodes n bytes from a stream that is not finished yet.
func readPrefix(t *testing.T, enc string, data []byte, n int) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(data))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("%s: read %d flushed bytes: %v", enc, n, err)
	}
	return string(buf)
}

func TestVaryNotDuplicated(t *testing.T) {
	p := mustNew(t, map[string]any{})
	c := plugintest.NewCtx("GET", "/", "Accept-Encoding: gzip")
	res := plugintest.Run(c, plugintest.Upstream{Header: []string{"Content-Type: text/plain", "Vary: Origin, accept-encoding"}, Body: body}, p)
	if res.Header.Count("Vary") != 1 {
		t.Fatalf("Vary fields %v", res.Header.Fields())
	}
	var h httpx.Header
	addVary(&h, "Accept-Encoding")
	addVary(&h, "Accept-Encoding")
	if h.Count("Vary") != 1 {
		t.Fatalf("Vary fields %v", h.Fields())
	}
}
