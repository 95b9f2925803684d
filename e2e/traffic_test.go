package e2e

// End-to-end tests of the traffic and content plugins (issue 7): limit (in
// memory, inflight, shared through a real redis-server by two pingap
// processes), body_limit and client_max_body_size, cache, compression and
// CORS, through the real binary.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/pingap-go/pingap/internal/testutil/redis"
	"golang.org/x/net/http2"
)

// plSite is the config of most plugin tests: upstream "a" at addr, the
// plugin tables (see plugin) and locs on server "main".
func plSite(addr, plugins string, locs ...siteLocation) siteConfig {
	return siteConfig{Upstreams: []siteUpstream{{Name: "a", Addrs: []string{addr}}}, Plugins: plugins, Locations: locs}
}

// plBodyLimitSite limits request bodies to max in the two documented ways:
// the body_limit plugin called name on /plugin, client_max_body_size on
// /directive.
func plBodyLimitSite(addr, name, max string) siteConfig {
	return plSite(addr, plugin(name, "body_limit", fmt.Sprintf("max = %q", max)),
		loc("plugin", "a", "/plugin", name), loc("directive", "a", "/directive").with(fmt.Sprintf("client_max_body_size = %q", max)))
}

// plRedis is the lines of a limit plugin that keeps its state in the redis
// at addr; failOpen false adds redis_fail_open = false (true is the
// default, so no line).
func plRedis(addr string, failOpen bool, timeout string) string {
	s := fmt.Sprintf("redis = \"redis://%s/0\"\n", addr)
	if !failOpen {
		s += "redis_fail_open = false\n"
	}
	return s + fmt.Sprintf("redis_timeout = %q", timeout)
}

// plCheck429 checks the X-RateLimit-* fields of a 429.
func plCheck429(t *testing.T, what string, resp *http.Response, body []byte, max int) {
	t.Helper()
	if resp.StatusCode != 429 {
		t.Fatalf("%s: status %d, want 429: %s", what, resp.StatusCode, body)
	}
	plErrorBody(t, what, resp, body)
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("%s: Retry-After %q, want integer seconds >= 1", what, resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("X-RateLimit-Limit") != strconv.Itoa(max) || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("%s: X-RateLimit-Limit %q Remaining %q", what, resp.Header.Get("X-RateLimit-Limit"), resp.Header.Get("X-RateLimit-Remaining"))
	}
	if r, err := strconv.Atoi(resp.Header.Get("X-RateLimit-Reset")); err != nil || r < 1 {
		t.Errorf("%s: X-RateLimit-Reset %q", what, resp.Header.Get("X-RateLimit-Reset"))
	}
}

func TestTrafficRateLimit(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	_, base := serve(t, plSite(up.Addr, plugin("five", "limit", `key = "header:X-Client"`, "max = 5", `interval = "1s"`),
		loc("l", "a", "", "five")).String())

	// A token bucket of 5 per second gives a token back every 200ms; the
	// burst of 6 must fit in that. On a loaded machine a burst can take
	// longer, so a burst that did not fit is retried with a fresh key.
	var client string
	var last *http.Response
	var lastBody []byte
	for attempt := 0; attempt < 5; attempt++ {
		client = fmt.Sprintf("c%d", attempt)
		before := hits.hits.Load()
		began := time.Now()
		var statuses, remaining []string
		for i := 0; i < 6; i++ {
			last, lastBody = do(t, "GET", base+"/", nil, "X-Client: "+client)
			statuses = append(statuses, strconv.Itoa(last.StatusCode))
			remaining = append(remaining, last.Header.Get("X-RateLimit-Limit")+"/"+last.Header.Get("X-RateLimit-Remaining"))
		}
		if time.Since(began) > 150*time.Millisecond {
			t.Logf("burst took %v, retrying with a new key", time.Since(began))
			continue
		}
		if s := strings.Join(statuses, " "); s != "200 200 200 200 200 429" {
			t.Fatalf("statuses %s, want five 200 then 429", s)
		}
		if r := strings.Join(remaining, " "); r != "5/4 5/3 5/2 5/1 5/0 5/0" {
			t.Errorf("X-RateLimit-Limit/Remaining %s, want 5/4 5/3 5/2 5/1 5/0 5/0", r)
		}
		if n := hits.hits.Load() - before; n != 5 {
			t.Fatalf("upstream hits %d, want 5", n)
		}
		break
	}
	plCheck429(t, "6th request", last, lastBody, 5)
	// Another key has its own bucket.
	resp, body := do(t, "GET", base+"/", nil, "X-Client: other")
	plExpect(t, "other key", resp, body, 200)

	// After Retry-After the key is served again (bounded: at most 3s).
	ra, _ := strconv.Atoi(last.Header.Get("Retry-After"))
	time.Sleep(time.Duration(ra) * time.Second)
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, body := do(t, "GET", base+"/", nil, "X-Client: "+client)
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %s after Retry-After", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTrafficInflightLimit(t *testing.T) {
	t.Parallel()
	var inflight atomic.Int64
	release := make(chan struct{})
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			inflight.Add(1)
			<-release
		}
		w.Write([]byte("done"))
	}))
	_, base := serve(t, plSite(up.Addr, plugin("two", "limit", `type = "inflight"`, "max = 2"), loc("l", "a", "", "two")).String())
	var released sync.Once
	releaseAll := func() { released.Do(func() { close(release) }) }
	defer releaseAll()

	results := []<-chan int{getStatusAsync(base + "/slow"), getStatusAsync(base + "/slow")}
	eventually(t, "two requests in flight at the backend", func() bool { return inflight.Load() == 2 })
	resp, body := do(t, "GET", base+"/fast", nil)
	plCheck429(t, "third concurrent request", resp, body, 2)
	releaseAll()
	for _, r := range results {
		if s := <-r; s != 200 {
			t.Errorf("in-flight request status %d", s)
		}
	}
	// The slots came back (Finish).
	for i := 0; i < 3; i++ {
		resp, body := do(t, "GET", base+"/fast", nil)
		plExpect(t, "after release", resp, body, 200)
		if resp.Header.Get("X-RateLimit-Limit") != "2" {
			t.Errorf("X-RateLimit-Limit %q", resp.Header.Get("X-RateLimit-Limit"))
		}
	}
}

func TestTrafficRedisSharedLimit(t *testing.T) {
	t.Parallel()
	raddr := redis.Start(t)
	up, hits := plEchoBackend(t, "a")
	// A long interval: refill is one token every 12s, so the count below
	// does not depend on timing.
	cfg := plSite(up.Addr, plugin("shared", "limit", `key = "header:X-Client"`, "max = 5", `interval = "1m"`, plRedis(raddr, false, "2s")),
		loc("l", "a", "", "shared")).String()
	p1 := start(t, writeConfig(t, cfg), "main")
	p2 := start(t, writeConfig(t, cfg), "main")
	urls := []string{p1.url("main"), p2.url("main")}

	allowed := map[int]int{}
	var last *http.Response
	var lastBody []byte
	for i := 0; i < 12; i++ {
		proc := i % 2
		last, lastBody = do(t, "GET", urls[proc]+"/", nil, "X-Client: shared-1")
		switch last.StatusCode {
		case 200:
			allowed[proc]++
		case 429:
		default:
			t.Fatalf("request %d: status %d %s", i, last.StatusCode, lastBody)
		}
	}
	if allowed[0]+allowed[1] != 5 || allowed[0] == 0 || allowed[1] == 0 {
		t.Fatalf("allowed per instance %v: want 5 in total across both instances", allowed)
	}
	if hits.hits.Load() != 5 {
		t.Fatalf("upstream hits %d, want 5", hits.hits.Load())
	}
	plCheck429(t, "over the shared limit", last, lastBody, 5)
	// Each instance alone would have allowed 5: another key still passes on
	// both.
	for _, u := range urls {
		resp, body := do(t, "GET", u+"/", nil, "X-Client: shared-2")
		plExpect(t, "other key", resp, body, 200)
	}
}

