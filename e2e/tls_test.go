package e2e

// End-to-end tests of TLS (issue 8) through the real binary: SNI
// certificate selection (exact and wildcard), ALPN h2, TLS 1.1 refused,
// certificate swap on reload with a connection kept open, client
// certificates (mTLS), HTTP/3 with Alt-Svc, ACME against a real Pebble, and
// client certificates towards an upstream.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/testutil/dnsstub"
	"github.com/pingap-go/pingap/internal/testutil/pebble"
	qhttp3 "github.com/quic-go/quic-go/http3"
)

// tlCA is a throwaway certificate authority.
type tlCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var tlSerial atomic.Int64

func tlNewCA(t *testing.T, name string) *tlCA {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1000 + tlSerial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, key := tlCreate(t, tmpl, nil, nil)
	cert, _ := x509.ParseCertificate(der)
	return &tlCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// pemFile writes the CA certificate to a PEM file (for tls_ca and
// client_ca) and returns its path.
func (ca *tlCA) pemFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, path, string(ca.pem))
	return path
}

// tlCreate makes a P-256 key and a certificate of tmpl for it, signed by
// parent's parentKey; a nil parent makes it self-signed.
func tlCreate(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func (ca *tlCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue signs a leaf for names (server and client auth; names[0] is the
// common name) valid until notAfter, and returns the PEM chain (leaf, CA),
// the PEM key and the parsed leaf.
func (ca *tlCA) issue(t *testing.T, notAfter time.Time, names ...string) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1000 + tlSerial.Add(1)),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter.Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, key := tlCreate(t, tmpl, ca.cert, ca.key)
	leaf, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	return certPEM, keyPEM, leaf
}

// writePair issues a leaf for names and writes DIR/BASE.crt and
// DIR/BASE.key atomically (rename), as certbot would.
func (ca *tlCA) writePair(t *testing.T, dir, base string, names ...string) (certFile, keyFile string, leaf *x509.Certificate) {
	t.Helper()
	c, k, leaf := ca.issue(t, time.Now().Add(24*time.Hour), names...)
	certFile, keyFile = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	tlWriteAtomic(t, keyFile, k)
	tlWriteAtomic(t, certFile, c)
	return certFile, keyFile, leaf
}

// tlOneCert makes a CA called caName and a certificate of it for domain,
// written to base.crt and base.key in a new temp dir.
func tlOneCert(t *testing.T, caName, base, domain string) (ca *tlCA, certFile, keyFile string, leaf *x509.Certificate) {
	t.Helper()
	ca = tlNewCA(t, caName)
	certFile, keyFile, leaf = ca.writePair(t, t.TempDir(), base, domain)
	return ca, certFile, keyFile, leaf
}

func tlWriteAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// keyPair is a tls.Certificate for name (usable by a client or a server),
// issued by ca and valid for an hour.
func (ca *tlCA) keyPair(t *testing.T, name string) tls.Certificate {
	t.Helper()
	c, k, _ := ca.issue(t, time.Now().Add(time.Hour), name)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// tlDial handshakes with addr and returns the connection (closed at test
// end) or the handshake error.
func tlDial(t *testing.T, addr string, conf *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// tlClient is an HTTPS client for conf; h2 decides whether HTTP/2 may be
// negotiated.
func tlClient(conf *tls.Config, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: conf, MaxIdleConnsPerHost: 4}
	if h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func tlGet(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(b)
}

// tlFreePort returns a port free on both TCP and UDP loopback a moment ago
// (HTTP/3 listens on the server's port over UDP, so it must be fixed).
func tlFreePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free on both TCP and UDP")
	return 0
}

// tlSite is oneUpstream(upAddr) served by a server "tls" on addr ("" =
// 127.0.0.1:0) with the TLS lines serverOpts.
func tlSite(upAddr, addr, serverOpts string) siteConfig {
	c := oneUpstream(upAddr)
	c.Server, c.Addr, c.ServerOpts = "tls", addr, serverOpts
	return c
}

// tlPair is the tls_cert and tls_key lines of a server or certificate.
func tlPair(crt, key string) string {
	return fmt.Sprintf("tls_cert = %q\ntls_key = %q", crt, key)
}

// tlCertificate is a [certificates.NAME] table for domain.
func tlCertificate(name, domain, crt, key string) string {
	return fmt.Sprintf("[certificates.%s]\ndomains = [%q]\n%s\n", name, domain, tlPair(crt, key))
}

func TestTlSNIALPNVersionsAndHTTP3(t *testing.T) {
	up := echoBackend(t, "a")
	ca := tlNewCA(t, "tl test CA")
	dir := t.TempDir()
	oneCrt, oneKey, oneLeaf := ca.writePair(t, dir, "one", "one.test")
	twoCrt, twoKey, twoLeaf := ca.writePair(t, dir, "two", "two.test")
	wCrt, wKey, wLeaf := ca.writePair(t, dir, "wild", "*.wild.test")
	dCrt, dKey, dLeaf := ca.writePair(t, dir, "default", "default.test")
	port := tlFreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	maddr := freeAddr(t)
	cfg := tlSite(up.Addr, addr, "certificates = [\"one\", \"two\", \"wild\"]\nhttp3 = true")
	cfg.Basic = fmt.Sprintf("metrics_addr = %q", maddr)
	cfg.Extra = tlCertificate("one", "one.test", oneCrt, oneKey) + tlCertificate("two", "two.test", twoCrt, twoKey) +
		tlCertificate("wild", "*.wild.test", wCrt, wKey) +
		"[servers.tlsdef]\naddr = \"127.0.0.1:0\"\nlocations = [\"all\"]\ncertificates = [\"one\"]\n" + tlPair(dCrt, dKey)
	p := start(t, writeConfig(t, cfg.String()), "tls", "tlsdef")
	pool := ca.pool()

	t.Run("SNI picks the certificate", func(t *testing.T) {
		for _, tt := range []struct {
			sni  string
			want *x509.Certificate
		}{
			{"one.test", oneLeaf},
			{"ONE.test.", oneLeaf}, // case-insensitive, trailing dot ignored
			{"two.test", twoLeaf},
			{"a.wild.test", wLeaf},
			{"zz.wild.test", wLeaf},
		} {
			// A verifying client: the served certificate must be valid for
			// the name, chain to the CA, and be exactly the configured one.
			conf := &tls.Config{ServerName: tt.sni, RootCAs: pool}
			if tt.sni == "ONE.test." {
				// Go's verifier does not accept this spelling; the
				// certificate is compared below.
				conf = &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true}
			}
			c, err := tlDial(t, addr, conf)
			if err != nil {
				t.Fatalf("%s: %v", tt.sni, err)
			}
			if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(tt.want) {
				t.Fatalf("%s: served %v, want %v", tt.sni, got.DNSNames, tt.want.DNSNames)
			}
		}
		// No default certificate: unknown names, the wildcard's apex and two
		// labels below it fail the handshake.
		for _, sni := range []string{"other.test", "wild.test", "a.b.wild.test"} {
			if _, err := tlDial(t, addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true}); err == nil {
				t.Fatalf("%s: handshake succeeded without a matching certificate", sni)
			}
		}
	})

	t.Run("server tls_cert is the default", func(t *testing.T) {
		daddr := p.waitAddr("tlsdef")
		for sni, want := range map[string]*x509.Certificate{"": dLeaf, "other.test": dLeaf, "one.test": oneLeaf} {
			c, err := tlDial(t, daddr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("SNI %q: %v", sni, err)
			}
			if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(want) {
				t.Fatalf("SNI %q: served %v, want %v", sni, got.DNSNames, want.DNSNames)
			}
		}
	})

	altSvc := fmt.Sprintf(`h3=":%d"; ma=86400`, port)
	t.Run("h2 via ALPN with Alt-Svc", func(t *testing.T) {
		c := tlClient(&tls.Config{ServerName: "one.test", RootCAs: pool}, true)
		resp, body := tlGet(t, c, "https://"+addr+"/h2?x=1")
		if resp.ProtoMajor != 2 || resp.TLS.NegotiatedProtocol != "h2" {
			t.Fatalf("proto %s alpn %q", resp.Proto, resp.TLS.NegotiatedProtocol)
		}
		if e := decodeEcho(t, []byte(body)); e.Path != "/h2" || e.Header.Get("X-Forwarded-Proto") != "https" {
			t.Fatalf("upstream saw %+v", e)
		}
		if got := resp.Header.Get("Alt-Svc"); got != altSvc {
			t.Fatalf("h2 Alt-Svc %q, want %q", got, altSvc)
		}
		l := p.waitLog("access", func(l map[string]any) bool { return l["path"] == "/h2" })
		if l["tls"] != "TLS 1.3" || l["status"] != 200.0 || l["bytes"] != float64(len(body)) || l["bytes_in"] != 0.0 {
			t.Fatalf("access line %v", l)
		}
		// A request body over h2: bytes_in counts body bytes.
		resp, err := c.Post("https://"+addr+"/h2post", "text/plain", strings.NewReader("0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l = p.waitLog("access", func(l map[string]any) bool { return l["path"] == "/h2post" })
		if l["bytes_in"] != 16.0 || l["method"] != "POST" {
			t.Fatalf("h2 POST access line %v", l)
		}
	})

	t.Run("HTTP/1.1 with Alt-Svc", func(t *testing.T) {
		c := tlClient(&tls.Config{ServerName: "two.test", RootCAs: pool}, false)
		resp, _ := tlGet(t, c, "https://"+addr+"/h1")
		if resp.ProtoMajor != 1 || resp.StatusCode != 200 {
			t.Fatalf("proto %s status %d", resp.Proto, resp.StatusCode)
		}
		if got := resp.Header.Get("Alt-Svc"); got != altSvc {
			t.Fatalf("h1 Alt-Svc %q, want %q", got, altSvc)
		}
	})

	t.Run("TLS 1.2 accepted, 1.1 and 1.0 refused", func(t *testing.T) {
		c, err := tlDial(t, addr, &tls.Config{ServerName: "one.test", RootCAs: pool, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS 1.2: %v", err)
		}
		if c.ConnectionState().Version != tls.VersionTLS12 {
			t.Fatalf("version %x", c.ConnectionState().Version)
		}
		// TLS 1.2 offers forward-secret AEAD suites only.
		for suite, ok := range map[uint16]bool{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       true,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: true,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:          false,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:          false,
		} {
			_, err := tlDial(t, addr, &tls.Config{ServerName: "one.test", RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
			if (err == nil) != ok {
				t.Fatalf("TLS 1.2 suite %s: err %v, want accepted=%v", tls.CipherSuiteName(suite), err, ok)
			}
		}
		for _, v := range []uint16{tls.VersionTLS11, tls.VersionTLS10} {
			if _, err := tlDial(t, addr, &tls.Config{ServerName: "one.test", RootCAs: pool, MinVersion: v, MaxVersion: v}); err == nil {
				t.Fatalf("version %x was accepted", v)
			}
		}
	})

	t.Run("handshake metrics", func(t *testing.T) {
		m := obScrape(t, maddr)
		// Completed TCP handshakes so far: 5 in "SNI" (failed ones do not
		// count), 1 each for h2 and h1, 3 in the TLS 1.2 checks.
		if hs := m[obSeries("tls_handshakes_total", "server", "tls")]; hs != 10 {
			t.Fatalf("tls_handshakes_total = %v, want 10", hs)
		}
		for _, name := range []string{"one", "two", "wild"} {
			if v := m[obSeries("tls_certificate_expiry_seconds", "name", name)]; v < float64(time.Now().Unix()) {
				t.Fatalf("tls_certificate_expiry_seconds{name=%q} = %v", name, v)
			}
		}
	})

	t.Run("HTTP/3", func(t *testing.T) {
		tr := &qhttp3.Transport{TLSClientConfig: &tls.Config{ServerName: "a.wild.test", RootCAs: pool}}
		defer tr.Close()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, body := tlGet(t, c, "https://"+addr+"/h3/path?q=3")
		if resp.ProtoMajor != 3 || resp.StatusCode != 200 {
			t.Fatalf("proto %s status %d", resp.Proto, resp.StatusCode)
		}
		if !resp.TLS.PeerCertificates[0].Equal(wLeaf) {
			t.Fatalf("h3 served %v", resp.TLS.PeerCertificates[0].DNSNames)
		}
		e := decodeEcho(t, []byte(body))
		if e.Path != "/h3/path" || e.Query != "q=3" || e.Backend != "a" {
			t.Fatalf("upstream saw %+v", e)
		}
		// Unknown names fail over QUIC too.
		bad := &qhttp3.Transport{TLSClientConfig: &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}}
		defer bad.Close()
		if _, err := (&http.Client{Transport: bad, Timeout: 5 * time.Second}).Get("https://" + addr + "/"); err == nil {
			t.Fatal("h3 without a matching certificate succeeded")
		}
		// The QUIC handshake counts like a TCP one (the failed one does not).
		obWaitMetrics(t, maddr, map[string]float64{obSeries("tls_handshakes_total", "server", "tls"): 11}, nil)
	})

	t.Run("request metrics and access lines of every protocol", func(t *testing.T) {
		obWaitMetrics(t, maddr, map[string]float64{
			obSeries("http_requests_total", "method", "GET", "status", "200", "server", "tls", "location", "all"):  3, // h2, h1, h3
			obSeries("http_requests_total", "method", "POST", "status", "200", "server", "tls", "location", "all"): 1,
			obSeries("http_request_bytes_total", "server", "tls"):                                                  16,
		}, nil)
		for _, path := range []string{"/h2", "/h1", "/h3/path"} {
			l := p.waitLog("access", func(l map[string]any) bool { return l["path"] == path })
			if l["tls"] != "TLS 1.3" || l["status"] != 200.0 || l["location"] != "all" {
				t.Errorf("access line of %s: %v", path, l)
			}
		}
	})

	t.Run("sessions resume across a reload", func(t *testing.T) {
		conf := &tls.Config{ServerName: "two.test", RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
		c := tlClient(conf, false)
		tr := c.Transport.(*http.Transport)
		if resp, _ := tlGet(t, c, "https://"+addr+"/s1"); resp.TLS.DidResume {
			t.Fatal("first connection resumed")
		}
		tr.CloseIdleConnections()
		if resp, _ := tlGet(t, c, "https://"+addr+"/s2"); !resp.TLS.DidResume {
			t.Fatal("no resumption without a reload")
		}
		tr.CloseIdleConnections()
		p.signal(syscall.SIGHUP)
		p.waitReloads(1)
		if resp, _ := tlGet(t, c, "https://"+addr+"/s3"); !resp.TLS.DidResume {
			t.Fatal("the session did not resume after a reload (ticket keys lost)")
		}
	})
}

func TestTlCertificateSwapOnReload(t *testing.T) {
	up := echoBackend(t, "a")
	ca, crt, key, first := tlOneCert(t, "tl swap CA", "site", "site.test")
	maddr := freeAddr(t)
	cfg := tlSite(up.Addr, fmt.Sprintf("127.0.0.1:%d", tlFreePort(t)), "certificates = [\"site\"]\nhttp3 = true")
	cfg.Basic = fmt.Sprintf("metrics_addr = %q", maddr)
	cfg.Extra = tlCertificate("site", "site.test", crt, key)
	p := start(t, writeConfig(t, cfg.String()), "tls")
	addr := p.waitAddr("tls")
	conf := &tls.Config{ServerName: "site.test", RootCAs: ca.pool()}
	h3get := func(tr *qhttp3.Transport, path string) *http.Response {
		t.Helper()
		resp, _ := tlGet(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, "https://"+addr+path)
		if resp.StatusCode != 200 || resp.ProtoMajor != 3 {
			t.Fatalf("h3 %s: %s %d", path, resp.Proto, resp.StatusCode)
		}
		return resp
	}
	keptH3 := &qhttp3.Transport{TLSClientConfig: conf.Clone()}
	defer keptH3.Close()
	if !h3get(keptH3, "/before").TLS.PeerCertificates[0].Equal(first) {
		t.Fatal("h3: not the first certificate")
	}

	// One client keeps its connection (h1 keep-alive) across the swap.
	kept := tlClient(conf.Clone(), false)
	resp, _ := tlGet(t, kept, "https://"+addr+"/before")
	if !resp.TLS.PeerCertificates[0].Equal(first) {
		t.Fatal("not the first certificate")
	}
	expiry := func() float64 {
		return obScrape(t, maddr)[obSeries("tls_certificate_expiry_seconds", "name", "site")]
	}
	if got := expiry(); got != float64(first.NotAfter.Unix()) {
		t.Fatalf("expiry %v, want %v", got, first.NotAfter.Unix())
	}

	// New files with a new key and a different lifetime, then SIGHUP.
	c2, k2, second := ca.issue(t, time.Now().Add(48*time.Hour), "site.test")
	tlWriteAtomic(t, key, k2)
	tlWriteAtomic(t, crt, c2)
	p.signal(syscall.SIGHUP)
	p.waitReloads(1)

	// The open connection still works, with the certificate it negotiated.
	var reused bool
	req, _ := http.NewRequest("GET", "https://"+addr+"/kept", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := kept.Do(req)
	if err != nil {
		t.Fatalf("kept connection after the swap: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !reused {
		t.Fatalf("status %d reused %v", resp.StatusCode, reused)
	}
	if !resp.TLS.PeerCertificates[0].Equal(first) {
		t.Fatal("the kept connection's certificate changed")
	}
	// New handshakes get the new certificate.
	fresh, err := tlDial(t, addr, conf.Clone())
	if err != nil {
		t.Fatal(err)
	}
	if !fresh.ConnectionState().PeerCertificates[0].Equal(second) {
		t.Fatalf("new handshake got serial %v, want %v", fresh.ConnectionState().PeerCertificates[0].SerialNumber, second.SerialNumber)
	}
	if got := expiry(); got != float64(second.NotAfter.Unix()) {
		t.Fatalf("expiry after swap %v, want %v", got, second.NotAfter.Unix())
	}
	// The same over HTTP/3: the open QUIC connection keeps working with
	// its certificate, a new one gets the new certificate.
	if !h3get(keptH3, "/kept").TLS.PeerCertificates[0].Equal(first) {
		t.Fatal("h3: the kept connection's certificate changed")
	}
	newH3 := &qhttp3.Transport{TLSClientConfig: conf.Clone()}
	defer newH3.Close()
	if !h3get(newH3, "/new").TLS.PeerCertificates[0].Equal(second) {
		t.Fatal("h3: a new connection did not get the new certificate")
	}

	// A broken replacement is refused; the new certificate stays.
	tlWriteAtomic(t, crt, []byte("not a certificate"))
	p.signal(syscall.SIGHUP)
	p.waitLog("reload failed; the running configuration stays", nil)
	again, err := tlDial(t, addr, conf.Clone())
	if err != nil {
		t.Fatal(err)
	}
	if !again.ConnectionState().PeerCertificates[0].Equal(second) {
		t.Fatal("a broken file replaced the certificate")
	}
}

// TestTlCertificateFilesWatched: with auto_reload, replacing the PEM files
// (no SIGHUP, config unchanged) is enough for new handshakes.
func TestTlCertificateFilesWatched(t *testing.T) {
	up := echoBackend(t, "a")
	ca, crt, key, first := tlOneCert(t, "tl watch CA", "watched", "watch.test")
	maddr := freeAddr(t)
	cfg := tlSite(up.Addr, "", tlPair(crt, key))
	cfg.Basic = fmt.Sprintf("auto_reload = true\nmetrics_addr = %q", maddr)
	p := start(t, writeConfig(t, cfg.String()), "tls")
	addr := p.waitAddr("tls")
	// A server's own tls_cert is exported as "servers.NAME".
	expiry := obSeries("tls_certificate_expiry_seconds", "name", "servers.tls")
	obWaitMetrics(t, maddr, map[string]float64{expiry: float64(first.NotAfter.Unix())}, nil)
	served := func() *x509.Certificate {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: "watch.test", RootCAs: ca.pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(first) {
		t.Fatal("not the first certificate")
	}
	c2, k2, second := ca.issue(t, time.Now().Add(72*time.Hour), "watch.test")
	tlWriteAtomic(t, key, k2)
	tlWriteAtomic(t, crt, c2)
	eventually(t, "the replaced files are served", func() bool { return served().Equal(second) })
	obWaitMetrics(t, maddr, map[string]float64{expiry: float64(second.NotAfter.Unix())}, nil)

	// A broken replacement is logged; the certificate in service stays.
	// (Writing key then cert above may have logged a mismatch already.)
	before := len(p.logLines("tls certificates not reloaded"))
	tlWriteAtomic(t, crt, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	eventually(t, "the broken file is reported", func() bool { return len(p.logLines("tls certificates not reloaded")) > before })
	l := p.logLines("tls certificates not reloaded")[before]
	if !strings.Contains(fmt.Sprint(l["error"]), "tls_cert") {
		t.Errorf("the error does not name the key: %v", l)
	}
	if !served().Equal(second) {
		t.Fatal("a broken file replaced the certificate in service")
	}
}

func TestTlClientCertificates(t *testing.T) {
	up := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") }))
	serverCA, clientCA, otherCA := tlNewCA(t, "tl server CA"), tlNewCA(t, "tl client CA"), tlNewCA(t, "tl other CA")
	dir := t.TempDir()
	crt, key, _ := serverCA.writePair(t, dir, "server", "mtls.test")
	caFile := filepath.Join(dir, "clients.pem")
	tlWriteAtomic(t, caFile, clientCA.pem)
	cfg := tlSite(up.Addr, fmt.Sprintf("127.0.0.1:%d", tlFreePort(t)), tlPair(crt, key)+fmt.Sprintf("\nclient_ca = %q\nhttp3 = true", caFile))
	p := start(t, writeConfig(t, cfg.String()), "tls")
	url := "https://" + p.waitAddr("tls") + "/x"
	base := &tls.Config{ServerName: "mtls.test", RootCAs: serverCA.pool()}

	for _, tt := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"no client certificate", nil, false},
		{"certificate of another CA", []tls.Certificate{otherCA.keyPair(t, "mallory")}, false},
		{"certificate of client_ca", []tls.Certificate{clientCA.keyPair(t, "alice")}, true},
	} {
		for _, proto := range []string{"h1", "h2", "h3"} {
			t.Run(tt.name+" "+proto, func(t *testing.T) {
				conf := base.Clone()
				conf.Certificates = tt.certs
				c := tlClient(conf, proto == "h2")
				if proto == "h3" {
					tr := &qhttp3.Transport{TLSClientConfig: conf}
					defer tr.Close()
					c = &http.Client{Transport: tr, Timeout: 5 * time.Second}
				}
				resp, err := c.Get(url)
				if !tt.ok {
					if err == nil {
						resp.Body.Close()
						t.Fatalf("accepted: %d", resp.StatusCode)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "secret" || resp.ProtoMajor != int(proto[1]-'0') {
					t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, b)
				}
			})
		}
	}

	// The client CA file is re-read on reload: swapping it to otherCA
	// refuses alice and accepts mallory (new connections).
	tlWriteAtomic(t, caFile, otherCA.pem)
	p.signal(syscall.SIGHUP)
	p.waitReloads(1)
	for _, tt := range []struct {
		who string
		ca  *tlCA
		ok  bool
	}{{"alice", clientCA, false}, {"mallory", otherCA, true}} {
		conf := base.Clone()
		conf.Certificates = []tls.Certificate{tt.ca.keyPair(t, tt.who)}
		resp, err := tlClient(conf, false).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		if (err == nil) != tt.ok {
			t.Fatalf("%s after the CA swap: err %v, want ok=%v", tt.who, err, tt.ok)
		}
	}
}

func TestTlUpstreamClientCertificate(t *testing.T) {
	backendCA, clientCA := tlNewCA(t, "tl backend CA"), tlNewCA(t, "tl upstream client CA")
	dir := t.TempDir()
	bCrt, bKey, _ := backendCA.writePair(t, dir, "backend", "backend.test")
	bCert, err := tls.LoadX509KeyPair(bCrt, bKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{bCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA.pool(),
		NextProtos:   []string{"h2", "http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto+" client="+r.TLS.PeerCertificates[0].Subject.CommonName)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cCrt, cKey, _ := clientCA.writePair(t, dir, "proxy-client", "pingap-proxy")
	caFile := filepath.Join(dir, "backend-ca.pem")
	tlWriteAtomic(t, caFile, backendCA.pem)
	backend := []string{ln.Addr().String()}
	verified := fmt.Sprintf("tls = true\nsni = \"backend.test\"\ntls_ca = %q", caFile)
	withCert := verified + fmt.Sprintf("\ntls_client_cert = %q\ntls_client_key = %q", cCrt, cKey)
	p, _ := serve(t, siteConfig{
		Upstreams: []siteUpstream{{Name: "mtls", Addrs: backend, Opts: withCert}, {Name: "mtls2", Addrs: backend, Opts: withCert + "\nhttp2 = true"},
			{Name: "nocert", Addrs: backend, Opts: verified}},
		Locations: []siteLocation{loc("with", "mtls", "/with"), loc("with2", "mtls2", "/h2with"), loc("without", "nocert", "/without")},
	}.String())
	for i := 0; i < 3; i++ { // pooled connections too
		resp, body := do(t, "GET", p.url("main")+"/with", nil)
		if resp.StatusCode != 200 || string(body) != "HTTP/1.1 client=pingap-proxy" {
			t.Fatalf("with client cert: %d %q", resp.StatusCode, body)
		}
		resp, body = do(t, "GET", p.url("main")+"/h2with", nil)
		if resp.StatusCode != 200 || string(body) != "HTTP/2.0 client=pingap-proxy" {
			t.Fatalf("with client cert over h2: %d %q", resp.StatusCode, body)
		}
	}
	resp, body := do(t, "GET", p.url("main")+"/without", nil)
	if resp.StatusCode != 502 {
		t.Fatalf("without client cert: %d %q, want 502", resp.StatusCode, body)
	}
}

// TestTlACMEWithPebble obtains a certificate through the real binary from
// a real Pebble: with validation skipped, then with Pebble really fetching
// the HTTP-01 token from the proxy's plain server and really handshaking
// TLS-ALPN-01 with its TLS server.
func TestTlACMEWithPebble(t *testing.T) {
	for _, mode := range []string{"always-valid", "http-01", "tls-alpn-01"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // independent CAs and ports; mostly waiting on Pebble
			tlACME(t, mode)
		})
	}
}

func tlACME(t *testing.T, mode string) {
	up := echoBackend(t, "acme-backend")
	storage := t.TempDir()
	domain := mode + ".pingap.test"
	maddr := freeAddr(t)
	httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
	opts := pebble.Options{AlwaysValid: mode == "always-valid"}
	challenge := "http-01"
	switch mode {
	case "http-01":
		opts.DNSServer = dnsstub.Start(t)
		_, port, _ := net.SplitHostPort(httpAddr)
		opts.HTTPPort, _ = strconv.Atoi(port)
	case "tls-alpn-01":
		opts.DNSServer = dnsstub.Start(t)
		_, port, _ := net.SplitHostPort(tlsAddr)
		opts.TLSPort, _ = strconv.Atoi(port)
		challenge = "tls-alpn-01"
	}
	pb := pebble.Start(t, opts)
	site := tlSite(up.Addr, tlsAddr, `certificates = ["auto"]`)
	site.Basic = fmt.Sprintf("metrics_addr = %q", maddr)
	site.Extra = fmt.Sprintf(`[acme]
email = "ops@pingap.test"
directory_url = %q
ca_root = %q
storage = %q
challenge = %q
[certificates.auto]
domains = [%q]
acme = true
[servers.http]
addr = %q
locations = ["all"]`, pb.Dir, pb.CARoot, storage, challenge, domain, httpAddr)
	cfg := writeConfig(t, site.String())
	p := start(t, cfg, "tls", "http")
	addr := p.waitAddr("tls")
	roots := pb.IssuerCAs
	// The certificate is ordered in the background: handshake until the
	// proxy serves one for the domain chaining to Pebble's root (bounded).
	conf := &tls.Config{ServerName: domain, RootCAs: roots}
	var leaf *x509.Certificate
	var lastErr error
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
		if err != nil {
			lastErr = err
			continue
		}
		leaf = c.ConnectionState().PeerCertificates[0]
		if n := len(c.ConnectionState().PeerCertificates); n < 2 {
			t.Errorf("served chain has %d certificates, want leaf + intermediate", n)
		}
		c.Close()
		break
	}
	if leaf == nil {
		t.Fatalf("no certificate chaining to Pebble's root for %s: %v", domain, lastErr)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != domain {
		t.Fatalf("names %v", leaf.DNSNames)
	}
	// Proxying over the issued certificate, HTTP/2 included.
	resp, body := tlGet(t, tlClient(conf.Clone(), true), "https://"+addr+"/over-acme")
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || decodeEcho(t, []byte(body)).Backend != "acme-backend" {
		t.Fatalf("%s %d %s", resp.Proto, resp.StatusCode, body)
	}
	// Persisted in storage, exported as a metric.
	var found bool
	filepath.Walk(storage, func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, filepath.Join("certificates", "auto", "cert.pem")) {
			found = true
		}
		return nil
	})
	if !found {
		t.Fatalf("no certificates/auto/cert.pem under %s", storage)
	}
	eventually(t, "expiry metric", func() bool {
		return obScrape(t, maddr)[obSeries("tls_certificate_expiry_seconds", "name", "auto")] == float64(leaf.NotAfter.Unix())
	})
	if challenge == "http-01" {
		// With HTTP-01, the plain server answers unknown tokens itself
		// (404), not the upstream.
		resp, body2 := do(t, "GET", p.url("http")+"/.well-known/acme-challenge/unknown-token", nil)
		if resp.StatusCode != 404 || resp.Header.Get("X-Backend") != "" {
			t.Fatalf("challenge path: %d %q backend %q", resp.StatusCode, body2, resp.Header.Get("X-Backend"))
		}
	}
	if mode != "always-valid" {
		return
	}
	// A restart serves the stored certificate at once: same serial, no
	// new order.
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	p2 := start(t, cfg, "tls", "http")
	c, err := tlDial(t, p2.waitAddr("tls"), conf.Clone())
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0]; got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("after a restart: serial %x, stored %x", got.SerialNumber, leaf.SerialNumber)
	}
	if l := p2.logLines("acme certificate obtained"); len(l) != 0 {
		t.Fatalf("a restart ordered again: %v", l)
	}
}

// TestTlHTTP3TurnedOffAndOn: a reload that sets http3 = false stops
// advertising and serving HTTP/3; turning it back on serves it again.
func TestTlHTTP3TurnedOffAndOn(t *testing.T) {
	up := echoBackend(t, "a")
	ca, crt, key, _ := tlOneCert(t, "tl h3 CA", "h3", "h3.test")
	port := tlFreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := func(h3 bool) string {
		return tlSite(up.Addr, addr, tlPair(crt, key)+fmt.Sprintf("\nhttp3 = %v", h3)).String()
	}
	p := start(t, writeConfig(t, conf(true)), "tls")
	tconf := &tls.Config{ServerName: "h3.test", RootCAs: ca.pool()}
	h3ok := func() error {
		tr := &qhttp3.Transport{TLSClientConfig: tconf.Clone()}
		defer tr.Close()
		resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get("https://" + addr + "/h3")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	altSvc := func() string {
		resp, _ := tlGet(t, tlClient(tconf.Clone(), false), "https://"+addr+"/h1")
		return resp.Header.Get("Alt-Svc")
	}
	// An HTTP/3 client keeps its connection open across the reloads.
	kept := &qhttp3.Transport{TLSClientConfig: tconf.Clone()}
	defer kept.Close()
	if _, err := (&http.Client{Transport: kept, Timeout: 5 * time.Second}).Get("https://" + addr + "/kept"); err != nil {
		t.Fatal(err)
	}
	if err := h3ok(); err != nil || altSvc() == "" {
		t.Fatalf("h3 on: %v, Alt-Svc %q", err, altSvc())
	}

	p.reload(conf(false))
	p.waitReloads(1)
	if got := altSvc(); got != "" {
		t.Fatalf("Alt-Svc %q with http3 = false", got)
	}
	eventually(t, "HTTP/3 stops", func() bool { return h3ok() != nil })

	p.reload(conf(true))
	p.waitReloads(2)
	if len(p.logLines("reload failed; the running configuration stays")) != 0 {
		t.Fatalf("turning HTTP/3 back on failed: %v", p.logLines("reload failed; the running configuration stays"))
	}
	if err := h3ok(); err != nil {
		t.Fatalf("HTTP/3 back on: %v", err)
	}
	if got := altSvc(); got != fmt.Sprintf(`h3=":%d"; ma=86400`, port) {
		t.Fatalf("Alt-Svc %q", got)
	}
}
