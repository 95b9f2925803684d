package admin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PersistFile returns the Options.Persist for the -config argument path:
// for a TOML file, a writer that replaces the file atomically (WriteFile);
// nil for a folder of files (a whole config cannot be split back into the
// operator's files, so PUT answers 409), for an etcd:// source (its own
// writer plugs in there) and for "".
func PersistFile(path string) func([]byte) error {
	if path == "" || strings.Contains(path, "://") {
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil
	}
	return func(data []byte) error { return WriteFile(path, data) }
}

// WriteFile replaces the file at path by data atomically: data goes to a
// temporary file in the same folder (a hidden name, so a folder watcher and
// config.Load ignore it), is synced, takes the old file's permissions, and
// is renamed over the file; the folder is synced too. Readers (a reload, an
// auto_reload watcher) see the old file or the new one, never a part. A
// symbolic link is followed: the file it points to is replaced.
func WriteFile(path string, data []byte) (err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: the rename is durable once the folder is
		d.Close()
	}
	return nil
}
