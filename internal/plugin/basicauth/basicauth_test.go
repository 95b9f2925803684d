package basicauth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func basic(user, pass string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func bcryptHash(t testing.TB, pass string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestBasicAuth(t *testing.T) {
	users := []any{"alice:secret", "bob:" + bcryptHash(t, "hunter2"), "carol:pa:ss"}
	tests := []struct {
		name    string
		opts    map[string]any
		headers []string
		status  int
		kept    bool // Authorization reaches the upstream
	}{
		{name: "plain ok", headers: []string{basic("alice", "secret")}, status: 200},
		{name: "password with colon", headers: []string{basic("carol", "pa:ss")}, status: 200},
		{name: "bcrypt ok", headers: []string{basic("bob", "hunter2")}, status: 200},
		{name: "kept", opts: map[string]any{"hide_credentials": false}, headers: []string{basic("alice", "secret")}, status: 200, kept: true},
		{name: "lowercase scheme", headers: []string{"Authorization: basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))}, status: 200},
		{name: "missing", status: 401},
		{name: "wrong plain", headers: []string{basic("alice", "secret2")}, status: 401},
		{name: "wrong bcrypt", headers: []string{basic("bob", "hunter3")}, status: 401},
		{name: "unknown user", headers: []string{basic("mallory", "secret")}, status: 401},
		{name: "other user's password", headers: []string{basic("bob", "secret")}, status: 401},
		{name: "bearer", headers: []string{"Authorization: Bearer abc"}, status: 401},
		{name: "bad base64", headers: []string{"Authorization: Basic !!!"}, status: 401},
		{name: "no colon", headers: []string{"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))}, status: 401},
		{name: "too long", headers: []string{basic("alice", strings.Repeat("x", 2000))}, status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := map[string]any{"users": users, "realm": "api"}
			for k, v := range tt.opts {
				opts[k] = v
			}
			p, err := New(plugin.Env{}, opts)
			if err != nil {
				t.Fatal(err)
			}
			res := plugintest.Run(plugintest.NewCtx("GET", "/", tt.headers...), plugintest.Upstream{}, p)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.status == 401 {
				if res.Upstream {
					t.Fatal("upstream saw a refused request")
				}
				if got := res.Header.Get("WWW-Authenticate"); got != `Basic realm="api", charset="UTF-8"` {
					t.Fatalf("WWW-Authenticate = %q", got)
				}
				if !strings.HasPrefix(res.Body, `{"error":`) {
					t.Fatalf("body %q", res.Body)
				}
				return
			}
			if !res.Upstream || res.UpstreamHeader.Has("Authorization") != tt.kept {
				t.Fatalf("upstream=%v authorization kept=%v, want %v", res.Upstream, res.UpstreamHeader.Has("Authorization"), tt.kept)
			}
		})
	}
}

func TestBasicAuthBcryptCache(t *testing.T) {
	pp, err := New(plugin.Env{}, map[string]any{"users": []any{"bob:" + bcryptHash(t, "hunter2")}})
	if err != nil {
		t.Fatal(err)
	}
	p := pp.(*BasicAuth)
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }
	run := func(pass string) int {
		return plugintest.Run(plugintest.NewCtx("GET", "/", basic("bob", pass)), plugintest.Upstream{}, p).Status
	}
	if run("wrong") != 401 || len(p.cache) != 0 {
		t.Fatal("a failed verification must not be cached")
	}
	if run("hunter2") != 200 || len(p.cache) != 1 {
		t.Fatalf("success not cached (%d entries)", len(p.cache))
	}
	// A cached success answers without bcrypt: break the hash to prove it.
	p.users[0].hash = []byte("$2a$04$invalidinvalidinvalidinvalidinvalidinvalidinvalidinval")
	if run("hunter2") != 200 {
		t.Fatal("cached credential refused")
	}
	if run("wrong") != 401 {
		t.Fatal("cache let a wrong password in")
	}
	now = now.Add(cacheTTL + time.Second)
	if run("hunter2") != 401 {
		t.Fatal("expired cache entry still trusted")
	}
}

func TestBasicAuthConfigErrors(t *testing.T) {
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{}, "users"},
		{map[string]any{"users": []any{"alice"}}, "users"},
		{map[string]any{"users": []any{":x"}}, "users"},
		{map[string]any{"users": []any{"a:x", "a:y"}}, "users"},
		{map[string]any{"users": []any{"a:$2a$10$short"}}, "users"},
		{map[string]any{"users": "a:b"}, "users"},
		{map[string]any{"users": []any{"a:b"}, "realm": `a"b`}, "realm"},
		{map[string]any{"users": []any{"a:b"}, "hide_credentials": 1}, "hide_credentials"},
		{map[string]any{"users": []any{"a:b"}, "realms": "x"}, "realms"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

// TestBasicAuthUnknownNameCostsABcrypt: with bcrypt users configured, a
// name that does not exist runs one bcrypt comparison like a wrong password
// for an existing name does, so response times do not reveal which names
// exist. Counted, not timed.
func TestBasicAuthUnknownNameCostsABcrypt(t *testing.T) {
	tests := []struct {
		name        string
		users       []any
		user, pass  string
		wantStatus  int
		wantBcrypts int
	}{
		{"wrong password of a bcrypt user", []any{"alice:plain", "bob:" + bcryptHash(t, "hunter2")}, "bob", "nope", 401, 1},
		{"unknown name", []any{"alice:plain", "bob:" + bcryptHash(t, "hunter2")}, "mallory", "nope", 401, 1},
		{"unknown name with a real user's password", []any{"alice:plain", "bob:" + bcryptHash(t, "hunter2")}, "mallory", "hunter2", 401, 1},
		{"right password of a bcrypt user", []any{"alice:plain", "bob:" + bcryptHash(t, "hunter2")}, "bob", "hunter2", 200, 1},
		{"plain user", []any{"alice:plain", "bob:" + bcryptHash(t, "hunter2")}, "alice", "plain", 200, 0},
		{"unknown name, plain users only", []any{"alice:plain"}, "mallory", "nope", 401, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pp, err := New(plugin.Env{}, map[string]any{"users": tt.users})
			if err != nil {
				t.Fatal(err)
			}
			p := pp.(*BasicAuth)
			calls := 0
			p.compare = func(hash, pw []byte) error { calls++; return bcrypt.CompareHashAndPassword(hash, pw) }
			got := plugintest.Run(plugintest.NewCtx("GET", "/", basic(tt.user, tt.pass)), plugintest.Upstream{}, p).Status
			if got != tt.wantStatus || calls != tt.wantBcrypts {
				t.Fatalf("status %d with %d bcrypt comparisons, want %d with %d", got, calls, tt.wantStatus, tt.wantBcrypts)
			}
		})
	}
}
