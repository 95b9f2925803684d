package admin

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/upstream"
)

// fakeRuntime records what the handler asks of the engine.
type fakeRuntime struct {
	mu        sync.Mutex
	cfg       *config.Config
	applyErr  error
	reloadErr error
	applied   []*config.Config
	reloads   int
	failed    []error
}

func (f *fakeRuntime) Config() *config.Config { f.mu.Lock(); defer f.mu.Unlock(); return f.cfg }
func (f *fakeRuntime) Apply(c *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		return f.applyErr
	}
	f.applied = append(f.applied, c)
	f.cfg = c
	return nil
}
func (f *fakeRuntime) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}
func (f *fakeRuntime) Upstreams() []upstream.UpstreamStatus {
	return []upstream.UpstreamStatus{{Name: "a", Algorithm: "round_robin", Healthy: 1, Addrs: []upstream.AddrStatus{
		{Addr: "127.0.0.1:1", Healthy: true, Weight: 1, Requests: 7, Failures: 2},
		{Addr: "127.0.0.1:2", Healthy: false, Weight: 1, Inflight: 3},
	}}}
}
func (f *fakeRuntime) CheckPlugins(c *config.Config) error {
	var errs config.Errors
	for name, p := range c.Plugins {
		if p.Category == "bad" {
			errs.Add(c.Source, "plugins."+name, "option", "bad option")
		}
	}
	return errs.Err()
}
func (f *fakeRuntime) ReloadFailed(err error) {
	f.mu.Lock()
	f.failed = append(f.failed, err)
	f.mu.Unlock()
}

const baseTOML = `
[basic]
admin_addr = "127.0.0.1:0"
%CREDS%
[upstreams.a]
addrs = ["127.0.0.1:1", "127.0.0.1:2"]
[locations.r]
upstream = "a"
path = "/api"
[servers.main]
addr = "127.0.0.1:0"
locations = ["r"]
`

func mustParse(t *testing.T, creds string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.Replace(baseTOML, "%CREDS%", creds, 1)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// persistRecorder is an Options.Persist that records what it was given.
type persistRecorder struct {
	mu   sync.Mutex
	got  [][]byte
	fail error
}

func (p *persistRecorder) persist(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.got = append(p.got, b)
	return nil
}

func newTest(t *testing.T, creds string) (*fakeRuntime, *persistRecorder, *httptest.Server) {
	t.Helper()
	rt := &fakeRuntime{cfg: mustParse(t, creds)}
	pr := &persistRecorder{}
	srv := httptest.NewServer(New(rt, Options{Logger: slog.New(slog.DiscardHandler), Persist: pr.persist, MaxBodyBytes: 64 << 10}))
	t.Cleanup(srv.Close)
	return rt, pr, srv
}

type reqOpt func(*http.Request)

func withAuth(u, p string) reqOpt   { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func withHost(h string) reqOpt      { return func(r *http.Request) { r.Host = h } }
func adminAuth() reqOpt             { return withAuth("admin", "s3cret") }
func credsLine() string             { return `admin_user = "admin"` + "\n" + `admin_password = "s3cret"` }
func bodyOf(s string) io.Reader     { return strings.NewReader(s) }
func errorsIn(t *testing.T, b []byte) []string {
	t.Helper()
	var v struct{ Errors []string }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not an errors body: %v: %s", err, b)
	}
	return v.Errors
}

func call(t *testing.T, srv *httptest.Server, method, path string, body io.Reader, opts ...reqOpt) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestAuth(t *testing.T) {
	_, _, withCreds := newTest(t, credsLine())
	_, _, open := newTest(t, "")
	tests := []struct {
		name string
		srv  *httptest.Server
		path string
		opts []reqOpt
		want int
	}{
		{"no credentials sent", withCreds, "/api/config", nil, 401},
		{"wrong password", withCreds, "/api/config", []reqOpt{withAuth("admin", "s3cre")}, 401},
		{"wrong user", withCreds, "/api/config", []reqOpt{withAuth("Admin", "s3cret")}, 401},
		{"empty credentials", withCreds, "/api/config", []reqOpt{withAuth("", "")}, 401},
		{"dashboard needs them too", withCreds, "/", nil, 401},
		{"unknown path needs them too", withCreds, "/nope", nil, 401},
		{"right credentials", withCreds, "/api/config", []reqOpt{adminAuth()}, 200},
		{"right credentials, dashboard", withCreds, "/", []reqOpt{adminAuth()}, 200},
		{"credentials and any Host", withCreds, "/api/upstreams", []reqOpt{adminAuth(), withHost("admin.example.com")}, 200},
		{"no credentials configured, loopback", open, "/api/config", nil, 200},
		{"no credentials configured, localhost Host", open, "/api/config", []reqOpt{withHost("localhost:3000")}, 200},
		{"no credentials configured, ::1 Host", open, "/api/config", []reqOpt{withHost("[::1]:3000")}, 200},
		{"no credentials configured, 127.1.2.3 Host", open, "/api/config", []reqOpt{withHost("127.1.2.3")}, 200},
		{"no credentials configured, rebinding Host", open, "/api/config", []reqOpt{withHost("evil.example.com:3000")}, 403},
		{"no credentials configured, public IP Host", open, "/api/config", []reqOpt{withHost("10.0.0.1:3000")}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, tt.srv, "GET", tt.path, nil, tt.opts...)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.want == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic realm=") {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
		})
	}
}

