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
	if err := Watch(ctx, path, 50*time.Millisecond, slog.New(slog.DiscardHandler), func() { changes <- struct{}{} }, func() { close(done) }); err != nil {
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
	for i := 0; i < 5; i++ {
		os.WriteFile(path, []byte{byte('b' + i)}, 0o644)
	}
	wait("writes")
	select {
	case <-changes:
		t.Fatal("burst of writes was not debounced into one reload")
	case <-time.After(200 * time.Millisecond):
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
