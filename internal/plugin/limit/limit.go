// Package limit is the limit plugin: a request rate limit (token bucket) or
// a concurrency (in-flight) limit per key, kept in memory or shared by every
// proxy instance through Redis.
//
// type "rate": each key has a bucket of max tokens refilled at max per
// interval; a request takes one token or gets 429. A burst of max requests is
// allowed, and a bucket left alone for one interval is full again.
// type "inflight": at most max requests per key are in progress at once; the
// slot is given back in Finish.
//
// Refusals are 429 with the JSON error body, Retry-After and
// X-RateLimit-Limit / -Remaining / -Reset (integer seconds). Allowed requests
// get the X-RateLimit-* fields added to their response.
//
// Local state lives in sharded maps (shard picked by key hash, one mutex per
// shard, no global lock); a shard sweeps its idle keys lazily, at most once
// per max(interval, 1s), so memory is bounded by the keys seen in about one
// interval.
//
// With redis set, state lives in Redis and is updated by one atomic Lua
// script per request, using the Redis server clock so instances with skewed
// clocks agree. A Redis call never takes longer than redis_timeout; when it
// fails the request is allowed (redis_fail_open = true, the default) or
// refused with 429, the failure is logged at most every 10 s, and Redis is
// not tried again for one second so an outage does not add the timeout to
// every request.
package limit

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "limit"

const (
	defaultInterval     = time.Second
	defaultRedisTimeout = 100 * time.Millisecond
	// redisBackoff is how long Redis is left alone after a failed call.
	redisBackoff = time.Second
	// logEvery bounds how often Redis failures are logged.
	logEvery = 10 * time.Second
	// inflightTTL bounds how long a Redis in-flight counter outlives its
	// last acquire, so slots leaked by a crashed instance come back.
	inflightTTL = 10 * time.Minute
	numShards   = 64
)

type options struct {
	Key           string          `toml:"key"`
	Max           int64           `toml:"max"`
	Interval      config.Duration `toml:"interval"`
	Type          string          `toml:"type"`
	Redis         string          `toml:"redis"`
	RedisFailOpen *bool           `toml:"redis_fail_open"`
	RedisTimeout  config.Duration `toml:"redis_timeout"`
}

type keyKind uint8

const (
	keyIP keyKind = iota
	keyHeader
	keyCookie
	keyQuery
)

// Plugin is a configured limit plugin.
type Plugin struct {
	kind     keyKind
	keyName  string
	max      int64
	interval time.Duration
	inflight bool
	limitStr string
	rate     float64 // tokens per nanosecond
	base     time.Time
	seed     maphash.Seed
	logger   *slog.Logger

	shards [numShards]shard

	// Redis mode (rdb != nil).
	rdb          *goredis.Client
	redisPrefix  string
	redisTimeout time.Duration
	failOpen     bool
	downUntil    atomic.Int64 // base-relative nanos; Redis is skipped before it
	lastLog      atomic.Int64
	suppressed   atomic.Int64

	states sync.Pool
}

type shard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	slots     map[string]*slot
	nextSweep int64
	_         [64]byte // keep shards on separate cache lines
}

type bucket struct {
	tokens float64
	last   int64 // base-relative nanos of the last refill
}

type slot struct {
	n    int64
	last int64 // base-relative nanos of the last release
}

// state is what one request carries from Request to Response and Finish.
type state struct {
	headers   bool // X-RateLimit-* known (false when Redis failed open)
	remaining int64
	resetSec  int64
	slot      *slot
	shard     *shard
	redisKey  string // in-flight slot held in Redis
}

