package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	etcdtest "github.com/pingap-go/pingap/internal/testutil/etcd"
)

// adConfig renders a config with the admin API on 127.0.0.1:0 (with
// credentials), metrics on maddr, location /r routed to target, and an
// upstream "hc" whose first addr is down and health-checked.
func adConfig(maddr, target, a, b, dead string) string {
	c := abConfig(fmt.Sprintf(`metrics_addr = %q
admin_addr = "127.0.0.1:0"
admin_user = "ops"
admin_password = "s3cret pass"
grace_period = "5s"`, maddr), target, a, b)
	c.Upstreams = append(c.Upstreams, siteUpstream{Name: "hc", Addrs: []string{dead, a}, Opts: `health_check = "http://check.local/health"
health_check_interval = "100ms"
health_check_timeout = "500ms"
healthy_threshold = 1
unhealthy_threshold = 1`})
	return c.String()
}

// adStart starts pingap and returns it with the admin base URL (read from
// the "admin listening" log line, since admin_addr uses port 0).
func adStart(t *testing.T, path string, servers ...string) (*proc, string) {
	t.Helper()
	p := start(t, path, servers...)
	l := p.waitLog("admin listening", nil)
	return p, "http://" + fmt.Sprint(l["addr"])
}

// adDo sends an admin request with the test's credentials.
func adDo(t *testing.T, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return do(t, method, url, rd, adAuthHeader("ops", "s3cret pass"))
}

func adAuthHeader(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return "Authorization: " + r.Header.Get("Authorization")
}

func adErrors(t *testing.T, body []byte) []string {
	t.Helper()
	var v struct {
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not an errors body: %v: %s", err, body)
	}
	return v.Errors
}

