package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pingap-go/pingap/internal/testutil/race"
)

// sample finds the series name{labels} (exact label set) and returns its
// value (counter, gauge, or histogram sample count) and whether it exists.
func sample(t *testing.T, m *Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if !sameLabels(mt.GetLabel(), labels) {
				continue
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue(), true
			case mt.Gauge != nil:
				return mt.Gauge.GetValue(), true
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, lp := range got {
		v, ok := want[lp.GetName()]
		if !ok || v != lp.GetValue() {
			return false
		}
	}
	return true
}

func mustValue(t *testing.T, m *Metrics, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := sample(t, m, name, labels)
	if !ok {
		t.Fatalf("%s%v: series missing", name, labels)
	}
	if got != want {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func mustMissing(t *testing.T, m *Metrics, name string, labels map[string]string) {
	t.Helper()
	if _, ok := sample(t, m, name, labels); ok {
		t.Fatalf("%s%v: series present, want deleted", name, labels)
	}
}

func TestReloadsStartAtZero(t *testing.T) {
	m := New("test")
	mustValue(t, m, NameConfigReloads, map[string]string{"result": "success"}, 0)
	mustValue(t, m, NameConfigReloads, map[string]string{"result": "failure"}, 0)
	m.ConfigReload(true)
	m.ConfigReload(false)
	m.ConfigReload(false)
	mustValue(t, m, NameConfigReloads, map[string]string{"result": "success"}, 1)
	mustValue(t, m, NameConfigReloads, map[string]string{"result": "failure"}, 2)
	mustValue(t, m, NameInfo, map[string]string{"name": "test"}, 1)
}

func TestLocationObserve(t *testing.T) {
	m := New("test")
	lm := m.Location("web", "api")
	if m.Location("web", "api") != lm {
		t.Fatal("Location did not return the cached handle")
	}
	cases := []struct {
		method string
		status int
		wantM  string
		wantS  string
	}{
		{"GET", 200, "GET", "200"},
		{"GET", 200, "GET", "200"},
		{"POST", 201, "POST", "201"},
		{"PATCH", 404, "PATCH", "404"},
		{"get", 200, "OTHER", "200"}, // methods are case-sensitive
		{"PROPFIND", 207, "OTHER", "207"},
		{"GET", 299, "GET", "299"}, // not a registered status: slow path
		{"GET", 0, "GET", "000"},
		{"GET", 600, "GET", "000"},
		{"GET", -1, "GET", "000"},
	}
	want := map[[2]string]float64{}
	for _, c := range cases {
		lm.Observe(c.method, c.status, 3*time.Millisecond, 10, 100)
		want[[2]string{c.wantM, c.wantS}]++
	}
	for k, v := range want {
		mustValue(t, m, NameRequests, map[string]string{"method": k[0], "status": k[1], "server": "web", "location": "api"}, v)
	}
	mustValue(t, m, NameRequestDuration, map[string]string{"server": "web", "location": "api"}, float64(len(cases)))
	mustValue(t, m, NameRequestBytes, map[string]string{"server": "web"}, float64(10*len(cases)))
	mustValue(t, m, NameResponseBytes, map[string]string{"server": "web"}, float64(100*len(cases)))

	var nilLM *LocationMetrics
	nilLM.Observe("GET", 200, time.Second, 1, 1) // must not panic
}

func TestStatusText(t *testing.T) {
	for s := 100; s < 600; s++ {
		got := StatusText(s)
		if len(got) != 3 || got[0] != byte('0'+s/100) || got[1] != byte('0'+s/10%10) || got[2] != byte('0'+s%10) {
			t.Fatalf("StatusText(%d) = %q", s, got)
		}
	}
	for _, s := range []int{-5, 0, 99, 600, 1000} {
		if got := StatusText(s); got != "000" {
			t.Fatalf("StatusText(%d) = %q, want 000", s, got)
		}
	}
	for i, s := range commonStatuses {
		if statusSlot(s) != i+1 {
			t.Fatalf("statusSlot(%d) = %d", s, statusSlot(s))
		}
	}
}

func TestUpstreamAddrServerPlugin(t *testing.T) {
	m := New("test")
	am := m.UpstreamAddr("backend", "10.0.0.1:80")
	l := map[string]string{"upstream": "backend", "server": "10.0.0.1:80"}
	mustValue(t, m, NameUpstreamHealth, l, 1) // healthy until checks say otherwise
	am.Done(5*time.Millisecond, false, true)
	am.Done(2*time.Millisecond, true, false)
	am.Done(2*time.Millisecond, true, false)
	am.SetHealth(false)
	mustValue(t, m, NameUpstreamRequests, l, 3)
	mustValue(t, m, NameUpstreamDuration, l, 3)
	mustValue(t, m, NameUpstreamHealth, l, 0)
	mustValue(t, m, NameUpstreamConns, map[string]string{"upstream": "backend", "server": "10.0.0.1:80", "reused": "true"}, 2)
	mustValue(t, m, NameUpstreamConns, map[string]string{"upstream": "backend", "server": "10.0.0.1:80", "reused": "false"}, 1)
	am.SetHealth(true)
	mustValue(t, m, NameUpstreamHealth, l, 1)
	mustValue(t, m, NameUpstreamErrors, l, 1)
	if m.UpstreamAddr("backend", "10.0.0.1:80") != am {
		t.Fatal("UpstreamAddr did not return the cached handle")
	}

	sm := m.Server("web")
	hook := m.ConnHook("web")
	hook(true)
	sm.ConnOpened()
	hook(false)
	m.TLSHandshake("web")
	mustValue(t, m, NameConnectionsOpen, map[string]string{"server": "web"}, 1)
	mustValue(t, m, NameTLSHandshakes, map[string]string{"server": "web"}, 1)

	pm := m.Plugin("limit")
	pm.Responded(429)
	pm.Responded(429)
	pm.Responded(299)
	m.PluginResponse("limit", 429)
	m.PluginResponse("auth", 401) // first use through the string path
	m.PluginResponse("auth", 401)
	mustValue(t, m, NamePluginResponses, map[string]string{"plugin": "auth", "status": "401"}, 2)
	mustValue(t, m, NamePluginResponses, map[string]string{"plugin": "limit", "status": "429"}, 3)
	mustValue(t, m, NamePluginResponses, map[string]string{"plugin": "limit", "status": "299"}, 1)

	m.RequestStarted()
	m.RequestStarted()
	m.RequestDone()
	mustValue(t, m, NameInFlight, nil, 1)

	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m.SetCertificateExpiry("site", exp)
	mustValue(t, m, NameCertificateExpiry, map[string]string{"name": "site"}, float64(exp.Unix()))

	// nil handles are no-ops
	var nam *AddrMetrics
	nam.Done(time.Second, true, true)
	nam.SetHealth(false)
	var nsm *ServerMetrics
	nsm.ConnOpened()
	nsm.ConnClosed()
	nsm.TLSHandshake()
	var npm *PluginMetrics
	npm.Responded(200)
}

func TestRetain(t *testing.T) {
	m := New("test")
	keep := m.Location("web", "api")
	gone := m.Location("web", "old")
	goneSrv := m.Location("old-server", "")
	m.Server("old-server").ConnOpened()
	keep.Observe("GET", 200, time.Millisecond, 1, 1)
	gone.Observe("GET", 200, time.Millisecond, 1, 1)
	goneSrv.Observe("GET", 404, time.Millisecond, 1, 1)
	m.UpstreamAddr("b", "10.0.0.1:80").Done(time.Millisecond, true, false)
	m.UpstreamAddr("b", "10.0.0.2:80").Done(time.Millisecond, false, true)
	m.Plugin("p1").Responded(403)
	m.Plugin("p2").Responded(403)
	m.SetCertificateExpiry("c1", time.Unix(1e9, 0))
	m.SetCertificateExpiry("c2", time.Unix(1e9, 0))

	m.Retain([][2]string{{"web", "api"}, {"web", ""}}, [][2]string{{"b", "10.0.0.1:80"}})
	m.RetainPlugins([]string{"p1"})
	m.RetainCertificates([]string{"c1"})

	mustValue(t, m, NameRequests, map[string]string{"method": "GET", "status": "200", "server": "web", "location": "api"}, 1)
	mustMissing(t, m, NameRequests, map[string]string{"method": "GET", "status": "200", "server": "web", "location": "old"})
	mustMissing(t, m, NameRequestDuration, map[string]string{"server": "web", "location": "old"})
	mustMissing(t, m, NameRequests, map[string]string{"method": "GET", "status": "404", "server": "old-server", "location": ""})
	mustMissing(t, m, NameRequestBytes, map[string]string{"server": "old-server"})
	mustMissing(t, m, NameConnectionsOpen, map[string]string{"server": "old-server"})
	mustValue(t, m, NameRequestBytes, map[string]string{"server": "web"}, 2)
	mustValue(t, m, NameUpstreamRequests, map[string]string{"upstream": "b", "server": "10.0.0.1:80"}, 1)
	mustMissing(t, m, NameUpstreamRequests, map[string]string{"upstream": "b", "server": "10.0.0.2:80"})
	mustMissing(t, m, NameUpstreamHealth, map[string]string{"upstream": "b", "server": "10.0.0.2:80"})
	mustMissing(t, m, NameUpstreamConns, map[string]string{"upstream": "b", "server": "10.0.0.2:80", "reused": "false"})
	mustMissing(t, m, NameUpstreamErrors, map[string]string{"upstream": "b", "server": "10.0.0.2:80"})
	mustValue(t, m, NamePluginResponses, map[string]string{"plugin": "p1", "status": "403"}, 1)
	mustMissing(t, m, NamePluginResponses, map[string]string{"plugin": "p2", "status": "403"})
	mustValue(t, m, NameCertificateExpiry, map[string]string{"name": "c1"}, 1e9)
	mustMissing(t, m, NameCertificateExpiry, map[string]string{"name": "c2"})

	// A removed location that comes back starts from zero with a new handle.
	back := m.Location("web", "old")
	if back == gone {
		t.Fatal("Retain kept the handle of a removed location")
	}
	back.Observe("GET", 200, time.Millisecond, 0, 0)
	mustValue(t, m, NameRequests, map[string]string{"method": "GET", "status": "200", "server": "web", "location": "old"}, 1)

	// Retain leaves plugins and certificates alone.
	m.Retain([][2]string{{"web", "api"}}, nil)
	mustValue(t, m, NamePluginResponses, map[string]string{"plugin": "p1", "status": "403"}, 1)
	mustValue(t, m, NameCertificateExpiry, map[string]string{"name": "c1"}, 1e9)
	// A plugin dropped by RetainPlugins comes back at zero through the
	// string path (its lock-free entry was replaced).
	m.PluginResponse("p2", 403)
	mustValue(t, m, NamePluginResponses, map[string]string{"plugin": "p2", "status": "403"}, 1)
}

func TestConcurrentObserve(t *testing.T) {
	m := New("test")
	lm := m.Location("web", "api")
	const workers, per = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				lm.Observe("GET", 200+i%2, time.Millisecond, 1, 2)
			}
		}()
	}
	wg.Wait()
	mustValue(t, m, NameRequests, map[string]string{"method": "GET", "status": "200", "server": "web", "location": "api"}, workers*per/2)
	mustValue(t, m, NameRequests, map[string]string{"method": "GET", "status": "201", "server": "web", "location": "api"}, workers*per/2)
	mustValue(t, m, NameResponseBytes, map[string]string{"server": "web"}, 2*workers*per)
}

