package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/testutil/dnsstub"
	"github.com/pingap-go/pingap/internal/testutil/pebble"
)

// acmeFixture is a Store whose config has one TLS server "tls" with one
// acme certificate "auto" for domain, plus the server serving it.
type acmeFixture struct {
	store  *Store
	addr   string
	domain string
	pb     *pebble.Server
}

func newACMEFixture(t *testing.T, pb *pebble.Server, storage, domain, renewBefore string) *acmeFixture {
	t.Helper()
	cfg := acmeConfig(t, pb, storage, domain, renewBefore)
	s := NewStore(testLogger(t), nil)
	s.acmeBackoff = 200 * time.Millisecond
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conf, err := s.TLSConfig("tls", cfg.Servers["tls"])
	if err != nil {
		t.Fatal(err)
	}
	return &acmeFixture{store: s, addr: serveEcho(t, conf), domain: domain, pb: pb}
}

// servedCert handshakes until the server presents a certificate for the
// domain that chains to Pebble's root, differing from not (when given).
func (f *acmeFixture) servedCert(t *testing.T, not *x509.Certificate, within time.Duration) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(within)
	var lastErr error
	for time.Now().Before(deadline) {
		c, err := dial(f.addr, &tls.Config{ServerName: f.domain, RootCAs: f.pb.IssuerCAs})
		if err == nil {
			leaf := c.ConnectionState().PeerCertificates[0]
			roundTrip(t, c, "acme")
			c.Close()
			if not == nil || leaf.SerialNumber.Cmp(not.SerialNumber) != 0 {
				return leaf
			}
			lastErr = fmt.Errorf("still serving serial %x", leaf.SerialNumber)
		} else {
			lastErr = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no (new) certificate for %s within %v: %v", f.domain, within, lastErr)
	return nil
}

func TestACMEIssuanceAndRestart(t *testing.T) {
	t.Parallel()
	pb := pebble.Start(t, pebble.Options{AlwaysValid: true})
	storage := t.TempDir()
	f := newACMEFixture(t, pb, storage, "issue.pingap.test", "")
	leaf := f.servedCert(t, nil, 30*time.Second)
	if leaf.DNSNames[0] != "issue.pingap.test" {
		t.Fatalf("names %v", leaf.DNSNames)
	}
	// Persisted: account key and certificate.
	key := storageKey(pb.Dir)
	for _, p := range []string{"account.key", "certificates/auto/cert.pem", "certificates/auto/key.pem"} {
		if _, err := os.Stat(filepath.Join(storage, key, p)); err != nil {
			t.Fatalf("not persisted: %v", err)
		}
	}
	// The HTTP-01 handler is active but knows no such token.
	if status, handled := challengeGet(f.store, "/.well-known/acme-challenge/unknown"); !handled || status != http.StatusNotFound {
		t.Fatalf("unknown token: handled=%v status=%d, want 404", handled, status)
	}
	if _, handled := challengeGet(f.store, "/other"); handled {
		t.Fatal("a non-challenge path was answered")
	}
	f.store.Close()

	// A restart serves the stored certificate: same serial, no new order.
	f2 := newACMEFixture(t, pb, storage, "issue.pingap.test", "")
	again := f2.servedCert(t, nil, 5*time.Second)
	if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("restart re-ordered: serial %x, stored %x", again.SerialNumber, leaf.SerialNumber)
	}
	f2.store.Close()

	// With the certificate gone, a restart orders a new one with the
	// stored account (the CA answers "account exists"), keeping its key.
	acctKey, _ := os.ReadFile(filepath.Join(storage, key, "account.key"))
	if err := os.RemoveAll(filepath.Join(storage, key, "certificates")); err != nil {
		t.Fatal(err)
	}
	f3 := newACMEFixture(t, pb, storage, "issue.pingap.test", "")
	third := f3.servedCert(t, nil, 30*time.Second)
	if third.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatal("no new certificate was ordered")
	}
	if now, _ := os.ReadFile(filepath.Join(storage, key, "account.key")); string(now) != string(acctKey) {
		t.Fatal("account key was replaced")
	}
}

func TestACMERenewal(t *testing.T) {
	t.Parallel()
	// Pebble issues 8-second certificates; renew_before "5s" makes the
	// renewal due ~3s after issuance.
	pb := pebble.Start(t, pebble.Options{AlwaysValid: true, Validity: 8})
	var reports atomic.Int32
	cfg := acmeConfig(t, pb, t.TempDir(), "renew.pingap.test", "5s")
	s := NewStore(testLogger(t), func(name string, _ time.Time) {
		if name == "auto" {
			reports.Add(1)
		}
	})
	s.acmeBackoff = 200 * time.Millisecond
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conf, err := s.TLSConfig("tls", cfg.Servers["tls"])
	if err != nil {
		t.Fatal(err)
	}
	f := &acmeFixture{store: s, addr: serveEcho(t, conf), domain: "renew.pingap.test", pb: pb}
	first := f.servedCert(t, nil, 30*time.Second)
	if life := first.NotAfter.Sub(first.NotBefore); life > 10*time.Second {
		t.Fatalf("pebble ignored certificateValidityPeriod: lifetime %v", life)
	}
	// An open connection survives the renewal.
	old, err := dial(f.addr, &tls.Config{ServerName: f.domain, RootCAs: pb.IssuerCAs})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	second := f.servedCert(t, first, 20*time.Second)
	if second.NotBefore.Before(first.NotBefore) {
		t.Fatalf("renewed certificate is older: %v < %v", second.NotBefore, first.NotBefore)
	}
	roundTrip(t, old, "still here")
	if reports.Load() < 2 {
		t.Fatalf("metrics hook called %d times, want >= 2", reports.Load())
	}
}

