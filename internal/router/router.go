// Package router picks the location for a request: it compiles the
// [locations.*] of one server into an index once per config snapshot, and
// Match then finds the winning location for a (Host, normalized path) pair
// in the order the contract fixes (interface.md, "Matching order"):
//
//  1. highest priority;
//  2. exact host, then wildcard host ("*.example.com"), then no host;
//  3. exact path, then prefix, then regex;
//  4. longer configured path;
//  5. name, ascending.
//
// That order is total (names are unique), so New sorts all routes by it once
// and gives each a rank; Match only compares ranks. Hosts are indexed (exact
// map, wildcard suffix map), and within a host group exact paths and prefixes
// are indexed by map, so a lookup costs a few map probes whatever the number
// of locations. Regexes are tried last, in rank order, and only while one of
// them could still beat the best indexed candidate: a configuration without
// regexes, or whose regexes rank below the best non-regex match, never runs
// one. Non-regex matches do not allocate.
//
// The router is generic over the value a route carries (the engine's compiled
// location), so this package knows nothing about plugins or upstreams.
package router

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Path types of a route, as written in [locations.NAME] path_type.
const (
	PathExact  = "exact"
	PathPrefix = "prefix"
	PathRegex  = "regex"
)

// Route is one location as the router sees it.
type Route[T any] struct {
	// Name is the location's name: the final tie-break, and how errors refer
	// to the route. Names must be unique.
	Name string
	// Host is "" (any host), "api.example.com" or "*.example.com". Compared
	// case-insensitively; a port is not allowed here (the request's is
	// ignored). An IPv6 literal may be written with or without brackets.
	Host string
	// Path is the path, prefix or RE2 regex; "" means "/" for a prefix.
	Path string
	// PathType is "exact", "prefix" or "regex"; "" means "prefix".
	PathType string
	// Priority: higher wins.
	Priority int
	// Rewrite is "" (no rewrite) or: for prefix, the replacement of the
	// matched prefix; for exact, the new path; for regex, a replacement
	// template ($1, ${name}) for the matched part of the path.
	Rewrite string
	// Value is what the caller gets back for a match.
	Value T
}

type pathKind uint8

// Ordered as the contract's tie-break: exact beats prefix beats regex.
const (
	pathExact pathKind = iota
	pathPrefix
	pathRegex
)

// Entry is a compiled route. It is immutable after New and shared by all
// requests; callers read the embedded Route (Name, Value, ...) and must not
// modify it.
type Entry[T any] struct {
	Route[T]

	rank        int // position in contract order over the whole router; lower wins
	hostKind    hostKind
	hostKey     string // canonical host, or ".example.com" for a wildcard
	pathKind    pathKind
	prefix      string // prefix routes: Path without trailing slashes ("/" -> "")
	rewriteBase string // prefix routes: Rewrite without trailing slashes
	re          *regexp.Regexp
	tmpl        []tmplPart
}

// HasRewrite reports whether the route rewrites the path.
func (e *Entry[T]) HasRewrite() bool { return e.Rewrite != "" }

// AppendRewrite appends to dst the path the upstream should receive for a
// request path that this route matched (the path itself when the route has
// no rewrite). For a regex route the regex runs again; after Router.Match,
// prefer Match.AppendPath, which reuses the match. A path this route does not
// match is returned unchanged.
func (e *Entry[T]) AppendRewrite(dst []byte, path string) []byte {
	if e.Rewrite == "" {
		return append(dst, path...)
	}
	switch e.pathKind {
	case pathRegex:
		return appendRewrite(dst, e, path, e.re.FindStringSubmatchIndex(path))
	case pathPrefix:
		if !prefixMatches(e.prefix, path) {
			return append(dst, path...)
		}
	case pathExact:
		if path != e.Path {
			return append(dst, path...)
		}
	}
	return appendRewrite(dst, e, path, nil)
}

// Match is the result of Router.Match. It is a small value (no allocation)
// that refers to the compiled Entry and remembers what is needed to rewrite
// the path.
type Match[T any] struct {
	// Entry is the winning route.
	Entry *Entry[T]
	// Path is the request path that was matched.
	Path string
	// loc holds the regex submatch indexes when Entry is a regex route with
	// a rewrite (the only case that allocates).
	loc []int
}

