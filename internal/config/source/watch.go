// Package source holds configuration sources that notice changes: the file
// watcher behind basic.auto_reload (and, later, etcd).
package source

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls onChange (debounced by delay) whenever the config file at path
// changes, or any *.toml file when path is a folder. It watches the folder
// that holds the file, so editors that save by writing a new file and
// renaming it over the old one are seen too. The watch is in place when
// Watch returns; it runs in the background until ctx ends, then calls done
// (when not nil).
func Watch(ctx context.Context, path string, delay time.Duration, log *slog.Logger, onChange func(), done func()) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return err
	}
	dir, file := abs, ""
	if !st.IsDir() {
		dir, file = filepath.Dir(abs), filepath.Base(abs)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return err
	}
	go func() {
		defer w.Close()
		loop(ctx, w, file, delay, log, onChange)
		if done != nil {
			done()
		}
	}()
	return nil
}

func loop(ctx context.Context, w *fsnotify.Watcher, file string, delay time.Duration, log *slog.Logger, onChange func()) {
	relevant := func(name string) bool {
		base := filepath.Base(name)
		if file != "" {
			return base == file
		}
		return strings.HasSuffix(base, ".toml") && !strings.HasPrefix(base, ".")
	}
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !relevant(ev.Name) || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(delay)
			} else {
				timer.Reset(delay)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("config watcher", slog.String("error", err.Error()))
		case <-fire:
			fire = nil
			onChange()
		}
	}
}