// plUploadBackend records every request body it receives and whether it
// arrived complete.
type plUploadBackend struct {
	mu       sync.Mutex
	complete []int // lengths of bodies read to a clean EOF
	broken   int   // bodies that ended in an error
}

func (b *plUploadBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	if err != nil {
		b.broken++
	} else {
		b.complete = append(b.complete, int(n))
	}
	b.mu.Unlock()
	fmt.Fprintf(w, "got %d", n)
}

func (b *plUploadBackend) largestComplete() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := 0
	for _, n := range b.complete {
		m = max(m, n)
	}
	return m, len(b.complete)
}

// plSlowChunks is a chunked request body: n chunks of size bytes, a short
// pause between them so the proxy streams them as they come.
type plSlowChunks struct {
	n, size, sent int
}

func (s *plSlowChunks) Read(p []byte) (int, error) {
	if s.sent >= s.n {
		return 0, io.EOF
	}
	if s.sent > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	s.sent++
	k := min(len(p), s.size)
	for i := range p[:k] {
		p[i] = 'x'
	}
	return k, nil
}

func TestTrafficBodyLimits(t *testing.T) {
	t.Parallel()
	ub := &plUploadBackend{}
	up := newBackend(t, ub)
	_, base := serve(t, plBodyLimitSite(up.Addr, "small_uploads", "4KB").String())
	const limit = 4 << 10

	for _, loc := range []string{"/plugin", "/directive"} {
		t.Run(loc, func(t *testing.T) {
			// Within the limit, both framings pass.
			resp, body := do(t, "POST", base+loc, bytes.NewReader(make([]byte, limit)))
			plExpect(t, "exactly the limit", resp, body, 200)
			req, _ := http.NewRequest("POST", base+loc, &plSlowChunks{n: 4, size: 1000})
			resp2, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := io.ReadAll(resp2.Body)
			resp2.Body.Close()
			if resp2.StatusCode != 200 || string(b2) != "got 4000" {
				t.Fatalf("chunked under the limit: %d %q", resp2.StatusCode, b2)
			}

			// Declared too large: 413 before anything is forwarded.
			_, before := ub.largestComplete()
			resp, body = do(t, "POST", base+loc, bytes.NewReader(make([]byte, limit+1)))
			plRefused(t, "Content-Length over the limit", resp, body, 413)

			// Chunked, the limit is crossed while streaming.
			req, _ = http.NewRequest("POST", base+loc, &plSlowChunks{n: 64, size: 1024})
			resp3, err := client.Do(req)
			if err != nil {
				// The proxy may answer and close before the client finished
				// sending; that is a refusal too, but the test wants to see
				// the 413.
				t.Fatalf("chunked over the limit: %v", err)
			}
			b3, _ := io.ReadAll(resp3.Body)
			resp3.Body.Close()
			if resp3.StatusCode != 413 {
				t.Fatalf("chunked over the limit: status %d %q", resp3.StatusCode, b3)
			}
			plErrorBody(t, "chunked over the limit", resp3, b3)
			largest, after := ub.largestComplete()
			if largest > limit {
				t.Fatalf("the upstream received a complete %d-byte body (limit %d)", largest, limit)
			}
			if after != before {
				t.Fatalf("an oversized request reached the upstream as complete (%d -> %d complete bodies)", before, after)
			}
		})
	}
}

// plCacheBackend serves /c/... with the Cache-Control named by the path and
// counts upstream requests per path.
type plCacheBackend struct {
	mu   sync.Mutex
	hits map[string]int
	inm  []string // If-None-Match values seen
	slow chan struct{}
}

func (b *plCacheBackend) count(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits[path]
}

func (b *plCacheBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.hits[r.URL.Path]++
	n := b.hits[r.URL.Path]
	if v := r.Header.Get("If-None-Match"); v != "" {
		b.inm = append(b.inm, v)
	}
	b.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	switch r.URL.Path {
	case "/c/public", "/c/purge":
		h.Set("Cache-Control", "max-age=60")
	case "/c/nostore":
		h.Set("Cache-Control", "no-store")
	case "/c/private":
		h.Set("Cache-Control", "private, max-age=60")
	case "/c/vary":
		h.Set("Cache-Control", "max-age=60")
		h.Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s n=%d", r.Header.Get("Accept-Language"), n)
		return
	case "/c/slow":
		h.Set("Cache-Control", "max-age=60")
		<-b.slow
	case "/c/etag":
		// Stored, but revalidated before every use.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(304)
			return
		}
	}
	fmt.Fprintf(w, "body of %s n=%d", r.URL.Path, n)
}

func TestTrafficCache(t *testing.T) {
	t.Parallel()
	cb := &plCacheBackend{hits: map[string]int{}, slow: make(chan struct{})}
	up := newBackend(t, cb)
	_, base := serve(t, plSite(up.Addr, plugin("cache", "cache", `max_size = "10MB"`, `lock_timeout = "10s"`), loc("l", "a", "", "cache")).String())
	get := func(path string, headers ...string) (*http.Response, string) {
		t.Helper()
		resp, body := do(t, "GET", base+path, nil, headers...)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return resp, string(body)
	}
	status := func(r *http.Response) string { return r.Header.Get("X-Cache-Status") }

	t.Run("HIT after MISS", func(t *testing.T) {
		r1, b1 := get("/c/public")
		r2, b2 := get("/c/public")
		if status(r1) != "MISS" || status(r2) != "HIT" || b1 != b2 || cb.count("/c/public") != 1 {
			t.Fatalf("statuses %s %s, bodies %q %q, upstream %d", status(r1), status(r2), b1, b2, cb.count("/c/public"))
		}
		if r2.Header.Get("Age") == "" {
			t.Errorf("HIT without Age")
		}
	})

	for _, path := range []string{"/c/nostore", "/c/private"} {
		t.Run("not cached "+path, func(t *testing.T) {
			for i := 0; i < 2; i++ {
				if r, _ := get(path); status(r) == "HIT" {
					t.Fatalf("request %d was a HIT", i+1)
				}
			}
			if n := cb.count(path); n != 2 {
				t.Fatalf("upstream hits %d, want 2", n)
			}
		})
	}

	t.Run("Vary", func(t *testing.T) {
		_, en1 := get("/c/vary", "Accept-Language: en")
		r, en2 := get("/c/vary", "Accept-Language: en")
		if status(r) != "HIT" || en1 != en2 {
			t.Fatalf("en again: %s %q %q", status(r), en1, en2)
		}
		r, fr := get("/c/vary", "Accept-Language: fr")
		if status(r) != "MISS" || !strings.HasPrefix(fr, "lang=fr") {
			t.Fatalf("fr: %s %q (served the en variant?)", status(r), fr)
		}
		r, fr2 := get("/c/vary", "Accept-Language: fr")
		if status(r) != "HIT" || fr2 != fr {
			t.Fatalf("fr again: %s %q", status(r), fr2)
		}
		if n := cb.count("/c/vary"); n != 2 {
			t.Fatalf("upstream hits %d, want 2 (one per variant)", n)
		}
	})

	t.Run("concurrent misses coalesce", func(t *testing.T) {
		const n = 20
		var statuses []int
		var bodies []string
		done := make(chan struct{})
		go func() { statuses, bodies = plGetConcurrently(base+"/c/slow", n); close(done) }()
		// Let the first request reach the backend, give the others time to
		// queue behind it, then answer.
		eventually(t, "the first miss at the upstream", func() bool { return cb.count("/c/slow") >= 1 })
		time.Sleep(300 * time.Millisecond)
		close(cb.slow)
		<-done
		for i := range bodies {
			if statuses[i] != 200 || bodies[i] != bodies[0] {
				t.Fatalf("request %d: %d %q (first %q)", i, statuses[i], bodies[i], bodies[0])
			}
		}
		if got := cb.count("/c/slow"); got != 1 {
			t.Fatalf("%d concurrent misses made %d upstream requests, want 1", n, got)
		}
	})

	t.Run("PURGE", func(t *testing.T) {
		get("/c/purge")
		if r, _ := get("/c/purge"); status(r) != "HIT" {
			t.Fatalf("not cached before purge: %s", status(r))
		}
		resp, body := do(t, "PURGE", base+"/c/purge", nil)
		plExpect(t, "PURGE", resp, body, 200)
		resp, body = do(t, "PURGE", base+"/c/purge", nil)
		plExpect(t, "second PURGE", resp, body, 404)
		if r, _ := get("/c/purge"); status(r) != "MISS" {
			t.Fatalf("after purge: %s", status(r))
		}
		if n := cb.count("/c/purge"); n != 2 {
			t.Fatalf("upstream hits %d, want 2 (a PURGE never reaches it)", n)
		}
	})

	t.Run("revalidation with 304", func(t *testing.T) {
		r1, b1 := get("/c/etag")
		r2, b2 := get("/c/etag")
		if status(r1) != "MISS" || b2 != b1 || r2.Header.Get("ETag") != `"v1"` {
			t.Fatalf("statuses %s %s, bodies %q %q, ETag %q", status(r1), status(r2), b1, b2, r2.Header.Get("ETag"))
		}
		if status(r2) == "MISS" || status(r2) == "HIT" {
			t.Errorf("revalidated answer X-Cache-Status %s, want EXPIRED (revalidated)", status(r2))
		}
		cb.mu.Lock()
		inm := append([]string(nil), cb.inm...)
		cb.mu.Unlock()
		if cb.count("/c/etag") != 2 || len(inm) != 1 || inm[0] != `"v1"` {
			t.Fatalf("upstream hits %d, If-None-Match seen %q: want a conditional revalidation", cb.count("/c/etag"), inm)
		}
		// A client's conditional on a fresh entry is answered by the cache.
		resp, _ := do(t, "GET", base+"/c/public", nil, `If-None-Match: "nope"`)
		if resp.StatusCode != 200 {
			t.Errorf("non-matching If-None-Match: %d", resp.StatusCode)
		}
	})
}

