package cache

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// cacheFiles lists the entry files in dir (not temp files).
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if ourFileName(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func diskCount(p *Plugin) int {
	n := 0
	for i := range p.store.shards {
		sh := &p.store.shards[i]
		sh.mu.Lock()
		for _, pr := range sh.disk.items {
			n += len(pr.entries)
		}
		sh.mu.Unlock()
	}
	return n
}

func diskOrigin() *origin {
	return &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		return 200, []string{"Cache-Control: max-age=600", "Content-Type: text/plain", `ETag: "` + c.Req.Path + `"`, "X-Custom: a", "X-Custom: b"},
			c.Req.Path + strings.Repeat(".", 1000)
	}}
}

// TestDiskTierSurvivesRestart: entries written by one instance are hits
// for a new instance on the same dir, with identical status, header and
// body, and an Age that kept counting.
func TestDiskTierSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := map[string]any{"max_size": int64(numShards * 2600), "dir": dir, "dir_max_size": "10MB"}
	p := mustNew(t, opts)
	o := diskOrigin()
	const count = 100
	first := make([]result, count)
	for i := 0; i < count; i++ {
		first[i] = get(p, o, fmt.Sprintf("/d/%d", i))
	}
	// Memory holds about two entries per shard: most are only on disk,
	// and every one is still a hit (memory or disk).
	for i := 0; i < count; i++ {
		if r := get(p, o, fmt.Sprintf("/d/%d", i)); r.header.Get("X-Cache-Status") != StatusHit || r.body != first[i].body {
			t.Fatalf("%d before restart: %s", i, r.header.Get("X-Cache-Status"))
		}
	}
	if n := len(cacheFiles(t, dir)); n != count || diskCount(p) != count {
		t.Fatalf("%d files, %d indexed, want %d", n, diskCount(p), count)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(cacheFiles(t, dir)); n != count {
		t.Fatalf("Close removed files: %d left", n)
	}

	p2 := mustNew(t, opts)
	defer p2.Close()
	if diskCount(p2) != count {
		t.Fatalf("rebuilt index has %d entries, want %d", diskCount(p2), count)
	}
	for i := 0; i < count; i++ {
		path := fmt.Sprintf("/d/%d", i)
		r := get(p2, o, path)
		if r.header.Get("X-Cache-Status") != StatusHit || r.status != 200 || r.body != first[i].body {
			t.Fatalf("%s after restart: %d %s %q", path, r.status, r.header.Get("X-Cache-Status"), r.body[:min(len(r.body), 20)])
		}
		for _, name := range []string{"Content-Type", "ETag", "Cache-Control"} {
			if r.header.Get(name) != first[i].header.Get(name) {
				t.Fatalf("%s: %s %q, want %q", path, name, r.header.Get(name), first[i].header.Get(name))
			}
		}
		var custom []string
		r.header.Values("X-Custom", func(v string) bool { custom = append(custom, v); return true })
		if strings.Join(custom, ",") != "a,b" {
			t.Fatalf("%s: repeated field %v", path, custom)
		}
	}
	if n := o.calls.Load(); n != count {
		t.Fatalf("%d upstream calls, want %d", n, count)
	}
	// A client conditional is answered from the disk entry too.
	if r := get(p2, o, "/d/0", `If-None-Match: "/d/0"`); r.status != 304 {
		t.Fatalf("conditional after restart: %d", r.status)
	}
}

// TestDiskTierAgeAcrossRestart: the stored time is kept, so Age (and
// freshness) continue across a restart.
func TestDiskTierAgeAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"dir": dir})
	o := static(200, "aged", "Cache-Control: max-age=600", "Age: 100")
	get(p, o, "/age")
	p.Close()
	p2 := mustNew(t, map[string]any{"dir": dir})
	r := get(p2, o, "/age")
	if r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("status %s", r.header.Get("X-Cache-Status"))
	}
	if age := r.header.Get("Age"); age != "100" && age != "101" {
		t.Fatalf("Age %q, want 100", age)
	}
	// Stale on arrival stays stale after a restart.
	o2 := static(200, "old", "Cache-Control: max-age=10, stale-if-error=600", "Age: 20")
	get(p2, o2, "/stale")
	p2.Close()
	p3 := mustNew(t, map[string]any{"dir": dir})
	fail := static(503, "down")
	if r := get(p3, fail, "/stale"); r.status != 200 || r.body != "old" || r.header.Get("X-Cache-Status") != StatusStale {
		t.Fatalf("stale-if-error from disk: %d %q %s", r.status, r.body, r.header.Get("X-Cache-Status"))
	}
}

