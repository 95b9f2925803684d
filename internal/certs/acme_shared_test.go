package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/testutil/dnsstub"
	"github.com/pingap-go/pingap/internal/testutil/pebble"
)

// sharedStores are two Stores (two "instances") whose acme certificate
// "auto" uses one storage folder and a CA that refuses connections.
func sharedStores(t *testing.T, storage string, recheck time.Duration) (a, b *Store) {
	t.Helper()
	cfg := unreachableACMEConfig(storage)
	mk := func() *Store {
		s := NewStore(testLogger(t), nil)
		s.acmeBackoff = time.Hour
		s.acmeRecheck = recheck
		t.Cleanup(s.Close)
		if err := s.Update(cfg); err != nil {
			t.Fatal(err)
		}
		return s
	}
	return mk(), mk()
}

func tokenGet(s *Store, token string) (int, string) {
	var c httpx.Ctx
	c.Req.Method, c.Req.Path = "GET", challengePrefix+token
	if !s.HandleHTTPChallenge(&c) {
		return 0, ""
	}
	var body []byte
	if c.Resp.Body != nil {
		body, _ = io.ReadAll(c.Resp.Body)
	}
	return c.Resp.Status, string(body)
}

// TestACMETokenSharedThroughStorage: an HTTP-01 token one instance put up
// is answered by another sharing the storage folder, and by neither once
// withdrawn; names that could leave the folder are never read.
func TestACMETokenSharedThroughStorage(t *testing.T) {
	storage := t.TempDir()
	a, b := sharedStores(t, storage, time.Hour)
	const token = "Tok3n_with-32-base64url-chars-AB"
	withdraw := a.acmeLive.Load().putToken(token, []byte(token+".thumb"))
	for name, s := range map[string]*Store{"orderer": a, "other instance": b} {
		if st, body := tokenGet(s, token); st != 200 || body != token+".thumb" {
			t.Fatalf("%s: %d %q", name, st, body)
		}
	}
	withdraw()
	if st, _ := tokenGet(b, token); st != 404 {
		t.Fatalf("withdrawn token: %d", st)
	}
	// A file outside challenges/ with a name a hostile path could reach.
	secret := filepath.Join(storage, "secret")
	if err := os.WriteFile(secret, []byte("do not serve"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"../../secret", "..%2F..%2Fsecret", "short", strings.Repeat("a", 300)} {
		if st, body := tokenGet(b, tok); st != 404 || body == "do not serve" {
			t.Fatalf("token %q: %d %q", tok, st, body)
		}
	}
}

// TestACMEOrderLockIsExclusive: while one instance holds a certificate's
// order lock, another waits (until its context ends) and gets it once
// released.
func TestACMEOrderLockIsExclusive(t *testing.T) {
	a, b := sharedStores(t, t.TempDir(), time.Hour)
	ma, mb := a.acmeLive.Load(), b.acmeLive.Load()
	mc := &managed{name: "auto"}
	unlockA, err := ma.lockOrder(context.Background(), mc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := mb.lockOrder(ctx, mc); err == nil {
		t.Fatal("second instance took a held order lock")
	}
	unlockA()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	unlockB, err := mb.lockOrder(ctx2, mc)
	if err != nil {
		t.Fatalf("lock not taken after release: %v", err)
	}
	unlockB()
}

// leafFor signs a certificate for names valid until notAfter.
func (ca *testCA) leafFor(t *testing.T, notAfter time.Time, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// servedACME returns the certificate s serves for "auto" (nil: none yet).
func servedACME(s *Store) *tls.Certificate {
	m := s.acmeLive.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.managed["auto"].h.cert.Load()
}

// TestACMEPicksUpCertificateStoredByAnotherInstance: a certificate that is
// not due is replaced by a newer one another instance wrote to the shared
// folder, at the next look (acmeRecheck), without an order.
func TestACMEPicksUpCertificateStoredByAnotherInstance(t *testing.T) {
	storage := t.TempDir()
	ca := newCA(t, "shared storage CA")
	dir := filepath.Join(storage, storageKey("https://127.0.0.1:1/dir"), "certificates", "auto")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c1, k1 := ca.leafFor(t, time.Now().Add(60*24*time.Hour), "auto.pingap.test")
	writeFile(t, filepath.Join(dir, "cert.pem"), c1)
	writeFile(t, filepath.Join(dir, "key.pem"), k1)

	s := NewStore(testLogger(t), nil)
	s.acmeBackoff = time.Hour
	s.acmeRecheck = 50 * time.Millisecond
	t.Cleanup(s.Close)
	cfg := unreachableACMEConfig(storage)
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	first := servedACME(s)
	if first == nil {
		t.Fatal("stored certificate not served at start")
	}
	// "Another instance" renews: a later NotAfter in the folder.
	c2, k2 := ca.leafFor(t, time.Now().Add(90*24*time.Hour), "auto.pingap.test")
	writeFileAtomic(filepath.Join(dir, "key.pem"), k2, 0o600)
	writeFileAtomic(filepath.Join(dir, "cert.pem"), c2, 0o644)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c := servedACME(s); c != nil && c.Leaf.NotAfter.After(first.Leaf.NotAfter) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the newer certificate in the shared folder was not picked up")
}

// TestACMESharedStorageOrdersOnce: two instances sharing a storage folder
// start together against a real Pebble: one orders, the other waits for
// the order lock and serves the certificate the first stored. The CA's
// HTTP-01 validation reaches whichever instance a load balancer would
// send it to: here always the second one, which answers from the folder
// when the first ordered.
func TestACMESharedStorageOrdersOnce(t *testing.T) {
	t.Parallel()
	storage := t.TempDir() // before the stores: cleanups run last-in first-out
	var logsA, logsB lockedBuffer
	a, b := NewStore(slogTo(&logsA), nil), NewStore(slogTo(&logsB), nil)
	for _, s := range []*Store{a, b} {
		s.acmeBackoff = 200 * time.Millisecond
		t.Cleanup(s.Close)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c httpx.Ctx
		c.Req.Method, c.Req.Path = r.Method, r.URL.Path
		if !b.HandleHTTPChallenge(&c) { // only instance b is reachable
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(c.Resp.Body)
		w.WriteHeader(c.Resp.Status)
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	pb := pebble.Start(t, pebble.Options{HTTPPort: ln.Addr().(*net.TCPAddr).Port, DNSServer: dnsstub.Start(t)})
	cfg := acmeConfig(t, pb, storage, "shared.pingap.test", "")
	errs := make(chan error, 2)
	go func() { errs <- a.Update(cfg) }()
	go func() { errs <- b.Update(cfg) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(45 * time.Second)
	var ca, cb *tls.Certificate
	for time.Now().Before(deadline) {
		if ca, cb = servedACME(a), servedACME(b); ca != nil && cb != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ca == nil || cb == nil {
		t.Fatalf("no certificate on both instances (a %v, b %v)\na: %s\nb: %s", ca != nil, cb != nil, logsA.String(), logsB.String())
	}
	if ca.Leaf.SerialNumber.Cmp(cb.Leaf.SerialNumber) != 0 {
		t.Fatalf("two orders: serials %v and %v\na: %s\nb: %s", ca.Leaf.SerialNumber, cb.Leaf.SerialNumber, logsA.String(), logsB.String())
	}
	if _, err := ca.Leaf.Verify(x509.VerifyOptions{Roots: pb.IssuerCAs, Intermediates: intermediates(ca), DNSName: "shared.pingap.test"}); err != nil {
		t.Fatalf("certificate does not chain to Pebble: %v", err)
	}
	t.Logf("orders: a %d, b %d", strings.Count(logsA.String(), "acme certificate obtained"), strings.Count(logsB.String(), "acme certificate obtained"))
	obtained := strings.Count(logsA.String(), "acme certificate obtained") + strings.Count(logsB.String(), "acme certificate obtained")
	if obtained != 1 {
		t.Fatalf("%d orders logged, want 1\na: %s\nb: %s", obtained, logsA.String(), logsB.String())
	}
}

func intermediates(c *tls.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			p.AddCert(ic)
		}
	}
	return p
}