// plPayload is a compressible JSON-ish body.
func plPayload(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d","tags":["a","b","c"]},`, i, i)
	}
	return b.Bytes()[:n]
}

func TestTrafficCompression(t *testing.T) {
	t.Parallel()
	big := plPayload(200 << 10)
	small := plPayload(200)
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("Content-Type", "application/json")
			w.Write(small)
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(big)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("ETag", `"strong"`)
			w.Write(big)
		}
	}))
	_, base := serve(t, plSite(up.Addr, plugin("compress", "compression", "gzip_level = 6", "br_level = 5", "zstd_level = 3", `min_length = "1KB"`),
		loc("l", "a", "", "compress")).String())
	// A transport that does not decode gzip behind our back.
	fetch := func(t *testing.T, path, ae string) (*http.Response, []byte) { return plFetchRaw(t, base+path, ae) }
	decode := plDecode

	for _, tt := range []struct{ ae, want string }{
		{"gzip", "gzip"},
		{"br", "br"},
		{"zstd", "zstd"},
		{"gzip, deflate, br, zstd", "br"},
		{"gzip;q=1, br;q=0.5", "gzip"},
		{"br;q=0, *", "zstd"},
	} {
		t.Run(tt.ae, func(t *testing.T) {
			resp, b := fetch(t, "/big", tt.ae)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != tt.want {
				t.Fatalf("status %d Content-Encoding %q, want %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), tt.want)
			}
			if len(b) >= len(big)/2 {
				t.Errorf("compressed %d bytes to %d", len(big), len(b))
			}
			if got := decode(t, tt.want, b); !bytes.Equal(got, big) {
				t.Fatalf("decoded %d bytes, sha %x; want %d bytes sha %x", len(got), sha256.Sum256(got), len(big), sha256.Sum256(big))
			}
			if !plHasToken(resp.Header.Values("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q lacks Accept-Encoding", resp.Header.Values("Vary"))
			}
			if resp.Header.Get("Content-Length") != "" {
				t.Errorf("compressed answer kept Content-Length %q", resp.Header.Get("Content-Length"))
			}
			if etag := resp.Header.Get("ETag"); etag != `W/"strong"` {
				t.Errorf("ETag %q, want weakened W/\"strong\"", etag)
			}
		})
	}

	t.Run("identity when not asked", func(t *testing.T) {
		resp, b := fetch(t, "/big", "")
		if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, big) {
			t.Fatalf("Content-Encoding %q, %d bytes", resp.Header.Get("Content-Encoding"), len(b))
		}
		if !plHasToken(resp.Header.Values("Vary"), "Accept-Encoding") {
			t.Errorf("compressible identity answer lacks Vary: Accept-Encoding")
		}
	})
	t.Run("small body not compressed", func(t *testing.T) {
		resp, b := fetch(t, "/small", "gzip, br, zstd")
		if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, small) {
			t.Fatalf("Content-Encoding %q, body %q", resp.Header.Get("Content-Encoding"), b)
		}
	})
	t.Run("type not compressible", func(t *testing.T) {
		resp, b := fetch(t, "/png", "gzip")
		if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, big) {
			t.Fatalf("image/png: Content-Encoding %q, %d bytes", resp.Header.Get("Content-Encoding"), len(b))
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		req, _ := http.NewRequest("HEAD", base+"/big", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := plRawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("HEAD status %d", resp.StatusCode)
		}
	})
}

func plHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

