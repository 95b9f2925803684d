// Package cache is the cache plugin: an in-memory HTTP cache that behaves
// as a shared cache per RFC 9111.
//
// Request phase: a fresh stored response is answered from memory (HIT)
// with the Age field; a stale one is revalidated upstream with
// If-None-Match / If-Modified-Since (EXPIRED) and a 304 refreshes it; a
// missing one goes upstream (MISS). Concurrent misses for one key are
// coalesced: the first request goes upstream, the others wait for it (up
// to lock_timeout) and are then served from the filled entry. While one
// request revalidates, others get the stale entry when the response allowed
// it with stale-while-revalidate (STALE); an upstream 5xx is replaced by the
// stale entry within stale-if-error (STALE). Requests the cache cannot serve
// (a method not in methods, Cache-Control: no-store) get BYPASS.
//
// Response phase: a response is stored when its method and status are
// cacheable, it has no no-store, private, Vary: * or Set-Cookie, a request
// with Authorization is only stored with public / s-maxage /
// must-revalidate, and it has a freshness lifetime (s-maxage, max-age,
// Expires, else ttl). The body streams to the client through a tee filter
// that copies it, up to max_entry_size; a larger body is simply not stored.
//
// Memory is bounded by max_size: 16 shards (by key hash, one mutex each),
// each with its own LRU list and max_size/16 bytes. Stored entries are
// immutable, so a HIT copies the stored header and hands out the stored
// body without copying it.
//
// PURGE (method) from purge_ip_list removes every variant of the key (for
// every cacheable method when the key includes the method): 200 when
// something was removed, 404 when nothing was cached, 403 when the client
// may not purge.
package cache

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "cache"

// X-Cache-Status values.
const (
	StatusHit     = "HIT"
	StatusMiss    = "MISS"
	StatusExpired = "EXPIRED"
	StatusStale   = "STALE"
	StatusBypass  = "BYPASS"
)

const (
	defaultMaxSize      = 100 << 20
	defaultMaxEntrySize = 1 << 20
	defaultLockTimeout  = 5 * time.Second
	defaultDirMaxSize   = 1 << 30
	// hitForPass is how long a key whose response was not storable skips
	// request coalescing.
	hitForPass = 10 * time.Second
)

type options struct {
	MaxSize      config.Size     `toml:"max_size"`
	MaxEntrySize config.Size     `toml:"max_entry_size"`
	Dir          string          `toml:"dir"`
	DirMaxSize   config.Size     `toml:"dir_max_size"`
	TTL          config.Duration `toml:"ttl"`
	Methods      []string        `toml:"methods"`
	Key          []string        `toml:"key"`
	PurgeIPList  []string        `toml:"purge_ip_list"`
	LockTimeout  config.Duration `toml:"lock_timeout"`
}

type partKind uint8

const (
	partMethod partKind = iota
	partHost
	partURI
	partHeader
)

type keyPart struct {
	kind partKind
	name string
}

// Plugin is a configured cache.
type Plugin struct {
	store        *store
	maxEntry     int64
	ttl          time.Duration
	methods      []string
	key          []keyPart
	keyHasMethod bool
	purge        []netip.Prefix
	lockTimeout  time.Duration
	states       sync.Pool
}

// state is one request's cache bookkeeping, from Request to Finish.
type state struct {
	status string // X-Cache-Status to set in Response
	served bool   // answered by this plugin in Request
	key    string // primary key (cloned) when this request may fill
	shard  *shard
	fill   *fill
	stale  *entry // the expired entry found, for 304 and stale-if-error
	reval  bool   // conditional fields were added from stale
}

// fill is a request that holds the key's flight; release lets the waiters
// go. It is called from the tee's Close or from Finish, whichever first.
type fill struct {
	sh     *shard
	key    string
	flight *flight
}

func (f *fill) release() {
	if f == nil || f.flight == nil {
		return
	}
	f.sh.mu.Lock()
	if f.sh.flights[f.key] == f.flight {
		delete(f.sh.flights, f.key)
	}
	f.sh.mu.Unlock()
	close(f.flight.done)
	f.flight = nil
}