// TestDiskTierVary: Vary variants get their own files and are found after
// a restart by the request's values.
func TestDiskTierVary(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"dir": dir})
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		return 200, []string{"Cache-Control: max-age=60", "Vary: Accept-Language"}, "lang=" + c.Req.Header.Get("Accept-Language")
	}}
	get(p, o, "/v", "Accept-Language: en")
	get(p, o, "/v", "Accept-Language: fr")
	if n := len(cacheFiles(t, dir)); n != 2 {
		t.Fatalf("%d files, want 2", n)
	}
	p.Close()
	p2 := mustNew(t, map[string]any{"dir": dir})
	for _, lang := range []string{"en", "fr"} {
		r := get(p2, o, "/v", "Accept-Language: "+lang)
		if r.header.Get("X-Cache-Status") != StatusHit || r.body != "lang="+lang {
			t.Fatalf("%s: %s %q", lang, r.header.Get("X-Cache-Status"), r.body)
		}
	}
	if r := get(p2, o, "/v", "Accept-Language: de"); r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("de: %s", r.header.Get("X-Cache-Status"))
	}
}

// TestDiskTierCorruptFiles: truncated, garbled or foreign files never
// panic and never serve; malformed cache files are removed (at scan or on
// read), files the cache did not write are left alone.
func TestDiskTierCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	opts := map[string]any{"dir": dir}
	p := mustNew(t, opts)
	o := diskOrigin()
	for i := 0; i < 8; i++ {
		get(p, o, fmt.Sprintf("/c/%d", i))
	}
	p.Close()
	files := cacheFiles(t, dir)
	if len(files) != 8 {
		t.Fatalf("%d files", len(files))
	}
	byPath := map[string]string{}
	for i := 0; i < 8; i++ {
		byPath[filepath.Join(dir, fileName(fmt.Sprintf("GET\nexample.com\n/c/%d", i), nil))] = fmt.Sprintf("/c/%d", i)
	}
	damage := []func(b []byte) []byte{
		func(b []byte) []byte { return b[:len(b)/2] },                  // truncated body
		func(b []byte) []byte { return b[:10] },                        // truncated prefix
		func(b []byte) []byte { return nil },                           // empty
		func(b []byte) []byte { b[len(b)-1] ^= 1; return b },           // body bit flip
		func(b []byte) []byte { b[filePrefixLen+2] ^= 0x40; return b }, // metadata bit flip
		func(b []byte) []byte { copy(b, "XXXX"); return b },            // magic
		func(b []byte) []byte { return append(b, 'x') },                // trailing garbage
	}
	damaged := map[string]bool{}
	for i, f := range files[:len(damage)] {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, damage[i](b), 0o600); err != nil {
			t.Fatal(err)
		}
		damaged[f] = true
	}
	foreign := filepath.Join(dir, "README")
	os.WriteFile(foreign, []byte("not a cache file"), 0o600)
	oldTmp := filepath.Join(dir, ".tmp-123")
	os.WriteFile(oldTmp, []byte("half"), 0o600)
	old := time.Now().Add(-2 * tmpMaxAge)
	os.Chtimes(oldTmp, old, old)
	newTmp := filepath.Join(dir, ".tmp-456")
	os.WriteFile(newTmp, []byte("in progress"), 0o600)

	p2 := mustNew(t, opts)
	defer p2.Close()
	// Damage the metadata-valid remaining file's body after the scan:
	// caught on read.
	last := files[len(files)-1]
	b, _ := os.ReadFile(last)
	b[len(b)-5] ^= 1
	os.WriteFile(last, b, 0o600)
	damaged[last] = true

	before := o.calls.Load()
	for f, path := range byPath {
		r := get(p2, o, path)
		if r.body != path+strings.Repeat(".", 1000) {
			t.Fatalf("%s: wrong body %q", path, r.body[:min(len(r.body), 20)])
		}
		want := StatusHit
		if damaged[f] {
			want = StatusMiss
		}
		if r.header.Get("X-Cache-Status") != want {
			t.Fatalf("%s (damaged %v): %s", path, damaged[f], r.header.Get("X-Cache-Status"))
		}
	}
	if got := o.calls.Load() - before; got != int32(len(damaged)) {
		t.Fatalf("%d refetches, want %d", got, len(damaged))
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatal("a foreign file was removed")
	}
	if _, err := os.Stat(newTmp); err != nil {
		t.Fatal("a recent temp file was removed")
	}
	if _, err := os.Stat(oldTmp); err == nil {
		t.Fatal("an old temp file was kept")
	}
	// The refetches rewrote good files.
	if n := len(cacheFiles(t, dir)); n != 8 {
		t.Fatalf("%d files after refill", n)
	}
}

