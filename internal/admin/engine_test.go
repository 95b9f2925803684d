package admin

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/engine"
)

// TestWithEngine drives a real engine through the admin handler: a PUT
// changes routing and the file, an invalid PUT changes neither.
func TestWithEngine(t *testing.T) {
	backend := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	a, b := backend("a"), backend("b")
	render := func(target string) string {
		return fmt.Sprintf(`
[basic]
access_log = false
admin_addr = "127.0.0.1:0"
[upstreams.a]
addrs = [%q]
[upstreams.b]
addrs = [%q]
[locations.r]
upstream = %q
[servers.main]
addr = "127.0.0.1:0"
locations = ["r"]
`, a, b, target)
	}
	path := filepath.Join(t.TempDir(), "pingap.toml")
	if err := os.WriteFile(path, []byte(render("a")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	e := engine.New(engine.Options{
		Logger: slog.New(slog.DiscardHandler),
		Load:   func() (*config.Config, error) { return config.Load(path) },
		Admin: func(e *engine.Engine) http.Handler {
			h = ForEngine(Options{Logger: slog.New(slog.DiscardHandler), Persist: PersistFile(path)})(e)
			return h
		},
	})
	if err := e.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(t.Context()) })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	proxied := func() string {
		t.Helper()
		resp, err := http.Get("http://" + e.Addr("main") + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := proxied(); got != "a" {
		t.Fatalf("before: %q", got)
	}
	if resp, body := call(t, srv, "PUT", "/api/config", strings.NewReader(render("b"))); resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	if got := proxied(); got != "b" {
		t.Errorf("after PUT: %q, want b", got)
	}
	if disk, _ := os.ReadFile(path); string(disk) != render("b") {
		t.Errorf("file not persisted: %s", disk)
	}
	// An invalid config (a plugin option only the engine's build checks).
	bad := render("a") + "[plugins.x]\ncategory = \"no_such_category\"\n"
	resp, body := call(t, srv, "PUT", "/api/config", strings.NewReader(bad))
	if resp.StatusCode != 400 || len(errorsIn(t, body)) == 0 {
		t.Fatalf("bad PUT: %d %s", resp.StatusCode, body)
	}
	if got := proxied(); got != "b" {
		t.Errorf("after a bad PUT: %q, want b", got)
	}
	if disk, _ := os.ReadFile(path); string(disk) != render("b") {
		t.Errorf("a bad PUT touched the file: %s", disk)
	}
	// Reload picks up an edit of the file.
	if err := os.WriteFile(path, []byte(render("a")), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, body := call(t, srv, "POST", "/api/reload", nil); resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if got := proxied(); got != "a" {
		t.Errorf("after reload: %q, want a", got)
	}
	// The engine started the admin server itself and lists its socket.
	if n := len(e.Listeners()); n != 2 {
		t.Errorf("engine listeners: %d, want 2 (server and admin)", n)
	}
	for _, ln := range e.Listeners() {
		if _, _, err := net.SplitHostPort(ln.Addr().String()); err != nil {
			t.Error(err)
		}
	}
}
