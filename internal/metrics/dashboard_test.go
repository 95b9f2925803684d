package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

const dashboardPath = "../../deploy/grafana/pingap.json"

// promKeywords are PromQL words that look like identifiers but are not
// metric names.
var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "and": true, "or": true,
	"unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
}

var (
	reBraces   = regexp.MustCompile(`\{[^{}]*\}`)
	reBrackets = regexp.MustCompile(`\[[^\[\]]*\]`)
	reGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	reStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	reIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	reLabelVal = regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)`)
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	s := reStrings.ReplaceAllString(expr, " ")
	s = reBraces.ReplaceAllString(s, " ")
	s = reBrackets.ReplaceAllString(s, " ")
	s = reGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range reIdent.FindAllStringIndex(s, -1) {
		word := s[loc[0]:loc[1]]
		if promKeywords[strings.ToLower(word)] {
			continue
		}
		if loc[0] > 0 && (s[loc[0]-1] == '$' || (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9') || s[loc[0]-1] == '.') {
			continue // $variable, or the exponent/suffix of a number (1e-9)
		}
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") {
			continue // a function call
		}
		out = append(out, word)
	}
	return out
}

// collectQueries walks the dashboard JSON and returns every PromQL
// expression (panel targets, annotations) and every templating query.
func collectQueries(v any, exprs, queries *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok {
				switch k {
				case "expr":
					*exprs = append(*exprs, s)
				case "query", "definition":
					*queries = append(*queries, s)
				}
			}
			collectQueries(val, exprs, queries)
		}
	case []any:
		for _, e := range x {
			collectQueries(e, exprs, queries)
		}
	}
}

// touchedFamilies returns the names and types of every metric family the
// registry exports once each metric has at least one series.
func touchedFamilies(t *testing.T) map[string]string {
	m := New("dash")
	m.Location("web", "api").Observe("GET", 200, time.Millisecond, 1, 1)
	m.UpstreamAddr("b", "127.0.0.1:1").Done(time.Millisecond, false, true)
	m.ConnHook("web")(true)
	m.TLSHandshake("web")
	m.PluginResponse("p", 429)
	m.SetCertificateExpiry("c", time.Now())
	m.RequestStarted()
	m.ConfigReload(true)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	fam := map[string]string{}
	for _, mf := range mfs {
		fam[mf.GetName()] = mf.GetType().String()
	}
	return fam
}

// TestDashboard checks deploy/grafana/pingap.json is valid JSON and reads
// only metrics this package exports (histograms through _bucket, _sum,
// _count), and that the brief's panels are there.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	var exprs, queries []string
	collectQueries(dash, &exprs, &queries)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	fam := touchedFamilies(t)
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("expression %q reads no metric", e)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	for _, q := range queries {
		for _, m := range reLabelVal.FindAllStringSubmatch(q, -1) {
			used[m[1]] = true
		}
	}
	for n := range used {
		if _, ok := fam[n]; ok {
			continue
		}
		base := ""
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok {
				base = b
			}
		}
		if base != "" && fam[base] == "HISTOGRAM" {
			continue
		}
		t.Errorf("dashboard uses %q, which the registry does not export", n)
	}
	// The panels the brief asks for.
	for _, want := range []string{
		NameRequests, NameRequestDuration + "_bucket", NameUpstreamHealth,
		NameConfigReloads, NameInFlight, NameConnectionsOpen,
	} {
		if !used[want] {
			t.Errorf("dashboard does not use %s", want)
		}
	}
	joined := strings.Join(exprs, "\n")
	for _, q := range []string{"histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,", `status=~"5.."`} {
		if !strings.Contains(joined, q) {
			t.Errorf("dashboard lacks %s", q)
		}
	}
	list := make([]string, 0, len(used))
	for n := range used {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("dashboard metrics: %v", list)
}

func TestMetricNamesExtractor(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`sum by (server) (rate(http_requests_total{status=~"5.."}[5m]))`, []string{"http_requests_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))`, []string{"x_bucket"}},
		{`a / clamp_min(b, 1e-9) and on(job) c`, []string{"a", "b", "c"}},
		{`(tls_certificate_expiry_seconds - time()) / 86400`, []string{"tls_certificate_expiry_seconds"}},
	}
	for _, c := range cases {
		got := metricNames(c.expr)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("metricNames(%q) = %v, want %v", c.expr, got, c.want)
		}
	}
}
