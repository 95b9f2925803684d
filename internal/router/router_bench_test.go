package router

import (
	"fmt"
	"testing"
)

// benchRoutes builds n locations spread the way a large deployment looks:
// a few dozen virtual hosts (exact and wildcard), each with exact paths and
// prefixes, plus some any-host routes and about 5% regexes ranked below the
// indexed routes (the common case), and one high-priority regex on a host
// the benchmark does not hit.
func benchRoutes(n int) []Route[int] {
	routes := make([]Route[int], 0, n)
	hosts := max(1, n/25)
	for i := 0; len(routes) < n; i++ {
		h := i % (hosts + 1)
		var host string
		switch {
		case h == hosts:
			host = "" // any host
		case h%4 == 3:
			host = fmt.Sprintf("*.svc%d.example.com", h)
		default:
			host = fmt.Sprintf("api%d.example.com", h)
		}
		rt := Route[int]{Name: fmt.Sprintf("loc%04d", i), Host: host, Value: i}
		switch i % 20 {
		case 0:
			rt.PathType = PathRegex
			rt.Path = fmt.Sprintf(`^/re%d/(\d+)/(?P<rest>.*)$`, i)
			rt.Rewrite = "/x/$1/${rest}"
		case 1, 2, 3, 4, 5:
			rt.PathType = PathExact
			rt.Path = fmt.Sprintf("/exact/%d", i)
		default:
			rt.PathType = PathPrefix
			rt.Path = fmt.Sprintf("/p%d/svc/v%d", i%7, i)
			if i%3 == 0 {
				rt.Rewrite = "/"
			}
		}
		routes = append(routes, rt)
	}
	routes[len(routes)-1] = Route[int]{Name: "zz-hot-regex", Host: "other.example.net",
		Path: `^/p\d`, PathType: PathRegex, Priority: 10}
	return append(routes, Route[int]{Name: "root", Path: "/"})
}

func BenchmarkRouter(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("locations=%d", n), func(b *testing.B) {
			rt, err := New(benchRoutes(n))
			if err != nil {
				b.Fatal(err)
			}
			// Requests that hit: an exact path, a deep prefix with a
			// rewrite on a mixed-case host with a port, a wildcard host, the
			// fallback root. Every one must find a route.
			reqs := []struct{ host, path string }{
				{"API0.example.com:8080", "/exact/1"},
				{"api1.example.com", "/p6/svc/v6/users/42/profile"},
				{"a.b.svc3.example.com", "/p3/svc/v3/x"},
				{"unknown.example.org", "/static/css/site.css"},
			}
			for _, q := range reqs {
				if _, ok := rt.Match(q.host, q.path); !ok {
					b.Fatalf("no match for %v", q)
				}
			}
			var scratch []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := reqs[i%len(reqs)]
				m, ok := rt.Match(q.host, q.path)
				if !ok {
					b.Fatal("no match")
				}
				scratch = m.AppendPath(scratch[:0])
			}
		})
	}
}

// BenchmarkRouterRegex measures a request decided by a regex with captures
// and a rewrite: the one case that allocates (the submatch indexes).
func BenchmarkRouterRegex(b *testing.B) {
	rt, err := New(benchRoutes(1000))
	if err != nil {
		b.Fatal(err)
	}
	const host, path = "api0.example.com", "/re0/123/a/b"
	if m, ok := rt.Match(host, path); !ok || m.Entry.PathType != PathRegex {
		b.Fatalf("want a regex match, got %+v %v", m.Entry, ok)
	}
	var scratch []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, _ := rt.Match(host, path)
		scratch = m.AppendPath(scratch[:0])
	}
}