// New builds a cache plugin. Keys: max_size (default "100MB"),
// max_entry_size (default "1MB"), dir (disk tier: not implemented yet, an
// error), ttl (freshness when the upstream gives none; default 0 = such
// responses are not stored), methods (default ["GET", "HEAD"]), key
// (default ["method", "host", "uri"]; parts "method", "host", "uri",
// "header:NAME"), purge_ip_list (IPs/CIDRs allowed to PURGE; default
// loopback), lock_timeout (how long a miss waits for another request
// filling the same key; default "5s").
func New(env plugin.Env, opts map[string]any) (plugin.Plugin, error) {
	var o options
	if err := config.DecodeOptions(opts, &o); err != nil {
		return nil, err
	}
	maxSize := int64(defaultMaxSize)
	if _, ok := opts["max_size"]; ok {
		maxSize = int64(o.MaxSize)
	}
	if maxSize < numShards*1024 {
		return nil, fmt.Errorf("max_size: must be at least %d bytes", numShards*1024)
	}
	p := &Plugin{maxEntry: defaultMaxEntrySize, ttl: o.TTL.D(), lockTimeout: defaultLockTimeout}
	if _, ok := opts["max_entry_size"]; ok {
		if o.MaxEntrySize <= 0 {
			return nil, fmt.Errorf("max_entry_size: must be greater than 0")
		}
		p.maxEntry = int64(o.MaxEntrySize)
	}
	// An entry must fit in its shard.
	p.maxEntry = min(p.maxEntry, maxSize/numShards-entryOverhead)
	dirMax := int64(defaultDirMaxSize)
	if _, ok := opts["dir_max_size"]; ok {
		if o.DirMaxSize < numShards*1024 {
			return nil, fmt.Errorf("dir_max_size: must be at least %d bytes", numShards*1024)
		}
		dirMax = int64(o.DirMaxSize)
	}
	if _, ok := opts["lock_timeout"]; ok {
		p.lockTimeout = o.LockTimeout.D()
	}
	if o.Methods == nil {
		o.Methods = []string{"GET", "HEAD"}
	}
	if len(o.Methods) == 0 {
		return nil, fmt.Errorf("methods: empty list")
	}
	for _, m := range o.Methods {
		if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " \t/") || m == "PURGE" {
			return nil, fmt.Errorf("methods: %q is not a cacheable method (upper-case, not PURGE)", m)
		}
	}
	p.methods = o.Methods
	if o.Key == nil {
		o.Key = []string{"method", "host", "uri"}
	}
	if len(o.Key) == 0 {
		return nil, fmt.Errorf("key: empty list")
	}
	for _, k := range o.Key {
		switch {
		case k == "method":
			p.key = append(p.key, keyPart{kind: partMethod})
			p.keyHasMethod = true
		case k == "host":
			p.key = append(p.key, keyPart{kind: partHost})
		case k == "uri":
			p.key = append(p.key, keyPart{kind: partURI})
		case strings.HasPrefix(k, "header:") && len(k) > len("header:"):
			p.key = append(p.key, keyPart{kind: partHeader, name: k[len("header:"):]})
		default:
			return nil, fmt.Errorf("key: %q: want \"method\", \"host\", \"uri\" or \"header:NAME\"", k)
		}
	}
	if o.PurgeIPList == nil {
		p.purge = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	for _, s := range o.PurgeIPList {
		pfx, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("purge_ip_list: %w", err)
		}
		p.purge = append(p.purge, pfx)
	}
	var instDir string
	if o.Dir != "" {
		// Each instance (a reload makes a new one) owns a fresh
		// subdirectory: the disk tier is not persistent, its index lives
		// in memory, and Close removes the files.
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("dir: %w", err)
		}
		d, err := os.MkdirTemp(o.Dir, sanitize(env.Name)+"-")
		if err != nil {
			return nil, fmt.Errorf("dir: %w", err)
		}
		instDir = d
	}
	p.store = newStore(maxSize, dirMax, instDir)
	p.states.New = func() any { return new(state) }
	return p, nil
}

func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "cache"
	}
	return string(b)
}

// Close removes the disk tier's files.
func (p *Plugin) Close() error {
	if p.store.dir != "" {
		return os.RemoveAll(p.store.dir)
	}
	return nil
}

// publish stores e in the memory tier; entries it pushes out go to the disk
// tier when there is one. Files are written outside the shard lock.
func (p *Plugin) publish(sh *shard, e *entry) {
	sh.mu.Lock()
	_, evicted := sh.mem.insert(e, e.vary)
	sh.mu.Unlock()
	if p.store.dir == "" {
		return
	}
	for _, v := range evicted {
		p.spill(sh, v)
	}
}