func TestTrafficCORS(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	_, base := serve(t, plSite(up.Addr, plugin("cors", "cors", `allow_origins = ["https://app.example.com", "https://*.example.org"]`,
		`allow_methods = ["GET", "POST", "PUT"]`, `allow_headers = ["Content-Type", "X-Token"]`, `expose_headers = ["X-Backend"]`,
		"allow_credentials = true", `max_age = "10m"`)+plugin("open", "cors"),
		loc("api", "a", "/api", "cors"), loc("open", "a", "/open", "open")).String())

	t.Run("preflight allowed", func(t *testing.T) {
		before := hits.hits.Load()
		resp, body := do(t, "OPTIONS", base+"/api/x", nil, "Origin: https://a.b.example.org",
			"Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: x-token")
		plExpect(t, "preflight", resp, body, 204)
		h := resp.Header
		if h.Get("Access-Control-Allow-Origin") != "https://a.b.example.org" || h.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") || !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "x-token") ||
			h.Get("Access-Control-Max-Age") != "600" || !plHasToken(h.Values("Vary"), "Origin") {
			t.Errorf("preflight headers %v", h)
		}
		if hits.hits.Load() != before {
			t.Error("the preflight reached the upstream")
		}
	})
	t.Run("preflight from another origin", func(t *testing.T) {
		resp, body := do(t, "OPTIONS", base+"/api/x", nil, "Origin: https://evil.test", "Access-Control-Request-Method: POST")
		plExpect(t, "foreign preflight", resp, body, 204)
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-Allow-") {
				t.Errorf("foreign preflight got %s", k)
			}
		}
		resp, body = do(t, "OPTIONS", base+"/api/x", nil, "Origin: https://example.org", "Access-Control-Request-Method: POST")
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("the wildcard matched the apex: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("simple requests", func(t *testing.T) {
		resp, body := do(t, "GET", base+"/api/x", nil, "Origin: https://app.example.com")
		plExpect(t, "simple", resp, body, 200)
		h := resp.Header
		if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" || h.Get("Access-Control-Allow-Credentials") != "true" ||
			h.Get("Access-Control-Expose-Headers") != "X-Backend" || !plHasToken(h.Values("Vary"), "Origin") {
			t.Errorf("simple request headers %v", h)
		}
		resp, body = do(t, "GET", base+"/api/x", nil, "Origin: https://evil.test")
		plExpect(t, "simple foreign", resp, body, 200)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("foreign origin got Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
		// An OPTIONS without Access-Control-Request-Method is not a
		// preflight: it goes upstream.
		before := hits.hits.Load()
		resp, body = do(t, "OPTIONS", base+"/api/x", nil, "Origin: https://app.example.com")
		plExpect(t, "plain OPTIONS", resp, body, 200)
		if hits.hits.Load() != before+1 {
			t.Error("a plain OPTIONS did not reach the upstream")
		}
		resp, _ = do(t, "GET", base+"/open/x", nil, "Origin: https://anything.test")
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("default cors: Access-Control-Allow-Origin %q, want *", resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
}

// TestTrafficCacheAndCompressionOrders runs both documented chain orders:
// ["cache", "compression"] stores compressed variants keyed through Vary;
// ["compression", "cache"] stores identity and compresses every hit. In both,
// a client never gets an encoding it did not ask for.
func TestTrafficCacheAndCompressionOrders(t *testing.T) {
	t.Parallel()
	big := plPayload(64 << 10)
	up, hits := plCacheableBackend(t, big)
	_, base := serve(t, plSite(up.Addr, plugin("cache", "cache", `max_size = "10MB"`)+plugin("compress", "compression"),
		loc("cache_first", "a", "/cf", "cache", "compress"), loc("compress_first", "a", "/zf", "compress", "cache")).String())
	fetch := func(t *testing.T, path, ae string) (*http.Response, []byte) { return plFetchRaw(t, base+path, ae) }
	decode := plDecode
	for _, tt := range []struct {
		path     string
		upstream int64 // upstream requests expected for the whole sequence
	}{
		{"/cf/x", 4}, // one per Accept-Encoding variant
		{"/zf/x", 1}, // identity stored once
	} {
		t.Run(tt.path, func(t *testing.T) {
			before := hits.Load()
			seq := []struct{ ae, enc string }{
				{"gzip", "gzip"}, {"gzip", "gzip"}, {"br", "br"}, {"", ""}, {"zstd", "zstd"}, {"br", "br"}, {"", ""}, {"gzip", "gzip"},
			}
			for i, s := range seq {
				resp, b := fetch(t, tt.path, s.ae)
				if resp.StatusCode != 200 {
					t.Fatalf("request %d (%q): status %d", i, s.ae, resp.StatusCode)
				}
				if got := resp.Header.Get("Content-Encoding"); got != s.enc {
					t.Fatalf("request %d (Accept-Encoding %q, %s): Content-Encoding %q, want %q", i, s.ae, resp.Header.Get("X-Cache-Status"), got, s.enc)
				}
				if got := decode(t, s.enc, b); !bytes.Equal(got, big) {
					t.Fatalf("request %d (%q, %s): decoded %d bytes, want the original %d", i, s.ae, resp.Header.Get("X-Cache-Status"), len(got), len(big))
				}
				if !plHasToken(resp.Header.Values("Vary"), "Accept-Encoding") {
					t.Errorf("request %d: Vary %q", i, resp.Header.Values("Vary"))
				}
			}
			if n := hits.Load() - before; n != tt.upstream {
				t.Fatalf("upstream requests %d, want %d", n, tt.upstream)
			}
		})
	}
}

// TestTrafficCompressionStreamsEvents checks that a streamed (server-sent
// events) response is compressed and flushed event by event: the client can
// decode the first event before the upstream sends the second.
func TestTrafficCompressionStreamsEvents(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event %d %s\n\n", i, strings.Repeat("x", 2000))
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(10 * time.Second):
				return
			}
		}
	}))
	_, base := serve(t, plSite(up.Addr, plugin("compress", "compression", `types = ["text/*"]`), loc("l", "a", "", "compress")).String())
	req, _ := http.NewRequest("GET", base+"/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	raw := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	resp, err := raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		want := fmt.Sprintf("data: event %d %s\n\n", i, strings.Repeat("x", 2000))
		got := make([]byte, len(want))
		done := make(chan error, 1)
		go func() { _, err := io.ReadFull(zr, got); done <- err }()
		select {
		case err := <-done:
			if err != nil || string(got) != want {
				t.Fatalf("event %d: %v %q", i, err, got[:min(40, len(got))])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d not delivered while the stream is open: the encoder was not flushed", i)
		}
		next <- struct{}{}
	}
}

// TestTrafficLimitStateSurvivesReload: a reload that does not change the
// limit plugin keeps its counters (the instance is reused).
func TestTrafficLimitStateSurvivesReload(t *testing.T) {
	t.Parallel()
	a, _ := plEchoBackend(t, "a")
	body := func(extra string) string {
		return plSite(a.Addr, plugin("lim", "limit", `key = "header:X-Client"`, "max = 3", `interval = "1m"`), loc("l", "a", "", "lim").with(extra)).String()
	}
	p, base := serve(t, body(""))
	for i := 0; i < 3; i++ {
		resp, b := do(t, "GET", base+"/", nil, "X-Client: r")
		plExpect(t, "within the limit", resp, b, 200)
	}
	p.reload(body(`headers_add = ["X-Reloaded: yes"]`))
	eventually(t, "reload applied", func() bool {
		resp, _ := do(t, "GET", base+"/", nil, "X-Client: probe")
		return resp.Header.Get("X-Reloaded") == "yes"
	})
	resp, b := do(t, "GET", base+"/", nil, "X-Client: r")
	plCheck429(t, "after reload", resp, b, 3)
}

// TestTrafficInflightReleasedOnErrors: an in-flight slot comes back when the
// upstream fails, when its body breaks mid-way and when the client goes
// away.
func TestTrafficInflightReleasedOnErrors(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	var holding atomic.Int64
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/broken":
			// Promise more than we send, then drop the connection.
			w.Header().Set("Content-Length", "100000")
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/hold":
			holding.Add(1)
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			holding.Add(-1)
		}
		w.Write([]byte("ok"))
	}))
	cfg := plSite(up.Addr, plugin("one", "limit", `type = "inflight"`, `key = "header:X-Client"`, "max = 1"),
		loc("ok", "a", "/", "one"), loc("down", "down", "/down", "one"))
	cfg.Upstreams[0].Opts = `read_timeout = "500ms"`
	cfg.Upstreams = append(cfg.Upstreams, siteUpstream{Name: "down", Addrs: []string{"127.0.0.1:1"}})
	p, base := serve(t, cfg.String())
	defer close(hold)

	for i := 0; i < 3; i++ {
		resp, b := do(t, "GET", base+"/down", nil, "X-Client: d")
		if resp.StatusCode != 502 {
			t.Fatalf("unreachable upstream, request %d: %d %s (a slot leaked?)", i, resp.StatusCode, b)
		}
	}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", base+"/broken", nil)
		req.Header.Set("X-Client", "b")
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 429 {
				t.Fatalf("broken body, request %d: 429 (the slot of a failed response leaked)", i)
			}
		}
	}
	// The client goes away while the upstream is still working: the HTTP/1
	// server notices (internal/server/watch.go) and cancels the upstream
	// request; either way the slot must come back, not leak.
	for i := 0; i < 2; i++ {
		conn, err := net.Dial("tcp", p.waitAddr("main"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /hold HTTP/1.1\r\nHost: x\r\nX-Client: c\r\n\r\n")
		eventually(t, "request at the upstream", func() bool { return holding.Load() == 1 })
		conn.Close()
		eventually(t, "slot released after the client left", func() bool {
			resp, _ := do(t, "GET", base+"/fast", nil, "X-Client: c")
			return resp.StatusCode == 200
		})
	}
}

// TestTrafficBodyLimitExpectContinue: a declared oversized body with Expect:
// 100-continue is refused without asking the client for the body.
func TestTrafficBodyLimitExpectContinue(t *testing.T) {
	t.Parallel()
	ub := &plUploadBackend{}
	up := newBackend(t, ub)
	p, _ := serve(t, plBodyLimitSite(up.Addr, "small", "1KB").String())
	addr := p.waitAddr("main")
	for _, loc := range []string{"/plugin", "/directive"} {
		got := rawRequest(t, addr, "POST "+loc+" HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 413") {
			t.Errorf("%s: got %q, want an immediate 413 (no 100 Continue)", loc, firstLine(got))
		}
		// Within the limit: 100 Continue, then the answer.
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", loc)
		buf := make([]byte, 64)
		n, _ := conn.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 100") {
			t.Errorf("%s: within the limit got %q, want 100 Continue", loc, buf[:n])
		}
		conn.Write([]byte("hello"))
		rest, _ := io.ReadAll(conn)
		conn.Close()
		if all := string(buf[:n]) + string(rest); !strings.Contains(all, "HTTP/1.1 200") || !strings.HasSuffix(all, "got 5") {
			t.Errorf("%s: within the limit: %q", loc, all)
		}
	}
	if largest, _ := ub.largestComplete(); largest > 1024 {
		t.Fatalf("upstream got %d bytes", largest)
	}
}