func TestCheckBasic(t *testing.T) {
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"admin", "s3cret", true},
		{"admin", "s3cret ", false},
		{"admin ", "s3cret", false},
		{"adm", "ins3cret", false}, // the same concatenation must not pass
		{"", "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(tt.user, tt.pass)
		if got := checkBasic(r, "admin", "s3cret"); got != tt.want {
			t.Errorf("checkBasic(%q, %q) = %v, want %v", tt.user, tt.pass, got, tt.want)
		}
	}
	if checkBasic(httptest.NewRequest("GET", "/", nil), "admin", "s3cret") {
		t.Error("a request without Authorization passed")
	}
}

func TestGetConfig(t *testing.T) {
	rt, _, srv := newTest(t, credsLine())
	resp, body := call(t, srv, "GET", "/api/config", nil, adminAuth())
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var got struct {
		Basic struct {
			AdminUser string `json:"admin_user"`
		}
		Upstreams map[string]struct{ Addrs []string }
		Locations map[string]struct{ Path string }
		Servers   map[string]struct{ Addr string }
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Upstreams["a"].Addrs, rt.cfg.Upstreams["a"].Addrs) || got.Locations["r"].Path != "/api" ||
		got.Servers["main"].Addr != "127.0.0.1:0" || got.Basic.AdminUser != "admin" || !strings.Contains(string(body), `"grace_period": "30s"`) {
		t.Errorf("JSON config does not match the running one: %s", body)
	}

	resp, body = call(t, srv, "GET", "/api/config?format=toml", nil, adminAuth())
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/toml") {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	back, err := config.Parse(body, "test.toml")
	if err != nil {
		t.Fatalf("the TOML does not parse back: %v\n%s", err, body)
	}
	if !reflect.DeepEqual(back, rt.cfg) {
		t.Errorf("TOML round trip differs:\n%+v\n%+v", back, rt.cfg)
	}

	resp, body = call(t, srv, "GET", "/api/config?format=yaml", nil, adminAuth())
	if resp.StatusCode != 400 || len(errorsIn(t, body)) != 1 {
		t.Errorf("format=yaml: %d %s", resp.StatusCode, body)
	}
}