// spill writes an entry evicted from memory to the disk tier.
func (p *Plugin) spill(sh *shard, v *entry) {
	if len(v.body) == 0 || int64(len(v.body)) > sh.disk.lru.capacity {
		return
	}
	path := filepath.Join(p.store.dir, strconv.FormatUint(p.store.seq.Add(1), 36))
	if err := os.WriteFile(path, v.body, 0o600); err != nil {
		return // a full or broken disk only costs the entry
	}
	d := *v
	d.prev, d.next, d.body, d.file, d.bodyLen = nil, nil, nil, path, int64(len(v.body))
	var drop []*entry
	sh.mu.Lock()
	if sh.mem.has(&d) {
		drop = append(drop, &d) // refilled meanwhile: the copy is outdated
	} else {
		replaced, evicted := sh.disk.insert(&d, d.vary)
		drop = append(replaced, evicted...)
	}
	sh.mu.Unlock()
	removeFiles(drop)
}

func removeFiles(entries []*entry) {
	for _, e := range entries {
		if e.file != "" {
			os.Remove(e.file)
		}
	}
}

// promote moves a disk-tier entry back into memory. It reports whether the
// entry could be read.
func (p *Plugin) promote(sh *shard, d *entry) bool {
	body, err := os.ReadFile(d.file)
	sh.mu.Lock()
	sh.disk.evict(d)
	sh.mu.Unlock()
	os.Remove(d.file)
	if err != nil || int64(len(body)) != d.bodyLen {
		return false
	}
	e := *d
	e.prev, e.next, e.file, e.body = nil, nil, "", body
	p.publish(sh, &e)
	return true
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: %w", s, err)
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (p *Plugin) methodCacheable(m string) bool {
	for _, x := range p.methods {
		if x == m {
			return true
		}
	}
	return false
}

// appendKey appends the cache key of c (with method in place of the
// request's) to dst. Parts are separated by '\n', which no part contains.
func (p *Plugin) appendKey(c *httpx.Ctx, method string, dst []byte) []byte {
	for i, part := range p.key {
		if i > 0 {
			dst = append(dst, '\n')
		}
		switch part.kind {
		case partMethod:
			dst = append(dst, method...)
		case partHost:
			host := c.Req.Host
			if strings.HasPrefix(host, "[") {
				if j := strings.IndexByte(host, ']'); j > 0 {
					host = host[:j+1]
				}
			} else if j := strings.LastIndexByte(host, ':'); j >= 0 {
				host = host[:j]
			}
			for k := 0; k < len(host); k++ {
				b := host[k]
				if 'A' <= b && b <= 'Z' {
					b += 'a' - 'A'
				}
				dst = append(dst, b)
			}
		case partURI:
			dst = append(dst, c.Req.Path...)
			if c.Req.RawQuery != "" {
				dst = append(dst, '?')
				dst = append(dst, c.Req.RawQuery...)
			}
		case partHeader:
			first := true
			c.Req.Header.Values(part.name, func(v string) bool {
				if !first {
					dst = append(dst, ", "...)
				}
				first = false
				dst = append(dst, v...)
				return true
			})
		}
	}
	return dst
}

// Request serves hits and PURGE, waits for a concurrent fill, or lets the
// request go upstream (MISS, EXPIRED, BYPASS).
func (p *Plugin) Request(c *httpx.Ctx) bool {
	st := p.states.Get().(*state)
	*st = state{}
	c.SetValue(p, st)
	if c.Req.Method == "PURGE" {
		st.served = true
		p.handlePurge(c)
		return true
	}
	if !p.methodCacheable(c.Req.Method) || c.Req.Header.Has("Upgrade") {
		st.status = StatusBypass // not cacheable, or a WebSocket/h2c upgrade
		return false
	}
	reqCC := parseCacheControl(&c.Req.Header)
	if reqCC.noStore {
		st.status = StatusBypass
		return false
	}
	key := p.appendKey(c, c.Req.Method, c.Scratch[:0])
	c.Scratch = key
	sh := p.store.shardFor(key)
	now := time.Now()
	waited, promoted := false, false
	for {
		sh.mu.Lock()
		e := sh.mem.lookup(key, &c.Req.Header)
		if e == nil && p.store.dir != "" && !promoted {
			if d := sh.disk.lookup(key, &c.Req.Header); d != nil {
				sh.mu.Unlock()
				promoted = true
				p.promote(sh, d)
				continue
			}
		}
		if e != nil && e.fresh(now) && !reqCC.noCache {
			sh.mu.Unlock()
			st.served = true
			p.serve(c, e, now, StatusHit, true)
			return true
		}
		// A Range request that finds nothing goes upstream as is, without
		// filling (its 206 is not stored) and without marking the key
		// uncacheable. A hit ignores Range and sends the whole entry
		// (RFC 9110 14.2 lets a server do that).
		if e == nil && (c.Req.Header.Has("Range") || sh.passing(key, now.UnixNano())) {
			sh.mu.Unlock()
			st.status = StatusMiss // not stored last time: no fill, no waiting
			st.key, st.shard = string(key), sh
			return false
		}
		f := sh.flights[string(key)]
		if f != nil && !waited {
			// Someone is filling this key.
			if e != nil && e.canServeStale(now, e.swr) {
				sh.mu.Unlock()
				st.served = true
				p.serve(c, e, now, StatusStale, true)
				return true
			}
			f.waiters.Add(1)
			sh.mu.Unlock()
			waited = true
			p.wait(c, f)
			f.waiters.Add(-1)
			now = time.Now()
			continue
		}
		k := string(key)
		if f == nil {
			f = &flight{done: make(chan struct{})}
			sh.flights[k] = f
			st.fill = &fill{sh: sh, key: k, flight: f}
		}
		sh.mu.Unlock()
		st.key, st.shard = k, sh
		st.status = StatusMiss
		if e != nil {
			st.status, st.stale = StatusExpired, e
			h := &c.Req.Header
			if !h.Has("If-None-Match") && !h.Has("If-Modified-Since") && (e.etag != "" || e.lastMod != "") {
				if e.etag != "" {
					h.Set("If-None-Match", e.etag)
				}
				if e.lastMod != "" {
					h.Set("If-Modified-Since", e.lastMod)
				}
				st.reval = true
			}
		}
		return false
	}
}

// wait blocks until f is done, the client goes away, or lock_timeout.
func (p *Plugin) wait(c *httpx.Ctx, f *flight) {
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	t := time.NewTimer(p.lockTimeout)
	defer t.Stop()
	select {
	case <-f.done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// serve answers c from e. Fields already in c.Resp.Header are kept.
func (p *Plugin) serve(c *httpx.Ctx, e *entry, now time.Time, status string, conditional bool) {
	h := &c.Resp.Header
	for _, f := range e.header.Fields() {
		h.Add(f.Name, f.Value)
	}
	age := int64(e.age(now) / time.Second)
	h.Set("Age", itoa(max(age, 0)))
	h.Set("X-Cache-Status", status)
	if conditional && e.etag != "" && e.status == 200 && etagMatches(c.Req.Header.Get("If-None-Match"), e.etag) {
		h.Del("Content-Length")
		c.Send(304, "", nil)
		return
	}
	c.Send(e.status, "", e.body)
	if e.contentLength >= 0 {
		c.Resp.ContentLength = e.contentLength // HEAD entry: no body, original length
	}
}

// etagMatches is the weak comparison of If-None-Match (RFC 9110 13.1.2).
func etagMatches(inm, etag string) bool {
	if inm == "" {
		return false
	}
	if strings.TrimSpace(inm) == "*" {
		return true
	}
	etag = strings.TrimPrefix(etag, "W/")
	for len(inm) > 0 {
		var t string
		t, inm, _ = strings.Cut(inm, ",")
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == etag {
			return true
		}
	}
	return false
}

func (p *Plugin) handlePurge(c *httpx.Ctx) {
	ip := c.ClientIP.Unmap()
	allowed := false
	for _, pfx := range p.purge {
		if pfx.Contains(ip) {
			allowed = true
			break
		}
	}
	if !allowed {
		c.Error(403, "purge not allowed")
		return
	}
	if !p.invalidate(c) {
		c.Error(404, "not cached")
		return
	}
	c.Send(200, "application/json", []byte(`{"purged":true}`))
}

// invalidate removes every stored variant of the request's target (for
// every cacheable method when the key has the method). It reports whether
// something was removed.
func (p *Plugin) invalidate(c *httpx.Ctx) bool {
	removed := false
	methods := p.methods
	if !p.keyHasMethod {
		methods = methods[:1]
	}
	for _, m := range methods {
		key := p.appendKey(c, m, c.Scratch[:0])
		c.Scratch = key
		sh := p.store.shardFor(key)
		sh.mu.Lock()
		mem := sh.mem.remove(string(key))
		disk := sh.disk.remove(string(key))
		sh.mu.Unlock()
		removeFiles(disk)
		if len(mem)+len(disk) > 0 {
			removed = true
		}
	}
	return removed
}

// unsafeMethod reports methods that may change the target's state (RFC
// 9110 9.2.1).
func unsafeMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return false
	}
	return true
}

// Response stores cacheable responses, finishes revalidations, and applies
// stale-if-error.
func (p *Plugin) Response(c *httpx.Ctx) {
	st, _ := c.Value(p).(*state)
	if st == nil || st.served {
		return
	}
	r := &c.Resp
	if st.key == "" { // BYPASS
		r.Header.Set("X-Cache-Status", st.status)
		// RFC 9111 4.4: a successful unsafe request invalidates the
		// target's stored responses.
		if unsafeMethod(c.Req.Method) && r.Status >= 200 && r.Status < 400 {
			p.invalidate(c)
		}
		return
	}
	now := time.Now()
	if st.stale != nil && st.reval && r.Status == 304 {
		e := p.refresh(st.stale, &r.Header, now)
		p.publish(st.shard, e)
		st.fill.release()
		httpx.CloseBody(r)
		r.Header.Reset()
		p.serve(c, e, now, StatusExpired, false)
		return
	}
	if st.stale != nil && r.Status >= 500 && st.stale.canServeStale(now, st.stale.sie) {
		st.fill.release()
		httpx.CloseBody(r)
		r.Header.Reset()
		p.serve(c, st.stale, now, StatusStale, false)
		return
	}
	r.Header.Set("X-Cache-Status", st.status)
	if st.fill == nil {
		// Another request holds the flight (we waited and timed out):
		// go upstream without filling, so fills stay one per key.
		return
	}
	e, vary := p.newEntry(c, st, now)
	if e == nil {
		// Hit for pass, unless the reason was this request's own (a 304
		// to the client's conditional, its credentials, its Range).
		if r.Status != 304 && !c.Req.Header.Has("Authorization") && !c.Req.Header.Has("Range") {
			st.shard.mu.Lock()
			st.shard.setPass(st.key, now.UnixNano(), now.Add(hitForPass).UnixNano())
			st.shard.mu.Unlock()
		}
		st.fill.release()
		return
	}
	if c.Req.Method == "HEAD" || r.Body == nil {
		p.publish(st.shard, e)
		st.fill.release()
		return
	}
	t := &tee{p: p, e: e, vary: vary, fill: st.fill, want: r.ContentLength}
	if r.ContentLength > 0 {
		t.buf = make([]byte, 0, r.ContentLength)
	}
	c.AddBodyFilter(func(next httpx.BodyWriter) httpx.BodyWriter {
		t.next = next
		return t
	})
}

// newEntry builds the entry to store for the current response, or nil
// when it must not be stored.
func (p *Plugin) newEntry(c *httpx.Ctx, st *state, now time.Time) (*entry, []string) {
	r := &c.Resp
	if !cacheableStatus(r.Status) {
		return nil, nil
	}
	if r.ContentLength > p.maxEntry {
		return nil, nil
	}
	cc := parseCacheControl(&r.Header)
	if !storable(&c.Req.Header, &r.Header, cc) {
		return nil, nil
	}
	freshFor, ok := freshnessLifetime(&r.Header, cc, now, p.ttl)
	if !ok {
		return nil, nil
	}
	e := &entry{
		key:            st.key,
		status:         r.Status,
		header:         cloneHeader(&r.Header),
		contentLength:  -1,
		storedAt:       now,
		initialAge:     initialAge(&r.Header, now),
		freshFor:       freshFor,
		mustRevalidate: cc.mustRevalidate || cc.noCache,
		swr:            cc.staleWhileRevalidate,
		sie:            cc.staleIfErr,
	}
	e.etag = e.header.Get("ETag")
	e.lastMod = e.header.Get("Last-Modified")
	if freshFor == 0 && e.etag == "" && e.lastMod == "" && e.swr <= 0 && e.sie <= 0 {
		return nil, nil // would never be usable
	}
	if c.Req.Method == "HEAD" {
		e.contentLength = r.ContentLength
	}
	var vary []string
	r.Header.Values("Vary", func(v string) bool {
		for len(v) > 0 {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				vary = append(vary, name)
			}
		}
		return true
	})
	e.vary = vary
	for _, name := range vary {
		e.varyVals = append(e.varyVals, joinedValue(&c.Req.Header, name))
	}
	e.size = entryOverhead + int64(len(e.header.Fields()))*32
	for _, f := range e.header.Fields() {
		e.size += int64(len(f.Name) + len(f.Value))
	}
	return e, vary
}