// TestDiskTierBound: a scan over more than dir_max_size keeps the newest
// entries and deletes the oldest files.
func TestDiskTierBound(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"dir": dir})
	body := strings.Repeat("z", 1000)
	o := static(200, body, "Cache-Control: max-age=600")
	const count = 64
	for i := 0; i < count; i++ {
		get(p, o, fmt.Sprintf("/b/%d", i))
	}
	p.Close()
	// Give every file a distinct stored time: /b/i stored i seconds
	// after /b/0, by rewriting the files.
	base := time.Now().Add(-time.Hour)
	for i := 0; i < count; i++ {
		key := fmt.Sprintf("GET\nexample.com\n/b/%d", i)
		path := filepath.Join(dir, fileName(key, nil))
		e, _, err := readEntryFile(path, true, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		e.storedAt = base.Add(time.Duration(i) * time.Second)
		if _, _, err := writeEntryFile(dir, e); err != nil {
			t.Fatal(err)
		}
	}
	// Room for about half of the files.
	fi, _ := os.Stat(filepath.Join(dir, fileName("GET\nexample.com\n/b/0", nil)))
	limit := int64(count/2) * fi.Size()
	p2 := mustNew(t, map[string]any{"dir": dir, "dir_max_size": limit})
	defer p2.Close()
	var total int64
	for i := range p2.store.shards {
		sh := &p2.store.shards[i]
		if sh.disk.lru.size > sh.disk.lru.capacity {
			t.Fatalf("shard %d over its bound", i)
		}
		total += sh.disk.lru.size
	}
	files := cacheFiles(t, dir)
	if len(files) != diskCount(p2) || len(files) >= count || len(files) == 0 {
		t.Fatalf("%d files, %d indexed", len(files), diskCount(p2))
	}
	// Within each shard the survivors are the newest: every evicted entry
	// is older than every kept entry of its shard.
	for i := range p2.store.shards {
		sh := &p2.store.shards[i]
		var oldestKept time.Time
		for e := sh.disk.lru.head; e != nil; e = e.next {
			oldestKept = e.storedAt
		}
		for j := 0; j < count; j++ {
			key := fmt.Sprintf("GET\nexample.com\n/b/%d", j)
			if p2.store.shardFor([]byte(key)) != sh {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, fileName(key, nil))); err != nil && base.Add(time.Duration(j)*time.Second).After(oldestKept) {
				t.Fatalf("shard %d: evicted /b/%d is newer than a kept entry", i, j)
			}
		}
	}
}

// TestDiskTierSharedDir: two instances on one dir (a reload) see each
// other's new entries (no Vary) and a PURGE on one removes the file the
// other wrote.
func TestDiskTierSharedDir(t *testing.T) {
	dir := t.TempDir()
	a := mustNew(t, map[string]any{"dir": dir})
	b := mustNew(t, map[string]any{"dir": dir, "ttl": "1m"})
	o := static(200, "shared", "Cache-Control: max-age=60")
	get(a, o, "/s") // written after b scanned the dir
	if r := get(b, o, "/s"); r.header.Get("X-Cache-Status") != StatusHit || r.body != "shared" {
		t.Fatalf("b: %s %q", r.header.Get("X-Cache-Status"), r.body)
	}
	get(a, o, "/s2")
	if r := o.do(plugintest.NewCtx("PURGE", "/s2"), b); r.status != 200 {
		t.Fatalf("purge via b: %d", r.status)
	}
	a.Close()
	b.Close()
	c := mustNew(t, map[string]any{"dir": dir})
	if r := get(c, o, "/s2"); r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("purged entry came back: %s", r.header.Get("X-Cache-Status"))
	}
	if r := get(c, o, "/s"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("/s: %s", r.header.Get("X-Cache-Status"))
	}
	if calls := o.calls.Load(); calls != 3 {
		t.Fatalf("%d upstream calls, want 3", calls)
	}
}