func TestPutConfig(t *testing.T) {
	changed := strings.Replace(strings.Replace(baseTOML, "%CREDS%", credsLine(), 1), `path = "/api"`, `path = "/v2"`, 1)
	t.Run("valid: applied, then persisted as sent", func(t *testing.T) {
		rt, pr, srv := newTest(t, credsLine())
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth())
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if len(rt.applied) != 1 || rt.applied[0].Locations["r"].Path != "/v2" || rt.applied[0].Source != "test.toml" {
			t.Fatalf("applied %+v", rt.applied)
		}
		if len(pr.got) != 1 || string(pr.got[0]) != changed {
			t.Fatalf("persisted %q", pr.got)
		}
	})
	t.Run("invalid: 400 with every problem, nothing applied or persisted", func(t *testing.T) {
		rt, pr, srv := newTest(t, credsLine())
		bad := strings.Replace(changed, `upstream = "a"`, `upstream = "nope"`, 1)
		bad = strings.Replace(bad, `path = "/v2"`, `path = "v2"`+"\n"+`colour = "blue"`, 1)
		bad += "[plugins.p]\ncategory = \"bad\"\n"
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(bad), adminAuth())
		if resp.StatusCode != 400 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		errs := errorsIn(t, body)
		want := []string{`[locations.r] colour`, `[locations.r] path`, `[locations.r] upstream`, `[plugins.p] option: bad option`}
		for _, w := range want {
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e, w)
			}
			if !found {
				t.Errorf("no problem about %q in %q", w, errs)
			}
		}
		if len(rt.applied) != 0 || len(pr.got) != 0 || rt.cfg.Locations["r"].Path != "/api" {
			t.Errorf("an invalid config changed something: applied %d, persisted %d", len(rt.applied), len(pr.got))
		}
		if len(rt.failed) != 1 {
			t.Errorf("ReloadFailed called %d times, want 1 (config_reloads_total)", len(rt.failed))
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		_, pr, srv := newTest(t, credsLine())
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf("[basic\nname="), adminAuth())
		if resp.StatusCode != 400 || len(errorsIn(t, body)) == 0 || len(pr.got) != 0 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("apply fails: 400, not persisted", func(t *testing.T) {
		rt, pr, srv := newTest(t, credsLine())
		rt.applyErr = config.Errors{config.NewError("test.toml", "servers.main", "", "addr: address already in use")}
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth())
		if resp.StatusCode != 400 || len(pr.got) != 0 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if errs := errorsIn(t, body); len(errs) != 1 || !strings.Contains(errs[0], "address already in use") {
			t.Errorf("errors %q", errs)
		}
	})
	t.Run("persist fails: 500, applied reported", func(t *testing.T) {
		_, pr, srv := newTest(t, credsLine())
		pr.fail = errors.New("read-only file system")
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth())
		var v struct {
			Applied, Persisted bool
			Errors             []string
		}
		json.Unmarshal(body, &v)
		if resp.StatusCode != 500 || !v.Applied || v.Persisted || len(v.Errors) != 1 || !strings.Contains(v.Errors[0], "read-only") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("source not writable: 409, nothing applied", func(t *testing.T) {
		rt := &fakeRuntime{cfg: mustParse(t, "")}
		srv := httptest.NewServer(New(rt, Options{Logger: slog.New(slog.DiscardHandler)}))
		defer srv.Close()
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed))
		if resp.StatusCode != 409 || len(rt.applied) != 0 || len(errorsIn(t, body)) != 1 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("too large: 413", func(t *testing.T) {
		rt, _, srv := newTest(t, credsLine())
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed+"#"+strings.Repeat("x", 70<<10)), adminAuth())
		if resp.StatusCode != 413 || len(rt.applied) != 0 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("cross-origin browser request: 403", func(t *testing.T) {
		rt, _, srv := newTest(t, credsLine())
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth(), withHeader("Sec-Fetch-Site", "cross-site"))
		if resp.StatusCode != 403 || len(rt.applied) != 0 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		resp, body = call(t, srv, "POST", "/api/reload", nil, adminAuth(), withHeader("Origin", "https://evil.example"))
		if resp.StatusCode != 403 || rt.reloads != 0 {
			t.Fatalf("reload: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("same-origin browser request passes", func(t *testing.T) {
		rt, _, srv := newTest(t, credsLine())
		resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth(), withHeader("Sec-Fetch-Site", "same-origin"))
		if resp.StatusCode != 200 || len(rt.applied) != 1 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

func TestReload(t *testing.T) {
	rt, _, srv := newTest(t, credsLine())
	resp, body := call(t, srv, "POST", "/api/reload", nil, adminAuth())
	if resp.StatusCode != 200 || rt.reloads != 1 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	rt.reloadErr = config.Errors{
		config.NewError("test.toml", "upstreams.a", "addrs", "entry 1: bad"),
		config.NewError("test.toml", "locations.r", "path", "must start with /"),
	}
	resp, body = call(t, srv, "POST", "/api/reload", nil, adminAuth())
	if errs := errorsIn(t, body); resp.StatusCode != 400 || len(errs) != 2 || errs[0] != "test.toml: [upstreams.a] addrs: entry 1: bad" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, _ = call(t, srv, "GET", "/api/reload", nil, adminAuth())
	if resp.StatusCode != 405 {
		t.Errorf("GET /api/reload: %d, want 405", resp.StatusCode)
	}
}

func TestUpstreams(t *testing.T) {
	_, _, srv := newTest(t, credsLine())
	resp, body := call(t, srv, "GET", "/api/upstreams", nil, adminAuth())
	var v struct{ Upstreams []upstream.UpstreamStatus }
	if err := json.Unmarshal(body, &v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v %s", resp.StatusCode, err, body)
	}
	if len(v.Upstreams) != 1 || len(v.Upstreams[0].Addrs) != 2 || !v.Upstreams[0].Addrs[0].Healthy ||
		v.Upstreams[0].Addrs[1].Healthy || v.Upstreams[0].Addrs[0].Requests != 7 || v.Upstreams[0].Addrs[1].Inflight != 3 {
		t.Errorf("upstreams %s", body)
	}
}

func TestDashboard(t *testing.T) {
	_, _, srv := newTest(t, credsLine())
	resp, body := call(t, srv, "GET", "/", nil, adminAuth())
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), `src="app.js"`) {
		t.Fatalf("%d %s: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = call(t, srv, "GET", "/app.js", nil, adminAuth())
	for _, want := range []string{"api/config", "api/upstreams", "api/reload", `"PUT"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("app.js does not use %s", want)
		}
	}
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Errorf("app.js: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ = call(t, srv, "GET", "/style.css", nil, adminAuth()); resp.StatusCode != 200 {
		t.Errorf("style.css: %d", resp.StatusCode)
	}
	if resp, _ = call(t, srv, "GET", "/missing.js", nil, adminAuth()); resp.StatusCode != 404 {
		t.Errorf("missing file: %d", resp.StatusCode)
	}
}

func TestStatus(t *testing.T) {
	_, _, srv := newTest(t, credsLine())
	_, body := call(t, srv, "GET", "/api/status", nil, adminAuth())
	var v struct {
		Name, Source string
		Writable     bool
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Name != "pingap" || v.Source != "test.toml" || !v.Writable {
		t.Errorf("%v %s", err, body)
	}
}

func TestNotStarted(t *testing.T) {
	srv := httptest.NewServer(New(&fakeRuntime{}, Options{}))
	defer srv.Close()
	resp, body := call(t, srv, "GET", "/api/config", nil)
	if resp.StatusCode != 503 {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestIfMatch(t *testing.T) {
	rt, pr, srv := newTest(t, credsLine())
	resp, _ := call(t, srv, "GET", "/api/config?format=toml", nil, adminAuth())
	etag := resp.Header.Get("ETag")
	if resp, _ := call(t, srv, "GET", "/api/config", nil, adminAuth()); etag == "" || resp.Header.Get("ETag") != etag {
		t.Fatalf("ETag %q (TOML) vs %q (JSON)", etag, resp.Header.Get("ETag"))
	}
	changed := strings.Replace(strings.Replace(baseTOML, "%CREDS%", credsLine(), 1), `path = "/api"`, `path = "/v2"`, 1)
	resp, body := call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth(), withHeader("If-Match", etag))
	if resp.StatusCode != 200 {
		t.Fatalf("PUT with the current ETag: %d %s", resp.StatusCode, body)
	}
	next := resp.Header.Get("ETag")
	if next == "" || next == etag {
		t.Fatalf("ETag after PUT %q (before %q)", next, etag)
	}
	// The old ETag is stale now.
	resp, body = call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth(), withHeader("If-Match", etag))
	if resp.StatusCode != 412 || len(rt.applied) != 1 || len(pr.got) != 1 {
		t.Fatalf("PUT with a stale ETag: %d %s (applied %d)", resp.StatusCode, body, len(rt.applied))
	}
	resp, body = call(t, srv, "PUT", "/api/config", bodyOf(changed), adminAuth(), withHeader("If-Match", "*"))
	if resp.StatusCode != 200 {
		t.Fatalf("If-Match *: %d %s", resp.StatusCode, body)
	}
}