// New builds a limit plugin. Keys: key ("ip" default, "header:NAME",
// "cookie:NAME", "query:NAME"), max (required, > 0), interval (rate only,
// default "1s"), type ("rate" default, "inflight"), redis ("redis://...",
// "" = in memory), redis_fail_open (default true), redis_timeout (default
// "100ms").
func New(env plugin.Env, opts map[string]any) (plugin.Plugin, error) {
	var o options
	if err := config.DecodeOptions(opts, &o); err != nil {
		return nil, err
	}
	p := &Plugin{base: time.Now(), seed: maphash.MakeSeed(), logger: env.Logger}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	switch k := o.Key; {
	case k == "" || k == "ip":
		p.kind = keyIP
	case strings.HasPrefix(k, "header:") && len(k) > len("header:"):
		p.kind, p.keyName = keyHeader, k[len("header:"):]
	case strings.HasPrefix(k, "cookie:") && len(k) > len("cookie:"):
		p.kind, p.keyName = keyCookie, k[len("cookie:"):]
	case strings.HasPrefix(k, "query:") && len(k) > len("query:"):
		p.kind, p.keyName = keyQuery, k[len("query:"):]
	default:
		return nil, fmt.Errorf("key: %q: want \"ip\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"", k)
	}
	if _, ok := opts["max"]; !ok {
		return nil, fmt.Errorf("max: required")
	}
	if o.Max <= 0 {
		return nil, fmt.Errorf("max: must be greater than 0")
	}
	p.max = o.Max
	p.limitStr = strconv.FormatInt(o.Max, 10)
	switch o.Type {
	case "", "rate":
	case "inflight":
		p.inflight = true
	default:
		return nil, fmt.Errorf("type: %q: want \"rate\" or \"inflight\"", o.Type)
	}
	p.interval = o.Interval.D()
	if _, ok := opts["interval"]; !ok {
		p.interval = defaultInterval
	}
	if p.interval < time.Millisecond {
		return nil, fmt.Errorf("interval: must be at least 1ms")
	}
	p.rate = float64(p.max) / float64(p.interval)
	p.failOpen = o.RedisFailOpen == nil || *o.RedisFailOpen
	p.redisTimeout = o.RedisTimeout.D()
	if _, ok := opts["redis_timeout"]; !ok {
		p.redisTimeout = defaultRedisTimeout
	}
	if p.redisTimeout <= 0 {
		return nil, fmt.Errorf("redis_timeout: must be greater than 0")
	}
	if o.Redis != "" {
		ro, err := goredis.ParseURL(o.Redis)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		ro.DialTimeout = p.redisTimeout
		ro.ReadTimeout = p.redisTimeout
		ro.WriteTimeout = p.redisTimeout
		ro.PoolTimeout = p.redisTimeout
		ro.ContextTimeoutEnabled = true
		ro.MaxRetries = -1 // a retry would double the worst-case wait
		ro.DisableIdentity = true
		ro.Protocol = 2
		p.rdb = goredis.NewClient(ro)
		p.redisPrefix = "pingap:limit:" + env.Name + ":"
	} else {
		for i := range p.shards {
			p.shards[i].buckets = make(map[string]*bucket)
			p.shards[i].slots = make(map[string]*slot)
		}
	}
	p.states.New = func() any { return new(state) }
	return p, nil
}

// Close releases the Redis client.
func (p *Plugin) Close() error {
	if p.rdb != nil {
		return p.rdb.Close()
	}
	return nil
}

// appendKey appends the request's limit key to dst. A request without the
// header, cookie or query parameter gets the empty key: all such requests
// share one bucket.
func (p *Plugin) appendKey(c *httpx.Ctx, dst []byte) []byte {
	switch p.kind {
	case keyIP:
		return c.ClientIP.AppendTo(dst)
	case keyHeader:
		return append(dst, c.Req.Header.Get(p.keyName)...)
	case keyCookie:
		var val string
		c.Req.Header.Values("Cookie", func(v string) bool {
			var ok bool
			val, ok = httpx.Cookie(v, p.keyName)
			return !ok
		})
		return append(dst, val...)
	default:
		v, _ := httpx.QueryValue(c.Req.RawQuery, p.keyName)
		return append(dst, v...)
	}
}

func (p *Plugin) now() int64 { return int64(time.Since(p.base)) }

// Request takes a token (rate) or a slot (inflight), or refuses with 429.
func (p *Plugin) Request(c *httpx.Ctx) bool {
	key := p.appendKey(c, c.Scratch[:0])
	c.Scratch = key
	st := p.states.Get().(*state)
	*st = state{}
	c.SetValue(p, st)
	var allowed bool
	if p.rdb != nil {
		allowed = p.redisTake(c, key, st)
	} else if p.inflight {
		allowed = p.localAcquire(key, st)
	} else {
		allowed = p.localTake(key, st)
	}
	if allowed {
		return false
	}
	retry := st.resetSec
	if retry < 1 {
		retry = 1
	}
	c.Error(429, "too many requests")
	h := &c.Resp.Header
	h.Set("Retry-After", httpx.Itoa(retry))
	h.Set("X-RateLimit-Limit", p.limitStr)
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", httpx.Itoa(retry))
	st.headers = false // already set; Response leaves them alone
	return true
}

// Response adds the X-RateLimit-* fields to an allowed request's response.
func (p *Plugin) Response(c *httpx.Ctx) {
	st, _ := c.Value(p).(*state)
	if st == nil || !st.headers {
		return
	}
	h := &c.Resp.Header
	h.Set("X-RateLimit-Limit", p.limitStr)
	h.Set("X-RateLimit-Remaining", httpx.Itoa(st.remaining))
	if !p.inflight {
		h.Set("X-RateLimit-Reset", httpx.Itoa(st.resetSec))
	}
}

// Finish gives an in-flight slot back.
func (p *Plugin) Finish(c *httpx.Ctx) {
	st, _ := c.Value(p).(*state)
	if st == nil {
		return
	}
	c.SetValue(p, nil)
	if st.slot != nil {
		// An idle slot stays in the map until a sweep, so a returning key
		// does not allocate.
		now := p.now()
		sh := st.shard
		sh.mu.Lock()
		st.slot.n--
		st.slot.last = now
		sh.mu.Unlock()
	}
	if st.redisKey != "" {
		p.redisRelease(st.redisKey)
	}
	*st = state{}
	p.states.Put(st)
}

func (p *Plugin) shardFor(key []byte) *shard {
	return &p.shards[maphash.Bytes(p.seed, key)&(numShards-1)]
}

// localTake is the in-memory token bucket.
func (p *Plugin) localTake(key []byte, st *state) bool {
	now := p.now()
	sh := p.shardFor(key)
	sh.mu.Lock()
	if now >= sh.nextSweep {
		p.sweep(sh, now)
	}
	b := sh.buckets[string(key)]
	if b == nil {
		b = &bucket{tokens: float64(p.max), last: now}
		sh.buckets[string(key)] = b
	} else if now > b.last {
		b.tokens = math.Min(float64(p.max), b.tokens+float64(now-b.last)*p.rate)
		b.last = now
	}
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	tokens := b.tokens
	sh.mu.Unlock()
	st.remaining = int64(tokens)
	if allowed {
		// Seconds until the bucket is full again.
		st.resetSec = ceilSeconds((float64(p.max) - tokens) / p.rate)
		st.headers = true
	} else {
		// Seconds until one token is back.
		st.resetSec = ceilSeconds((1 - tokens) / p.rate)
	}
	return allowed
}

// sweep drops buckets that refilled completely (indistinguishable from a
// new one) and in-flight slots idle for a sweep period, and schedules the
// next sweep. Called with sh.mu held.
func (p *Plugin) sweep(sh *shard, now int64) {
	period := int64(max(p.interval, time.Second))
	for k, b := range sh.buckets {
		if now-b.last >= int64(p.interval) {
			delete(sh.buckets, k)
		}
	}
	for k, s := range sh.slots {
		if s.n <= 0 && now-s.last >= period {
			delete(sh.slots, k)
		}
	}
	sh.nextSweep = now + period
}

// localAcquire is the in-memory in-flight limit.
func (p *Plugin) localAcquire(key []byte, st *state) bool {
	now := p.now()
	sh := p.shardFor(key)
	sh.mu.Lock()
	if now >= sh.nextSweep {
		p.sweep(sh, now)
	}
	s := sh.slots[string(key)]
	if s == nil {
		s = &slot{}
		sh.slots[string(key)] = s
	}
	if s.n >= p.max {
		sh.mu.Unlock()
		st.resetSec = 1
		return false
	}
	s.n++
	st.remaining = p.max - s.n
	sh.mu.Unlock()
	st.slot, st.shard, st.headers = s, sh, true
	return true
}

func ceilSeconds(nanos float64) int64 {
	if nanos <= 0 {
		return 0
	}
	return int64(math.Ceil(nanos / float64(time.Second)))
}

var (
	_ plugin.Plugin          = (*Plugin)(nil)
	_ plugin.ResponseHandler = (*Plugin)(nil)
	_ plugin.Finisher        = (*Plugin)(nil)
	_ plugin.Closer          = (*Plugin)(nil)
)