// TestTrafficRedisUnreachable: with Redis down, fail-open lets requests
// through without X-RateLimit-* and fail-closed refuses them.
func TestTrafficRedisUnreachable(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	dead := freeAddr(t) // nothing listens there
	_, base := serve(t, plSite(up.Addr,
		plugin("open", "limit", "max = 1", `interval = "1m"`, plRedis(dead, true, "200ms"))+
			plugin("closed", "limit", "max = 1", `interval = "1m"`, plRedis(dead, false, "200ms")),
		loc("open", "a", "/open", "open"), loc("closed", "a", "/closed", "closed")).String())
	for i := 0; i < 3; i++ {
		resp, b := do(t, "GET", base+"/open", nil)
		plExpect(t, "fail open", resp, b, 200)
		if resp.Header.Get("X-RateLimit-Limit") != "" {
			t.Errorf("fail open: X-RateLimit-Limit %q without Redis", resp.Header.Get("X-RateLimit-Limit"))
		}
	}
	before := hits.hits.Load()
	for i := 0; i < 2; i++ {
		resp, b := do(t, "GET", base+"/closed", nil)
		plRefused(t, "fail closed", resp, b, 429)
	}
	if hits.hits.Load() != before {
		t.Error("fail closed: the upstream was reached")
	}
}

// TestTrafficCacheBypassAndNotStored covers what must never be served from
// the cache.
func TestTrafficCacheBypassAndNotStored(t *testing.T) {
	t.Parallel()
	cb := &plCacheBackend{hits: map[string]int{}, slow: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("/c/", cb)
	var cookieHits, authHits atomic.Int64
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		cookieHits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Set-Cookie", "session=secret")
		w.Write([]byte("personal"))
	})
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		authHits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "for %s", r.Header.Get("Authorization"))
	})
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "host %s", r.Host)
	})
	up := newBackend(t, mux)
	_, base := serve(t, plSite(up.Addr, plugin("cache", "cache", `max_size = "10MB"`)+plugin("strict_purge", "cache", `max_size = "1MB"`, `purge_ip_list = ["10.9.9.9"]`),
		loc("l", "a", "", "cache"), loc("strict", "a", "/strict", "strict_purge")).String())

	for i := 0; i < 2; i++ {
		resp, b := do(t, "GET", base+"/cookie", nil)
		if resp.Header.Get("X-Cache-Status") == "HIT" || string(b) != "personal" {
			t.Fatalf("Set-Cookie response served from cache")
		}
	}
	if cookieHits.Load() != 2 {
		t.Errorf("Set-Cookie: upstream hits %d, want 2", cookieHits.Load())
	}
	_, b1 := do(t, "GET", base+"/auth", nil, "Authorization: Bearer alice")
	_, b2 := do(t, "GET", base+"/auth", nil, "Authorization: Bearer bob")
	if string(b1) != "for Bearer alice" || string(b2) != "for Bearer bob" {
		t.Fatalf("an authorized response was shared: %q %q", b1, b2)
	}
	resp, _ := do(t, "POST", base+"/c/public", strings.NewReader("x"))
	if resp.Header.Get("X-Cache-Status") != "BYPASS" {
		t.Errorf("POST: X-Cache-Status %q, want BYPASS", resp.Header.Get("X-Cache-Status"))
	}
	resp, _ = do(t, "GET", base+"/c/public", nil, "Cache-Control: no-store")
	if resp.Header.Get("X-Cache-Status") != "BYPASS" {
		t.Errorf("request no-store: X-Cache-Status %q, want BYPASS", resp.Header.Get("X-Cache-Status"))
	}
	_, h1 := do(t, "GET", base+"/host", nil, "Host: one.test")
	_, h2 := do(t, "GET", base+"/host", nil, "Host: two.test")
	_, h3 := do(t, "GET", base+"/host", nil, "Host: ONE.test:8080")
	if string(h1) != "host one.test" || string(h2) != "host two.test" || string(h3) != string(h1) {
		t.Errorf("host in the key: %q %q %q", h1, h2, h3)
	}
	resp, b := do(t, "PURGE", base+"/strict/x", nil)
	plRefused(t, "PURGE from a client not in purge_ip_list", resp, b, 403)
	// HEAD after GET is answered from its own entry, without a body.
	do(t, "GET", base+"/c/head", nil)
	resp, b = do(t, "HEAD", base+"/c/head", nil)
	if resp.StatusCode != 200 || len(b) != 0 {
		t.Errorf("HEAD: %d, %d body bytes", resp.StatusCode, len(b))
	}
	resp, b = do(t, "GET", base+"/c/head", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "body of /c/head") {
		t.Errorf("GET after HEAD: %d %q (a HEAD entry served to a GET?)", resp.StatusCode, b)
	}
}

// TestTrafficCacheUncacheableDoesNotQueue: misses for a URL whose answer
// turns out not storable are released as soon as that is known (not after
// lock_timeout), and later requests for it go upstream concurrently (hit
// for pass) instead of queueing behind each other.
func TestTrafficCacheUncacheableDoesNotQueue(t *testing.T) {
	t.Parallel()
	var inflight, peak, arrived atomic.Int64
	var barrier atomic.Bool // wave 2: wait until five requests are in
	release := make(chan struct{})
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if barrier.Load() {
			arrived.Add(1)
			deadline := time.Now().Add(5 * time.Second)
			for arrived.Load() < 5 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		} else {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("fresh"))
	}))
	_, base := serve(t, plSite(up.Addr, plugin("cache", "cache", `lock_timeout = "20s"`), loc("l", "a", "", "cache")).String())
	wave := func(n int) (time.Duration, []int) {
		began := time.Now()
		statuses, _ := plGetConcurrently(base+"/dyn", n)
		return time.Since(began), statuses
	}

	// Wave 1: the first miss goes upstream; the others wait for it and are
	// let go as soon as its answer proves not storable.
	done := make(chan struct{})
	var d time.Duration
	var st []int
	go func() { d, st = wave(5); close(done) }()
	eventually(t, "first miss upstream", func() bool { return inflight.Load() >= 1 })
	time.Sleep(200 * time.Millisecond) // let the others queue
	if got := inflight.Load(); got != 1 {
		t.Errorf("%d concurrent misses reached the upstream before the first answered, want 1 (coalescing)", got)
	}
	close(release)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("waiters of an uncacheable response were not released")
	}
	for i, s := range st {
		if s != 200 {
			t.Fatalf("wave 1 request %d: status %d", i, s)
		}
	}
	if d > 10*time.Second {
		t.Fatalf("wave 1 took %v: the waiters sat out lock_timeout (20s)", d)
	}

	// Wave 2: hit for pass, the requests reach the upstream together.
	barrier.Store(true)
	peak.Store(0)
	wave(5)
	if got := peak.Load(); got != 5 {
		t.Fatalf("hit for pass: %d requests reached the upstream together, want 5 (they queued behind each other)", got)
	}
}

