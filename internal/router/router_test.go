package router

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/testutil/race"
)

// r is shorthand for a route whose Value is its name.
func r(name, host, pathType, path string, prio int, rewrite string) Route[string] {
	return Route[string]{Name: name, Host: host, PathType: pathType, Path: path, Priority: prio, Rewrite: rewrite, Value: name}
}

type req struct {
	host, path string
	want       string // location name, "" = no match
	wantPath   string // upstream path, checked when want != "" ("" = unchanged)
}

func runTable(t *testing.T, routes []Route[string], reqs []req) {
	t.Helper()
	rt, err := New(routes)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, q := range reqs {
		m, ok := rt.Match(q.host, q.path)
		got := ""
		if ok {
			got = m.Name()
			if m.Value() != got {
				t.Errorf("Match(%q, %q): Value %q != Name %q", q.host, q.path, m.Value(), got)
			}
		}
		if got != q.want {
			t.Errorf("Match(%q, %q) = %q, want %q", q.host, q.path, got, q.want)
			continue
		}
		if !ok {
			continue
		}
		want := q.wantPath
		if want == "" {
			want = q.path
		}
		if p := m.RewritePath(); p != want {
			t.Errorf("Match(%q, %q) [%s]: RewritePath = %q, want %q", q.host, q.path, got, p, want)
		}
		if p := string(m.AppendPath([]byte("x"))); p != "x"+want {
			t.Errorf("Match(%q, %q) [%s]: AppendPath = %q, want %q", q.host, q.path, got, p, "x"+want)
		}
		if p := string(m.Entry.AppendRewrite(nil, q.path)); p != want {
			t.Errorf("Match(%q, %q) [%s]: Entry.AppendRewrite = %q, want %q", q.host, q.path, got, p, want)
		}
	}
}

func TestTieBreakOrder(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route[string]
		reqs   []req
	}{
		{
			name: "priority beats everything",
			routes: []Route[string]{
				r("exact-host-exact", "a.example.com", "exact", "/x", 0, ""),
				r("any-prefix-root-p1", "", "prefix", "/", 1, ""),
			},
			reqs: []req{{host: "a.example.com", path: "/x", want: "any-prefix-root-p1"}},
		},
		{
			name: "higher-priority regex beats lower-priority exact",
			routes: []Route[string]{
				r("exact", "", "exact", "/x", 0, ""),
				r("regex", "", "regex", "^/", 5, ""),
			},
			reqs: []req{{path: "/x", want: "regex"}, {path: "/y", want: "regex"}},
		},
		{
			name: "negative priority loses to default",
			routes: []Route[string]{
				r("neg", "", "exact", "/x", -1, ""),
				r("root", "", "prefix", "/", 0, ""),
			},
			reqs: []req{{path: "/x", want: "root"}},
		},
		{
			name: "exact host beats wildcard beats no host",
			routes: []Route[string]{
				r("none", "", "exact", "/x", 0, ""),
				r("wild", "*.example.com", "prefix", "/", 0, ""),
				r("host", "a.example.com", "regex", "x", 0, ""),
			},
			reqs: []req{
				{host: "a.example.com", path: "/x", want: "host"},
				{host: "a.example.com", path: "/y", want: "wild"},
				{host: "b.example.com", path: "/x", want: "wild"},
				{host: "example.com", path: "/x", want: "none"},
				{host: "", path: "/x", want: "none"},
			},
		},
		{
			name: "wildcard host regex beats hostless exact",
			routes: []Route[string]{
				r("none-exact", "", "exact", "/x", 0, ""),
				r("wild-regex", "*.example.com", "regex", "^/x$", 0, ""),
			},
			reqs: []req{{host: "a.example.com", path: "/x", want: "wild-regex"}},
		},
		{
			name: "exact beats prefix beats regex",
			routes: []Route[string]{
				r("c-exact", "", "exact", "/a/b", 0, ""),
				r("b-prefix", "", "prefix", "/a", 0, ""),
				r("a-regex", "", "regex", "^/a/b/c/d/e/f", 0, ""),
			},
			reqs: []req{
				{path: "/a/b", want: "c-exact"},
				{path: "/a/b/c/d/e/f", want: "b-prefix"},
				{path: "/a", want: "b-prefix"},
			},
		},
		{
			name: "longer path wins",
			routes: []Route[string]{
				r("short", "", "prefix", "/a", 0, ""),
				r("long", "", "prefix", "/a/b", 0, ""),
				r("re-short", "", "regex", "c", 0, ""),
				r("re-long", "", "regex", "c+", 0, ""),
			},
			reqs: []req{
				{path: "/a/b/c", want: "long"},
				{path: "/a/bc", want: "short"},
				{path: "/c", want: "re-long"},
			},
		},
		{
			name: "trailing slash counts for length",
			routes: []Route[string]{
				r("noslash", "", "prefix", "/a", 0, ""),
				r("slash", "", "prefix", "/a/", 0, ""),
			},
			reqs: []req{{path: "/a", want: "slash"}, {path: "/a/x", want: "slash"}},
		},
		{
			name: "name ascending is the last tie-break",
			routes: []Route[string]{
				r("b", "", "prefix", "/a", 0, ""),
				r("a", "", "prefix", "/a", 0, ""),
				r("re-b", "", "regex", "z", 0, ""),
				r("re-a", "", "regex", "y", 0, ""),
				r("w-b", "*.b.example.com", "prefix", "/", 0, ""),
				r("w-a", "*.example.com", "prefix", "/", 0, ""),
			},
			reqs: []req{
				{path: "/a/x", want: "a"},
				{path: "/zy", want: "re-a"},
				{path: "/z", want: "re-b"},
				// Wildcard specificity is not a tie-break: same length, name decides.
				{host: "x.b.example.com", path: "/", want: "w-a"},
			},
		},
		{
			name: "shorter prefix with higher priority beats longer one",
			routes: []Route[string]{
				r("long", "", "prefix", "/a/b/c", 0, ""),
				r("short", "", "prefix", "/a", 1, ""),
			},
			reqs: []req{{path: "/a/b/c/d", want: "short"}},
		},
		{
			name: "regex only runs when it can win",
			routes: []Route[string]{
				r("exact", "", "exact", "/x", 0, ""),
				r("re-low", "", "regex", "^/x$", -1, ""),
				r("re-hi", "h.example.com", "regex", "^/x$", 0, ""),
			},
			reqs: []req{
				{path: "/x", want: "exact"},
				{host: "h.example.com", path: "/x", want: "re-hi"},
				{host: "H.Example.Com.", path: "/x", want: "re-hi"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runTable(t, tt.routes, tt.reqs) })
	}
}