// refresh makes the entry that replaces old after a 304: the 304's fields
// update the stored ones (RFC 9111 4.3.4) and freshness restarts.
func (p *Plugin) refresh(old *entry, h304 *httpx.Header, now time.Time) *entry {
	var merged httpx.Header
	for _, f := range old.header.Fields() {
		if !h304.Has(f.Name) || httpx.EqualFold(f.Name, "Content-Length") || httpx.EqualFold(f.Name, "Content-Encoding") {
			merged.Add(f.Name, f.Value)
		}
	}
	for _, f := range h304.Fields() {
		if httpx.EqualFold(f.Name, "Content-Length") || httpx.EqualFold(f.Name, "Content-Encoding") || skipStoredField(f.Name) {
			continue
		}
		merged.Add(f.Name, f.Value)
	}
	e := *old
	e.prev, e.next = nil, nil
	e.header = cloneHeader(&merged)
	cc := parseCacheControl(&e.header)
	if f, ok := freshnessLifetime(&e.header, cc, now, p.ttl); ok {
		e.freshFor = f
	}
	e.storedAt = now
	e.initialAge = initialAge(h304, now)
	e.mustRevalidate = cc.mustRevalidate || cc.noCache
	e.swr, e.sie = cc.staleWhileRevalidate, cc.staleIfErr
	e.etag, e.lastMod = e.header.Get("ETag"), e.header.Get("Last-Modified")
	return &e
}