// TestDiskTierMissingFile: files deleted behind the cache's back are
// misses (refetched), never errors.
func TestDiskTierMissingFile(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"max_size": int64(numShards * 1400), "dir": dir})
	defer p.Close()
	o := static(200, strings.Repeat("y", 1000), "Cache-Control: max-age=60")
	for i := 0; i < 100; i++ {
		get(p, o, fmt.Sprintf("/m/%d", i))
	}
	for _, f := range cacheFiles(t, dir) {
		os.Remove(f)
	}
	before := o.calls.Load()
	for i := 0; i < 100; i++ {
		if r := get(p, o, fmt.Sprintf("/m/%d", i)); r.body != strings.Repeat("y", 1000) {
			t.Fatalf("bad body after losing the files")
		}
	}
	if o.calls.Load() == before {
		t.Fatal("lost files did not cause refetches")
	}
}

// TestDiskTierPurge: PURGE removes memory and disk copies.
func TestDiskTierPurge(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"max_size": int64(numShards * 2600), "dir": dir})
	o := diskOrigin()
	for i := 0; i < 50; i++ {
		get(p, o, fmt.Sprintf("/p/%d", i))
	}
	for i := 0; i < 50; i++ {
		if r := o.do(plugintest.NewCtx("PURGE", fmt.Sprintf("/p/%d", i)), p); r.status != 200 {
			t.Fatalf("purge %d: %d", i, r.status)
		}
	}
	if n := len(cacheFiles(t, dir)); n != 0 || diskCount(p) != 0 {
		t.Fatalf("%d files, %d indexed after purging everything", n, diskCount(p))
	}
	if r := o.do(plugintest.NewCtx("PURGE", "/p/0"), p); r.status != 404 {
		t.Fatalf("second purge %d", r.status)
	}
}

func TestFileCodecRoundTrip(t *testing.T) {
	var h httpx.Header
	h.Add("Content-Type", "text/plain")
	h.Add("ETag", `"x"`)
	e := &entry{key: "GET\nh\n/x", status: 203, header: cloneHeader(&h), body: []byte("body"), contentLength: -1,
		storedAt: time.Unix(1700000000, 5), initialAge: 3 * time.Second, freshFor: time.Minute, mustRevalidate: true,
		swr: -1, sie: 5 * time.Second, vary: []string{"accept"}, varyVals: []string{"a/b"}}
	e.finish(4)
	dir := t.TempDir()
	path, size, err := writeEntryFile(dir, e)
	if err != nil {
		t.Fatal(err)
	}
	got, gotSize, err := readEntryFile(path, true, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if gotSize != size || got.key != e.key || got.status != 203 || string(got.body) != "body" || !got.storedAt.Equal(e.storedAt) ||
		got.initialAge != e.initialAge || got.freshFor != e.freshFor || !got.mustRevalidate || got.swr != -1 || got.sie != e.sie ||
		got.contentLength != -1 || got.etag != `"x"` || !equalStrings(got.vary, e.vary) || !equalStrings(got.varyVals, e.varyVals) ||
		got.header.Get("Content-Type") != "text/plain" || got.size != e.size {
		t.Fatalf("round trip: %+v", got)
	}
	if filepath.Base(path) != fileName(e.key, e.varyVals) || !ourFileName(filepath.Base(path)) {
		t.Fatalf("name %s", path)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	var h httpx.Header
	h.Add("A", "b")
	e := &entry{key: "k", status: 200, header: h, vary: []string{"x"}, varyVals: []string{"y"}}
	f.Add(encodeMeta(nil, e))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeMeta(b)
	})
}

func FuzzReadEntryFile(f *testing.F) {
	var h httpx.Header
	h.Add("A", "b")
	e := &entry{key: "k", status: 200, header: h, body: []byte("body"), swr: -1}
	dir := f.TempDir()
	path, _, err := writeEntryFile(dir, e)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	f.Add(good)
	f.Add(good[:filePrefixLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if e, _, err := readEntryFile(p, true, 1<<30); err == nil && e.key == "" {
			t.Fatal("accepted an entry without key")
		}
		readEntryFile(p, false, 1<<30)
	})
}

