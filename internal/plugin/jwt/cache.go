package jwt

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Verified tokens are remembered briefly so a client sending the same token
// on every request pays the parse and signature check (several µs and ~50
// allocations) once per cacheTTL instead of per request. Only tokens that
// passed every check are stored, under a SHA-256 of the whole token, until
// the earlier of their exp (+ leeway) and cacheTTL; cacheTTL also bounds how
// long a key removed from a JWKS keeps working. Failures are never cached,
// so random tokens cannot fill it.
const (
	cacheTTL      = time.Minute
	cacheShards   = 16
	cachePerShard = 1024
)

type cached struct {
	expires int64      // unix nanos
	claims  []claimVal // aligned with JWT.forward
}

type claimVal struct {
	v  string
	ok bool
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]*cached
}

// tokenCache is sharded so concurrent requests rarely share a lock.
type tokenCache struct {
	shards [cacheShards]cacheShard
}

func newTokenCache() *tokenCache {
	tc := &tokenCache{}
	for i := range tc.shards {
		tc.shards[i].m = make(map[[sha256.Size]byte]*cached)
	}
	return tc
}

func (tc *tokenCache) get(key *[sha256.Size]byte, now int64) *cached {
	s := &tc.shards[key[0]%cacheShards]
	s.mu.RLock()
	e := s.m[*key]
	s.mu.RUnlock()
	if e == nil || now >= e.expires {
		return nil
	}
	return e
}

func (tc *tokenCache) put(key *[sha256.Size]byte, e *cached) {
	s := &tc.shards[key[0]%cacheShards]
	s.mu.Lock()
	if len(s.m) >= cachePerShard {
		clear(s.m) // simple bound; hot tokens come back on their next request
	}
	s.m[*key] = e
	s.mu.Unlock()
}
