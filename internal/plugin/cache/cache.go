// Package cache is the cache plugin: an HTTP cache (memory, optionally
// backed by a persistent disk tier) that behaves as a shared cache per
// RFC 9111.
//
// Request phase: a fresh stored response is answered from memory (HIT)
// with the Age field, or 304 when the client's If-None-Match /
// If-Modified-Since matches its validators; a stale one is revalidated upstream with
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
// Disk tier (dir, see disk.go): every stored entry is also written to a
// file (write-through, atomic rename), indexed in memory per shard and
// bounded by dir_max_size. A new instance (reload, restart) rebuilds the
// index by scanning dir; a memory miss reads the file back into memory.
// Close leaves the files in place.
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
	// scanStop ends the disk scan early (Close); scanDone is closed when
	// it is over. Both nil without a disk tier.
	scanStop, scanDone chan struct{}
	closeOnce          sync.Once
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
	// reqTime is when the request reached the cache: the response delay
	// (now - reqTime) counts in the stored response's age (RFC 9111 4.2.3).
	reqTime time.Time
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
// max_entry_size (default "1MB"), dir (persistent disk tier; default none),
// dir_max_size (default "1GB"), ttl (freshness when the upstream gives none; default 0 = such
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
	p.store = newStore(maxSize, dirMax, o.Dir)
	if o.Dir != "" {
		// The disk tier is shared with earlier instances (a reload, a
		// restart): rebuild its index from the files already there.
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("dir: %w", err)
		}
		f, err := os.Open(o.Dir)
		if err != nil {
			return nil, fmt.Errorf("dir: %w", err)
		}
		f.Close()
		// The scan runs in the background so a reload (or pingap -t,
		// which builds and closes plugins) does not wait for a big dir;
		// meanwhile entries without Vary are found by file name.
		p.scanStop, p.scanDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(p.scanDone)
			n, size, removed, err := p.store.scanDir(p.scanStop, p.maxEntry)
			if env.Logger != nil {
				if err != nil {
					env.Logger.Warn("cache: disk tier scan failed", "dir", o.Dir, "error", err)
				} else {
					env.Logger.Info("cache: disk tier scanned", "dir", o.Dir,
						"entries", n, "bytes", size, "removed", removed)
				}
			}
		}()
	}
	p.states.New = func() any { return new(state) }
	return p, nil
}

// Close stops the disk tier's start-up scan if it still runs and waits for
// it. The files stay: they are the next instance's cache (after a reload
// or a restart).
func (p *Plugin) Close() error {
	p.closeOnce.Do(func() {
		if p.scanStop != nil {
			close(p.scanStop)
			<-p.scanDone
		}
	})
	return nil
}

