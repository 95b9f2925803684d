package router

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The reference implementation: scan every route, keep those that match,
// pick the first in contract order by comparing the contract's keys
// directly. It shares nothing with the router's index or ranks; only
// hostOnly (port stripping, which has its own table test) is reused.

type refRoute struct {
	Route[string]
	re *regexp.Regexp
}

func refHostMatches(routeHost, reqHost string) bool {
	if routeHost == "" {
		return true
	}
	fold := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 32
			}
		}
		return string(b)
	}
	rh := fold(routeHost)
	if len(rh) > 2 && rh[0] == '[' && rh[len(rh)-1] == ']' {
		rh = rh[1 : len(rh)-1]
	}
	if len(rh) > 1 {
		rh = strings.TrimSuffix(rh, ".")
	}
	h := fold(hostOnly(reqHost))
	if suffix, ok := strings.CutPrefix(rh, "*"); ok {
		return len(h) > len(suffix) && strings.HasSuffix(h, suffix)
	}
	return h == rh
}

func refHostClass(host string) int {
	switch {
	case host == "":
		return 0
	case strings.HasPrefix(host, "*."):
		return 1
	}
	return 2
}

func refTypeOrder(pt string) int {
	switch pt {
	case "exact":
		return 0
	case "regex":
		return 2
	}
	return 1
}

func refPath(rt refRoute) string {
	if rt.Path == "" && refTypeOrder(rt.PathType) == 1 {
		return "/"
	}
	return rt.Path
}

func refPathMatches(rt refRoute, path string) bool {
	switch rt.PathType {
	case "exact":
		return path == rt.Path
	case "regex":
		return rt.re.MatchString(path)
	}
	p := strings.TrimRight(refPath(rt), "/")
	return path == p || strings.HasPrefix(path, p+"/")
}

// refLess is the contract's "Matching order", written out.
func refLess(a, b refRoute) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if ha, hb := refHostClass(a.Host), refHostClass(b.Host); ha != hb {
		return ha > hb
	}
	if ta, tb := refTypeOrder(a.PathType), refTypeOrder(b.PathType); ta != tb {
		return ta < tb
	}
	if la, lb := len(refPath(a)), len(refPath(b)); la != lb {
		return la > lb
	}
	return a.Name < b.Name
}

func refRewrite(rt refRoute, path string) string {
	if rt.Rewrite == "" {
		return path
	}
	switch rt.PathType {
	case "exact":
		return rt.Rewrite
	case "regex":
		loc := rt.re.FindStringSubmatchIndex(path)
		out := path[:loc[0]] + string(rt.re.ExpandString(nil, rt.Rewrite, path, loc)) + path[loc[1]:]
		if !strings.HasPrefix(out, "/") {
			out = "/" + out
		}
		return out
	}
	rest := path[len(strings.TrimRight(refPath(rt), "/")):]
	if rest == "" {
		return rt.Rewrite
	}
	return strings.TrimRight(rt.Rewrite, "/") + "/" + strings.TrimPrefix(rest, "/")
}

func refMatch(routes []refRoute, host, path string) (refRoute, bool) {
	var best refRoute
	found := false
	for _, rt := range routes {
		if refHostMatches(rt.Host, host) && refPathMatches(rt, path) && (!found || refLess(rt, best)) {
			best, found = rt, true
		}
	}
	return best, found
}

// checkAgainstReference builds both and compares every request.
func checkAgainstReference(t *testing.T, routes []Route[string], hosts, paths []string) {
	t.Helper()
	rt, err := New(routes)
	if err != nil {
		return // invalid routes are rejected, not matched; New must just not panic
	}
	refs := make([]refRoute, len(routes))
	for i, r := range routes {
		refs[i] = refRoute{Route: r}
		if r.PathType == "regex" {
			refs[i].re = regexp.MustCompile(r.Path)
		}
	}
	for _, h := range hosts {
		for _, p := range paths {
			m, ok := rt.Match(h, p)
			want, wok := refMatch(refs, h, p)
			if ok != wok || (ok && m.Name() != want.Name) {
				got := "<none>"
				if ok {
					got = m.Name()
				}
				t.Fatalf("Match(%q, %q) = %s, reference = %s (found %v)\nroutes: %s", h, p, got, want.Name, wok, dumpRoutes(routes))
			}
			if !ok {
				continue
			}
			wantPath := refRewrite(want, p)
			if got := m.RewritePath(); got != wantPath {
				t.Fatalf("Match(%q, %q) [%s]: RewritePath = %q, reference %q\nroutes: %s", h, p, want.Name, got, wantPath, dumpRoutes(routes))
			}
			if got := string(m.AppendPath(nil)); got != wantPath {
				t.Fatalf("Match(%q, %q) [%s]: AppendPath = %q, reference %q", h, p, want.Name, got, wantPath)
			}
		}
	}
}

func dumpRoutes(routes []Route[string]) string {
	var b strings.Builder
	for _, r := range routes {
		fmt.Fprintf(&b, "\n  %s host=%q %s %q prio=%d rewrite=%q", r.Name, r.Host, r.PathType, r.Path, r.Priority, r.Rewrite)
	}
	return b.String()
}