// TestTrafficCacheDiskTier fills a tiny memory tier (16 shards of 1 KB)
// backed by the write-through disk tier, reads every entry back without the
// upstream, then restarts pingap on the same dir: the entries survive. An
// oversized entry (body under max_entry_size, but bigger than a shard with
// its header fields) is served, not stored, and flushes nothing.
func TestTrafficCacheDiskTier(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		if strings.Contains(r.URL.Path, "/big") {
			w.Header().Set("X-Long", strings.Repeat("h", 200))
			w.Write(bytes.Repeat([]byte("b"), 700))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/mem/") {
			// Small: two fit in a 1 KB shard.
			w.Write([]byte("small"))
			return
		}
		w.Write(bytes.Repeat([]byte(r.URL.Path[len(r.URL.Path)-1:]), 300))
	}))
	dir := t.TempDir()
	p, base := serve(t, plSite(up.Addr, plugin("disk", "cache", `max_size = "16KB"`, fmt.Sprintf("dir = %q", dir))+plugin("mem", "cache", `max_size = "16KB"`),
		loc("l", "a", "", "disk"), loc("mem", "a", "/mem", "mem")).String())
	const n = 40
	for i := 0; i < n; i++ {
		resp, b := do(t, "GET", fmt.Sprintf("%s/e%d", base, i), nil)
		if resp.StatusCode != 200 || len(b) != 300 {
			t.Fatalf("fill %d: %d, %d bytes", i, resp.StatusCode, len(b))
		}
	}
	readBack := func(p *proc, what string) {
		t.Helper()
		before := hits.Load()
		for i := 0; i < n; i++ {
			resp, b := do(t, "GET", fmt.Sprintf("%s/e%d", p.url("main"), i), nil)
			want := bytes.Repeat([]byte(fmt.Sprint(i%10)), 300)
			if resp.Header.Get("X-Cache-Status") != "HIT" || !bytes.Equal(b, want) {
				t.Fatalf("%s, entry %d: %s, body %d bytes %q", what, i, resp.Header.Get("X-Cache-Status"), len(b), b[:min(len(b), 16)])
			}
		}
		if hits.Load() != before {
			t.Fatalf("%s: %d upstream requests", what, hits.Load()-before)
		}
	}
	// 40 entries of ~800 bytes cannot all be in 16 KB of memory: most
	// come back from disk.
	readBack(p, "read back")

	// Oversized entries, in a memory-only cache: first find which small
	// entries the memory tier holds (re-reading hits changes nothing), then
	// check the oversized answers did not evict them.
	var held []string
	for i := 0; i < 8; i++ {
		do(t, "GET", fmt.Sprintf("%s/mem/e%d", base, i), nil)
	}
	for i := 0; i < 8; i++ {
		u := fmt.Sprintf("%s/mem/e%d", base, i)
		if resp, _ := do(t, "GET", u, nil); resp.Header.Get("X-Cache-Status") == "HIT" {
			held = append(held, u)
		}
	}
	if len(held) == 0 {
		t.Fatal("the memory-only cache holds none of 8 small entries")
	}
	for i := 0; i < 2*n; i++ {
		resp, b := do(t, "GET", fmt.Sprintf("%s/mem/big%d", base, i), nil)
		if resp.StatusCode != 200 || len(b) != 700 || resp.Header.Get("X-Cache-Status") == "HIT" {
			t.Fatalf("oversized %d: %d, %d bytes, %s", i, resp.StatusCode, len(b), resp.Header.Get("X-Cache-Status"))
		}
	}
	for _, u := range held {
		if resp, _ := do(t, "GET", u, nil); resp.Header.Get("X-Cache-Status") != "HIT" {
			t.Fatalf("oversized responses evicted %s (%s)", u, resp.Header.Get("X-Cache-Status"))
		}
	}

	// Restart on the same dir: the disk tier persists.
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if ents, _ := os.ReadDir(dir); len(ents) == 0 {
		t.Fatal("the disk tier left no files")
	}
	p2 := start(t, p.config, "main")
	p2.waitLog("cache: disk tier scanned", nil)
	readBack(p2, "after a restart")
	resp, b := do(t, "PURGE", p2.url("main")+"/e3", nil)
	plExpect(t, "PURGE a disk entry", resp, b, 200)
	if resp, _ := do(t, "GET", p2.url("main")+"/e3", nil); resp.Header.Get("X-Cache-Status") != "MISS" {
		t.Fatalf("after PURGE: %s", resp.Header.Get("X-Cache-Status"))
	}
}

// TestTrafficTrustedProxies: limit key "ip" and ip_restriction with
// trust_forwarded use the client behind a trusted proxy, and an untrusted
// client cannot choose its address.
func TestTrafficTrustedProxies(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	cfg := plSite(up.Addr, plugin("per_ip", "limit", `key = "ip"`, "max = 2", `interval = "1m"`)+
		plugin("office", "ip_restriction", `type = "allow"`, `ip_list = ["10.1.0.0/16"]`, "trust_forwarded = true"),
		loc("lim", "a", "/lim", "per_ip"), loc("office", "a", "/office", "office"))
	cfg.Basic = `trusted_proxies = ["127.0.0.1/32"]`
	_, base := serve(t, cfg.String())
	for _, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		for i := 0; i < 2; i++ {
			resp, b := do(t, "GET", base+"/lim", nil, "X-Forwarded-For: "+ip)
			plExpect(t, "client "+ip, resp, b, 200)
		}
		resp, b := do(t, "GET", base+"/lim", nil, "X-Forwarded-For: "+ip)
		plCheck429(t, "client "+ip+" third", resp, b, 2)
	}
	// A spoofed leftmost entry does not help: the walk stops at the first
	// untrusted address from the right.
	resp, b := do(t, "GET", base+"/lim", nil, "X-Forwarded-For: 10.0.0.9, 10.0.0.1")
	plCheck429(t, "spoofed chain", resp, b, 2)

	before := hits.hits.Load()
	resp, b = do(t, "GET", base+"/office", nil, "X-Forwarded-For: 10.1.2.3")
	plExpect(t, "office client via trusted proxy", resp, b, 200)
	resp, b = do(t, "GET", base+"/office", nil, "X-Forwarded-For: 10.1.2.3, 192.0.2.1")
	plExpect(t, "outsider behind a spoofed office address", resp, b, 403)
	resp, b = do(t, "GET", base+"/office", nil)
	plExpect(t, "the proxy itself", resp, b, 403)
	if hits.hits.Load()-before != 1 {
		t.Fatalf("upstream hits %d, want 1", hits.hits.Load()-before)
	}
}

