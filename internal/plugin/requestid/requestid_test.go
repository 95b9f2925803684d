package requestid

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// answer is a later plugin that answers itself.
type answer struct{}

func (answer) Request(c *httpx.Ctx) bool { c.SendString(204, "", ""); return true }

func TestRequestID(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		headers []string
		header  string
		want    *regexp.Regexp
		keep    string // expected kept client id
	}{
		{name: "uuid default", opts: map[string]any{}, header: "X-Request-Id", want: uuidRe},
		{name: "keeps client id", opts: map[string]any{}, headers: []string{"X-Request-Id: abc-123"}, header: "X-Request-Id", keep: "abc-123"},
		{name: "replaces invalid client id", opts: map[string]any{}, headers: []string{"X-Request-Id: a b"}, header: "X-Request-Id", want: uuidRe},
		{name: "replaces overlong client id", opts: map[string]any{}, headers: []string{"X-Request-Id: " + strings.Repeat("a", 200)}, header: "X-Request-Id", want: uuidRe},
		{name: "overwrite", opts: map[string]any{"overwrite": true}, headers: []string{"X-Request-Id: abc-123"}, header: "X-Request-Id", want: uuidRe},
		{name: "custom header", opts: map[string]any{"header": "X-Trace", "algorithm": "uuid"}, headers: []string{"X-Request-Id: abc"}, header: "X-Trace", want: uuidRe},
		{name: "nanoid", opts: map[string]any{"algorithm": "nanoid"}, header: "X-Request-Id", want: regexp.MustCompile(`^[A-Za-z0-9_-]{21}$`)},
		{name: "nanoid size", opts: map[string]any{"algorithm": "nanoid", "size": 32}, header: "X-Request-Id", want: regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := plugintest.NewCtx("GET", "/", tt.headers...)
			res := plugintest.Run(c, plugintest.Upstream{}, p)
			id := c.RequestID
			if tt.keep != "" && id != tt.keep {
				t.Fatalf("id %q, want the client's %q", id, tt.keep)
			}
			if tt.want != nil && !tt.want.MatchString(id) {
				t.Fatalf("id %q does not match %s", id, tt.want)
			}
			if got := res.UpstreamHeader.Get(tt.header); got != id || res.UpstreamHeader.Count(tt.header) != 1 {
				t.Fatalf("upstream %s = %q (x%d), want %q", tt.header, got, res.UpstreamHeader.Count(tt.header), id)
			}
			if got := res.Header.Get(tt.header); got != id {
				t.Fatalf("response %s = %q, want %q", tt.header, got, id)
			}
		})
	}
}

func TestRequestIDOnLocalAnswer(t *testing.T) {
	p, _ := New(plugin.Env{}, nil)
	c := plugintest.NewCtx("GET", "/")
	res := plugintest.Run(c, plugintest.Upstream{}, p, answer{})
	if res.Upstream || res.Status != 204 || !uuidRe.MatchString(res.Header.Get("X-Request-Id")) {
		t.Fatalf("status %d, id %q", res.Status, res.Header.Get("X-Request-Id"))
	}
}

func TestRequestIDUnique(t *testing.T) {
	for _, alg := range []string{"uuid", "nanoid"} {
		pp, _ := New(plugin.Env{}, map[string]any{"algorithm": alg})
		p := pp.(*RequestID)
		var mu sync.Mutex
		seen := map[string]bool{}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ { // crosses several 4 KB batches
					id := p.NewID()
					mu.Lock()
					if seen[id] {
						t.Errorf("%s: duplicate id %s", alg, id)
					}
					seen[id] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != 8000 {
			t.Fatalf("%s: %d ids", alg, len(seen))
		}
	}
}

func TestRequestIDConfigErrors(t *testing.T) {
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"algorithm": "ulid"}, "algorithm"},
		{map[string]any{"algorithm": "nanoid", "size": 4}, "size"},
		{map[string]any{"algorithm": "nanoid", "size": 1000}, "size"},
		{map[string]any{"size": 21}, "size"},
		{map[string]any{"algorithm": "nanoid", "size": "21"}, "size"},
		{map[string]any{"header": "X Id"}, "header"},
		{map[string]any{"overwrite": "yes"}, "overwrite"},
		{map[string]any{"headers": "x"}, "headers"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}
