package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFiles writes name -> content into a fresh temp dir and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"pingap.toml": base})
	path := filepath.Join(dir, "pingap.toml")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != path {
		t.Errorf("Source = %q, want %q", c.Source, path)
	}
	if got := c.FileOf("upstreams.backend"); got != path {
		t.Errorf("FileOf = %q, want %q", got, path)
	}
	if c.Upstreams["backend"].Addrs[0] != "127.0.0.1:8001" {
		t.Errorf("upstream not decoded: %+v", c.Upstreams)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bad.toml":         "[basic]\nname = 1\n",
		"empty/readme.txt": "no toml here",
	})
	cases := []struct {
		path string
		want string
	}{
		{"", "no config path given"},
		{filepath.Join(dir, "missing.toml"), filepath.Join(dir, "missing.toml") + ": no such file or directory"},
		{filepath.Join(dir, "bad.toml"), filepath.Join(dir, "bad.toml") + ": [basic] name: must be a string, not an integer"},
		{filepath.Join(dir, "empty"), filepath.Join(dir, "empty") + ": folder has no *.toml files"},
	}
	for _, tc := range cases {
		_, err := Load(tc.path)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Load(%q) = %v, want %q", tc.path, err, tc.want)
		}
		var errs Errors
		if !errors.As(err, &errs) {
			t.Errorf("Load(%q): error is %T, want Errors", tc.path, err)
		}
	}
}

func TestLoadFolderMerge(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"00-basic.toml": "[basic]\nname = \"merged\"\naccess_log = false\n",
		"upstreams.toml": `
[upstreams.backend]
addrs = ["127.0.0.1:8001"]
[upstreams.other]
addrs = ["127.0.0.1:8002"]
`,
		"routes.toml": `
[locations.root]
upstream = "backend"
[locations.api]
upstream = "other"
path = "/api"
plugins = ["ping"]
[plugins.ping]
category = "ping"
`,
		"servers.toml": `
[servers.web]
addr = "127.0.0.1:8080"
locations = ["root", "api"]
`,
		"notes.txt":        "[garbage",
		".hidden.toml":     "[garbage",
		"sub/nested.toml":  "[garbage",
		"backup.toml.orig": "[garbage",
	})
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Basic.Name != "merged" || c.Basic.AccessLog.Enabled {
		t.Errorf("basic = %+v", c.Basic)
	}
	if len(c.Upstreams) != 2 || len(c.Locations) != 2 || len(c.Servers) != 1 || len(c.Plugins) != 1 {
		t.Errorf("merged sizes: %d upstreams, %d locations, %d servers, %d plugins",
			len(c.Upstreams), len(c.Locations), len(c.Servers), len(c.Plugins))
	}
	if c.Source != dir {
		t.Errorf("Source = %q", c.Source)
	}
	for section, file := range map[string]string{
		"basic":             "00-basic.toml",
		"upstreams.other":   "upstreams.toml",
		"locations.api":     "routes.toml",
		"plugins.ping":      "routes.toml",
		"servers.web":       "servers.toml",
		"certificates.none": "", // unknown: the folder
		"tracing":           "",
	} {
		want := dir
		if file != "" {
			want = filepath.Join(dir, file)
		}
		if got := c.FileOf(section); got != want {
			t.Errorf("FileOf(%q) = %q, want %q", section, got, want)
		}
	}
}

