package source

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchSeesWritesAndAtomicRenames(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pingap.toml")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	changes := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	const debounce = 100 * time.Millisecond
	if err := Watch(ctx, path, debounce, slog.New(slog.DiscardHandler), func() { changes <- struct{}{} }, func() { close(done) }); err != nil {
		t.Fatal(err)
	}

	wait := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(5 * time.Second):
			t.Fatalf("no change seen after %s", what)
		}
	}
	// A plain write, several times in a row: debounced into one call.
	t0 := time.Now()
	for i := 0; i < 5; i++ {
		os.WriteFile(path, []byte{byte('b' + i)}, 0o644)
	}
	burst := time.Since(t0)
	wait("writes")
	// Only meaningful when the burst was well inside the debounce window:
	// a machine that stalls the test between two writes may legitimately
	// see two reloads.
	select {
	case <-changes: // drained either way, so later steps see only their own
		if burst < debounce/2 {
			t.Fatalf("a burst of 5 writes in %v was not debounced into one reload", burst)
		}
	case <-time.After(4 * debounce):
	}
	// An editor-style save: write a temp file, rename it over the config.
	tmp := filepath.Join(dir, ".pingap.toml.swp")
	os.WriteFile(tmp, []byte("z"), 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	wait("atomic rename")
	// A second rename still works (the watch is on the folder).
	os.WriteFile(tmp, []byte("y"), 0o644)
	os.Rename(tmp, path)
	wait("second rename")
	// Unrelated files are ignored.
	os.WriteFile(filepath.Join(dir, "other.txt"), []byte("x"), 0o644)
	select {
	case <-changes:
		t.Fatal("unrelated file triggered a reload")
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not stop after cancel")
	}
}