// adRequestSeries returns every http_requests_total line of the metrics.
func adRequestSeries(t *testing.T, maddr string) string {
	t.Helper()
	_, body := do(t, "GET", "http://"+maddr+"/metrics", nil)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "http_requests_total{") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestAdminAPI(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	dead := freeAddr(t)
	maddr := freeAddr(t)
	path := writeConfig(t, adConfig(maddr, "a", a.Addr, b.Addr, dead))
	p, admin := adStart(t, path, "main")
	url := p.url("main") + "/x"
	if got := backendName(t, url); got != "a" {
		t.Fatalf("before: backend %q", got)
	}

	t.Run("credentials required", func(t *testing.T) {
		for _, path := range []string{"/", "/api/config", "/api/upstreams"} {
			resp, _ := do(t, "GET", admin+path, nil)
			if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("GET %s without credentials: %d %q", path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			resp, _ = do(t, "GET", admin+path, nil, adAuthHeader("ops", "wrong"))
			if resp.StatusCode != 401 {
				t.Errorf("GET %s with a wrong password: %d", path, resp.StatusCode)
			}
			resp, _ = adDo(t, "GET", admin+path, "")
			if resp.StatusCode != 200 {
				t.Errorf("GET %s with credentials: %d", path, resp.StatusCode)
			}
		}
		resp, _ := do(t, "POST", admin+"/api/reload", nil)
		if resp.StatusCode != 401 {
			t.Errorf("POST /api/reload without credentials: %d", resp.StatusCode)
		}
		resp, _ = do(t, "PUT", admin+"/api/config", strings.NewReader("x"))
		if resp.StatusCode != 401 {
			t.Errorf("PUT /api/config without credentials: %d", resp.StatusCode)
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		resp, body := adDo(t, "GET", admin+"/", "")
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "<html") {
			t.Fatalf("GET /: %s %.300s", resp.Header.Get("Content-Type"), body)
		}
		if !strings.Contains(string(body), `src="app.js"`) {
			t.Fatalf("the page does not load app.js: %s", body)
		}
		resp, js := adDo(t, "GET", admin+"/app.js", "")
		if resp.StatusCode != 200 {
			t.Fatalf("app.js: %d", resp.StatusCode)
		}
		for _, api := range []string{"api/config", "api/config?format=toml", "api/upstreams", "api/reload"} {
			if !strings.Contains(string(js), api) {
				t.Errorf("the dashboard does not use %s", api)
			}
		}
	})

	t.Run("config as JSON", func(t *testing.T) {
		resp, body := adDo(t, "GET", admin+"/api/config", "")
		var cfg struct {
			Basic struct {
				AdminAddr string `json:"admin_addr"`
			} `json:"basic"`
			Upstreams map[string]struct {
				Addrs []string `json:"addrs"`
			} `json:"upstreams"`
			Locations map[string]struct {
				Upstream string `json:"upstream"`
			} `json:"locations"`
			Servers map[string]struct {
				Addr string `json:"addr"`
			} `json:"servers"`
		}
		if err := json.Unmarshal(body, &cfg); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%v %s: %s", err, resp.Header.Get("Content-Type"), body)
		}
		if cfg.Basic.AdminAddr != "127.0.0.1:0" || cfg.Upstreams["b"].Addrs[0] != b.Addr || cfg.Locations["r"].Upstream != "a" || cfg.Servers["main"].Addr != "127.0.0.1:0" {
			t.Errorf("JSON is not the running config: %s", body)
		}
	})

	t.Run("TOML round trip", func(t *testing.T) {
		_, toml1 := adDo(t, "GET", admin+"/api/config?format=toml", "")
		if !strings.Contains(string(toml1), "[servers.main]") {
			t.Fatalf("not TOML: %s", toml1)
		}
		resp, body := adDo(t, "PUT", admin+"/api/config", string(toml1))
		if resp.StatusCode != 200 {
			t.Fatalf("PUT of the GET: %d %s", resp.StatusCode, body)
		}
		_, toml2 := adDo(t, "GET", admin+"/api/config?format=toml", "")
		if string(toml1) != string(toml2) {
			t.Errorf("TOML changed by a round trip:\n%s\n---\n%s", toml1, toml2)
		}
		if got := backendName(t, url); got != "a" {
			t.Errorf("after the round trip: backend %q", got)
		}
	})

	t.Run("PUT applies and persists", func(t *testing.T) {
		next := adConfig(maddr, "b", a.Addr, b.Addr, dead)
		resp, body := adDo(t, "PUT", admin+"/api/config", next)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT: %d %s", resp.StatusCode, body)
		}
		if got := backendName(t, url); got != "b" {
			t.Errorf("after PUT: backend %q, want b", got)
		}
		disk, err := os.ReadFile(path)
		if err != nil || string(disk) != next {
			t.Errorf("the file does not hold the new config (%v):\n%s", err, disk)
		}
		if v := metricValue(t, maddr, `config_reloads_total{result="success"}`); v != "2" {
			t.Errorf(`config_reloads_total{result="success"} = %q, want 2 (two PUTs)`, v)
		}
	})

	t.Run("invalid PUT changes nothing", func(t *testing.T) {
		before, _ := os.ReadFile(path)
		bad := strings.Replace(adConfig(maddr, "missing", a.Addr, b.Addr, dead), `path = "/"`, `path = "/"`+"\ncolour = \"blue\"", 1)
		bad += "[upstreams.c]\naddrs = [\"no-port\"]\n[plugins.m]\ncategory = \"mock\"\nstatus = 42\n"
		resp, body := adDo(t, "PUT", admin+"/api/config", bad)
		if resp.StatusCode != 400 {
			t.Fatalf("invalid PUT: %d %s", resp.StatusCode, body)
		}
		errs := adErrors(t, body)
		for _, want := range []string{"[locations.r] colour", "[locations.r] upstream", "[upstreams.c] addrs", "[plugins.m] status"} {
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e, want)
			}
			if !found {
				t.Errorf("no problem about %q in %q", want, errs)
			}
		}
		if got := backendName(t, url); got != "b" {
			t.Errorf("after an invalid PUT: backend %q, want the old b", got)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Errorf("an invalid PUT touched the file:\n%s", after)
		}
		if v := metricValue(t, maddr, `config_reloads_total{result="failure"}`); v != "1" {
			t.Errorf(`config_reloads_total{result="failure"} = %q, want 1`, v)
		}
	})

	t.Run("upstreams show health and counts", func(t *testing.T) {
		type addr struct {
			Addr     string `json:"addr"`
			Healthy  bool   `json:"healthy"`
			Inflight int64  `json:"inflight"`
			Requests uint64 `json:"requests"`
			Failures uint64 `json:"failures"`
		}
		get := func() map[string]map[string]addr {
			_, body := adDo(t, "GET", admin+"/api/upstreams", "")
			var v struct {
				Upstreams []struct {
					Name  string `json:"name"`
					Addrs []addr `json:"addrs"`
				} `json:"upstreams"`
			}
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			out := map[string]map[string]addr{}
			for _, u := range v.Upstreams {
				out[u.Name] = map[string]addr{}
				for _, a := range u.Addrs {
					out[u.Name][a.Addr] = a
				}
			}
			return out
		}
		eventually(t, "the dead addr marked down", func() bool { return !get()["hc"][dead].Healthy })
		st := get()
		if len(st) != 3 || !st["hc"][a.Addr].Healthy || !st["b"][b.Addr].Healthy {
			t.Errorf("status %+v", st)
		}
		if st["b"][b.Addr].Requests == 0 || st["b"][b.Addr].Inflight != 0 {
			t.Errorf("b's counts: %+v", st["b"][b.Addr])
		}
	})

	t.Run("admin requests are not counted as proxy requests", func(t *testing.T) {
		before := adRequestSeries(t, maddr)
		for range 5 {
			adDo(t, "GET", admin+"/api/config", "")
			do(t, "GET", admin+"/api/upstreams", nil)
		}
		if after := adRequestSeries(t, maddr); after != before {
			t.Errorf("http_requests_total moved:\n%s\n---\n%s", before, after)
		}
	})

	t.Run("POST /api/reload reads the file", func(t *testing.T) {
		if err := os.WriteFile(path, []byte(adConfig(maddr, "a", a.Addr, b.Addr, dead)), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := backendName(t, url); got != "b" {
			t.Fatalf("a file edit applied without a reload: %q", got)
		}
		resp, body := adDo(t, "POST", admin+"/api/reload", "")
		if resp.StatusCode != 200 {
			t.Fatalf("reload: %d %s", resp.StatusCode, body)
		}
		if got := backendName(t, url); got != "a" {
			t.Errorf("after reload: backend %q, want a", got)
		}
		os.WriteFile(path, []byte(adConfig(maddr, "nope", a.Addr, b.Addr, dead)), 0o644)
		resp, body = adDo(t, "POST", admin+"/api/reload", "")
		if errs := adErrors(t, body); resp.StatusCode != 400 || len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "nope") {
			t.Fatalf("bad reload: %d %s", resp.StatusCode, body)
		}
		if got := backendName(t, url); got != "a" {
			t.Errorf("after a bad reload: backend %q, want a", got)
		}
	})

	t.Run("PUT moves the admin server", func(t *testing.T) {
		moved := freeAddr(t)
		next := strings.Replace(adConfig(maddr, "a", a.Addr, b.Addr, dead), `admin_addr = "127.0.0.1:0"`, fmt.Sprintf("admin_addr = %q", moved), 1)
		resp, body := adDo(t, "PUT", admin+"/api/config", next)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT: %d %s", resp.StatusCode, body)
		}
		eventually(t, "the admin API on its new addr", func() bool {
			r, err := client.Get("http://" + moved + "/api/status")
			if err != nil {
				return false
			}
			r.Body.Close()
			return r.StatusCode == 401
		})
		eventually(t, "the old admin addr closed", func() bool {
			r, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(admin + "/api/status")
			if err == nil {
				r.Body.Close()
			}
			return err != nil
		})
	})
}