// Name is the matched location's name.
func (m *Match[T]) Name() string { return m.Entry.Name }

// Value is the matched route's value.
func (m *Match[T]) Value() T { return m.Entry.Value }

// AppendPath appends the path to send upstream (rewritten, or m.Path when
// the route has no rewrite) to dst. With a reused dst this never allocates.
func (m *Match[T]) AppendPath(dst []byte) []byte {
	if m.Entry.Rewrite == "" {
		return append(dst, m.Path...)
	}
	return appendRewrite(dst, m.Entry, m.Path, m.loc)
}

// RewritePath returns the path to send upstream. It allocates only when the
// result is a new string: no rewrite returns m.Path, an exact rewrite (or a
// prefix rewrite of the bare prefix) returns the configured string.
func (m *Match[T]) RewritePath() string {
	e := m.Entry
	switch {
	case e.Rewrite == "":
		return m.Path
	case e.pathKind == pathExact:
		return e.Rewrite
	case e.pathKind == pathPrefix && len(m.Path) == len(e.prefix):
		return e.Rewrite
	}
	return string(appendRewrite(nil, e, m.Path, m.loc))
}

// group holds the routes of one host key (or of "any host").
type group[T any] struct {
	exact   map[string]*Entry[T] // path -> best-ranked route with that exact path
	prefix  map[string]*Entry[T] // trimmed prefix -> best-ranked route
	preLens []bool               // preLens[n]: some prefix key has length n
	regex   []*Entry[T]          // rank order
	minRank int                  // best rank of any route in the group
}

// Router is an immutable, compiled set of routes, safe for concurrent use.
type Router[T any] struct {
	entries []*Entry[T] // rank order
	hosts   map[string]*group[T]
	wild    map[string]*group[T] // ".example.com" -> group
	any     *group[T]
	// hostSpecific: some route has a host, so Match must look at the Host.
	hostSpecific bool
	maxWild      int    // longest wildcard suffix
	wildLens     []bool // wildLens[n]: some wildcard suffix has length n
}

