package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

const (
	numShards = 16
	// maxVariants bounds the Vary variants kept per key.
	maxVariants = 16
	// entryOverhead approximates the bookkeeping bytes of one entry.
	entryOverhead = 256
)

// entry is one stored response (clone copies its fields: keep it in step
// when adding one). It is immutable once published in the
// store (readers copy its header and share its body without a lock); an
// update (revalidation) publishes a new entry.
type entry struct {
	key      string   // primary key
	vary     []string // the primary's Vary field names when stored
	varyVals []string // request values of the primary's Vary fields
	status   int
	header   httpx.Header
	body     []byte
	// contentLength is the original length for HEAD entries (no body).
	contentLength int64

	storedAt       time.Time
	initialAge     time.Duration
	freshFor       time.Duration
	mustRevalidate bool
	swr, sie       time.Duration // stale-while-revalidate, stale-if-error (-1 none)
	etag, lastMod  string
	// lastModUnix is Last-Modified (else Date, else storedAt) in unix
	// seconds, for If-Modified-Since (RFC 9111 4.3.2).
	lastModUnix int64
	size        int64
	// file is the disk tier file of a disk-index entry (body nil, bodyLen
	// bytes in the file).
	file    string
	bodyLen int64

	prev, next *entry // shard LRU; front = most recently used
}

// clone copies e's stored fields, not its LRU links (which other
// goroutines change under the shard lock; e itself is immutable).
func (e *entry) clone() *entry {
	return &entry{
		key: e.key, vary: e.vary, varyVals: e.varyVals, status: e.status, header: e.header, body: e.body,
		contentLength: e.contentLength, storedAt: e.storedAt, initialAge: e.initialAge, freshFor: e.freshFor,
		mustRevalidate: e.mustRevalidate, swr: e.swr, sie: e.sie, etag: e.etag, lastMod: e.lastMod,
		lastModUnix: e.lastModUnix, size: e.size, file: e.file, bodyLen: e.bodyLen,
	}
}

// finish derives the validators and the size of e from its header, plus
// bodyLen bytes of body.
func (e *entry) finish(bodyLen int64) {
	e.etag = e.header.Get("ETag")
	e.lastMod = e.header.Get("Last-Modified")
	e.lastModUnix = e.storedAt.Unix()
	if t, ok := parseHTTPTime(e.lastMod); ok {
		e.lastModUnix = t.Unix()
	} else if t, ok := parseHTTPTime(e.header.Get("Date")); ok {
		e.lastModUnix = t.Unix()
	}
	e.size = entryOverhead + int64(len(e.header.Fields()))*32 + bodyLen + int64(len(e.key))
	for _, f := range e.header.Fields() {
		e.size += int64(len(f.Name) + len(f.Value))
	}
}

func (e *entry) age(now time.Time) time.Duration {
	return e.initialAge + now.Sub(e.storedAt)
}

func (e *entry) fresh(now time.Time) bool { return e.age(now) < e.freshFor }

// staleFor returns how long past its freshness e is.
func (e *entry) staleFor(now time.Time) time.Duration { return e.age(now) - e.freshFor }

func (e *entry) canServeStale(now time.Time, window time.Duration) bool {
	return !e.mustRevalidate && window >= 0 && e.staleFor(now) <= window
}

// primary groups the variants of one key.
type primary struct {
	vary    []string // field names from the response's Vary
	entries []*entry
}

// flight is one upstream request filling a key; others wait on done.
type flight struct {
	done    chan struct{}
	waiters atomic.Int32 // for tests and metrics
	// purged is set (under the shard lock) by a PURGE or unsafe request
	// while the fill is upstream: its response is then not stored.
	purged bool
}

// lru is an intrusive doubly-linked list of entries with a byte budget.
// Front = most recently used.
type lru struct {
	head, tail *entry
	size       int64
	capacity   int64
}

func (l *lru) pushFront(e *entry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
	l.size += e.size
}

func (l *lru) pushBack(e *entry) {
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	}
	l.tail = e
	if l.head == nil {
		l.head = e
	}
	l.size += e.size
}

func (l *lru) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if l.head == e {
		l.head = e.next
	} else {
		return // not linked
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
	l.size -= e.size
}

func (l *lru) moveToFront(e *entry) {
	if l.head == e {
		return
	}
	l.unlink(e)
	l.pushFront(e)
}

// tier is one storage level: the memory tier (bodies in entries) or the
// disk tier (bodies in files, metadata in memory).
type tier struct {
	items map[string]*primary
	lru   lru
}

// lookup finds the variant of key matching the request header and marks it
// recently used.
func (t *tier) lookup(key []byte, req *httpx.Header) *entry {
	p := t.items[string(key)]
	if p == nil {
		return nil
	}
	for _, e := range p.entries {
		if varyMatches(p.vary, e.varyVals, req) {
			t.lru.moveToFront(e)
			return e
		}
	}
	return nil
}

