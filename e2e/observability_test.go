package e2e

// End-to-end tests of observability (issue 5) through the real binary:
// exact Prometheus counts per label set and their removal on reload, OTLP
// traces received by a fake collector, W3C trace context towards the
// upstream, the JSON access log and its rotation by SIGUSR1.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// obSeries renders a series name the way the Prometheus text format
// prints it (client_golang sorts labels by name): obSeries("m", "b", "2",
// "a", "1") is `m{a="1",b="2"}`.
func obSeries(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	type pair struct{ k, v string }
	ps := make([]pair, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		ps = append(ps, pair{kv[i], kv[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k < ps[j].k })
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", p.k, p.v)
	}
	b.WriteByte('}')
	return b.String()
}

// obScrape fetches /metrics and returns every sample by its series.
func obScrape(t *testing.T, metricsAddr string) map[string]float64 {
	t.Helper()
	resp, body := do(t, "GET", "http://"+metricsAddr+"/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// obSeriesOf returns the series of metric name in m whose labels contain
// every substring in has, sorted.
func obSeriesOf(m map[string]float64, name string, has ...string) []string {
	var out []string
	for s := range m {
		if !strings.HasPrefix(s, name+"{") && s != name {
			continue
		}
		ok := true
		for _, h := range has {
			if !strings.Contains(s, h) {
				ok = false
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// obWaitMetrics scrapes until every series in want has exactly its value
// (metrics are recorded after the response is written, so the last request
// may not be counted yet when the client has its answer) and absent series
// are gone, or fails after 10s with the differences.
func obWaitMetrics(t *testing.T, metricsAddr string, want map[string]float64, absent func(map[string]float64) []string) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := obScrape(t, metricsAddr)
		var diffs []string
		for s, v := range want {
			g, ok := got[s]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s missing (want %v)", s, v))
			} else if g != v {
				diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", s, g, v))
			}
		}
		if absent != nil {
			for _, s := range absent(got) {
				diffs = append(diffs, fmt.Sprintf("%s should be gone (= %v)", s, got[s]))
			}
		}
		if len(diffs) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			sort.Strings(diffs)
			t.Fatalf("metrics differ:\n  %s", strings.Join(diffs, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// obMetricsConfig: location la (/a) on upstream ua, lm (/mock) answered
// by a mock plugin, an upstream "down" whose health check fails, and,
// withB, location lb (/b) on upstream ub and a server "extra".
func obMetricsConfig(metricsAddr, a string, bAddrs []string, dead string, withB bool) string {
	c := siteConfig{
		Basic: fmt.Sprintf("metrics_addr = %q\naccess_log = false\ngrace_period = \"2s\"", metricsAddr),
		Upstreams: []siteUpstream{
			{Name: "down", Addrs: []string{dead}, Opts: `health_check = "tcp://down.test"
health_check_interval = "100ms"
health_check_timeout = "100ms"
unhealthy_threshold = 1`},
			{Name: "ua", Addrs: []string{a}},
			{Name: "ub", Addrs: bAddrs},
		},
		Plugins:   plugin("mocky", "mock", "status = 418", `data = "teapot"`),
		Locations: []siteLocation{loc("la", "ua", "/a"), loc("lm", "", "/mock", "mocky")},
	}
	if withB {
		c.Locations = []siteLocation{c.Locations[0], loc("lb", "ub", "/b"), c.Locations[1]}
		c.Extra = "[servers.extra]\naddr = \"127.0.0.1:0\"\nlocations = [\"la\"]"
	}
	return c.String()
}

// obSite is the observability tests' one-upstream config: location "l"
// sends every path to upstream "u" at upAddr; basic holds [basic] lines
// and extra more tables (such as obTracing's).
func obSite(upAddr, basic, extra string) string {
	c := oneUpstream(upAddr)
	c.Locations[0].Name = "l"
	c.Basic, c.Extra = basic, extra
	return c.String()
}

// obTracing is a [tracing] table exporting to the collector at addr.
func obTracing(addr string) string { return fmt.Sprintf("[tracing]\nendpoint = \"http://%s\"", addr) }

func TestObMetricsExactCountsAndReload(t *testing.T) {
	a := echoBackend(t, "a")
	b1, b2 := echoBackend(t, "b1"), echoBackend(t, "b2")
	maddr := freeAddr(t)
	dead := freeAddr(t) // nothing listens: its health check fails
	p, base := serve(t, obMetricsConfig(maddr, a.Addr, []string{b1.Addr, b2.Addr}, dead, true))

	// Before any traffic: reload counters exist at 0, every addr is up.
	obWaitMetrics(t, maddr, map[string]float64{
		obSeries("config_reloads_total", "result", "success"):            0,
		obSeries("config_reloads_total", "result", "failure"):            0,
		obSeries("upstream_health", "upstream", "ua", "server", a.Addr):  1,
		obSeries("upstream_health", "upstream", "ub", "server", b1.Addr): 1,
		obSeries("upstream_health", "upstream", "ub", "server", b2.Addr): 1,
		obSeries("upstream_health", "upstream", "down", "server", dead):  0,
	}, nil)

	var respBytes int
	send := func(method, path string, n int, want int) {
		t.Helper()
		for i := 0; i < n; i++ {
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader("payload")
			}
			resp, b := do(t, method, base+path, body)
			if resp.StatusCode != want {
				t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
			}
			respBytes += len(b)
		}
	}
	send("GET", "/a/1", 3, 200)
	send("POST", "/a/2", 2, 200)
	send("FROB", "/a/3", 1, 200) // not a standard method: method="OTHER"
	send("GET", "/b/x", 4, 200)
	send("GET", "/nothing", 2, 404)
	send("DELETE", "/nothing", 1, 404)
	send("GET", "/mock", 2, 418) // answered by a plugin
	// One request on a second server (removed by the reload below).
	if resp, _ := do(t, "POST", p.url("extra")+"/a/x", strings.NewReader("12345")); resp.StatusCode != 200 {
		t.Fatalf("extra: %d", resp.StatusCode)
	}

	req := func(method, status, loc string) string {
		return obSeries("http_requests_total", "method", method, "status", status, "server", "main", "location", loc)
	}
	want := map[string]float64{
		req("GET", "200", "la"):   3,
		req("POST", "200", "la"):  2,
		req("OTHER", "200", "la"): 1,
		req("GET", "200", "lb"):   4,
		req("GET", "404", ""):     2,
		req("DELETE", "404", ""):  1,
		req("GET", "418", "lm"):   2,
		obSeries("plugin_responses_total", "plugin", "mocky", "status", "418"):                                  2,
		obSeries("http_request_duration_seconds_count", "server", "main", "location", "la"):                     6,
		obSeries("http_request_duration_seconds_count", "server", "main", "location", "lb"):                     4,
		obSeries("http_request_duration_seconds_count", "server", "main", "location", ""):                       3,
		obSeries("http_requests_total", "method", "POST", "status", "200", "server", "extra", "location", "la"): 1,
		obSeries("http_request_bytes_total", "server", "extra"):                                                 5,
		obSeries("upstream_requests_total", "upstream", "ua", "server", a.Addr):                                 7,
		// round robin over two addrs
		obSeries("upstream_requests_total", "upstream", "ub", "server", b1.Addr): 2,
		obSeries("upstream_requests_total", "upstream", "ub", "server", b2.Addr): 2,
		obSeries("upstream_health", "upstream", "ub", "server", b2.Addr):         1,
		obSeries("upstream_errors_total", "upstream", "ua", "server", a.Addr):    0,
		obSeries("config_reloads_total", "result", "success"):                    0,
		// body bytes only: 2 POSTs of "payload"
		obSeries("http_request_bytes_total", "server", "main"):  14,
		obSeries("http_response_bytes_total", "server", "main"): float64(respBytes),
		obSeries("http_requests_in_flight"):                     0,
	}
	got := obWaitMetrics(t, maddr, want, nil)
	// Exactly these label sets, no stray ones (e.g. the FROB method).
	if s := obSeriesOf(got, "http_requests_total"); len(s) != 8 {
		t.Fatalf("http_requests_total has %d series, want 8: %v", len(s), s)
	}
	if s := obSeriesOf(got, "http_requests_total", `method="FROB"`); len(s) != 0 {
		t.Fatalf("raw method became a label: %v", s)
	}
	if s := obSeriesOf(got, "http_request_duration_seconds_bucket", `location="la",server="main"`, `le="+Inf"`); len(s) != 1 || got[s[0]] != 6 {
		t.Fatalf("la +Inf bucket: %v", s)
	}

	// A reload that removes location lb and addr b2: their series vanish,
	// the rest keeps counting.
	p.reload(obMetricsConfig(maddr, a.Addr, []string{b1.Addr}, dead, false))
	after := map[string]float64{
		obSeries("config_reloads_total", "result", "success"):                    1,
		obSeries("config_reloads_total", "result", "failure"):                    0,
		req("GET", "200", "la"):                                                  3,
		req("GET", "404", ""):                                                    2,
		obSeries("upstream_requests_total", "upstream", "ua", "server", a.Addr):  7,
		obSeries("upstream_requests_total", "upstream", "ub", "server", b1.Addr): 2,
		obSeries("upstream_health", "upstream", "ub", "server", b1.Addr):         1,
		obSeries("upstream_health", "upstream", "down", "server", dead):          0,
		// probes are not round trips
		obSeries("upstream_requests_total", "upstream", "down", "server", dead): 0,
	}
	gone := func(m map[string]float64) []string {
		var out []string
		out = append(out, obSeriesOf(m, "http_requests_total", `location="lb"`)...)
		out = append(out, obSeriesOf(m, "http_request_duration_seconds_count", `location="lb"`)...)
		for _, name := range []string{"http_requests_total", "http_request_duration_seconds_count", "http_request_bytes_total", "http_response_bytes_total", "http_connections_open"} {
			out = append(out, obSeriesOf(m, name, `server="extra"`)...)
		}
		for _, name := range []string{"upstream_requests_total", "upstream_health", "upstream_response_duration_seconds_count"} {
			out = append(out, obSeriesOf(m, name, `server="`+b2.Addr+`"`)...)
		}
		return out
	}
	obWaitMetrics(t, maddr, after, gone)
	send("GET", "/a/again", 1, 200)
	send("GET", "/b/x", 1, 404) // lb is gone: no location matches
	after[req("GET", "200", "la")] = 4
	after[req("GET", "404", "")] = 3
	after[obSeries("upstream_requests_total", "upstream", "ua", "server", a.Addr)] = 8
	obWaitMetrics(t, maddr, after, gone)

	// A refused reload counts as a failure.
	p.reload("[servers.main]\naddr = 7\n")
	after[obSeries("config_reloads_total", "result", "failure")] = 1
	obWaitMetrics(t, maddr, after, gone)
}

// obCollector is a fake OTLP/HTTP collector on loopback.
type obCollector struct {
	*backend
	mu    sync.Mutex
	spans []obSpan
	posts int
}

type obSpan struct {
	service string
	span    *tracepb.Span
}

func (s obSpan) attr(key string) string {
	for _, kv := range s.span.Attributes {
		if kv.Key == key {
			return obAnyValue(kv.Value)
		}
	}
	return "<unset>"
}

func obAnyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

func obStartCollector(t *testing.T) *obCollector {
	t.Helper()
	c := &obCollector{}
	c.backend = newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			rd = zr
		}
		body, err := io.ReadAll(rd)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		c.mu.Lock()
		c.posts++
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = obAnyValue(kv.Value)
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					c.spans = append(c.spans, obSpan{service: service, span: sp})
				}
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	return c
}

// waitSpans waits up to 15s for spans of traceID matching kinds.
func (c *obCollector) waitSpans(t *testing.T, traceID string, kinds ...tracepb.Span_SpanKind) map[tracepb.Span_SpanKind]obSpan {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		found := map[tracepb.Span_SpanKind]obSpan{}
		c.mu.Lock()
		for _, s := range c.spans {
			if hex.EncodeToString(s.span.TraceId) == traceID {
				found[s.span.Kind] = s
			}
		}
		n := len(c.spans)
		c.mu.Unlock()
		all := true
		for _, k := range kinds {
			if _, ok := found[k]; !ok {
				all = false
			}
		}
		if all {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector has %d spans, none of kinds %v for trace %s (found %v)", n, kinds, traceID, found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// obTraceBackend answers 200 and records the traceparent it received.
func obTraceBackend(t *testing.T) (*backend, func() []string) {
	var mu sync.Mutex
	var seen []string
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Traceparent"))
		mu.Unlock()
		io.WriteString(w, "traced")
	}))
	return b, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestObTracingSpansAndPropagation(t *testing.T) {
	col := obStartCollector(t)
	up, seen := obTraceBackend(t)
	p, _ := serve(t, siteConfig{
		Basic:     `name = "edge-test"`,
		Upstreams: []siteUpstream{{Name: "u", Addrs: []string{up.Addr}}, {Name: "gone", Addrs: []string{freeAddr(t)}}},
		Locations: []siteLocation{loc("traced", "u", "/"), loc("broken", "gone", "/broken")},
		Extra:     obTracing(col.Addr) + "\nservice_name = \"edge-svc\"",
	}.String())

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentID = "00f067aa0ba902b7"
	const unsampled = "11111111111111111111111111111111"
	const failedID = "5bf92f3577b34da6a3ce929d0e0e4737"
	base := p.url("main")
	// All requests first, so their spans arrive in one export batch.
	resp, body := do(t, "GET", base+"/orders/7?x=1", nil,
		"traceparent: 00-"+traceID+"-"+parentID+"-01", "User-Agent: ob-test/1")
	if resp.StatusCode != 200 || string(body) != "traced" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	// An unsampled client trace is continued but never recorded.
	if resp, _ := do(t, "GET", base+"/unsampled", nil, "traceparent: 00-"+unsampled+"-2222222222222222-00"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Without a traceparent a new trace starts.
	if resp, _ := do(t, "GET", base+"/fresh", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// A failed round trip (nothing listens on the addr).
	if resp, _ := do(t, "GET", base+"/broken", nil, "traceparent: 00-"+failedID+"-"+parentID+"-01"); resp.StatusCode != 502 {
		t.Fatalf("broken upstream: status %d", resp.StatusCode)
	}
	tps := seen()
	if len(tps) != 3 {
		t.Fatalf("upstream saw %d requests, want 3", len(tps))
	}

	spans := col.waitSpans(t, traceID, tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
	srv, cli := spans[tracepb.Span_SPAN_KIND_SERVER], spans[tracepb.Span_SPAN_KIND_CLIENT]
	if got := hex.EncodeToString(srv.span.ParentSpanId); got != parentID {
		t.Errorf("server span parent = %s, want the client's %s", got, parentID)
	}
	if srv.span.Name != "GET traced" {
		t.Errorf("server span name %q", srv.span.Name)
	}
	if srv.service != "edge-svc" {
		t.Errorf("service.name = %q", srv.service)
	}
	for k, v := range map[string]string{
		"http.request.method":       "GET",
		"url.path":                  "/orders/7",
		"url.scheme":                "http",
		"server.address":            "127.0.0.1",
		"client.address":            "127.0.0.1",
		"user_agent.original":       "ob-test/1",
		"http.response.status_code": "200",
		"http.route":                "traced",
		"pingap.server":             "main",
		"pingap.location":           "traced",
		"pingap.upstream":           "u",
		"pingap.upstream_addr":      up.Addr,
		"http.response.body.size":   "6",
	} {
		if got := srv.attr(k); got != v {
			t.Errorf("server span %s = %q, want %q", k, got, v)
		}
	}
	if !bytes.Equal(cli.span.ParentSpanId, srv.span.SpanId) {
		t.Errorf("client span parent %x, want the server span %x", cli.span.ParentSpanId, srv.span.SpanId)
	}
	host, port, _ := strings.Cut(up.Addr, ":")
	for k, v := range map[string]string{
		"http.request.method":       "GET",
		"server.address":            host,
		"server.port":               port,
		"pingap.upstream":           "u",
		"pingap.upstream_addr":      up.Addr,
		"http.response.status_code": "200",
	} {
		if got := cli.attr(k); got != v {
			t.Errorf("client span %s = %q, want %q", k, got, v)
		}
	}
	// The upstream's parent is the proxy's client span, in the same trace.
	if want := "00-" + traceID + "-" + hex.EncodeToString(cli.span.SpanId) + "-01"; tps[0] != want {
		t.Errorf("upstream traceparent %q, want %q", tps[0], want)
	}
	// The access line (stderr) carries the trace id.
	p.waitLog("access", func(l map[string]any) bool { return l["trace_id"] == traceID && l["path"] == "/orders/7" })

	// Unsampled: same trace, the proxy's span as parent, flags 00.
	if tp := tps[1]; !strings.HasPrefix(tp, "00-"+unsampled+"-") || !strings.HasSuffix(tp, "-00") || strings.Contains(tp, "2222222222222222") {
		t.Errorf("unsampled: upstream traceparent %q, want the same trace, a new parent, flags 00", tp)
	}

	// New trace: the upstream still gets a sampled traceparent, the server
	// span has no parent, the access line names the trace.
	parts := strings.Split(tps[2], "-")
	if len(parts) != 4 || len(parts[1]) != 32 || parts[1] == traceID || parts[3] != "01" {
		t.Fatalf("new trace: upstream traceparent %q", tps[2])
	}
	fresh := col.waitSpans(t, parts[1], tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
	if len(fresh[tracepb.Span_SPAN_KIND_SERVER].span.ParentSpanId) != 0 {
		t.Errorf("new trace: server span has a parent %x", fresh[tracepb.Span_SPAN_KIND_SERVER].span.ParentSpanId)
	}
	l := p.waitLog("access", func(l map[string]any) bool { return l["path"] == "/fresh" })
	if l["trace_id"] != parts[1] {
		t.Errorf("access trace_id %v, want %s", l["trace_id"], parts[1])
	}

	// Failed round trip: the server span is an error, the client span says why.
	failed := col.waitSpans(t, failedID, tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
	fs, fc := failed[tracepb.Span_SPAN_KIND_SERVER], failed[tracepb.Span_SPAN_KIND_CLIENT]
	if fs.span.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || fs.attr("http.response.status_code") != "502" || fs.span.Name != "GET broken" {
		t.Errorf("failed request server span: name %q status %v code %s", fs.span.Name, fs.span.Status, fs.attr("http.response.status_code"))
	}
	if fc.span.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || fc.attr("error.type") != "dial" {
		t.Errorf("failed round trip client span: status %v error.type %q", fc.span.Status, fc.attr("error.type"))
	}

	// Spans are exported in the order they end: later traces arrived, the
	// unsampled one never will.
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, sp := range col.spans {
		if hex.EncodeToString(sp.span.TraceId) == unsampled {
			t.Errorf("an unsampled trace was exported: %v", sp.span)
		}
	}
}

func TestObTracingCollectorDownDoesNotBlock(t *testing.T) {
	up, seen := obTraceBackend(t)
	dead := freeAddr(t) // closed port: every export fails
	p, base := serve(t, obSite(up.Addr, "grace_period = \"2s\"\naccess_log = false", obTracing(dead)))
	url := base + "/x"
	// Enough requests to span several batch exports (every 2s) that fail.
	const n = 300
	startAll := time.Now()
	var slowest time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		resp, _ := do(t, "GET", url, nil)
		if d := time.Since(t0); d > slowest {
			slowest = d
		}
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		if i == n/2 {
			time.Sleep(2500 * time.Millisecond) // let an export to the dead collector run meanwhile
		}
	}
	// A dead collector costs nothing per request: the bound is generous
	// for -race on 2 cores, far below a connect/export timeout.
	if slowest > time.Second {
		t.Fatalf("slowest request took %v with the collector down", slowest)
	}
	if got := len(seen()); got != n {
		t.Fatalf("upstream saw %d requests, want %d", got, n)
	}
	for _, tp := range seen() {
		if len(tp) != 55 {
			t.Fatalf("upstream traceparent %q", tp)
		}
	}
	t.Logf("%d requests in %v (slowest %v)", n, time.Since(startAll), slowest)
	// Shutdown is bounded too: the exporter does not hold the exit hostage.
	t0 := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	t.Logf("exit took %v", time.Since(t0))
}

// obReadAccess returns the JSON lines of an access log file, failing on
// any line that does not parse.
func obReadAccess(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access line is not JSON: %v: %q", err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// obWaitAccess waits up to 10s for n lines in the access log file.
func obWaitAccess(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var lines []map[string]any
		if _, err := os.Stat(path); err == nil {
			lines = obReadAccess(t, path)
		}
		if len(lines) >= n {
			if len(lines) > n {
				t.Fatalf("%s has %d lines, want %d: %v", path, len(lines), n, lines)
			}
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines after 10s, want %d", path, len(lines), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestObAccessLogFileAndRotation(t *testing.T) {
	up := echoBackend(t, "a")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	accessConf := func(accessLog string) string {
		return siteConfig{
			Basic:     "access_log = " + accessLog,
			Upstreams: []siteUpstream{{Name: "u", Addrs: []string{up.Addr}}},
			Plugins:   plugin("rid", "request_id"),
			Locations: []siteLocation{loc("api", "u", "/api", "rid"), loc("plain", "u", "/plain")},
		}.String()
	}
	p, base := serve(t, accessConf(strconv.Quote(logPath)))
	host := strings.TrimPrefix(base, "http://")

	r1, b1 := do(t, "GET", base+"/api/users?id=7&x=%20y", nil)
	if r1.StatusCode != 200 {
		t.Fatalf("status %d", r1.StatusCode)
	}
	rid := r1.Header.Get("X-Request-Id")
	if rid == "" {
		t.Fatal("request_id plugin set no X-Request-Id")
	}
	r2, b2 := do(t, "POST", base+"/plain/p", strings.NewReader("0123456789"),
		"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if r2.StatusCode != 200 {
		t.Fatalf("status %d", r2.StatusCode)
	}
	r3, b3 := do(t, "GET", base+"/missing", nil)
	if r3.StatusCode != 404 {
		t.Fatalf("status %d", r3.StatusCode)
	}

	lines := obWaitAccess(t, logPath, 3)
	// Access lines do not go to stderr when access_log names a file.
	if got := p.logLines("access"); len(got) != 0 {
		t.Fatalf("%d access lines on stderr", len(got))
	}
	num := func(v any) float64 {
		f, ok := v.(float64)
		if !ok {
			t.Fatalf("not a JSON number: %#v", v)
		}
		return f
	}
	byPath := map[string]map[string]any{}
	for _, l := range lines {
		if l["msg"] != "access" || l["level"] != "INFO" {
			t.Fatalf("line %v", l)
		}
		if _, err := time.Parse(time.RFC3339, l["time"].(string)); err != nil {
			t.Fatalf("time %v: %v", l["time"], err)
		}
		if l["remote_addr"] != "127.0.0.1" || l["host"] != host {
			t.Fatalf("remote_addr/host: %v", l)
		}
		if d := num(l["duration_ms"]); d < 0 || d > 10000 {
			t.Fatalf("duration_ms %v", d)
		}
		if _, ok := l["tls"]; ok {
			t.Fatalf("tls field on a plain connection: %v", l)
		}
		byPath[l["path"].(string)] = l
	}
	api, plain, miss := byPath["/api/users"], byPath["/plain/p"], byPath["/missing"]
	if api == nil || plain == nil || miss == nil {
		t.Fatalf("paths (no query) not logged as expected: %v", lines)
	}
	check := func(l map[string]any, field string, want any) {
		t.Helper()
		if got := l[field]; got != want {
			t.Errorf("%s: %s = %#v, want %#v", l["path"], field, got, want)
		}
	}
	check(api, "method", "GET")
	check(api, "query", "id=7&x=%20y")
	check(api, "status", 200.0)
	check(api, "bytes", float64(len(b1)))
	check(api, "bytes_in", 0.0)
	check(api, "location", "api")
	check(api, "upstream", "u")
	check(api, "upstream_addr", up.Addr)
	check(api, "request_id", rid)
	if _, ok := api["trace_id"]; ok {
		t.Errorf("trace_id without tracing or traceparent: %v", api)
	}
	if _, ok := api["upstream_ms"].(float64); !ok {
		t.Errorf("upstream_ms missing: %v", api)
	}
	check(plain, "method", "POST")
	check(plain, "status", 200.0)
	check(plain, "bytes", float64(len(b2)))
	check(plain, "bytes_in", 10.0)
	check(plain, "trace_id", "0af7651916cd43dd8448eb211c80319c")
	for _, f := range []string{"query", "request_id"} {
		if _, ok := plain[f]; ok {
			t.Errorf("/plain/p has %s: %v", f, plain)
		}
	}
	check(miss, "status", 404.0)
	check(miss, "bytes", float64(len(b3)))
	check(miss, "location", "")
	check(miss, "upstream", "")
	check(miss, "upstream_addr", "")
	if _, ok := miss["upstream_ms"]; ok {
		t.Errorf("upstream_ms without an upstream: %v", miss)
	}

	// logrotate: move the file away, SIGUSR1, the next lines go to a new
	// file at the configured path.
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGUSR1)
	eventually(t, "access log reopened", func() bool {
		_, err := os.Stat(logPath)
		return err == nil
	})
	do(t, "GET", base+"/api/after-rotate", nil)
	do(t, "GET", base+"/plain/after-rotate", nil)
	fresh := obWaitAccess(t, logPath, 2)
	for _, l := range fresh {
		if !strings.HasSuffix(l["path"].(string), "/after-rotate") {
			t.Fatalf("new file has an old line: %v", l)
		}
	}
	if old := obReadAccess(t, rotated); len(old) != 3 {
		t.Fatalf("rotated file has %d lines, want 3", len(old))
	}

	// A reload switches the access log to stderr, then off.
	p.reload(accessConf("true"))
	p.waitReloads(1)
	do(t, "GET", base+"/plain/stderr?a=1", nil)
	l := p.waitLog("access", func(l map[string]any) bool { return l["path"] == "/plain/stderr" })
	if l["query"] != "a=1" || l["status"] != 200.0 {
		t.Fatalf("stderr access line %v", l)
	}
	p.signal(syscall.SIGUSR1) // harmless on stderr
	p.reload(accessConf("false"))
	p.waitReloads(2)
	do(t, "GET", base+"/plain/off", nil)
	// Turn it back on and wait for a marker line; by then a line for "off"
	// would have been flushed (batches wait at most 100ms, and the
	// previous writer is flushed when it is retired).
	time.Sleep(200 * time.Millisecond)
	p.reload(accessConf("true"))
	p.waitReloads(3)
	do(t, "GET", base+"/plain/back", nil)
	p.waitLog("access", func(l map[string]any) bool { return l["path"] == "/plain/back" })
	for _, l := range p.logLines("access") {
		if l["path"] == "/plain/off" {
			t.Fatalf("access line with access_log = false: %v", l)
		}
	}
	if n := len(obReadAccess(t, logPath)); n != 2 {
		t.Fatalf("the file got lines after the switch: %d", n)
	}
}

// obCountTrace returns how many spans of traceID col holds.
func (c *obCollector) countTrace(traceID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.spans {
		if hex.EncodeToString(s.span.TraceId) == traceID {
			n++
		}
	}
	return n
}

// TestObTracingFollowsReloads: a reload that changes [tracing] sends new
// spans to the new collector; one that removes it stops tracing, and the
// client's traceparent then reaches the upstream untouched.
func TestObTracingFollowsReloads(t *testing.T) {
	colA, colB := obStartCollector(t), obStartCollector(t)
	up, seen := obTraceBackend(t)
	conf := func(tracing string) string { return obSite(up.Addr, `grace_period = "2s"`, tracing) }
	p, base := serve(t, conf(obTracing(colA.Addr)))
	url := base + "/t"
	get := func(traceID string) {
		t.Helper()
		resp, _ := do(t, "GET", url, nil, "traceparent: 00-"+traceID+"-00f067aa0ba902b7-01")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	const idA, idB, idOff = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2", "ccccccccccccccccccccccccccccccc3"
	get(idA)

	p.reload(conf(obTracing(colB.Addr)))
	p.waitReloads(1)
	get(idB)
	colA.waitSpans(t, idA, tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
	colB.waitSpans(t, idB, tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
	if n := colA.countTrace(idB); n != 0 {
		t.Fatalf("the old collector got %d spans after the reload", n)
	}

	// sample_ratio = 0: new traces are not recorded (the upstream still gets
	// a traceparent, flags 00); a sampled client trace still is.
	const idRatio = "ddddddddddddddddddddddddddddddd4"
	p.reload(conf(obTracing(colB.Addr) + "\nsample_ratio = 0"))
	p.waitReloads(2)
	if resp, _ := do(t, "GET", url, nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	tps := seen()
	if tp := tps[len(tps)-1]; len(tp) != 55 || !strings.HasSuffix(tp, "-00") {
		t.Fatalf("sample_ratio = 0: upstream traceparent %q, want an unsampled one", tp)
	}
	get(idRatio)
	colB.waitSpans(t, idRatio, tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
	if n := colB.countTrace(strings.Split(tps[len(tps)-1], "-")[1]); n != 0 {
		t.Fatalf("sample_ratio = 0 recorded %d spans of a new trace", n)
	}

	p.reload(conf(""))
	p.waitReloads(3)
	get(idOff)
	tps = seen()
	if want := "00-" + idOff + "-00f067aa0ba902b7-01"; tps[len(tps)-1] != want {
		t.Fatalf("tracing off: upstream traceparent %q, want the client's %q", tps[len(tps)-1], want)
	}
	l := p.waitLog("access", func(l map[string]any) bool { return l["trace_id"] == idOff })
	if l["path"] != "/t" {
		t.Fatalf("access line %v", l)
	}
	// (An untouched traceparent also proves no tracer ran: a live one
	// replaces the parent id with its client span's.)
}

// TestObGauges: http_requests_in_flight counts a request while it waits
// for its upstream, and http_connections_open follows client connections
// (HTTP/1.1 keep-alive) back to 0.
func TestObGauges(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}))
	maddr := freeAddr(t)
	_, base := serve(t, obSite(up.Addr, fmt.Sprintf("metrics_addr = %q\naccess_log = false", maddr), ""))
	inFlight := obSeries("http_requests_in_flight")
	open := obSeries("http_connections_open", "server", "main")
	obWaitMetrics(t, maddr, map[string]float64{inFlight: 0}, nil)

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	done := make(chan error, 1)
	go func() {
		resp, err := c.Get(base + "/slow")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	obWaitMetrics(t, maddr, map[string]float64{inFlight: 1, open: 1}, nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A second connection while the first idles.
	c2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	if resp, err := c2.Get(base + "/fast"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	obWaitMetrics(t, maddr, map[string]float64{inFlight: 0, open: 2}, nil)
	c.CloseIdleConnections()
	c2.CloseIdleConnections()
	obWaitMetrics(t, maddr, map[string]float64{inFlight: 0, open: 0}, nil)
}

// TestObClientIPBehindTrustedProxy: behind a trusted proxy the client
// address in the access log and on the server span is the one from
// X-Forwarded-For.
func TestObClientIPBehindTrustedProxy(t *testing.T) {
	col := obStartCollector(t)
	up, _ := obTraceBackend(t)
	p, base := serve(t, obSite(up.Addr, `trusted_proxies = ["127.0.0.0/8"]`, obTracing(col.Addr)))
	const traceID = "7bf92f3577b34da6a3ce929d0e0e4731"
	resp, _ := do(t, "GET", base+"/behind", nil,
		"X-Forwarded-For: 198.51.100.7, 203.0.113.9", "traceparent: 00-"+traceID+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	l := p.waitLog("access", func(l map[string]any) bool { return l["path"] == "/behind" })
	if l["remote_addr"] != "203.0.113.9" {
		t.Errorf("access remote_addr %v, want 203.0.113.9", l["remote_addr"])
	}
	srv := col.waitSpans(t, traceID, tracepb.Span_SPAN_KIND_SERVER)[tracepb.Span_SPAN_KIND_SERVER]
	if got := srv.attr("client.address"); got != "203.0.113.9" {
		t.Errorf("server span client.address %q, want 203.0.113.9 (as in the access log)", got)
	}
}