func TestAdminFolderSourceRefusesPut(t *testing.T) {
	a := echoBackend(t, "a")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "basic.toml"), []byte("[basic]\nadmin_addr = \"127.0.0.1:0\"\n"), 0o644)
	routes := fmt.Sprintf("[upstreams.a]\naddrs = [%q]\n[locations.r]\nupstream = \"a\"\n[servers.main]\naddr = \"127.0.0.1:0\"\nlocations = [\"r\"]\n", a.Addr)
	os.WriteFile(filepath.Join(dir, "routes.toml"), []byte(routes), 0o644)
	p, admin := adStart(t, dir, "main")
	// Loopback without credentials: open.
	_, toml := do(t, "GET", admin+"/api/config?format=toml", nil)
	resp, body := do(t, "PUT", admin+"/api/config", strings.NewReader(string(toml)))
	if resp.StatusCode != 409 || len(adErrors(t, body)) != 1 {
		t.Fatalf("PUT to a folder source: %d %s", resp.StatusCode, body)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("the folder changed: %v", ents)
	}
	resp, body = do(t, "POST", admin+"/api/reload", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if got := backendName(t, p.url("main")+"/"); got != "a" {
		t.Errorf("backend %q", got)
	}
}

func TestAdminNeedsCredentialsOffLoopback(t *testing.T) {
	base := minimalConfig("127.0.0.1:9", "").String() + "[basic]\n"
	tests := []struct {
		basic string
		ok    bool
	}{
		{`admin_addr = "0.0.0.0:0"`, false},
		{`admin_addr = ":0"`, false},
		{`admin_addr = "[::]:0"`, false},
		{"admin_addr = \"0.0.0.0:0\"\nadmin_user = \"u\"", false},
		{"admin_addr = \"0.0.0.0:0\"\nadmin_user = \"u\"\nadmin_password = \"p\"", true},
		{`admin_addr = "127.0.0.1:0"`, true},
		{`admin_addr = "127.9.9.9:0"`, true},
		{`admin_addr = "localhost:0"`, true},
		{`admin_addr = "[::1]:0"`, true},
	}
	for _, tt := range tests {
		path := writeConfig(t, base+tt.basic+"\n")
		out, err := exec.Command(binary, "-config", path, "-t").CombinedOutput()
		if tt.ok != (err == nil) {
			t.Errorf("%s: -t: %v\n%s", tt.basic, err, out)
		}
		if !tt.ok && !strings.Contains(string(out), "[basic] admin_") {
			t.Errorf("%s: -t does not name the key:\n%s", tt.basic, out)
		}
	}
	// Starting is refused too, before anything listens.
	path := writeConfig(t, base+`admin_addr = "0.0.0.0:0"`+"\n")
	cmd := exec.Command(binary, "-config", path)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "admin_user and admin_password are required") {
		t.Errorf("start with a public admin_addr and no credentials: %v\n%s", err, out)
	}
}