// Pieces the generator draws from: small alphabets so that routes collide,
// shadow each other and tie on every key.
var (
	genHosts = []string{"", "a.example.com", "*.example.com", "*.a.example.com", "B.Example.com",
		"[::1]", "127.0.0.1", "example.com", "*.com", "a.example.com.", "*.b.example.com"}
	genPaths = []string{"/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "/b", "/a/b/", "/x%2Fy", "", "/a//b"}
	genRegex = []string{"^/a", "a", "^/a/(b)", `(?P<n>[a-z]+)$`, "^/$", "b|c", "", "^/a/b/c$",
		`/(\w+)/(\w+)`, `(x)?/`, "^$", "(?i)^/A"}
	genRewriteRegex = []string{"", "/", "/v2", "$1", "/x/${n}", "$$", "/$2/$1", "$0", "${1}z", "$9"}
	genRewritePath  = []string{"", "/", "/v2", "/v2/", "/v2//"}
	reqHosts        = []string{"a.example.com", "A.EXAMPLE.COM:80", "x.a.example.com", "example.com", "",
		"[::1]:1", "b.example.com.", "127.0.0.1:8080", "z.com", "y.b.example.com", "com", "[::1"}
	reqPaths = []string{"/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/a/bc", "/b", "/x%2Fy/z", "", "/A",
		"/a/b/c/d", "/c", "*", "/a//b", "/abc/def"}
)

// routesFromBytes decodes a route list from arbitrary bytes (5 bytes per
// route, at most 24 routes).
func routesFromBytes(spec []byte) []Route[string] {
	var routes []Route[string]
	for i := 0; len(spec) >= 5 && i < 24; i++ {
		b := spec[:5]
		spec = spec[5:]
		rt := Route[string]{
			Name:     fmt.Sprintf("n%d-%d", b[0]%4, i), // names sort independently of order
			Host:     genHosts[int(b[1])%len(genHosts)],
			Priority: int(b[0]>>4)%3 - 1,
		}
		switch b[2] % 3 {
		case 0:
			rt.PathType = "exact"
			rt.Path = genPaths[int(b[3])%len(genPaths)]
			if rt.Path == "" {
				rt.Path = "/"
			}
			rt.Rewrite = genRewritePath[int(b[4])%len(genRewritePath)]
		case 1:
			if b[2]&0x80 == 0 {
				rt.PathType = "prefix"
			} // else "": the default, prefix
			rt.Path = genPaths[int(b[3])%len(genPaths)]
			rt.Rewrite = genRewritePath[int(b[4])%len(genRewritePath)]
		default:
			rt.PathType = "regex"
			rt.Path = genRegex[int(b[3])%len(genRegex)]
			rt.Rewrite = genRewriteRegex[int(b[4])%len(genRewriteRegex)]
		}
		rt.Value = rt.Name
		routes = append(routes, rt)
	}
	return routes
}

// FuzzRouter: random routes and requests never panic, and Match agrees with
// the reference scan on the route chosen and the rewritten path. The raw
// host and path are used both as requests and as an extra route (regex or
// prefix), so arbitrary patterns and hosts reach New too.
func FuzzRouter(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 0, 1, 2, 0, 2, 1, 16, 1, 2, 3, 3}, "a.example.com", "/a/b")
	f.Add([]byte{32, 2, 2, 3, 4, 0, 0, 0, 0, 0, 3, 3, 1, 4, 1}, "X.A.Example.COM:443", "/a/b/c")
	f.Add([]byte{1, 5, 0, 1, 1, 2, 6, 1, 2, 2, 17, 0, 2, 8, 6}, "[::1]:8080", "/abc/def")
	f.Add([]byte{}, "", "")
	f.Add([]byte{9, 9, 9, 9, 9}, "*.example.com", `^/(?P<n>\w+)`)
	f.Fuzz(func(t *testing.T, spec []byte, host, path string) {
		routes := routesFromBytes(spec)
		checkAgainstReference(t, routes, append(reqHosts, host), append(reqPaths, path))

		// Arbitrary input as a route: New either rejects it or it behaves
		// like the reference.
		extra := Route[string]{Name: "extra", Host: host, Path: path, PathType: "regex", Rewrite: "/r$1"}
		if _, err := regexp.Compile(path); err != nil {
			extra.PathType = "prefix"
			extra.Rewrite = "/r"
		}
		checkAgainstReference(t, append(routes, extra), append(reqHosts, host), append(reqPaths, path))
	})
}

// TestRouterAgainstReference runs the fuzz property over a few thousand
// random route sets on every `go test`, since plain test runs only replay
// FuzzRouter's seed corpus.
func TestRouterAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	iters := 3000
	if testing.Short() {
		iters = 300
	}
	for range iters {
		spec := make([]byte, 5*(1+rng.IntN(16)))
		for i := range spec {
			spec[i] = byte(rng.Uint32())
		}
		checkAgainstReference(t, routesFromBytes(spec), reqHosts, reqPaths)
	}
}