func TestHostMatching(t *testing.T) {
	routes := []Route[string]{
		r("api", "API.Example.com", "prefix", "/", 0, ""),
		r("wild", "*.example.com", "prefix", "/", 0, ""),
		r("v6", "[::1]", "prefix", "/", 0, ""),
		r("v6bare", "2001:DB8::1", "prefix", "/", 0, ""),
		r("v4", "127.0.0.1", "prefix", "/", 0, ""),
		r("fqdn", "dot.example.org.", "prefix", "/", 0, ""),
		r("any", "", "prefix", "/", 0, ""),
	}
	runTable(t, routes, []req{
		{host: "api.example.com", path: "/", want: "api"},
		{host: "API.EXAMPLE.COM", path: "/", want: "api"},
		{host: "Api.Example.Com:8443", path: "/", want: "api"},
		{host: "api.example.com.", path: "/", want: "api"},
		{host: "api.example.com:", path: "/", want: "api"},
		{host: "x.example.com", path: "/", want: "wild"},
		{host: "X.Y.Z.Example.COM:80", path: "/", want: "wild"},
		{host: "x.api.example.com", path: "/", want: "wild"},
		{host: "example.com", path: "/", want: "any"},
		{host: ".example.com", path: "/", want: "any"},
		{host: "badexample.com", path: "/", want: "any"},
		{host: "example.com.evil", path: "/", want: "any"},
		{host: "[::1]:8080", path: "/", want: "v6"},
		{host: "[::1]", path: "/", want: "v6"},
		{host: "[2001:db8::1]:443", path: "/", want: "v6bare"},
		{host: "[2001:DB8::1]", path: "/", want: "v6bare"},
		{host: "[::2]:8080", path: "/", want: "any"},
		{host: "127.0.0.1:9000", path: "/", want: "v4"},
		{host: "dot.example.org", path: "/", want: "fqdn"},
		{host: "DOT.example.org.:1", path: "/", want: "fqdn"},
		{host: "", path: "/", want: "any"},
		{host: strings.Repeat("a", 300) + ".example.com", path: "/", want: "wild"},
		{host: strings.Repeat("A", 300) + ".EXAMPLE.COM:1", path: "/", want: "wild"},
	})
}