// TestAdminSurvivesUpgrade: a graceful binary upgrade hands the admin socket
// to the new process, which answers on the same address.
func TestAdminSurvivesUpgrade(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	path := writeConfig(t, adConfig(freeAddr(t), "a", a.Addr, b.Addr, freeAddr(t)))
	p, admin := adStart(t, path, "main")
	p.signal(syscall.SIGUSR2)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("old process exit code %d", code)
	}
	l := p.waitLog("new process serves; draining this one", nil)
	defer syscall.Kill(int(l["new_pid"].(float64)), syscall.SIGTERM)
	lines := p.logLines("admin listening")
	if len(lines) != 2 || "http://"+fmt.Sprint(lines[1]["addr"]) != admin {
		t.Fatalf("admin listening lines %v, want two on %s", lines, admin)
	}
	// The old process is gone: this answer comes from the new one.
	resp, body := adDo(t, "GET", admin+"/api/upstreams", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), b.Addr) {
		t.Fatalf("after the upgrade: %d %s", resp.StatusCode, body)
	}
}

// TestAdminPutPersistsToEtcd: with an etcd source, a PUT is applied and
// pushed to the prefix, where `config pull` (and every other instance)
// finds it.
func TestAdminPutPersistsToEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	url := srv.Endpoint("pingap/admin")
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	maddr, dead := freeAddr(t), freeAddr(t)
	etPush(t, url, adConfig(maddr, "a", a.Addr, b.Addr, dead))
	p, admin := adStart(t, url, "main")
	route := p.url("main") + "/x"
	if got := backendName(t, route); got != "a" {
		t.Fatalf("before: backend %q", got)
	}
	_, st := adDo(t, "GET", admin+"/api/status", "")
	if !strings.Contains(string(st), `"writable": true`) {
		t.Errorf("status: %s", st)
	}
	resp, body := adDo(t, "PUT", admin+"/api/config", adConfig(maddr, "b", a.Addr, b.Addr, dead))
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	if got := backendName(t, route); got != "b" {
		t.Errorf("after PUT: backend %q, want b", got)
	}
	out, pulled := etPull(t, url)
	if got := pulled.Locations["r"].Upstream; got != "b" {
		t.Errorf("etcd holds locations.r.upstream %q, want b", got)
	}
	// An invalid PUT writes nothing to etcd.
	resp, body = adDo(t, "PUT", admin+"/api/config", adConfig(maddr, "nope", a.Addr, b.Addr, dead))
	if resp.StatusCode != 400 {
		t.Fatalf("invalid PUT: %d %s", resp.StatusCode, body)
	}
	_, out2, _ := etPingap(t, "config", "pull", "-from", url)
	if out2 != out {
		t.Errorf("an invalid PUT changed etcd:\n%s", out2)
	}
}