func TestACMERenewAt(t *testing.T) {
	m := &acmeManager{}
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		lifetime    time.Duration
		renewBefore time.Duration
		wantLeft    time.Duration // time left at renewal
	}{
		{"90d: renew_before 30d equals a third", 90 * 24 * time.Hour, 30 * 24 * time.Hour, 30 * 24 * time.Hour},
		{"90d: renew_before 10d, a third is earlier", 90 * 24 * time.Hour, 10 * 24 * time.Hour, 30 * 24 * time.Hour},
		{"90d: renew_before 45d is earlier", 90 * 24 * time.Hour, 45 * 24 * time.Hour, 45 * 24 * time.Hour},
		{"6d: renew_before 30d is clamped to 2/3", 6 * 24 * time.Hour, 30 * 24 * time.Hour, 4 * 24 * time.Hour},
		{"1y: renew_before 30d, a third", 360 * 24 * time.Hour, 30 * 24 * time.Hour, 120 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.cfg.RenewBefore = configDuration(tt.renewBefore)
			leaf := &x509.Certificate{NotBefore: base, NotAfter: base.Add(tt.lifetime)}
			if got := leaf.NotAfter.Sub(m.renewAt(leaf)); got != tt.wantLeft {
				t.Fatalf("left at renewal = %v, want %v", got, tt.wantLeft)
			}
		})
	}
}

// TestACMEHTTP01RealValidation has Pebble really validate an HTTP-01
// challenge: its resolver is a tiny DNS server of this test answering
// 127.0.0.1 for every name, and its HTTP-01 port is a loopback HTTP server
// whose only logic is Store.HandleHTTPChallenge.
func TestACMEHTTP01RealValidation(t *testing.T) {
	t.Parallel()
	storage := t.TempDir() // before s.Close: cleanups run last-in first-out
	s := NewStore(testLogger(t), nil)
	s.acmeBackoff = 200 * time.Millisecond
	t.Cleanup(s.Close)
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c httpx.Ctx
		c.Req.Method, c.Req.Path = r.Method, r.URL.Path
		if !s.HandleHTTPChallenge(&c) {
			http.NotFound(w, r)
			return
		}
		if c.Resp.Status == http.StatusOK {
			hits.Add(1)
		}
		body, _ := io.ReadAll(c.Resp.Body)
		w.Header().Set("Content-Type", c.Resp.Header.Get("Content-Type"))
		w.WriteHeader(c.Resp.Status)
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	dns := dnsstub.Start(t)
	pb := pebble.Start(t, pebble.Options{HTTPPort: ln.Addr().(*net.TCPAddr).Port, DNSServer: dns})
	cfg := acmeConfig(t, pb, storage, "real.pingap.test", "")
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	conf, err := s.TLSConfig("tls", cfg.Servers["tls"])
	if err != nil {
		t.Fatal(err)
	}
	f := &acmeFixture{store: s, addr: serveEcho(t, conf), domain: "real.pingap.test", pb: pb}
	f.servedCert(t, nil, 45*time.Second)
	if hits.Load() == 0 {
		t.Fatal("Pebble issued without fetching the HTTP-01 response")
	}
}

// TestACMETLSALPN01RealValidation has Pebble validate a TLS-ALPN-01
// challenge (RFC 8737) against the TLS server built from Store.TLSConfig.
func TestACMETLSALPN01RealValidation(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dns := dnsstub.Start(t)
	pb := pebble.Start(t, pebble.Options{TLSPort: ln.Addr().(*net.TCPAddr).Port, DNSServer: dns})
	storage := t.TempDir() // before s.Close: cleanups run last-in first-out
	s := NewStore(testLogger(t), nil)
	s.acmeBackoff = 200 * time.Millisecond
	t.Cleanup(s.Close)
	cfg := acmeConfig(t, pb, storage, "alpn.pingap.test", "")
	cfg.ACME.Challenge = "tls-alpn-01"
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	conf, err := s.TLSConfig("tls", cfg.Servers["tls"])
	if err != nil {
		t.Fatal(err)
	}
	f := &acmeFixture{store: s, addr: serveEchoOn(t, ln, conf), domain: "alpn.pingap.test", pb: pb}
	f.servedCert(t, nil, 45*time.Second)
}

// TestACMEFailureBacksOff: a CA that refuses every validation (nothing
// answers HTTP-01) must be retried with growing delays, not in a loop.
func TestACMEFailureBacksOff(t *testing.T) {
	t.Parallel()
	dns := dnsstub.Start(t)
	pb := pebble.Start(t, pebble.Options{DNSServer: dns}) // nothing serves its httpPort
	var logs lockedBuffer
	storage := t.TempDir() // before s.Close: cleanups run last-in first-out
	s := NewStore(slogTo(&logs), nil)
	s.acmeBackoff = 300 * time.Millisecond
	t.Cleanup(s.Close)
	cfg := acmeConfig(t, pb, storage, "fail.pingap.test", "")
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(logs.String(), "acme certificate request failed") < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	out := logs.String()
	if n := strings.Count(out, "acme certificate request failed"); n < 2 {
		t.Fatalf("want 2 logged failures, got %d:\n%s", n, out)
	}
	if !strings.Contains(out, "http-01 validation") {
		t.Fatalf("failures are not validation failures:\n%s", out)
	}
	if !strings.Contains(out, "retry_in=300ms") || !strings.Contains(out, "retry_in=600ms") {
		t.Fatalf("backoff does not double:\n%s", out)
	}
}

// challengeGet runs HandleHTTPChallenge for a GET of path.
func challengeGet(s *Store, path string) (int, bool) {
	var c httpx.Ctx
	c.Req.Method, c.Req.Path = http.MethodGet, path
	handled := s.HandleHTTPChallenge(&c)
	return c.Resp.Status, handled
}