// New validates and compiles routes. Errors name the route
// ("locations.NAME.key: why"), and all problems are reported (joined).
func New[T any](routes []Route[T]) (*Router[T], error) {
	var errs []error
	seen := make(map[string]bool, len(routes))
	entries := make([]*Entry[T], 0, len(routes))
	for i := range routes {
		e, err := compile(routes[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[e.Name] {
			errs = append(errs, fmt.Errorf("locations.%s: duplicate location name", e.Name))
			continue
		}
		seen[e.Name] = true
		entries = append(entries, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(entries, compareEntries[T])

	r := &Router[T]{
		entries: entries,
		hosts:   map[string]*group[T]{},
		wild:    map[string]*group[T]{},
	}
	for rank, e := range entries {
		e.rank = rank
		var g *group[T]
		switch e.hostKind {
		case hostAny:
			if r.any == nil {
				r.any = newGroup[T](rank)
			}
			g = r.any
		case hostWildcard:
			g = r.wild[e.hostKey]
			if g == nil {
				g = newGroup[T](rank)
				r.wild[e.hostKey] = g
			}
		case hostExact:
			g = r.hosts[e.hostKey]
			if g == nil {
				g = newGroup[T](rank)
				r.hosts[e.hostKey] = g
			}
		}
		// Entries arrive in rank order, so the first route stored under a
		// key is the best one; later routes with the same key can never win
		// (they match exactly the same requests) and are not indexed.
		switch e.pathKind {
		case pathExact:
			if g.exact[e.Path] == nil {
				g.exact[e.Path] = e
			}
		case pathPrefix:
			if g.prefix[e.prefix] == nil {
				g.prefix[e.prefix] = e
				n := len(e.prefix)
				if n >= len(g.preLens) {
					g.preLens = append(g.preLens, make([]bool, n+1-len(g.preLens))...)
				}
				g.preLens[n] = true
			}
		case pathRegex:
			g.regex = append(g.regex, e)
		}
	}
	r.hostSpecific = len(r.hosts) > 0 || len(r.wild) > 0
	for k := range r.wild {
		r.maxWild = max(r.maxWild, len(k))
	}
	r.wildLens = make([]bool, r.maxWild+1)
	for k := range r.wild {
		r.wildLens[len(k)] = true
	}
	return r, nil
}

func newGroup[T any](rank int) *group[T] {
	return &group[T]{
		exact:   map[string]*Entry[T]{},
		prefix:  map[string]*Entry[T]{},
		minRank: rank,
	}
}

// compile validates one route.
func compile[T any](rt Route[T]) (*Entry[T], error) {
	if rt.Name == "" {
		return nil, errors.New("locations: a location has an empty name")
	}
	e := &Entry[T]{Route: rt}
	key, kind, err := parseRouteHost(rt.Host)
	if err != nil {
		return nil, fmt.Errorf("locations.%s.host: %w", rt.Name, err)
	}
	e.hostKey, e.hostKind = key, kind

	switch rt.PathType {
	case PathPrefix, "":
		e.pathKind = pathPrefix
		e.PathType = PathPrefix
		if e.Path == "" {
			e.Path = "/"
		}
		if e.Path[0] != '/' {
			return nil, fmt.Errorf("locations.%s.path: a prefix must start with \"/\", got %q", rt.Name, rt.Path)
		}
		e.prefix = strings.TrimRight(e.Path, "/")
	case PathExact:
		e.pathKind = pathExact
		if !strings.HasPrefix(rt.Path, "/") {
			return nil, fmt.Errorf("locations.%s.path: an exact path must start with \"/\", got %q", rt.Name, rt.Path)
		}
	case PathRegex:
		e.pathKind = pathRegex
		re, err := regexp.Compile(rt.Path)
		if err != nil {
			return nil, fmt.Errorf("locations.%s.path: invalid regex: %w", rt.Name, err)
		}
		e.re = re
	default:
		return nil, fmt.Errorf("locations.%s.path_type: %q is not one of exact, prefix, regex", rt.Name, rt.PathType)
	}

	if rt.Rewrite != "" {
		switch e.pathKind {
		case pathExact, pathPrefix:
			if rt.Rewrite[0] != '/' || strings.ContainsAny(rt.Rewrite, "?# \t\r\n") {
				return nil, fmt.Errorf("locations.%s.rewrite: %q must be a path starting with \"/\" (no query, fragment or spaces)", rt.Name, rt.Rewrite)
			}
			e.rewriteBase = strings.TrimRight(rt.Rewrite, "/")
		case pathRegex:
			e.tmpl = parseTemplate(e.re, rt.Rewrite)
		}
	}
	return e, nil
}

// compareEntries is the contract's matching order: negative when a wins.
func compareEntries[T any](a, b *Entry[T]) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := cmp.Compare(b.hostKind, a.hostKind); c != 0 {
		return c
	}
	if c := cmp.Compare(a.pathKind, b.pathKind); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.Path), len(a.Path)); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// prefixMatches reports whether a trimmed prefix ("/api", or "" for "/")
// matches path on a segment boundary: "/api" matches "/api", "/api/" and
// "/api/x", not "/apix".
func prefixMatches(prefix, path string) bool {
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// Entries returns the compiled routes in matching order (best first). The
// slice is shared: do not modify it.
func (r *Router[T]) Entries() []*Entry[T] { return r.entries }

// Len is the number of routes.
func (r *Router[T]) Len() int { return len(r.entries) }

// Match finds the location for a request. host is the raw Host header (any
// case, with or without a port, IPv6 literal in brackets); path is the
// normalized path, without the query. Non-regex matches do not allocate; a
// regex route allocates only when it wins and has a rewrite (for its
// submatch indexes).
func (r *Router[T]) Match(host, path string) (Match[T], bool) {
	var best *Entry[T]
	it := groupIter[T]{r: r}
	var buf [maxHostBuf]byte // keeps the lower-cased host off the heap
	if r.hostSpecific {
		// Only the last maxHostBuf bytes can matter: configured hosts are
		// at most 253 bytes. A longer (invalid) host can still match a
		// wildcard by its tail, never an exact host.
		raw, whole := hostOnly(host), true
		if len(raw) > len(buf) {
			raw, whole = raw[len(raw)-len(buf):], false
		}
		it.host = lowerASCII(buf[:0], raw)
		it.whole = whole
	} else {
		it.stage = 2
	}
	// Pass 1: exact and prefix routes through the indexes. Remember the
	// groups that have regexes (a host matches few groups; on overflow pass
	// 2 enumerates them again).
	var withRegex [8]*group[T]
	nre, overflow := 0, false
	for g := it.next(); g != nil; g = it.next() {
		best = g.bestIndexed(path, best)
		if len(g.regex) > 0 {
			if nre < len(withRegex) {
				withRegex[nre] = g
				nre++
			} else {
				overflow = true
			}
		}
	}
	// Pass 2: regexes, in rank order, only those that could still beat best.
	if nre > 0 {
		var loc []int
		if overflow {
			it.reset()
			for g := it.next(); g != nil; g = it.next() {
				best, loc = g.bestRegex(path, best, loc)
			}
		} else {
			for _, g := range withRegex[:nre] {
				best, loc = g.bestRegex(path, best, loc)
			}
		}
		if best != nil && best.pathKind == pathRegex {
			return Match[T]{Entry: best, Path: path, loc: loc}, true
		}
	}
	if best == nil {
		return Match[T]{}, false
	}
	return Match[T]{Entry: best, Path: path}, true
}

// bestIndexed returns the better of best and the best exact or prefix route
// of g that matches path.
func (g *group[T]) bestIndexed(path string, best *Entry[T]) *Entry[T] {
	if best != nil && g.minRank > best.rank {
		return best
	}
	if len(g.exact) > 0 {
		if e := g.exact[path]; e != nil && (best == nil || e.rank < best.rank) {
			best = e
		}
	}
	if len(g.prefix) == 0 {
		return best
	}
	// The prefixes that can match path are path itself and path cut before
	// each '/'; probe those whose length some prefix has.
	n := len(g.preLens)
	if len(path) < n && g.preLens[len(path)] {
		if e := g.prefix[path]; e != nil && (best == nil || e.rank < best.rank) {
			best = e
		}
	}
	for i := min(len(path), n) - 1; i >= 0; i-- {
		if path[i] != '/' || !g.preLens[i] {
			continue
		}
		if e := g.prefix[path[:i]]; e != nil && (best == nil || e.rank < best.rank) {
			best = e
		}
	}
	return best
}

// bestRegex returns the better of best and the first regex route of g (in
// rank order) that matches path, with its submatch indexes when the route
// has a rewrite. No regex runs once the next one ranks below best.
func (g *group[T]) bestRegex(path string, best *Entry[T], loc []int) (*Entry[T], []int) {
	for _, e := range g.regex {
		if best != nil && e.rank > best.rank {
			break
		}
		if e.Rewrite != "" {
			if l := e.re.FindStringSubmatchIndex(path); l != nil {
				return e, l
			}
		} else if e.re.MatchString(path) {
			return e, nil
		}
	}
	return best, loc
}

// groupIter enumerates the host groups whose routes may match a request
// host: the exact host, each wildcard suffix, then the any-host group. It
// lives on Match's stack.
type groupIter[T any] struct {
	r     *Router[T]
	host  []byte // lower-cased host without port (its tail if not whole)
	whole bool   // host is the whole request host
	stage int
	i     int
}

func (it *groupIter[T]) reset() {
	it.i = 0
	if it.r.hostSpecific {
		it.stage = 0
	} else {
		it.stage = 2
	}
}

func (it *groupIter[T]) next() *group[T] {
	for {
		switch it.stage {
		case 0:
			it.stage = 1
			// A wildcard suffix ".example.com" needs at least one byte in
			// front of it, and only suffixes as long as a configured one
			// are probed (this bounds the work for a hostile Host).
			it.i = max(len(it.host)-it.r.maxWild, 0)
			if it.whole {
				it.i = max(it.i, 1)
				if len(it.r.hosts) > 0 {
					if g := it.r.hosts[string(it.host)]; g != nil {
						return g
					}
				}
			}
		case 1:
			h := it.host
			for it.i < len(h) {
				i := it.i
				it.i++
				if h[i] == '.' && it.r.wildLens[len(h)-i] {
					if g := it.r.wild[string(h[i:])]; g != nil {
						return g
					}
				}
			}
			it.stage = 2
		case 2:
			it.stage = 3
			if it.r.any != nil {
				return it.r.any
			}
		default:
			return nil
		}
	}
}
