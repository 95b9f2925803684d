package limit

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pingap-go/pingap/internal/httpx"
)

// rateScript is the token bucket in Redis. KEYS[1] is the bucket (a hash
// with tk = tokens, ts = last refill in microseconds of the Redis clock);
// ARGV[1] = max, ARGV[2] = interval in microseconds. It returns {allowed,
// remaining, microseconds until the next token (refused) or until full
// (allowed)}. The bucket expires one interval (plus a second) after its
// last use: by then it is full, the same as absent.
var rateScript = goredis.NewScript(`
local max = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = max
  ts = now
end
if now > ts then
  tokens = math.min(max, tokens + (now - ts) * max / interval)
  ts = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tk', string.format('%.6f', tokens), 'ts', string.format('%.0f', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(interval / 1000) + 1000)
local wait
if allowed == 1 then
  wait = (max - tokens) * interval / max
else
  wait = (1 - tokens) * interval / max
end
return {allowed, math.floor(tokens), math.ceil(wait)}
`)

// acquireScript takes an in-flight slot: KEYS[1] counter, ARGV[1] = max,
// ARGV[2] = TTL in milliseconds. Returns {allowed, remaining}.
var acquireScript = goredis.NewScript(`
local max = tonumber(ARGV[1])
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if n > max then
  redis.call('DECR', KEYS[1])
  return {0, 0}
end
return {1, max - n}
`)

// releaseScript gives a slot back without going below zero (the counter
// may have expired meanwhile).
var releaseScript = goredis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
`)

// redisTake runs the rate or in-flight script for key, bounded by
// redisTimeout. On failure it applies redis_fail_open.
func (p *Plugin) redisTake(c *httpx.Ctx, key []byte, st *state) bool {
	now := p.now()
	if now < p.downUntil.Load() {
		return p.failed(st)
	}
	parent := c.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, p.redisTimeout)
	defer cancel()
	rkey := p.redisPrefix + string(key)
	var res []int64
	var err error
	if p.inflight {
		res, err = acquireScript.Run(ctx, p.rdb, []string{rkey}, p.max, inflightTTL.Milliseconds()).Int64Slice()
	} else {
		res, err = rateScript.Run(ctx, p.rdb, []string{rkey}, p.max, p.interval.Microseconds()).Int64Slice()
	}
	if err == nil && len(res) < 2 {
		err = errShortReply
	}
	if err != nil {
		if parent.Err() == nil { // not the client going away
			p.downUntil.Store(p.now() + int64(redisBackoff))
			p.logFailure(err)
		}
		return p.failed(st)
	}
	allowed := res[0] == 1
	st.remaining = res[1]
	if p.inflight {
		if allowed {
			st.redisKey, st.headers = rkey, true
		} else {
			st.resetSec = 1
		}
		return allowed
	}
	if len(res) > 2 {
		st.resetSec = ceilSeconds(float64(res[2]) * float64(time.Microsecond))
	}
	st.headers = allowed
	return allowed
}

type redisError string

func (e redisError) Error() string { return string(e) }

const errShortReply = redisError("limit: short reply from Redis script")

// failed applies redis_fail_open for a request whose Redis call failed or
// was skipped: allowed without X-RateLimit-* fields, or refused.
func (p *Plugin) failed(st *state) bool {
	st.headers = false
	if p.failOpen {
		return true
	}
	st.resetSec = 1
	return false
}

// redisRelease gives an in-flight slot back. The client may be gone, so it
// uses its own timeout rather than the request's context.
func (p *Plugin) redisRelease(rkey string) {
	ctx, cancel := context.WithTimeout(context.Background(), p.redisTimeout)
	defer cancel()
	if err := releaseScript.Run(ctx, p.rdb, []string{rkey}).Err(); err != nil {
		p.logFailure(err)
	}
}

// logFailure logs a Redis error at most once per logEvery, with the number
// of failures not logged since the last line.
func (p *Plugin) logFailure(err error) {
	n := p.suppressed.Add(1)
	now := p.now()
	last := p.lastLog.Load()
	if last != 0 && now-last < int64(logEvery) {
		return
	}
	if !p.lastLog.CompareAndSwap(last, now) {
		return
	}
	p.suppressed.Add(-n)
	p.logger.Warn("limit: redis unavailable", "error", err, "fail_open", p.failOpen, "failures", n)
}