func TestLoadFolderConflicts(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.toml": `
[basic]
name = "a"
[upstreams.backend]
addrs = ["127.0.0.1:8001"]
[locations.root]
upstream = "backend"
`,
		"b.toml": `
[basic]
name = "b"
[upstreams.backend]
addrs = ["127.0.0.1:9001"]
[servers.web]
addr = "127.0.0.1:8080"
locations = ["root"]
`,
	})
	_, err := Load(dir)
	a, b := filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml")
	want := b + ": [basic] also defined in " + a + " (each section may be defined in one file only)\n" +
		b + ": [upstreams.backend] also defined in " + a + " (each section may be defined in one file only)"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// TestLoadFolderErrorsNameTheirFile checks that validation problems point
// at the file that defines the section, and that decode errors of several
// files are all reported.
func TestLoadFolderErrorsNameTheirFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"up.toml":  "[upstreams.backend]\naddrs = [\"127.0.0.1:8001\"]\n",
		"loc.toml": "[locations.root]\nupstream = \"nope\"\n",
		"srv.toml": "[servers.web]\naddr = \"127.0.0.1:8080\"\nlocations = [\"root\", \"x\"]\n",
	})
	_, err := Load(dir)
	want := filepath.Join(dir, "loc.toml") + `: [locations.root] upstream: unknown upstream "nope"` + "\n" +
		filepath.Join(dir, "srv.toml") + `: [servers.web] locations: unknown location "x"`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}

	dir = writeFiles(t, map[string]string{
		"a.toml": "[basic]\ntypo = 1\n",
		"b.toml": "[upstreams.x]\naddrs = 1\n",
	})
	_, err = Load(dir)
	want = filepath.Join(dir, "a.toml") + ": [basic] typo: unknown key\n" +
		filepath.Join(dir, "b.toml") + ": [upstreams.x] addrs: must be an array of strings, not an integer"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(base), "d.toml")
	if err != nil {
		t.Fatal(err)
	}
	b := c.Basic
	if b.Name != "pingap" || b.GracePeriod.D() != 30*time.Second || b.LogLevel != "info" || b.LogFormat != "json" ||
		b.AccessLog != (AccessLog{Enabled: true}) || b.Threads != 0 {
		t.Errorf("basic defaults: %+v", b)
	}
	u := c.Upstreams["backend"]
	wantU := Upstream{
		Addrs:               []string{"127.0.0.1:8001"},
		Algorithm:           "round_robin",
		HealthCheckInterval: Duration(5 * time.Second),
		HealthCheckTimeout:  Duration(3 * time.Second),
		HealthyThreshold:    2,
		UnhealthyThreshold:  3,
		ConnectionTimeout:   Duration(10 * time.Second),
		ReadTimeout:         Duration(60 * time.Second),
		IdleTimeout:         Duration(90 * time.Second),
		MaxIdleConns:        128,
	}
	if !reflect.DeepEqual(u, wantU) {
		t.Errorf("upstream defaults:\n got %+v\nwant %+v", u, wantU)
	}
	l := c.Locations["root"]
	if l.Path != "/" || l.PathType != "prefix" {
		t.Errorf("location defaults: %+v", l)
	}
	s := c.Servers["web"]
	if s.ReadHeaderTimeout.D() != 10*time.Second || s.IdleTimeout.D() != 120*time.Second || s.MaxHeaderBytes != 64*1024 {
		t.Errorf("server defaults: %+v", s)
	}
	a := c.ACME
	if a.DirectoryURL != "https://acme-v02.api.letsencrypt.org/directory" || a.Storage != "./acme" ||
		a.Challenge != "http-01" || a.RenewBefore.D() != 30*24*time.Hour {
		t.Errorf("acme defaults: %+v", a)
	}
	if c.Tracing.SampleRatio != 1.0 || c.Tracing.ServiceName != "pingap" || c.Tracing.Endpoint != "" {
		t.Errorf("tracing defaults: %+v", c.Tracing)
	}

	// Explicit false / 0 survive; service_name follows basic.name; wrr
	// weights default to 1 each.
	c, err = Parse([]byte(base+`
[basic]
name = "edge"
access_log = false
[tracing]
sample_ratio = 0.0
[upstreams.w]
addrs = ["127.0.0.1:1", "127.0.0.1:2"]
algorithm = "weighted_round_robin"
`), "d.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Basic.AccessLog.Enabled || c.Tracing.SampleRatio != 0 || c.Tracing.ServiceName != "edge" {
		t.Errorf("explicit values lost: access_log %+v sample_ratio %v service_name %q",
			c.Basic.AccessLog, c.Tracing.SampleRatio, c.Tracing.ServiceName)
	}
	if w := c.Upstreams["w"].Weights; !reflect.DeepEqual(w, []int{1, 1}) {
		t.Errorf("wrr weights = %v", w)
	}

	// Idempotent, and Default() is valid apart from having no servers.
	before := Clone(c)
	ApplyDefaults(c)
	if !reflect.DeepEqual(before, c) {
		t.Error("ApplyDefaults is not idempotent")
	}
	d := Default()
	if !d.Basic.AccessLog.Enabled || d.Tracing.SampleRatio != 1 || d.Basic.Name != "pingap" {
		t.Errorf("Default() = %+v", d)
	}
	if err := Validate(d); err != nil {
		t.Errorf("Validate(Default()) = %v", err)
	}
}

func TestAccessLogForms(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  AccessLog
	}{
		{"true", AccessLog{Enabled: true}},
		{"false", AccessLog{}},
		{`"/var/log/access.log"`, AccessLog{Enabled: true, Path: "/var/log/access.log"}},
		{`""`, AccessLog{}},
	} {
		c, err := Parse([]byte("[basic]\naccess_log = "+tc.value+"\n"+base), "a.toml")
		if err != nil {
			t.Fatalf("%s: %v", tc.value, err)
		}
		if c.Basic.AccessLog != tc.want {
			t.Errorf("access_log = %s: got %+v, want %+v", tc.value, c.Basic.AccessLog, tc.want)
		}
	}
}

func TestPluginOptionsKeptRaw(t *testing.T) {
	c, err := Parse([]byte(base+`
[plugins.p]
category = "jwt"
secret = "x"
leeway = 30
ratio = 0.5
algorithms = ["HS256"]
forward_claims = { sub = "X-User" }
`), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plugins["p"]
	want := Plugin{Category: "jwt", Options: map[string]any{
		"secret":         "x",
		"leeway":         int64(30),
		"ratio":          0.5,
		"algorithms":     []any{"HS256"},
		"forward_claims": map[string]any{"sub": "X-User"},
	}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %#v\nwant %#v", p, want)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    *Error
		want string
	}{
		{NewError("f.toml", "upstreams.a", "addrs", "bad"), "f.toml: [upstreams.a] addrs: bad"},
		{NewError("f.toml", "basic", "", "bad"), "f.toml: [basic] bad"},
		{NewError("", "", "key", "bad"), "key: bad"},
		{NewError("", "", "", "bad"), "bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	var es Errors
	if es.Err() != nil {
		t.Error("empty Errors.Err() is not nil")
	}
	es.Add("b.toml", "basic", "name", "x")
	es.Addf("a.toml", "servers.s", "addr", "bad %d", 1)
	es.Append("c.toml", "plugins.p", Errors{NewError("", "", "max", "must be an integer")})
	es.Append("c.toml", "plugins.q", errors.New("boom"))
	es.Append("c.toml", "plugins.r", nil)
	got := es.Err().Error()
	want := strings.Join([]string{
		"a.toml: [servers.s] addr: bad 1",
		"b.toml: [basic] name: x",
		"c.toml: [plugins.p] max: must be an integer",
		"c.toml: [plugins.q] boom",
	}, "\n")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestSection(t *testing.T) {
	if got := Section("upstreams", "a-b_1"); got != "upstreams.a-b_1" {
		t.Error(got)
	}
	if got := Section("locations", "api.v1"); got != `locations."api.v1"` {
		t.Error(got)
	}
}
