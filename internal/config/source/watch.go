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
// renaming it over the old one are seen too. It returns when ctx ends.
func Watch(ctx context.Context, path string, delay time.Duration, log *slog.Logger, onChange func()) error {
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
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return err
	}
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
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
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
				return nil
			}
			log.Warn("config watcher", slog.String("error", err.Error()))
		case <-fire:
			fire = nil
			onChange()
		}
	}
}