func TestInvalidUTF8LabelsDoNotPanic(t *testing.T) {
	m := New("bad\xff")
	lm := m.Location("s\xfe", "l\xff")
	lm.Observe("GET", 200, time.Millisecond, 0, 0)
	m.UpstreamAddr("u\xff", "a\xff").Done(time.Millisecond, true, false)
	m.Plugin("p\xff").Responded(200)
	m.SetCertificateExpiry("c\xff", time.Now())
	m.PluginResponse("q\xff", 200)
	m.Retain(nil, nil)
	m.RetainPlugins(nil)
	m.RetainCertificates(nil)
}

func TestHandler(t *testing.T) {
	m := New("test")
	m.Location("web", "").Observe("GET", 404, time.Millisecond, 0, 0)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{
		`http_requests_total{location="",method="GET",server="web",status="404"} 1`,
		`http_request_duration_seconds_bucket{location="",server="web",le="0.0005"}`,
		`http_request_duration_seconds_bucket{location="",server="web",le="30"}`,
		`config_reloads_total{result="success"} 0`,
		`config_reloads_total{result="failure"} 0`,
		`http_requests_in_flight 0`,
		"process_cpu_seconds_total",
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestObserveAllocs guards the hot path: no allocation once warm.
func TestObserveAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	m := New("test")
	lm := m.Location("web", "api")
	am := m.UpstreamAddr("b", "10.0.0.1:80")
	pm := m.Plugin("p")
	lm.Observe("GET", 200, time.Millisecond, 10, 10)
	pm.Responded(429)
	n := testing.AllocsPerRun(200, func() {
		lm.Observe("GET", 200, time.Millisecond, 10, 10)
		am.Done(time.Millisecond, true, false)
		pm.Responded(429)
		m.PluginResponse("p", 429)
	})
	if n != 0 {
		t.Fatalf("hot path allocates %v per run", n)
	}
}

// TestRetainWhileObserving: reloads (Location + Retain) racing with the
// request path must be race-free and keep the live series counting.
func TestRetainWhileObserving(t *testing.T) {
	m := New("test")
	live := m.Location("web", "api")
	var wg, reloader sync.WaitGroup
	stop := make(chan struct{})
	const n = 2000
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			live.Observe("GET", 200, time.Millisecond, 1, 1)
		}
	}()
	reloader.Add(1)
	go func() {
		defer reloader.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := m.Location("web", "tmp")
			tmp.Observe("POST", 500, time.Millisecond, 0, 0)
			m.UpstreamAddr("u", "a:1").Done(time.Millisecond, i%2 == 0, false)
			m.Retain([][2]string{{"web", "api"}}, nil)
		}
	}()
	wg.Wait() // the observer finishes; then stop the reloader
	close(stop)
	reloader.Wait()
	mustValue(t, m, NameRequests, map[string]string{"method": "GET", "status": "200", "server": "web", "location": "api"}, n)
}

func TestCacheResponses(t *testing.T) {
	m := New("t")
	for _, st := range []string{"HIT", "HIT", "MISS", "BYPASS", "weird"} {
		m.CacheResponse(st)
	}
	mustValue(t, m, NameCacheResponses, map[string]string{"status": "HIT"}, 2)
	mustValue(t, m, NameCacheResponses, map[string]string{"status": "MISS"}, 1)
	mustValue(t, m, NameCacheResponses, map[string]string{"status": "BYPASS"}, 1)
	mustValue(t, m, NameCacheResponses, map[string]string{"status": "OTHER"}, 1)
	mustValue(t, m, NameCacheResponses, map[string]string{"status": "STALE"}, 0)
}