// cloneHeader copies the storable fields of h into one new string, so the
// entry does not keep per-request buffers alive (or see them reused).
func cloneHeader(h *httpx.Header) httpx.Header {
	n := 0
	for _, f := range h.Fields() {
		if !skipStoredField(f.Name) {
			n += len(f.Name) + len(f.Value)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range h.Fields() {
		if !skipStoredField(f.Name) {
			b.WriteString(f.Name)
			b.WriteString(f.Value)
		}
	}
	s := b.String()
	var out httpx.Header
	off := 0
	for _, f := range h.Fields() {
		if skipStoredField(f.Name) {
			continue
		}
		name := s[off : off+len(f.Name)]
		off += len(f.Name)
		value := s[off : off+len(f.Value)]
		off += len(f.Value)
		out.Add(name, value)
	}
	return out
}

// Finish lets waiters go if the fill did not finish (an aborted body) and
// recycles the state.
func (p *Plugin) Finish(c *httpx.Ctx) {
	st, _ := c.Value(p).(*state)
	if st == nil {
		return
	}
	c.SetValue(p, nil)
	st.fill.release()
	*st = state{}
	p.states.Put(st)
}

// tee copies the body into the entry while it streams to the client.
type tee struct {
	p      *Plugin
	e      *entry
	vary   []string
	fill   *fill
	next   httpx.BodyWriter
	buf    []byte
	want   int64 // Content-Length, -1 unknown
	failed bool
}

func (t *tee) Write(b []byte) (int, error) {
	if !t.failed {
		if int64(len(t.buf)+len(b)) > t.p.maxEntry {
			// Too large to store: stop copying and let waiters go now
			// rather than after the whole body.
			t.failed, t.buf = true, nil
			now := time.Now()
			t.fill.sh.mu.Lock()
			t.fill.sh.setPass(t.fill.key, now.UnixNano(), now.Add(hitForPass).UnixNano())
			t.fill.sh.mu.Unlock()
			t.fill.release()
		} else {
			t.buf = append(t.buf, b...)
		}
	}
	n, err := t.next.Write(b)
	if err != nil {
		t.failed = true
	}
	return n, err
}

func (t *tee) Flush() error { return t.next.Flush() }

// Close stores the entry when the whole body was seen, then releases the
// waiters.
func (t *tee) Close() error {
	err := t.next.Close()
	if !t.failed && err == nil && (t.want < 0 || int64(len(t.buf)) == t.want) {
		t.e.body = t.buf
		t.e.size += int64(len(t.buf))
		t.p.publish(t.fill.sh, t.e)
	}
	t.fill.release()
	t.buf = nil
	return err
}

// smallInts holds "0".."4095" so Age values need no allocation.
var smallInts = sync.OnceValue(func() []string {
	s := make([]string, 4096)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
})

func itoa(n int64) string {
	if n >= 0 && n < 4096 {
		return smallInts()[n]
	}
	return strconv.FormatInt(n, 10)
}

var (
	_ plugin.Plugin          = (*Plugin)(nil)
	_ plugin.ResponseHandler = (*Plugin)(nil)
	_ plugin.Finisher        = (*Plugin)(nil)
	_ plugin.Closer          = (*Plugin)(nil)
)