// has reports whether the variant of e (same key and Vary values) is
// stored.
func (t *tier) has(e *entry) bool {
	p := t.items[e.key]
	if p == nil || !equalStrings(p.vary, e.vary) {
		return false
	}
	for _, x := range p.entries {
		if equalStrings(x.varyVals, e.varyVals) {
			return true
		}
	}
	return false
}

// insert publishes e (replacing the variant with the same Vary values) and
// evicts least recently used entries over the budget. It returns the
// entries it replaced (outdated) and those it evicted (still valid).
func (t *tier) insert(e *entry, vary []string) (replaced, evicted []*entry) {
	p := t.items[e.key]
	if p == nil || !equalStrings(p.vary, vary) {
		if p != nil {
			for _, old := range p.entries {
				t.lru.unlink(old)
				replaced = append(replaced, old)
			}
		}
		p = &primary{vary: vary}
		t.items[e.key] = p
	}
	for i, old := range p.entries {
		if equalStrings(old.varyVals, e.varyVals) {
			t.lru.unlink(old)
			replaced = append(replaced, old)
			p.entries = append(p.entries[:i], p.entries[i+1:]...)
			break
		}
	}
	if len(p.entries) >= maxVariants {
		t.lru.unlink(p.entries[0])
		replaced = append(replaced, p.entries[0])
		p.entries = p.entries[1:]
	}
	p.entries = append(p.entries, e)
	t.lru.pushFront(e)
	for t.lru.size > t.lru.capacity && t.lru.tail != nil {
		victim := t.lru.tail
		t.evict(victim)
		evicted = append(evicted, victim)
	}
	return replaced, evicted
}

// insertOld adds e, older than every entry already in t, at the back of
// the LRU (the disk scan goes newest first, while requests may already
// store entries). It reports false, storing nothing, when e does not fit
// in the budget, or its variant is already there or superseded (another
// Vary, no room among the variants): its file is then outdated.
func (t *tier) insertOld(e *entry) bool {
	p := t.items[e.key]
	if p != nil {
		if !equalStrings(p.vary, e.vary) || len(p.entries) >= maxVariants {
			return false
		}
		for _, x := range p.entries {
			if equalStrings(x.varyVals, e.varyVals) {
				return false
			}
		}
	}
	if t.lru.size+e.size > t.lru.capacity {
		return false
	}
	if p == nil {
		p = &primary{vary: e.vary}
		t.items[e.key] = p
	}
	p.entries = append(p.entries, e)
	t.lru.pushBack(e)
	return true
}

// evict removes e from the LRU and from its primary.
func (t *tier) evict(e *entry) {
	t.lru.unlink(e)
	p := t.items[e.key]
	if p == nil {
		return
	}
	for i, x := range p.entries {
		if x == e {
			p.entries = append(p.entries[:i], p.entries[i+1:]...)
			break
		}
	}
	if len(p.entries) == 0 {
		delete(t.items, e.key)
	}
}

// remove drops every variant of key and returns them.
func (t *tier) remove(key string) []*entry {
	p := t.items[key]
	if p == nil {
		return nil
	}
	for _, e := range p.entries {
		t.lru.unlink(e)
	}
	delete(t.items, key)
	return p.entries
}

type shard struct {
	mu      sync.Mutex
	mem     tier
	disk    tier // used when the store has a dir
	flights map[string]*flight
	// pass marks keys whose last response was not storable ("hit for
	// pass"): until the deadline (unix nanos) their misses go upstream
	// without coalescing, so requests for an uncacheable URL do not queue
	// behind each other.
	pass map[string]int64
	// gen counts invalidations (PURGE, unsafe methods), so a disk read
	// that raced with one does not bring the entry back.
	gen uint64
	_   [64]byte
}

type store struct {
	seed   maphash.Seed
	dir    string // disk tier directory; "" = none
	shards [numShards]shard
}

func newStore(maxSize, diskSize int64, dir string) *store {
	s := &store{seed: maphash.MakeSeed(), dir: dir}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mem = tier{items: make(map[string]*primary), lru: lru{capacity: maxSize / numShards}}
		sh.disk = tier{items: make(map[string]*primary), lru: lru{capacity: diskSize / numShards}}
		sh.flights = make(map[string]*flight)
		sh.pass = make(map[string]int64)
	}
	return s
}

func (s *store) shardFor(key []byte) *shard {
	return &s.shards[maphash.Bytes(s.seed, key)&(numShards-1)]
}

// maxPass bounds the hit-for-pass markers per shard.
const maxPass = 4096

// setPass marks key uncacheable until deadline. Called with sh.mu held.
func (sh *shard) setPass(key string, now, deadline int64) {
	if len(sh.pass) >= maxPass {
		for k, d := range sh.pass {
			if d <= now {
				delete(sh.pass, k)
			}
		}
		if len(sh.pass) >= maxPass {
			clear(sh.pass)
		}
	}
	sh.pass[key] = deadline
}

// passing reports whether key is marked uncacheable. Called with sh.mu held.
func (sh *shard) passing(key []byte, now int64) bool {
	d, ok := sh.pass[string(key)]
	if ok && d <= now {
		delete(sh.pass, string(key))
		return false
	}
	return ok
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