// TestAdminPutTogglesAutoReload: auto_reload follows the running config
// whatever applied it: a PUT that turns it on makes the next edit of the
// file apply by itself, and a PUT that turns it off stops that.
func TestAdminPutTogglesAutoReload(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	dead, maddr := freeAddr(t), freeAddr(t)
	render := func(target string, autoReload bool) string {
		return strings.Replace(adConfig(maddr, target, a.Addr, b.Addr, dead), "[basic]\n",
			fmt.Sprintf("[basic]\nauto_reload = %v\n", autoReload), 1)
	}
	path := writeConfig(t, render("a", false))
	p, admin := adStart(t, path, "main")
	url := p.url("main") + "/x"

	if resp, body := adDo(t, "PUT", admin+"/api/config", render("a", true)); resp.StatusCode != 200 {
		t.Fatalf("PUT auto_reload = true: %d %s", resp.StatusCode, body)
	}
	if err := os.WriteFile(path, []byte(render("b", true)), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edited file applied by the watcher a PUT turned on", func() bool { return backendName(t, url) == "b" })

	if resp, body := adDo(t, "PUT", admin+"/api/config", render("a", false)); resp.StatusCode != 200 {
		t.Fatalf("PUT auto_reload = false: %d %s", resp.StatusCode, body)
	}
	if got := backendName(t, url); got != "a" {
		t.Fatalf("after the PUT: backend %q", got)
	}
	// Let anything the PUT's own file write may have started settle, then
	// edit the file: with the watcher off nothing may apply it.
	time.Sleep(time.Second)
	reloads := metricValue(t, maddr, `config_reloads_total{result="success"}`)
	if err := os.WriteFile(path, []byte(render("b", false)), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // five debounce windows: a negative check, not a timing
	if got := backendName(t, url); got != "a" {
		t.Fatalf("an edit applied with auto_reload turned off: backend %q", got)
	}
	if now := metricValue(t, maddr, `config_reloads_total{result="success"}`); now != reloads {
		t.Fatalf("reloads went from %s to %s with auto_reload off", reloads, now)
	}
	// SIGHUP still applies it.
	p.signal(syscall.SIGHUP)
	eventually(t, "SIGHUP applying the edit", func() bool { return backendName(t, url) == "b" })
}