// TestTrafficCacheStaleAndPurgeVariants: stale-if-error serves the stored
// answer on an upstream 5xx, stale-while-revalidate serves it while another
// request refreshes, a changed ETag replaces the entry, and PURGE removes
// every Vary variant.
func TestTrafficCacheStaleAndPurgeVariants(t *testing.T) {
	t.Parallel()
	var mode atomic.Int32 // 0 normal, 1 fail, 2 block
	var calls atomic.Int64
	version := atomic.Int32{}
	version.Store(1)
	hold := make(chan struct{})
	holding := make(chan struct{}, 1)
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch r.URL.Path {
		case "/sie":
			if mode.Load() == 1 {
				http.Error(w, "down", 503)
				return
			}
			w.Header().Set("Cache-Control", "max-age=0, stale-if-error=600")
			w.Write([]byte("kept"))
		case "/swr":
			if mode.Load() == 2 {
				holding <- struct{}{}
				<-hold
			}
			w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=600")
			fmt.Fprintf(w, "swr %d", calls.Load())
		case "/etag":
			v := fmt.Sprintf(`"v%d"`, version.Load())
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("ETag", v)
			if r.Header.Get("If-None-Match") == v {
				w.WriteHeader(304)
				return
			}
			fmt.Fprintf(w, "version %s", v)
		case "/vary":
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Vary", "Accept-Language")
			fmt.Fprintf(w, "lang %s", r.Header.Get("Accept-Language"))
		}
	}))
	_, base := serve(t, plSite(up.Addr, plugin("cache", "cache"), loc("l", "a", "", "cache")).String())
	status := func(r *http.Response) string { return r.Header.Get("X-Cache-Status") }

	t.Run("stale-if-error", func(t *testing.T) {
		resp, b := do(t, "GET", base+"/sie", nil)
		plExpect(t, "fill", resp, b, 200)
		mode.Store(1)
		defer mode.Store(0)
		resp, b = do(t, "GET", base+"/sie", nil)
		if resp.StatusCode != 200 || string(b) != "kept" || status(resp) != "STALE" {
			t.Fatalf("upstream 503 with a stale-if-error entry: %d %q %s", resp.StatusCode, b, status(resp))
		}
	})

	t.Run("stale-while-revalidate", func(t *testing.T) {
		resp, first := do(t, "GET", base+"/swr", nil)
		plExpect(t, "fill", resp, first, 200)
		mode.Store(2)
		defer mode.Store(0)
		refreshed := make(chan string, 1)
		go func() {
			resp, err := client.Get(base + "/swr")
			if err != nil {
				refreshed <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			refreshed <- string(b)
		}()
		select {
		case <-holding:
		case <-time.After(10 * time.Second):
			t.Fatal("the refresh never reached the upstream")
		}
		// While that refresh is held at the upstream, another client gets
		// the stale entry at once.
		resp, b := do(t, "GET", base+"/swr", nil)
		if resp.StatusCode != 200 || string(b) != string(first) || status(resp) != "STALE" {
			t.Errorf("during a refresh: %d %q %s, want the stale %q", resp.StatusCode, b, status(resp), first)
		}
		close(hold)
		if r := <-refreshed; !strings.HasPrefix(r, "swr ") || r == string(first) {
			t.Errorf("refreshing request got %q", r)
		}
	})

	t.Run("changed ETag replaces the entry", func(t *testing.T) {
		_, b1 := do(t, "GET", base+"/etag", nil)
		_, b2 := do(t, "GET", base+"/etag", nil)
		version.Store(2)
		_, b3 := do(t, "GET", base+"/etag", nil)
		resp, b4 := do(t, "GET", base+"/etag", nil)
		if string(b1) != `version "v1"` || string(b2) != string(b1) || string(b3) != `version "v2"` || string(b4) != string(b3) {
			t.Fatalf("bodies %q %q %q %q", b1, b2, b3, b4)
		}
		// A client's If-None-Match matching the fresh-after-304 entry.
		if resp.Header.Get("ETag") != `"v2"` {
			t.Fatalf("ETag %q", resp.Header.Get("ETag"))
		}
	})

	t.Run("PURGE removes every variant", func(t *testing.T) {
		for _, l := range []string{"en", "fr"} {
			do(t, "GET", base+"/vary", nil, "Accept-Language: "+l)
			if resp, _ := do(t, "GET", base+"/vary", nil, "Accept-Language: "+l); status(resp) != "HIT" {
				t.Fatalf("%s not cached: %s", l, status(resp))
			}
		}
		resp, b := do(t, "PURGE", base+"/vary", nil)
		plExpect(t, "PURGE", resp, b, 200)
		for _, l := range []string{"en", "fr"} {
			resp, b := do(t, "GET", base+"/vary", nil, "Accept-Language: "+l)
			if status(resp) != "MISS" || string(b) != "lang "+l {
				t.Errorf("%s after PURGE: %s %q", l, status(resp), b)
			}
		}
	})
}

// TestTrafficCompressionSkips: no-transform, an already encoded body and a
// 206 range answer pass through untouched.
func TestTrafficCompressionSkips(t *testing.T) {
	t.Parallel()
	big := plPayload(32 << 10)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(big)
	zw.Close()
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/notransform":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-transform")
			w.Write(big)
		case "/encoded":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		case "/file.json":
			http.ServeContent(w, r, "file.json", time.Unix(1700000000, 0), bytes.NewReader(big))
		}
	}))
	_, base := serve(t, plSite(up.Addr, plugin("compress", "compression"), loc("l", "a", "", "compress")).String())
	get := func(path string, headers ...string) (*http.Response, []byte) {
		t.Helper()
		return plFetchRaw(t, base+path, "br, gzip, zstd", headers...)
	}
	if resp, b := get("/notransform"); resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, big) {
		t.Errorf("no-transform: Content-Encoding %q, %d bytes", resp.Header.Get("Content-Encoding"), len(b))
	}
	if resp, b := get("/encoded"); resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(b, gz.Bytes()) {
		t.Errorf("already gzip: Content-Encoding %q, %d bytes (want the upstream's %d)", resp.Header.Get("Content-Encoding"), len(b), gz.Len())
	}
	resp, b := get("/file.json", "Range: bytes=100-199")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, big[100:200]) {
		t.Errorf("range: %d Content-Encoding %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(b))
	}
	resp, _ = get("/file.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "br" {
		t.Errorf("full file: %d Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
}

// TestTrafficIPv6Client: ip_restriction and the limit key "ip" on an IPv6
// listener.
func TestTrafficIPv6Client(t *testing.T) {
	t.Parallel()
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Fatalf("this test needs IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	up, hits := plEchoBackend(t, "a")
	cfg := plSite(up.Addr, plugin("no_v6_loopback", "ip_restriction", `ip_list = ["::1/128"]`)+
		plugin("v6_only", "ip_restriction", `type = "allow"`, `ip_list = ["::/0"]`)+plugin("per_ip", "limit", "max = 1", `interval = "1m"`),
		loc("deny", "a", "/deny", "no_v6_loopback"), loc("allow", "a", "/allow", "v6_only", "per_ip"))
	cfg.Extra = `[servers.v6]
addr = "[::1]:0"
locations = ["deny", "allow"]`
	cfg.Server = "v4"
	p := start(t, writeConfig(t, cfg.String()), "v6", "v4")
	v6, v4 := p.url("v6"), p.url("v4")
	before := hits.hits.Load()
	resp, b := do(t, "GET", v6+"/deny", nil)
	plExpect(t, "::1 on the deny list", resp, b, 403)
	resp, b = do(t, "GET", v4+"/deny", nil)
	plExpect(t, "127.0.0.1 not on an IPv6 deny list", resp, b, 200)
	resp, b = do(t, "GET", v6+"/allow", nil)
	plExpect(t, "::1 allowed", resp, b, 200)
	resp, b = do(t, "GET", v6+"/allow", nil)
	plCheck429(t, "::1 second request", resp, b, 1)
	resp, b = do(t, "GET", v4+"/allow", nil)
	plExpect(t, "IPv4 client outside ::/0", resp, b, 403)
	if n := hits.hits.Load() - before; n != 2 {
		t.Fatalf("upstream hits %d, want 2", n)
	}
	l := p.waitLog("access", func(m map[string]any) bool { return m["status"] == float64(429) })
	if l["remote_addr"] != "::1" {
		t.Errorf("access log remote_addr %v", l["remote_addr"])
	}
}

// plH2C is an HTTP/2 cleartext (prior knowledge) client.
func plH2C() *http.Client {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: tr}
}

// TestTrafficHTTP2BodyLimitAndCancel: over HTTP/2 a body has no
// Content-Length to check up front, so body_limit and client_max_body_size
// must cut it while streaming; and a client that cancels its stream frees
// its in-flight slot and cancels the upstream request.
func TestTrafficHTTP2BodyLimitAndCancel(t *testing.T) {
	t.Parallel()
	ub := &plUploadBackend{}
	var holding atomic.Int64
	cancelled := make(chan struct{}, 4)
	mux := http.NewServeMux()
	mux.Handle("/", ub)
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "probe" {
			return
		}
		holding.Add(1)
		defer holding.Add(-1)
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	})
	up := newBackend(t, mux)
	cfg := plBodyLimitSite(up.Addr, "small", "4KB")
	cfg.Plugins += plugin("one", "limit", `type = "inflight"`, "max = 1")
	cfg.Locations = append(cfg.Locations, loc("hold", "a", "/hold", "one"))
	cfg.ServerOpts = "h2c = true"
	_, base := serve(t, cfg.String())
	h2 := plH2C()

	for _, loc := range []string{"/plugin", "/directive"} {
		t.Run(loc, func(t *testing.T) {
			post := func(body io.Reader, cl int64) (*http.Response, []byte) {
				req, _ := http.NewRequest("POST", base+loc, body)
				req.ContentLength = cl
				resp, err := h2.Do(req)
				if err != nil {
					t.Fatalf("POST: %v", err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.ProtoMajor != 2 {
					t.Fatalf("not HTTP/2: %s", resp.Proto)
				}
				return resp, b
			}
			resp, b := post(&plSlowChunks{n: 4, size: 1000}, -1)
			if resp.StatusCode != 200 || string(b) != "got 4000" {
				t.Fatalf("under the limit: %d %q", resp.StatusCode, b)
			}
			_, before := ub.largestComplete()
			resp, b = post(bytes.NewReader(make([]byte, 5000)), 5000)
			plExpect(t, "declared over the limit", resp, b, 413)
			resp, b = post(&plSlowChunks{n: 64, size: 1024}, -1)
			plRefused(t, "streamed over the limit", resp, b, 413)
			if largest, after := ub.largestComplete(); largest > 4096 || after != before {
				t.Fatalf("the upstream received a complete oversized body (largest %d, complete %d -> %d)", largest, before, after)
			}
		})
	}

	t.Run("cancelled stream", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/hold", nil)
			errc := make(chan error, 1)
			go func() {
				resp, err := h2.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			eventually(t, "request at the upstream", func() bool { return holding.Load() == 1 })
			cancel()
			<-errc
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream request was not cancelled when the HTTP/2 client cancelled")
			}
			eventually(t, "slot released", func() bool {
				resp, err := h2.Get(base + "/hold?probe")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == 200
			})
		}
	})
}