// TestPurgeBetweenStoreAndDiskWrite: a PURGE that runs after an entry
// reached memory but before its file was written keeps it off the disk.
func TestPurgeBetweenStoreAndDiskWrite(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"dir": dir})
	c := plugintest.NewCtx("GET", "/race")
	key := string(p.appendKey(c, "GET", nil))
	sh := p.store.shardFor([]byte(key))
	var h httpx.Header
	h.Add("Cache-Control", "max-age=60")
	e := &entry{key: key, status: 200, header: h, body: []byte("x"), contentLength: -1, storedAt: time.Now(), freshFor: time.Minute, swr: -1, sie: -1}
	e.finish(1)
	gen, _ := p.publish(sh, e, nil)
	if r := static(200, "").do(plugintest.NewCtx("PURGE", "/race"), p); r.status != 200 {
		t.Fatalf("purge %d", r.status)
	}
	p.persist(sh, e, gen)
	if n := len(cacheFiles(t, dir)); n != 0 || diskCount(p) != 0 {
		t.Fatalf("%d files, %d indexed after a purge", n, diskCount(p))
	}
	// Without a purge in between it is written.
	gen, _ = p.publish(sh, e, nil)
	p.persist(sh, e, gen)
	if n := len(cacheFiles(t, dir)); n != 1 || diskCount(p) != 1 {
		t.Fatalf("%d files, %d indexed", n, diskCount(p))
	}
}

// TestCloseDuringScan: Close stops the start-up scan and waits for it
// (pingap -t builds and closes plugins at once); it is idempotent.
func TestCloseDuringScan(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"dir": dir})
	o := diskOrigin()
	for i := 0; i < 50; i++ {
		get(p, o, fmt.Sprintf("/cl/%d", i))
	}
	p.Close()
	for i := 0; i < 5; i++ {
		pl, err := New(plugin.Env{Name: "c", Logger: slog.New(slog.DiscardHandler)}, map[string]any{"dir": dir})
		if err != nil {
			t.Fatal(err)
		}
		pl.(*Plugin).Close()
		pl.(*Plugin).Close()
		select {
		case <-pl.(*Plugin).scanDone:
		default:
			t.Fatal("Close returned before the scan ended")
		}
	}
	if n := len(cacheFiles(t, dir)); n != 50 {
		t.Fatalf("%d files left", n)
	}
	p2 := mustNew(t, map[string]any{"dir": dir})
	defer p2.Close()
	if diskCount(p2) != 50 {
		t.Fatalf("%d indexed", diskCount(p2))
	}
}

// TestDiskTierMaxEntrySize: files with bodies over this instance's
// max_entry_size are removed by its scan, and left alone when only probed
// (another instance's, still listed there).
func TestDiskTierMaxEntrySize(t *testing.T) {
	dir := t.TempDir()
	big := static(200, strings.Repeat("B", 10000), "Cache-Control: max-age=60")
	a := mustNew(t, map[string]any{"dir": dir, "max_entry_size": "64KB"})
	small := mustNew(t, map[string]any{"dir": dir, "max_entry_size": "1KB"}) // scanned an empty dir
	get(a, big, "/big")
	if r := get(small, big, "/big"); r.header.Get("X-Cache-Status") != StatusMiss || len(r.body) != 10000 {
		t.Fatalf("small instance: %s %d", r.header.Get("X-Cache-Status"), len(r.body))
	}
	if n := len(cacheFiles(t, dir)); n != 1 {
		t.Fatalf("probe removed a valid file of another instance: %d files", n)
	}
	if r := get(a, big, "/big"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("a: %s", r.header.Get("X-Cache-Status"))
	}
	a.Close()
	small.Close()
	small2 := mustNew(t, map[string]any{"dir": dir, "max_entry_size": "1KB"})
	defer small2.Close()
	if n := len(cacheFiles(t, dir)); n != 0 || diskCount(small2) != 0 {
		t.Fatalf("scan kept a file over max_entry_size: %d files", n)
	}
}

