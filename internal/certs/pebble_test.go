package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/testutil/dnsstub"
)

// pebble is a real ACME server (Let's Encrypt's test CA) run by a test on
// loopback with its own config. Its HTTPS listener uses a certificate from
// listenCA (our test CA, handed to the Store as [acme].ca_root); the
// certificates it issues chain to a root regenerated at every start,
// fetched from its management endpoint (/roots/0).
type pebble struct {
	dir       string // directory URL
	mgmt      string // management base URL
	caRoot    string // PEM file of the CA of Pebble's HTTPS listener
	listenCA  *testCA
	issuerCAs *x509.CertPool
}

type pebbleOptions struct {
	alwaysValid bool
	httpPort    int    // where Pebble's VA sends HTTP-01 validations
	tlsPort     int    // where Pebble's VA sends TLS-ALPN-01 validations
	dnsServer   string // -dnsserver
	validity    int    // certificateValidityPeriod in seconds; 0 = Pebble's default
}

// requirePebble fails (never skips) the test when Pebble is missing.
func requirePebble(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("pebble")
	if err != nil {
		t.Fatalf("pebble (Let's Encrypt's test ACME server) is not installed: run scripts/install-test-deps.sh (Debian package \"pebble\"): %v", err)
	}
	return p
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startPebble(t *testing.T, o pebbleOptions) *pebble {
	t.Helper()
	bin := requirePebble(t)
	dir := t.TempDir()
	ca := newCA(t, "pebble listener CA")
	certFile, keyFile := ca.writePair(t, dir, "pebble", "localhost")
	caRoot := filepath.Join(dir, "listener-ca.pem")
	writeFile(t, caRoot, ca.pem)

	if o.httpPort == 0 {
		o.httpPort = freePort(t)
	}
	if o.tlsPort == 0 {
		o.tlsPort = freePort(t)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // free ports can be taken meanwhile
		acmePort, mgmtPort := freePort(t), freePort(t)
		conf := map[string]any{"pebble": map[string]any{
			"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", acmePort),
			"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
			"certificate":                    certFile,
			"privateKey":                     keyFile,
			"httpPort":                       o.httpPort,
			"tlsPort":                        o.tlsPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
		}}
		if o.validity > 0 {
			conf["pebble"].(map[string]any)["certificateValidityPeriod"] = o.validity
		}
		b, _ := json.Marshal(conf)
		cfgFile := filepath.Join(dir, "pebble-config.json")
		writeFile(t, cfgFile, b)
		args := []string{"-config", cfgFile}
		if o.dnsServer != "" {
			args = append(args, "-dnsserver", o.dnsServer)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		if o.alwaysValid {
			cmd.Env = append(cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
		}
		logFile, _ := os.Create(filepath.Join(dir, fmt.Sprintf("pebble-%d.log", attempt)))
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatalf("start pebble: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
			logFile.Close()
		}
		p := &pebble{
			dir:      fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort),
			mgmt:     fmt.Sprintf("https://127.0.0.1:%d", mgmtPort),
			caRoot:   caRoot,
			listenCA: ca,
		}
		lastErr = p.waitReady(exited)
		if lastErr != nil {
			stop()
			log, _ := os.ReadFile(logFile.Name())
			lastErr = fmt.Errorf("%w; pebble log:\n%s", lastErr, log)
			continue
		}
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				log, _ := os.ReadFile(logFile.Name())
				t.Logf("pebble log:\n%s", log)
			}
		})
		p.issuerCAs = p.roots(t)
		return p
	}
	t.Fatalf("pebble did not start: %v", lastErr)
	return nil
}

func (p *pebble) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.listenCA.pool()},
	}}
}

// waitReady polls the directory until Pebble answers (bounded).
func (p *pebble) waitReady(exited chan struct{}) error {
	c := p.client()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("pebble exited")
		default:
		}
		resp, err := c.Get(p.dir)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pebble not ready at %s", p.dir)
}

// roots fetches Pebble's issuing root from the management endpoint.
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.client().Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble /roots/0: no PEM: %q", b)
	}
	return pool
}

// acmeFixture is a Store whose config has one TLS server "tls" with one
// acme certificate "auto" for domain, plus the server serving it.
type acmeFixture struct {
	store  *Store
	addr   string
	domain string
	pb     *pebble
}

func newACMEFixture(t *testing.T, pb *pebble, storage, domain, renewBefore string) *acmeFixture {
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
		c, err := dial(f.addr, &tls.Config{ServerName: f.domain, RootCAs: f.pb.issuerCAs})
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
	pb := startPebble(t, pebbleOptions{alwaysValid: true})
	storage := t.TempDir()
	f := newACMEFixture(t, pb, storage, "issue.pingap.test", "")
	leaf := f.servedCert(t, nil, 30*time.Second)
	if leaf.DNSNames[0] != "issue.pingap.test" {
		t.Fatalf("names %v", leaf.DNSNames)
	}
	// Persisted: account key and certificate.
	key := storageKey(pb.dir)
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
	pb := startPebble(t, pebbleOptions{alwaysValid: true, validity: 8})
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
	old, err := dial(f.addr, &tls.Config{ServerName: f.domain, RootCAs: pb.issuerCAs})
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
	pb := startPebble(t, pebbleOptions{httpPort: ln.Addr().(*net.TCPAddr).Port, dnsServer: dns})
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
	pb := startPebble(t, pebbleOptions{tlsPort: ln.Addr().(*net.TCPAddr).Port, dnsServer: dns})
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
	pb := startPebble(t, pebbleOptions{dnsServer: dns}) // nothing serves its httpPort
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