// TestTrafficRedisInflightAndRecovery: an in-flight limit shared through
// Redis by two instances, and a shared rate bucket that refills on the Redis
// clock.
func TestTrafficRedisInflightAndRecovery(t *testing.T) {
	t.Parallel()
	raddr := redis.Start(t)
	var holding atomic.Int64
	release := make(chan struct{})
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/conc/hold" {
			holding.Add(1)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		w.Write([]byte("ok"))
	}))
	cfg := plSite(up.Addr,
		plugin("conc", "limit", `type = "inflight"`, "max = 1", plRedis(raddr, false, "2s"))+
			plugin("rate", "limit", `key = "header:X-Client"`, "max = 2", `interval = "1s"`, plRedis(raddr, false, "2s")),
		loc("conc", "a", "/conc", "conc"), loc("rate", "a", "/rate", "rate")).String()
	p1 := start(t, writeConfig(t, cfg), "main")
	p2 := start(t, writeConfig(t, cfg), "main")

	done := getStatusAsync(p1.url("main") + "/conc/hold")
	eventually(t, "held request at the upstream", func() bool { return holding.Load() == 1 })
	resp, b := do(t, "GET", p2.url("main")+"/conc/x", nil)
	plCheck429(t, "second instance while the first holds the only slot", resp, b, 1)
	close(release)
	if s := <-done; s != 200 {
		t.Fatalf("held request: %d", s)
	}
	for _, u := range []string{p1.url("main"), p2.url("main")} {
		resp, b := do(t, "GET", u+"/conc/x", nil)
		plExpect(t, "slot back in Redis", resp, b, 200)
	}

	// Rate: 2 per second shared; the refill is on the Redis clock. Retried
	// with a new key when a slow machine let a token come back mid-burst.
	var last *http.Response
	var key string
	for attempt := 0; attempt < 5; attempt++ {
		key = fmt.Sprintf("k%d", attempt)
		began := time.Now()
		var st []int
		for i, u := range []string{p1.url("main"), p2.url("main"), p1.url("main")} {
			resp, _ := do(t, "GET", u+"/rate", nil, "X-Client: "+key)
			st = append(st, resp.StatusCode)
			if i == 2 {
				last = resp
			}
		}
		if time.Since(began) > 400*time.Millisecond {
			continue
		}
		if fmt.Sprint(st) != "[200 200 429]" {
			t.Fatalf("shared rate statuses %v, want [200 200 429]", st)
		}
		break
	}
	if last.StatusCode != 429 {
		t.Fatalf("no burst fitted in the window")
	}
	ra, _ := strconv.Atoi(last.Header.Get("Retry-After"))
	time.Sleep(time.Duration(ra) * time.Second)
	eventually(t, "bucket refilled", func() bool {
		resp, _ := do(t, "GET", p2.url("main")+"/rate", nil, "X-Client: "+key)
		return resp.StatusCode == 200
	})
}

// TestTrafficHTTP2ContentPlugins: compression, cache and limit headers over
// an HTTP/2 client connection (a different response writer than HTTP/1).
func TestTrafficHTTP2ContentPlugins(t *testing.T) {
	t.Parallel()
	big := plPayload(100 << 10)
	up, hits := plCacheableBackend(t, big)
	cfg := plSite(up.Addr, plugin("cache", "cache")+plugin("compress", "compression")+plugin("lim", "limit", "max = 100", `interval = "1m"`),
		loc("l", "a", "", "lim", "cache", "compress"))
	cfg.ServerOpts = "h2c = true"
	_, base := serve(t, cfg.String())
	h2 := plH2C()
	for i, enc := range []string{"br", "br", "zstd", "gzip"} {
		resp, b := plFetchWith(t, h2, base+"/data", enc)
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("request %d: %s %d", i, resp.Proto, resp.StatusCode)
		}
		if resp.Header.Get("Content-Encoding") != enc || resp.Header.Get("X-RateLimit-Limit") != "100" {
			t.Fatalf("request %d: Content-Encoding %q X-RateLimit-Limit %q", i, resp.Header.Get("Content-Encoding"), resp.Header.Get("X-RateLimit-Limit"))
		}
		if got := plDecode(t, enc, b); !bytes.Equal(got, big) {
			t.Fatalf("request %d (%s, %s): decoded %d bytes", i, enc, resp.Header.Get("X-Cache-Status"), len(got))
		}
		if i == 1 && resp.Header.Get("X-Cache-Status") != "HIT" {
			t.Errorf("second br request: %s", resp.Header.Get("X-Cache-Status"))
		}
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("upstream hits %d, want 3 (one per encoding)", n)
	}
}

// plGetConcurrently sends n GETs of url at once and returns, once all are
// answered, each one's status and body (0 and "" after a transport error).
func plGetConcurrently(url string, n int) (statuses []int, bodies []string) {
	statuses, bodies = make([]int, n), make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(url)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		}()
	}
	wg.Wait()
	return statuses, bodies
}

// plCacheableBackend serves body as cacheable JSON (max-age=60) on every
// path and counts the requests that reach it.
func plCacheableBackend(t *testing.T, body []byte) (*backend, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body)
	}))
	return up, hits
}

// plRawClient does not decode Content-Encoding behind the test's back.
var plRawClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// plFetchRaw GETs url with Accept-Encoding ae ("" = none) and more
// "Name: value" headers, and returns the response with its body as sent.
func plFetchRaw(t *testing.T, url, ae string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return plFetchWith(t, plRawClient, url, ae, headers...)
}

// plFetchWith is plFetchRaw through client c (which must not decode
// Content-Encoding either).
func plFetchWith(t *testing.T, c *http.Client, url, ae string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	setHeaders(req, headers...)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// plDecode decodes a body sent with Content-Encoding enc ("" = identity).
func plDecode(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	switch enc {
	case "":
		return b
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unknown encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return out
}