// TestHostileHost: a huge Host made of dots costs work bounded by the
// configured wildcard lengths, never allocates, and still matches by tail.
func TestHostileHostNoAlloc(t *testing.T) {
	rt, err := New([]Route[string]{
		r("wild", "*.example.com", "prefix", "/", 0, ""),
		r("exact", strings.Repeat("b", 253), "prefix", "/", 0, ""),
		r("any", "", "prefix", "/", 0, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	dots := strings.Repeat(".", 64<<10)
	for _, tc := range []struct{ host, want string }{
		{dots, "any"},
		{dots + "x.EXAMPLE.com:1", "wild"},
		{strings.Repeat("b", 253), "exact"},
		{strings.Repeat("B", 253) + ".:8", "exact"},
		{"x" + strings.Repeat("b", 253), "any"},
		{strings.Repeat("b", 300), "any"},
	} {
		var m Match[string]
		allocs := testing.AllocsPerRun(5, func() { m, _ = rt.Match(tc.host, "/") })
		if m.Name() != tc.want || (allocs != 0 && !race.Enabled) {
			t.Errorf("host of %d bytes: got %s with %v allocs, want %s with 0", len(tc.host), m.Name(), allocs, tc.want)
		}
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"a.com":            "a.com",
		"A.com:80":         "A.com",
		"a.com.":           "a.com",
		"a.com.:80":        "a.com",
		".":                ".",
		"[::1]:80":         "::1",
		"[::1]":            "::1",
		"[::1":             "::1",
		"::1":              "::1",
		"[fe80::1%eth0]:1": "fe80::1%eth0",
		":80":              "",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNoHostRoutesIgnoreHost(t *testing.T) {
	runTable(t, []Route[string]{r("root", "", "", "", 0, "")}, []req{
		{host: "anything:1", path: "/", want: "root"},
		{host: "[", path: "/x/y", want: "root"},
		{host: "", path: "", want: "root"},
		{host: "", path: "*", want: ""},
	})
}

func TestPrefixBoundary(t *testing.T) {
	runTable(t, []Route[string]{
		r("api", "", "prefix", "/api", 0, ""),
		r("docs", "", "prefix", "/docs/", 0, ""),
		r("deep", "", "prefix", "/a/b/c", 0, ""),
		r("enc", "", "prefix", "/x%2Fy", 0, ""),
	}, []req{
		{path: "/api", want: "api"},
		{path: "/api/", want: "api"},
		{path: "/api/x/y", want: "api"},
		{path: "/apix", want: ""},
		{path: "/ap", want: ""},
		{path: "/API", want: ""},
		{path: "/docs", want: "docs"},
		{path: "/docs/", want: "docs"},
		{path: "/docs/x", want: "docs"},
		{path: "/docsx", want: ""},
		{path: "/a/b/c", want: "deep"},
		{path: "/a/b/c/", want: "deep"},
		{path: "/a/b/cd", want: ""},
		{path: "/a/b", want: ""},
		{path: "/x%2Fy/z", want: "enc"},
		{path: "/x/y", want: ""},
		{path: "/", want: ""},
	})
}

func TestExactAndRegex(t *testing.T) {
	runTable(t, []Route[string]{
		r("exact", "", "exact", "/e", 0, ""),
		r("exact-slash", "", "exact", "/s/", 0, ""),
		r("img", "", "regex", `\.(png|jpg)$`, 0, ""),
		r("anch", "", "regex", `^/u/\d+$`, 0, ""),
	}, []req{
		{path: "/e", want: "exact"},
		{path: "/e/", want: ""},
		{path: "/E", want: ""},
		{path: "/s/", want: "exact-slash"},
		{path: "/s", want: ""},
		{path: "/a/b.png", want: "img"},
		{path: "/a/b.png/x", want: ""},
		{path: "/u/42", want: "anch"},
		{path: "/u/42x", want: ""},
	})
}

func TestRewrites(t *testing.T) {
	runTable(t, []Route[string]{
		// prefix
		r("p-root", "", "prefix", "/api", 0, "/"),
		r("p-v2slash", "", "prefix", "/v2s", 0, "/v2/"),
		r("p-v2", "", "prefix", "/v2n", 0, "/v2"),
		r("p-slashprefix", "", "prefix", "/sp/", 0, "/new"),
		r("p-all", "", "prefix", "/", -1, "/base"),
		// exact
		r("e", "", "exact", "/old", 0, "/new/place"),
		// regex
		r("re-num", "", "regex", `^/user/(\d+)/(\w+)$`, 0, "/u/$2/$1"),
		r("re-name", "", "regex", `^/n/(?P<id>\d+)`, 0, "/id/${id}x"),
		r("re-sed", "", "regex", `/old/`, 0, "/new/"),
		r("re-noslash", "", "regex", `^/strip/(.*)$`, 0, "$1"),
		r("re-empty", "", "regex", `^/gone$`, 0, "$9"),
		r("re-dollar", "", "regex", `^/cash$`, 0, "/$$/${}/$"),
		r("re-none", "", "regex", `^/keep/`, 0, ""),
	}, []req{
		{path: "/api/users", want: "p-root", wantPath: "/users"},
		{path: "/api", want: "p-root", wantPath: "/"},
		{path: "/api/", want: "p-root", wantPath: "/"},
		{path: "/v2s/users", want: "p-v2slash", wantPath: "/v2/users"},
		{path: "/v2s", want: "p-v2slash", wantPath: "/v2/"},
		{path: "/v2n/users", want: "p-v2", wantPath: "/v2/users"},
		{path: "/v2n", want: "p-v2", wantPath: "/v2"},
		{path: "/v2n/", want: "p-v2", wantPath: "/v2/"},
		{path: "/sp/x", want: "p-slashprefix", wantPath: "/new/x"},
		{path: "/sp", want: "p-slashprefix", wantPath: "/new"},
		{path: "/other/x", want: "p-all", wantPath: "/base/other/x"},
		{path: "/", want: "p-all", wantPath: "/base/"},
		{path: "/old", want: "e", wantPath: "/new/place"},
		{path: "/user/42/edit", want: "re-num", wantPath: "/u/edit/42"},
		{path: "/n/7/rest", want: "re-name", wantPath: "/id/7x/rest"},
		{path: "/a/old/b/old/c", want: "re-sed", wantPath: "/a/new/b/old/c"},
		{path: "/strip/a/b", want: "re-noslash", wantPath: "/a/b"},
		{path: "/strip/", want: "re-noslash", wantPath: "/"},
		{path: "/gone", want: "re-empty", wantPath: "/"},
		{path: "/cash", want: "re-dollar", wantPath: "/$/${}/$"},
		{path: "/keep/x", want: "re-none", wantPath: "/keep/x"},
	})
}

// TestRewritePathNoAlloc: matching and rewriting allocate nothing, except
// for a regex route with a rewrite (not in this table); a regex route
// without a rewrite does not allocate either.
func TestRewritePathNoAlloc(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	rt, err := New([]Route[string]{
		r("p", "", "prefix", "/api", 0, "/v2"),
		r("e", "", "exact", "/old", 0, "/new"),
		r("n", "", "prefix", "/plain", 0, ""),
		r("re", "h.example.com", "regex", `^/img/.*\.png$`, 0, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64)
	for _, path := range []string{"/api", "/old", "/plain/x", "/api/x", "/img/a/b.png"} {
		allocs := testing.AllocsPerRun(100, func() {
			m, ok := rt.Match("H.Example.com:1", path)
			if !ok {
				t.Fatalf("%s: no match", path)
			}
			buf = m.AppendPath(buf[:0])
			if path != "/api/x" {
				_ = m.RewritePath()
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Match+rewrite, want 0", path, allocs)
		}
	}
}

func TestTemplateMatchesRegexpExpand(t *testing.T) {
	re := regexp.MustCompile(`^/(?P<a>[a-z]+)/(\d+)?(?P<b_2>x)?(y)?`)
	paths := []string{"/abc/12xy/z", "/abc/", "/q/7", "/abc/x"}
	templates := []string{
		"", "$", "$$", "$$$", "$1", "${1}", "$2$1", "$3", "$10", "$01", "$a", "${a}",
		"$ax", "${a}x", "${b_2}", "$b_2x", "${é}", "$é", "${", "${a", "${}", "$-", "$.",
		"/lit/$1/${a}$", "$999999999", "${0}", "$0", "a$1b$2c", "$$1", "${a}}",
	}
	for _, tm := range templates {
		parts := parseTemplate(re, tm)
		for _, p := range paths {
			loc := re.FindStringSubmatchIndex(p)
			if loc == nil {
				continue
			}
			want := string(re.ExpandString(nil, tm, p, loc))
			if got := string(expand(nil, parts, p, loc)); got != want {
				t.Errorf("template %q on %q: got %q, regexp.Expand gives %q", tm, p, got, want)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		route Route[string]
		want  string // substring of the error
	}{
		{r("badre", "", "regex", "(", 0, ""), "locations.badre.path: invalid regex"},
		{r("badtype", "", "glob", "/", 0, ""), "locations.badtype.path_type"},
		{r("noslash", "", "prefix", "api", 0, ""), "locations.noslash.path"},
		{r("exactnoslash", "", "exact", "", 0, ""), "locations.exactnoslash.path"},
		{r("port", "a.com:80", "prefix", "/", 0, ""), "locations.port.host"},
		{r("star", "*", "prefix", "/", 0, ""), "locations.star.host"},
		{r("midstar", "a.*.com", "prefix", "/", 0, ""), "locations.midstar.host"},
		{r("emptywild", "*.", "prefix", "/", 0, ""), "locations.emptywild.host"},
		{r("slashhost", "a.com/x", "prefix", "/", 0, ""), "locations.slashhost.host"},
		{r("bracket", "]", "prefix", "/", 0, ""), "locations.bracket.host"},
		{r("unicode", "bücher.de", "prefix", "/", 0, ""), "locations.unicode.host"},
		{r("wilddot", "*..com", "prefix", "/", 0, ""), "locations.wilddot.host"},
		{r("badv6", "[::1", "prefix", "/", 0, ""), "locations.badv6.host"},
		{r("badv6b", "[zz]", "prefix", "/", 0, ""), "locations.badv6b.host"},
		{r("long", strings.Repeat("a", 250)+".com", "prefix", "/", 0, ""), "locations.long.host"},
		{r("rw", "", "prefix", "/", 0, "v2"), "locations.rw.rewrite"},
		{r("rwq", "", "exact", "/a", 0, "/b?x=1"), "locations.rwq.rewrite"},
		{Route[string]{Path: "/"}, "empty name"},
	}
	for _, tt := range tests {
		_, err := New([]Route[string]{tt.route})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) error = %v, want it to contain %q", tt.route, err, tt.want)
		}
	}

	// Several problems are all reported, and duplicates are rejected.
	_, err := New([]Route[string]{
		r("a", "", "regex", "(", 0, ""),
		r("b", "", "prefix", "/", 0, ""),
		r("b", "", "exact", "/", 0, ""),
		r("c", "", "bogus", "/", 0, ""),
	})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"locations.a.path", "locations.b: duplicate", "locations.c.path_type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("joined error %q lacks %q", err, want)
		}
	}
}

func TestEmptyRouterAndEntries(t *testing.T) {
	rt, err := New[int](nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.Match("a.com", "/"); ok {
		t.Error("empty router matched")
	}
	rt2, err := New([]Route[string]{
		r("b", "", "prefix", "/", 0, ""),
		r("a", "h.com", "regex", "x", 0, ""),
		r("c", "", "exact", "/x", 3, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range rt2.Entries() {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, ","); got != "c,a,b" || rt2.Len() != 3 {
		t.Errorf("Entries order = %s (len %d), want c,a,b", got, rt2.Len())
	}
	if e := rt2.Entries()[2]; e.PathType != PathPrefix || e.Path != "/" {
		t.Errorf("defaults not applied: %+v", e.Route)
	}
}

// TestManyWildcardGroups exercises the regex pass when more host groups
// carry regexes than Match remembers on its stack (the re-enumeration path).
func TestManyWildcardGroups(t *testing.T) {
	labels := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	var routes []Route[string]
	host := "example.com"
	for i := len(labels) - 1; i >= 0; i-- {
		routes = append(routes, r("w-"+labels[i], "*."+host, "regex", "^/nomatch", 0, ""))
		host = labels[i] + "." + host
	}
	routes = append(routes,
		r("w-hit", "*.example.com", "regex", "^/hit", 0, "/rw"),
		r("root", "", "prefix", "/", 0, ""),
	)
	// host is now a.b.c...k.example.com; every wildcard group applies.
	runTable(t, routes, []req{
		{host: "z." + host, path: "/hit/x", want: "w-hit", wantPath: "/rw/x"},
		{host: "z." + host, path: "/other", want: "root"},
	})
}
