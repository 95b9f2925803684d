package cache

import (
	"strings"
	"testing"
)

// TestEntryLargerThanShardIsNotStored: a body under max_entry_size whose
// entry (body + header + overhead) exceeds the shard's memory budget must
// not flush the shard. Found by the e2e disk-tier test.
func TestEntryLargerThanShardIsNotStored(t *testing.T) {
	p := mustNew(t, map[string]any{"max_size": "16KB"}) // 1 KB per shard
	defer p.Close()
	small := static(200, "small", "Cache-Control: max-age=60")
	// Fill every shard with a small entry.
	var keys []string
	for i := 0; i < 64; i++ {
		k := "/s" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		get(p, small, k)
		keys = append(keys, k)
	}
	stored := 0
	for _, k := range keys {
		if r := get(p, small, k); r.header.Get("X-Cache-Status") == StatusHit {
			stored++
		}
	}
	// A body just under max_entry_size (capped to 1024-256 bytes) with a
	// long header: the entry exceeds 1 KB.
	big := static(200, strings.Repeat("b", 700), "Cache-Control: max-age=60", "X-Long: "+strings.Repeat("h", 200))
	for i := 0; i < 64; i++ {
		get(p, big, "/big"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	after := 0
	for _, k := range keys {
		if r := get(p, small, k); r.header.Get("X-Cache-Status") == StatusHit {
			after++
		}
	}
	if after < stored {
		t.Fatalf("oversized entries evicted small ones: %d hits before, %d after", stored, after)
	}
	if r := get(p, big, "/bigaa"); r.body != strings.Repeat("b", 700) {
		t.Fatalf("oversized entry served wrong body %q", r.body[:10])
	}
}