// publish stores e in the memory tier. Entries it pushes out are dropped:
// with a disk tier they are already on disk (written through by persist).
// f is the fill that fetched e (nil when none): when a PURGE of the key
// ran while it was upstream, e may predate the purge and is not stored
// (ok false). It returns the shard's invalidation generation, for persist.
//
// An entry larger than the shard's whole memory budget is not stored
// (ok false): max_entry_size bounds the body only, and with its header
// fields and overhead such an entry would evict every other entry of the
// shard and then itself; loadDisk would never bring it back either.
func (p *Plugin) publish(sh *shard, e *entry, f *fill) (gen uint64, ok bool) {
	if e.size > sh.mem.lru.capacity {
		return 0, false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f != nil && f.flight != nil && f.flight.purged {
		return 0, false
	}
	sh.mem.insert(e, e.vary)
	delete(sh.pass, e.key) // storable again
	return sh.gen, true
}

// persist writes e to the disk tier (when there is one) and indexes it.
// It runs on the request that stored e, after waiters were released;
// a failed write (full disk) only costs the disk copy. gen is publish's:
// when an invalidation (PURGE) ran in between, the file is dropped so the
// purged entry does not come back from disk.
func (p *Plugin) persist(sh *shard, e *entry, gen uint64) {
	if p.store.dir == "" || e.size > sh.disk.lru.capacity {
		return
	}
	path, size, err := writeEntryFile(p.store.dir, e)
	if err != nil {
		return
	}
	d := p.diskCopy(e, path, size)
	sh.mu.Lock()
	if sh.gen != gen {
		sh.mu.Unlock()
		os.Remove(path)
		return
	}
	replaced, evicted := sh.disk.insert(d, d.vary)
	sh.mu.Unlock()
	removeFiles(except(replaced, path))
	removeFiles(except(evicted, path))
}

// diskCopy is the disk-index entry for e stored in the file at path.
func (p *Plugin) diskCopy(e *entry, path string, size int64) *entry {
	d := e.clone()
	d.body, d.file, d.bodyLen, d.size = nil, path, int64(len(e.body)), size
	return d
}

// loadDisk reads the disk tier's copy of the request's variant of key
// into memory: d's file when the index lists one, else (probe) the file
// of key's variant without Vary, which another instance sharing dir may
// have written since this one scanned it. A file that is missing, corrupt,
// or holds another key or variant is a miss; a corrupt one is removed.
func (p *Plugin) loadDisk(sh *shard, d *entry, key []byte, req *httpx.Header) {
	sh.mu.Lock()
	gen := sh.gen
	sh.mu.Unlock()
	path := ""
	if d != nil {
		path = d.file
	} else {
		path = filepath.Join(p.store.dir, fileName(string(key), nil))
	}
	e, size, err := readEntryFile(path, true, p.maxEntry)
	if err != nil || e.key != string(key) || !varyMatches(e.vary, e.varyVals, req) {
		if d != nil {
			sh.mu.Lock()
			sh.disk.evict(d) // no-op when already gone
			sh.mu.Unlock()
		}
		// Remove a corrupt file, and one too large for this instance that
		// its index listed. A valid file for another key (a hash
		// collision) or Vary variant stays.
		if err == errBadFile || err == errTooLarge && d != nil {
			os.Remove(path)
		}
		return
	}
	if e.size > sh.mem.lru.capacity {
		return
	}
	sh.mu.Lock()
	if sh.gen != gen || sh.mem.lookup(key, req) != nil {
		// Purged while we read, or filled meanwhile: keep what is there.
		sh.mu.Unlock()
		return
	}
	sh.mem.insert(e, e.vary)
	// (Re)index the file as read: another instance may have rewritten it.
	replaced, evicted := sh.disk.insert(p.diskCopy(e, path, size), e.vary)
	sh.mu.Unlock()
	removeFiles(except(replaced, path))
	removeFiles(except(evicted, path))
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
	st.reqTime = now
	waited, loaded := false, false
	for {
		sh.mu.Lock()
		e := sh.mem.lookup(key, &c.Req.Header)
		if e == nil && p.store.dir != "" && !loaded {
			// Not in memory: look on disk, unless someone is filling the
			// key or it is marked uncacheable.
			d := sh.disk.lookup(key, &c.Req.Header)
			if d != nil || (sh.flights[string(key)] == nil && !sh.passing(key, now.UnixNano())) {
				sh.mu.Unlock()
				loaded = true
				p.loadDisk(sh, d, key, &c.Req.Header)
				continue
			}
		}
		// A request's no-cache / max-age is satisfied by a response
		// fetched from the origin after the request arrived (the fill it
		// waited for).
		if e != nil && e.fresh(now) && (reqFresh(e, now, &reqCC) || waited && !e.storedAt.Before(st.reqTime)) {
			sh.mu.Unlock()
			st.served = true
			p.serve(c, e, now, StatusHit, true)
			return true
		}
		// The client accepts a stale response (max-stale), unless the
		// response forbids it.
		if e != nil && !e.fresh(now) && !reqCC.noCache && e.canServeStale(now, reqCC.maxStale) {
			sh.mu.Unlock()
			st.served = true
			p.serve(c, e, now, StatusStale, true)
			return true
		}
		if reqCC.onlyIfCached {
			// RFC 9111 5.2.1.7: nothing usable stored, do not go upstream.
			sh.mu.Unlock()
			st.served = true
			c.Error(504, "not cached")
			c.Resp.Header.Set("X-Cache-Status", StatusMiss)
			return true
		}
		// A Range request that finds nothing goes upstream as is, without
		// filling (its 206 is not stored) and without marking the key
		// uncacheable. A hit ignores Range and sends the whole entry
		// (RFC 9110 14.2 lets a server do that).
		if e == nil && c.Req.Header.Has("Range") {
			sh.mu.Unlock()
			st.status = StatusMiss
			st.key, st.shard = string(key), sh
			return false
		}
		if e == nil && sh.passing(key, now.UnixNano()) {
			// Not storable last time: no waiting and no flight, but a fill
			// without one ("hit for miss"), so the key is cached again as
			// soon as its response is storable.
			sh.mu.Unlock()
			st.status = StatusMiss
			st.key, st.shard = string(key), sh
			st.fill = &fill{sh: sh, key: st.key}
			return false
		}
		f := sh.flights[string(key)]
		if f != nil && !waited {
			// Someone is filling this key.
			if e != nil && !reqCC.noCache && e.canServeStale(now, e.swr) {
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

// reqFresh applies the request's no-cache, max-age and min-fresh to a
// fresh entry.
func reqFresh(e *entry, now time.Time, cc *cacheControl) bool {
	if cc.noCache {
		return false
	}
	age := e.age(now)
	if cc.maxAge >= 0 && age > cc.maxAge {
		return false
	}
	return cc.minFresh < 0 || e.freshFor-age >= cc.minFresh
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

// serve answers c from e. Fields already in c.Resp.Header are kept. With
// conditional, a client's If-None-Match / If-Modified-Since that the
// stored validators satisfy gets 304 (RFC 9111 4.3.2).
func (p *Plugin) serve(c *httpx.Ctx, e *entry, now time.Time, status string, conditional bool) {
	h := &c.Resp.Header
	age := httpx.Itoa(max(int64(e.age(now)/time.Second), 0))
	if conditional && notModified(c, e) {
		// RFC 9110 15.4.5: the fields a 200 would carry that describe
		// caching and the selected representation's validators.
		for _, f := range e.header.Fields() {
			if notModifiedField(f.Name) {
				h.Add(f.Name, f.Value)
			}
		}
		h.Set("Age", age)
		h.Set("X-Cache-Status", status)
		c.Send(304, "", nil)
		return
	}
	for _, f := range e.header.Fields() {
		h.Add(f.Name, f.Value)
	}
	h.Set("Age", age)
	h.Set("X-Cache-Status", status)
	c.Send(e.status, "", e.body)
	if e.contentLength >= 0 {
		c.Resp.ContentLength = e.contentLength // HEAD entry: no body, original length
	}
}

// notModifiedField lists the stored fields a 304 from the cache carries.
func notModifiedField(name string) bool {
	for _, n := range [...]string{"Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Vary", "Last-Modified"} {
		if httpx.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// notModified evaluates the request's If-None-Match, else its
// If-Modified-Since, against e (RFC 9110 13.2.2): true means 304. Only
// GET and HEAD with a stored 2xx qualify (other statuses ignore
// conditionals, RFC 9110 13.2.1).
func notModified(c *httpx.Ctx, e *entry) bool {
	if e.status < 200 || e.status > 299 || e.status == 206 || (c.Req.Method != "GET" && c.Req.Method != "HEAD") {
		return false
	}
	h := &c.Req.Header
	if h.Has("If-None-Match") {
		match := false
		h.Values("If-None-Match", func(v string) bool {
			match = etagMatches(v, e.etag)
			return !match
		})
		return match
	}
	ims, ok := h.Lookup("If-Modified-Since")
	if !ok {
		return false
	}
	t, ok := parseIMFFixdate(ims)
	if !ok {
		if t2, ok2 := parseHTTPTime(ims); ok2 {
			t, ok = t2.Unix(), true
		}
	}
	return ok && e.lastModUnix <= t
}

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT" to unix seconds
// without allocating (time.Parse allocates a zone for "GMT").
func parseIMFFixdate(s string) (int64, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
		s[19] != ':' || s[22] != ':' || s[25] != ' ' || s[26:] != "GMT" {
		return 0, false
	}
	num := func(b string) (int, bool) {
		n := 0
		for i := 0; i < len(b); i++ {
			if b[i] < '0' || b[i] > '9' {
				return 0, false
			}
			n = n*10 + int(b[i]-'0')
		}
		return n, true
	}
	const months = "JanFebMarAprMayJunJulAugSepOctNovDec"
	mon := -1
	for i := 0; i < 12; i++ {
		if s[8:11] == months[3*i:3*i+3] {
			mon = i + 1
			break
		}
	}
	day, ok1 := num(s[5:7])
	year, ok2 := num(s[12:16])
	hh, ok3 := num(s[17:19])
	mm, ok4 := num(s[20:22])
	ss, ok5 := num(s[23:25])
	if mon < 0 || !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return 0, false
	}
	return time.Date(year, time.Month(mon), day, hh, mm, ss, 0, time.UTC).Unix(), true
}

// etagMatches is the weak comparison of one If-None-Match field value
// with the stored ETag (RFC 9110 13.1.2); "*" matches any stored entry.
func etagMatches(inm, etag string) bool {
	if strings.TrimSpace(inm) == "*" {
		return true
	}
	if etag == "" {
		return false
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
		if f := sh.flights[string(key)]; f != nil {
			f.purged = true // its response may predate the purge
		}
		sh.gen++
		sh.mu.Unlock()
		removeFiles(disk)
		if len(mem)+len(disk) > 0 {
			removed = true
		}
		if p.store.dir != "" {
			// A file another instance sharing dir wrote since this one
			// scanned it (variant without Vary).
			if os.Remove(filepath.Join(p.store.dir, fileName(string(key), nil))) == nil {
				removed = true
			}
		}
	}
	return removed
}

// serverError lists the statuses stale-if-error covers (RFC 5861 4).
func serverError(status int) bool {
	return status == 500 || status == 502 || status == 503 || status == 504
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
	if st.stale != nil && r.Status == 304 {
		if st.reval {
			// Our revalidation: the stored response is still good.
			e := p.refresh(st, &r.Header, now)
			gen, ok := p.publish(st.shard, e, st.fill)
			st.fill.release()
			httpx.CloseBody(r)
			r.Header.Reset()
			p.serve(c, e, now, StatusExpired, false)
			if ok {
				p.persist(st.shard, e, gen)
			}
			return
		}
		// The client's own conditional request, answered 304 upstream:
		// when the 304 names the stored validator, it freshens the stored
		// response too (RFC 9111 4.3.4); the client gets the 304.
		if et := r.Header.Get("ETag"); et != "" && et == st.stale.etag {
			e := p.refresh(st, &r.Header, now)
			gen, ok := p.publish(st.shard, e, st.fill)
			st.fill.release()
			r.Header.Set("X-Cache-Status", st.status)
			if ok {
				p.persist(st.shard, e, gen)
			}
			return
		}
	}
	if st.stale != nil && serverError(r.Status) && st.stale.canServeStale(now, st.stale.sie) {
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
		// to the client's conditional, its credentials, its Range) or an
		// upstream failure (coalescing matters most in an outage).
		if r.Status != 304 && r.Status < 500 && !c.Req.Header.Has("Authorization") && !c.Req.Header.Has("Range") {
			st.shard.mu.Lock()
			st.shard.setPass(st.key, now.UnixNano(), now.Add(hitForPass).UnixNano())
			st.shard.mu.Unlock()
		}
		st.fill.release()
		return
	}
	if c.Req.Method == "HEAD" || r.Body == nil {
		gen, ok := p.publish(st.shard, e, st.fill)
		st.fill.release()
		if ok {
			p.persist(st.shard, e, gen)
		}
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
		initialAge:     initialAge(&r.Header, st.reqTime, now),
		freshFor:       freshFor,
		mustRevalidate: cc.mustRevalidate || cc.noCache,
		swr:            cc.staleWhileRevalidate,
		sie:            cc.staleIfErr,
	}
	e.finish(0)
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
		e.varyVals = append(e.varyVals, varyValue(&c.Req.Header, name))
		e.size += int64(len(name) + len(e.varyVals[len(e.varyVals)-1]))
	}
	return e, vary
}

// refresh makes the entry that replaces old after a 304: the 304's fields
// update the stored ones (RFC 9111 4.3.4) and freshness restarts.
func (p *Plugin) refresh(st *state, h304 *httpx.Header, now time.Time) *entry {
	old := st.stale
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
	e := old.clone()
	e.header = cloneHeader(&merged)
	cc := parseCacheControl(&e.header)
	if f, ok := freshnessLifetime(&e.header, cc, now, p.ttl); ok {
		e.freshFor = f
	}
	e.storedAt = now
	e.initialAge = initialAge(h304, st.reqTime, now)
	e.mustRevalidate = cc.mustRevalidate || cc.noCache
	e.swr, e.sie = cc.staleWhileRevalidate, cc.staleIfErr
	e.finish(int64(len(e.body)))
	for i, name := range e.vary {
		e.size += int64(len(name) + len(e.varyVals[i]))
	}
	return e
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
	stored := !t.failed && err == nil && (t.want < 0 || int64(len(t.buf)) == t.want)
	var gen uint64
	if stored {
		t.e.body = t.buf
		t.e.size += int64(len(t.buf))
		gen, stored = t.p.publish(t.fill.sh, t.e, t.fill)
	}
	t.fill.release()
	t.buf = nil
	if stored {
		t.p.persist(t.fill.sh, t.e, gen)
	}
	return err
}

var (
	_ plugin.Plugin          = (*Plugin)(nil)
	_ plugin.ResponseHandler = (*Plugin)(nil)
	_ plugin.Finisher        = (*Plugin)(nil)
	_ plugin.Closer          = (*Plugin)(nil)
)
