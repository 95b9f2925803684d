package bodylimit

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{"ok string", map[string]any{"max": "1KB"}, ""},
		{"ok int", map[string]any{"max": int64(10)}, ""},
		{"missing", map[string]any{}, "max"},
		{"zero", map[string]any{"max": int64(0)}, "max"},
		{"bad size", map[string]any{"max": "lots"}, "max"},
		{"unknown key", map[string]any{"max": "1KB", "min": "1"}, "min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(plugin.Env{Name: "bl"}, tt.opts)
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

func TestRequest(t *testing.T) {
	p, err := New(plugin.Env{Name: "bl"}, map[string]any{"max": int64(10)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		body       string
		chunked    bool
		wantStatus int
		wantUp     bool
		wantBody   string // upstream body seen
	}{
		{"no body", "", false, 200, true, ""},
		{"under", "hello", false, 200, true, "hello"},
		{"exact", "0123456789", false, 200, true, "0123456789"},
		{"over declared", "0123456789x", false, 413, false, ""},
		{"chunked under", "hello", true, 200, true, "hello"},
		{"chunked exact", "0123456789", true, 200, true, "0123456789"},
		{"chunked over", "0123456789xyz", true, 200, true, "0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := plugintest.NewCtx("POST", "/up")
			if tt.body != "" {
				plugintest.SetBody(c, tt.body)
			}
			if tt.chunked {
				c.Req.ContentLength = -1
			}
			res := plugintest.Run(c, plugintest.Upstream{Body: "ok"}, p)
			if res.Status != tt.wantStatus || res.Upstream != tt.wantUp {
				t.Fatalf("status %d upstream %v, want %d %v", res.Status, res.Upstream, tt.wantStatus, tt.wantUp)
			}
			if res.UpstreamBody != tt.wantBody {
				t.Fatalf("upstream body %q, want %q", res.UpstreamBody, tt.wantBody)
			}
			if tt.wantStatus == 413 && !strings.Contains(res.Body, `"error"`) {
				t.Fatalf("413 body %q is not the JSON error body", res.Body)
			}
		})
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int64
		want    string
		wantErr error
	}{
		{"empty", "", 0, "", nil},
		{"zero max with data", "a", 0, "", httpx.ErrBodyTooLarge},
		{"under", "abc", 5, "abc", nil},
		{"exact", "abcde", 5, "abcde", nil},
		{"over", "abcdef", 5, "abcde", httpx.ErrBodyTooLarge},
		{"far over", strings.Repeat("x", 100000), 1000, strings.Repeat("x", 1000), httpx.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tt.in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				got, err := io.ReadAll(NewReader(r, tt.max))
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if string(got) != tt.want {
					t.Fatalf("read %d bytes, want %d", len(got), len(tt.want))
				}
			})
		}
	}
}

func TestReaderStickyError(t *testing.T) {
	r := NewReader(strings.NewReader("abcdef"), 2)
	buf := make([]byte, 10)
	if _, err := r.Read(buf); err != httpx.ErrBodyTooLarge {
		t.Fatalf("first read err = %v", err)
	}
	if n, err := r.Read(buf); n != 0 || err != httpx.ErrBodyTooLarge {
		t.Fatalf("second read = %d, %v; want 0, ErrBodyTooLarge", n, err)
	}
}
