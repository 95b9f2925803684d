package certs

import (
	"context"
	"os"
	"time"
)

// fileStamp fingerprints a PEM file so the auto_reload watcher notices
// replacements.
type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// Files lists the PEM files the current certificates were loaded from
// (certificates, keys, client CAs), e.g. for a config watcher.
func (s *Store) Files() []string {
	return sortedKeys(s.state.Load().files)
}

// Reload re-reads every PEM file of the last config given to Update and
// swaps the result in (all or nothing, like Update). Listeners and open
// connections are untouched.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return nil
	}
	return s.updateLocked(s.last)
}

// changed reports whether a loaded PEM file was replaced since it was read.
func (s *Store) changed() bool {
	for path, st := range s.state.Load().files {
		if stampOf(path) != st {
			return true
		}
	}
	return false
}

// syncWatch starts or stops the file watcher to follow basic.auto_reload.
// Called with s.mu held; it never waits for the watcher (which takes s.mu
// to reload), it only cancels it.
func (s *Store) syncWatch(on bool) {
	switch {
	case on && s.watchCancel == nil:
		ctx, cancel := context.WithCancel(context.Background())
		s.watchCancel = cancel
		go s.watch(ctx, s.watchInterval)
	case !on && s.watchCancel != nil:
		s.watchCancel()
		s.watchCancel = nil
	}
}

// watch polls the loaded PEM files every interval until ctx ends and
// reloads the certificates when one changed (basic.auto_reload: renewed
// certificates dropped in place by certbot or similar). Polling rather than
// inotify survives the rename-over and symlink-swap patterns those tools
// use. A failed reload is logged and the previous certificates stay.
func (s *Store) watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = defaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.changed() {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err := s.Reload(); err != nil {
			s.logger.Error("tls certificates not reloaded", "error", err)
			// Do not retry the same broken files every tick: remember
			// them as seen.
			s.markSeen()
			continue
		}
		s.logger.Info("tls certificates reloaded after a file change")
	}
}

// markSeen refreshes the stamps of the current generation so a broken file
// is reported once per change, not once per tick.
func (s *Store) markSeen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.state.Load()
	next := *cur
	next.files = make(map[string]fileStamp, len(cur.files))
	for path := range cur.files {
		next.files[path] = stampOf(path)
	}
	s.state.Store(&next)
}

// defaultWatchInterval is how often auto_reload looks at the PEM files.
const defaultWatchInterval = 2 * time.Second

// Close stops ACME renewals and the file watcher. The Store keeps serving
// what it has.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncWatch(false)
	if s.acme != nil {
		s.acme.stop()
		s.acme = nil
		s.acmeLive.Store(nil)
	}
}
