package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// Instances sharing one ACME storage folder (a fleet on shared storage such
// as NFS, or several processes on one host) coordinate through it:
//
//   - one order at a time per certificate: an exclusive lock on
//     certificates/NAME/.lock (flock) is held while ordering; an instance
//     that finds it held waits, then takes the certificate the holder
//     stored instead of ordering its own (Let's Encrypt allows only 5
//     duplicate certificates a week);
//   - a certificate renewed by another instance is picked up: while waiting
//     for its renewal time, an instance re-reads the stored certificate
//     every storageRecheck and serves a newer one;
//   - HTTP-01 tokens are written to challenges/TOKEN while pending, so the
//     CA's validation request may reach any instance behind the same name:
//     each answers tokens from memory, then from the folder.
//
// TLS-ALPN-01 challenge certificates stay in the ordering process: with it,
// the CA must reach that instance.

// storageRecheck is how often a waiting instance looks for a certificate
// another instance stored.
const storageRecheck = 10 * time.Minute

// lockPoll is how often a held order lock is tried again.
const lockPoll = time.Second

// lockPath is the order lock of certificate name.
func (m *acmeManager) lockPath(name string) string {
	return filepath.Join(m.dir, "certificates", name, ".lock")
}

// lockOrder takes the order lock of mc, waiting while another process holds
// it. It returns the unlock func, or ctx's error.
func (m *acmeManager) lockOrder(ctx context.Context, mc *managed) (func(), error) {
	path := m.lockPath(mc.name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	logged := false
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		if ok {
			return func() { unlock(f); f.Close() }, nil
		}
		if !logged {
			m.logger.Info("acme order of another instance in progress; waiting for it", "name", mc.name, "lock", path)
			logged = true
		}
		t := time.NewTimer(m.lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// newerStored returns the stored certificate of mc when it is newer than
// the one served (or none is) and not yet due for renewal: another
// instance sharing the folder obtained it.
func (m *acmeManager) newerStored(mc *managed) *tls.Certificate {
	c, err := m.loadStored(mc)
	if err != nil {
		return nil
	}
	if cur := mc.h.cert.Load(); cur != nil && !c.Leaf.NotAfter.After(cur.Leaf.NotAfter) {
		return nil
	}
	if !time.Now().Before(m.renewAt(c.Leaf)) {
		return nil
	}
	return c
}

// challengeDir holds pending HTTP-01 key authorizations by token.
func (m *acmeManager) challengeDir() string { return filepath.Join(m.dir, "challenges") }

// validToken reports whether a token can name a file: RFC 8555 tokens are
// base64url, at least 128 bits of entropy.
func validToken(tok string) bool {
	if len(tok) < 16 || len(tok) > 256 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// putToken makes an HTTP-01 key authorization answerable by this process
// and, through the storage folder, by every process sharing it. The
// returned func withdraws it.
func (m *acmeManager) putToken(token string, ka []byte) func() {
	m.chMu.Lock()
	m.tokens[token] = ka
	m.chMu.Unlock()
	path := ""
	if validToken(token) {
		dir := m.challengeDir()
		if err := os.MkdirAll(dir, 0o700); err == nil {
			p := filepath.Join(dir, token)
			if err := writeFileAtomic(p, ka, 0o600); err == nil {
				path = p
			}
		}
		if path == "" {
			m.logger.Warn("acme challenge token not shared through the storage folder", "dir", dir)
		}
	}
	return func() {
		m.chMu.Lock()
		delete(m.tokens, token)
		m.chMu.Unlock()
		if path != "" {
			os.Remove(path)
		}
	}
}

// keyAuth returns the pending HTTP-01 key authorization for token: this
// process's own, or one another process sharing the folder wrote.
func (m *acmeManager) keyAuth(token string) ([]byte, bool) {
	m.chMu.RLock()
	ka, ok := m.tokens[token]
	m.chMu.RUnlock()
	if ok || !validToken(token) {
		return ka, ok
	}
	b, err := os.ReadFile(filepath.Join(m.challengeDir(), token))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.logger.Warn("acme challenge token unreadable", "error", err)
		}
		return nil, false
	}
	return b, true
}
