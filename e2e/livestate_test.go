package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// lsConfig renders a config with a rate limit of 3 requests per minute on
// /limited and an upstream whose second addr fails its health check.
// extraHeader changes a location without touching the plugin; limitMax
// changes the plugin itself.
func lsConfig(maddr, good, bad, extraHeader string, limitMax int) string {
	limited := loc("limited", "u", "/limited", "lim").with(fmt.Sprintf("headers_add = [\"X-Version: %s\"]", extraHeader))
	return siteConfig{
		Basic: fmt.Sprintf("metrics_addr = %q", maddr),
		Upstreams: []siteUpstream{{Name: "u", Addrs: []string{good, bad}, Opts: `health_check = "http://localhost/health"
health_check_interval = "100ms"
healthy_threshold = 1
unhealthy_threshold = 1`}},
		Plugins:   plugin("lim", "limit", `key = "ip"`, fmt.Sprintf("max = %d", limitMax), `interval = "1m"`),
		Locations: []siteLocation{limited, loc("other", "u", "/")},
	}.String()
}

func TestReloadKeepsLiveState(t *testing.T) {
	good := echoBackend(t, "good")
	var badHits atomic.Int64
	bad := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			http.Error(w, "down", 500)
			return
		}
		badHits.Add(1)
		w.Header().Set("X-Backend", "bad")
	}))
	maddr := freeAddr(t)
	p := start(t, writeConfig(t, lsConfig(maddr, good.Addr, bad.Addr, "v1", 3)), "main")
	url := p.url("main")
	series := fmt.Sprintf(`upstream_health{server="%s",upstream="u"}`, bad.Addr)
	eventually(t, "bad addr marked down", func() bool { return metricValue(t, maddr, series) == "0" })

	for i := 0; i < 3; i++ {
		if resp, _ := do(t, "GET", url+"/limited", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, resp.StatusCode)
		}
	}
	// A reload that changes a location but not the plugin keeps the
	// plugin's counters and the addr's health.
	p.reload(lsConfig(maddr, good.Addr, bad.Addr, "v2", 3))
	eventually(t, "reload applied", func() bool {
		resp, _ := do(t, "GET", url+"/other", nil)
		return metricValue(t, maddr, `config_reloads_total{result="success"}`) == "1" && resp.StatusCode == 200
	})
	before := badHits.Load()
	for i := 0; i < 20; i++ {
		resp, body := do(t, "GET", url+"/other", nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "good" {
			t.Fatalf("after reload, request went to %q (status %d %s): health was reset", resp.Header.Get("X-Backend"), resp.StatusCode, body)
		}
	}
	if badHits.Load() != before {
		t.Fatal("the down addr received traffic after the reload")
	}
	resp, _ := do(t, "GET", url+"/limited", nil)
	if resp.StatusCode != 429 {
		t.Fatalf("4th request after a reload that kept the plugin: %d, want 429 (counters kept)", resp.StatusCode)
	}
	if v := resp.Header.Get("X-Version"); v != "" && !strings.Contains(v, "v2") {
		t.Fatalf("X-Version %q", v)
	}
	// Changing the plugin's options rebuilds it: fresh counters.
	p.reload(lsConfig(maddr, good.Addr, bad.Addr, "v2", 5))
	eventually(t, "second reload", func() bool {
		return metricValue(t, maddr, `config_reloads_total{result="success"}`) == "2"
	})
	if resp, _ := do(t, "GET", url+"/limited", nil); resp.StatusCode != 200 {
		t.Fatalf("after changing the limit: %d, want 200 (a rebuilt plugin)", resp.StatusCode)
	}
}