// TestDiskTierProbeCorrupt: a corrupt file found by name (not indexed) is
// a miss, never served, and replaced by the refill.
func TestDiskTierProbeCorrupt(t *testing.T) {
	dir := t.TempDir()
	p := mustNew(t, map[string]any{"dir": dir})
	defer p.Close()
	path := filepath.Join(dir, fileName("GET\nexample.com\n/pc", nil))
	if err := os.WriteFile(path, []byte(fileMagic+"garbage that is not a cache file"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := static(200, "fresh", "Cache-Control: max-age=60")
	if r := get(p, o, "/pc"); r.header.Get("X-Cache-Status") != StatusMiss || r.body != "fresh" {
		t.Fatalf("%s %q", r.header.Get("X-Cache-Status"), r.body)
	}
	if e, _, err := readEntryFile(path, true, 1<<20); err != nil || string(e.body) != "fresh" {
		t.Fatalf("file not replaced: %v", err)
	}
}

// TestDiskTierConcurrent: two instances on one dir, small memory (so disk
// loads happen), concurrent GETs, PURGEs and POSTs: every body served
// belongs to its key, and the race detector stays quiet.
func TestDiskTierConcurrent(t *testing.T) {
	dir := t.TempDir()
	opts := map[string]any{"dir": dir, "max_size": int64(numShards * 2600), "dir_max_size": int64(numShards * 8000)}
	insts := []*Plugin{mustNew(t, opts), mustNew(t, opts)}
	defer insts[0].Close()
	defer insts[1].Close()
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		return 200, []string{"Cache-Control: max-age=60", `ETag: "` + c.Req.Path + `"`}, c.Req.Path + strings.Repeat("#", 1000)
	}}
	const workers, ops, keys = 8, 300, 40
	done := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			seed := uint32(w*7919 + 1)
			next := func(n int) int { // xorshift: deterministic, no shared state
				seed ^= seed << 13
				seed ^= seed >> 17
				seed ^= seed << 5
				return int(seed % uint32(n))
			}
			for i := 0; i < ops; i++ {
				p := insts[next(2)]
				path := fmt.Sprintf("/cc/%d", next(keys))
				switch k := next(20); {
				case k == 0:
					o.do(plugintest.NewCtx("PURGE", path), p)
				case k == 1:
					o.do(plugintest.NewCtx("POST", path), p)
				default:
					r := get(p, o, path)
					if r.status != 200 || r.body != path+strings.Repeat("#", 1000) {
						done <- fmt.Errorf("%s: %d %q", path, r.status, r.body[:min(len(r.body), 30)])
						return
					}
				}
			}
			done <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Whatever survived is consistent: a fresh instance serves every key
	// correctly.
	p := mustNew(t, opts)
	defer p.Close()
	for i := 0; i < keys; i++ {
		path := fmt.Sprintf("/cc/%d", i)
		if r := get(p, o, path); r.body != path+strings.Repeat("#", 1000) {
			t.Fatalf("%s after the storm: %q", path, r.body[:min(len(r.body), 30)])
		}
	}
}

func TestTierInsertOld(t *testing.T) {
	tr := tier{items: map[string]*primary{}, lru: lru{capacity: 300}}
	mk := func(key string, vary, vals []string) *entry {
		return &entry{key: key, size: 100, vary: vary, varyVals: vals}
	}
	live := mk("live", nil, nil)
	tr.insert(live, nil)
	if !tr.insertOld(mk("a", nil, nil)) || !tr.insertOld(mk("b", nil, nil)) {
		t.Fatal("room for two old entries")
	}
	if tr.insertOld(mk("c", nil, nil)) {
		t.Fatal("an old entry went over the budget")
	}
	if tr.lru.head != live || tr.lru.tail.key != "b" || tr.lru.size != 300 {
		t.Fatalf("order head %s tail %s size %d", tr.lru.head.key, tr.lru.tail.key, tr.lru.size)
	}
	tr2 := tier{items: map[string]*primary{}, lru: lru{capacity: 1000}}
	tr2.insert(mk("k", []string{"accept"}, []string{"x"}), []string{"accept"})
	if tr2.insertOld(mk("k", []string{"accept"}, []string{"x"})) {
		t.Fatal("same variant inserted twice")
	}
	if tr2.insertOld(mk("k", []string{"origin"}, []string{"x"})) {
		t.Fatal("an older Vary replaced a newer one")
	}
	if !tr2.insertOld(mk("k", []string{"accept"}, []string{"y"})) || len(tr2.items["k"].entries) != 2 {
		t.Fatal("another variant of the same Vary")
	}
}
