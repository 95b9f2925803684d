package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/testutil/race"
)

// sniFixture: server "web" picks among a.example.com, b.example.com,
// *.w.example.com with default.test as tls_cert; server "strict" has no
// default.
type sniFixture struct {
	ca    *testCA
	dir   string
	cfg   *config.Config
	store *Store
}

func newSNIFixture(t testing.TB) *sniFixture {
	t.Helper()
	ca := newCA(t, "test root")
	dir := t.TempDir()
	acrt, akey := ca.writePair(t, dir, "a", "a.example.com")
	bcrt, bkey := ca.writePair(t, dir, "b", "b.example.com")
	wcrt, wkey := ca.writePair(t, dir, "w", "*.w.example.com")
	dcrt, dkey := ca.writePair(t, dir, "default", "default.test")
	cfg := &config.Config{
		Certificates: map[string]config.Certificate{
			"a":    {Domains: []string{"a.example.com"}, TLSCert: acrt, TLSKey: akey},
			"b":    {Domains: []string{"b.example.com"}, TLSCert: bcrt, TLSKey: bkey},
			"wild": {Domains: []string{"*.w.example.com"}, TLSCert: wcrt, TLSKey: wkey},
		},
		Servers: map[string]config.Server{
			"web":    {Addr: "127.0.0.1:0", TLSCert: dcrt, TLSKey: dkey, Certificates: []string{"a", "b", "wild"}},
			"strict": {Addr: "127.0.0.1:0", Certificates: []string{"a", "wild"}},
			"plain":  {Addr: "127.0.0.1:0"},
		},
	}
	s := NewStore(slog.New(slog.DiscardHandler), nil)
	if err := s.Update(cfg); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return &sniFixture{ca: ca, dir: dir, cfg: cfg, store: s}
}

func (f *sniFixture) serve(t *testing.T, server string) string {
	t.Helper()
	conf, err := f.store.TLSConfig(server, f.cfg.Servers[server])
	if err != nil {
		t.Fatalf("TLSConfig: %v", err)
	}
	return serveEcho(t, conf)
}

// dial handshakes with sni and returns the leaf the server sent.
func dial(addr string, conf *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func TestSNISelection(t *testing.T) {
	f := newSNIFixture(t)
	web := f.serve(t, "web")
	strict := f.serve(t, "strict")
	tests := []struct {
		addr, sni string
		want      string // leaf's first DNS name; "" means handshake fails
	}{
		{web, "a.example.com", "a.example.com"},
		{web, "b.example.com", "b.example.com"},
		{web, "B.Example.COM", "b.example.com"},
		{web, "x.w.example.com", "*.w.example.com"},
		{web, "y.x.w.example.com", "default.test"}, // wildcards cover one label only
		{web, "w.example.com", "default.test"},
		{web, "unknown.test", "default.test"},
		{web, "", "default.test"},
		{strict, "a.example.com", "a.example.com"},
		{strict, "z.w.example.com", "*.w.example.com"},
		{strict, "b.example.com", ""}, // b is not one of strict's certificates
		{strict, "unknown.test", ""},
	}
	for _, tt := range tests {
		t.Run(tt.sni, func(t *testing.T) {
			c, err := dial(tt.addr, &tls.Config{ServerName: tt.sni, RootCAs: f.ca.pool(), InsecureSkipVerify: tt.want == "default.test"})
			if tt.want == "" {
				if err == nil {
					c.Close()
					t.Fatalf("handshake for %q succeeded, want failure", tt.sni)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake for %q: %v", tt.sni, err)
			}
			defer c.Close()
			st := c.ConnectionState()
			if got := st.PeerCertificates[0].DNSNames[0]; got != tt.want {
				t.Fatalf("SNI %q got certificate %q, want %q", tt.sni, got, tt.want)
			}
			// The full chain is sent: leaf and CA.
			if len(st.PeerCertificates) != 2 {
				t.Fatalf("chain length %d, want 2", len(st.PeerCertificates))
			}
		})
	}
}

func TestProtocolVersionsAndALPN(t *testing.T) {
	f := newSNIFixture(t)
	addr := f.serve(t, "web")
	base := func() *tls.Config { return &tls.Config{ServerName: "a.example.com", RootCAs: f.ca.pool()} }

	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c := base()
		c.MinVersion, c.MaxVersion = v, v
		conn, err := dial(addr, c)
		if err == nil {
			conn.Close()
			t.Fatalf("TLS version %x accepted, want refused", v)
		}
		// The refusal must be the server's alert, not a client-side limit.
		if !strings.Contains(err.Error(), "protocol version not supported") {
			t.Fatalf("TLS version %x: %v, want the server's protocol_version alert", v, err)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := base()
		c.MinVersion, c.MaxVersion = v, v
		c.NextProtos = []string{"h2", "http/1.1"}
		conn, err := dial(addr, c)
		if err != nil {
			t.Fatalf("TLS version %x refused: %v", v, err)
		}
		if st := conn.ConnectionState(); st.NegotiatedProtocol != "h2" || st.Version != v {
			t.Fatalf("version %x: negotiated %q version %x, want h2", v, st.NegotiatedProtocol, st.Version)
		}
		roundTrip(t, conn, "hello")
		conn.Close()
	}
	c := base()
	c.NextProtos = []string{"http/1.1"}
	conn, err := dial(addr, c)
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("negotiated %q, want http/1.1", p)
	}
	conn.Close()
	// acme-tls/1 without a pending challenge must not complete.
	c = base()
	c.NextProtos = []string{ALPNProto}
	if conn, err := dial(addr, c); err == nil {
		conn.Close()
		t.Fatal("acme-tls/1 handshake succeeded without a challenge")
	}
}

func TestSessionResumption(t *testing.T) {
	f := newSNIFixture(t)
	addr := f.serve(t, "web")
	cache := tls.NewLRUClientSessionCache(4)
	conf := &tls.Config{ServerName: "a.example.com", RootCAs: f.ca.pool(), ClientSessionCache: cache}
	for i := range 3 {
		c, err := dial(addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "x") // TLS 1.3 tickets arrive after the handshake
		resumed := c.ConnectionState().DidResume
		c.Close()
		if i > 0 && !resumed {
			t.Fatalf("connection %d did not resume", i)
		}
		if i == 1 {
			// A reload keeps the listener's ticket keys.
			if err := f.store.Update(f.cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestReloadSwapsCertificateKeepsConnections(t *testing.T) {
	f := newSNIFixture(t)
	addr := f.serve(t, "web")
	conf := &tls.Config{ServerName: "a.example.com", RootCAs: f.ca.pool()}
	old, err := dial(addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	roundTrip(t, old, "before")
	oldSerial := old.ConnectionState().PeerCertificates[0].SerialNumber

	// Replace a's files with a new certificate and reload.
	f.ca.writePair(t, f.dir, "a", "a.example.com")
	if err := f.store.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh, err := dial(addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	newSerial := fresh.ConnectionState().PeerCertificates[0].SerialNumber
	if newSerial.Cmp(oldSerial) == 0 {
		t.Fatal("new handshake still got the old certificate")
	}
	roundTrip(t, fresh, "new")
	roundTrip(t, old, "after") // the old connection keeps working

	// Update with a config where "web" serves "b" only for b: a now falls
	// back to the default.
	cfg2 := *f.cfg
	cfg2.Servers = map[string]config.Server{"web": f.cfg.Servers["web"]}
	web := cfg2.Servers["web"]
	web.Certificates = []string{"b"}
	cfg2.Servers["web"] = web
	if err := f.store.Update(&cfg2); err != nil {
		t.Fatal(err)
	}
	c3, err := dial(addr, &tls.Config{ServerName: "a.example.com", RootCAs: f.ca.pool(), InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := c3.ConnectionState().PeerCertificates[0].DNSNames[0]; got != "default.test" {
		t.Fatalf("after Update got %q, want default.test", got)
	}
	c3.Close()
	roundTrip(t, old, "still")
}

func TestAutoReloadWatchesFiles(t *testing.T) {
	f := newSNIFixture(t)
	addr := f.serve(t, "web")
	var logs lockedBuffer
	f.store.logger = slogTo(&logs)
	f.store.watchInterval = 20 * time.Millisecond
	f.cfg.Basic.AutoReload = true
	if err := f.store.Update(f.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.store.Close)
	conf := &tls.Config{ServerName: "b.example.com", RootCAs: f.ca.pool()}
	c, err := dial(addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	first := c.ConnectionState().PeerCertificates[0].SerialNumber
	c.Close()
	// Make sure the new files get another mtime or size.
	time.Sleep(10 * time.Millisecond)
	crt, key := f.ca.issue(t, "b.example.com", "extra.b.example.com")
	writeFile(t, filepath.Join(f.dir, "b.key"), key)
	writeFile(t, filepath.Join(f.dir, "b.crt"), crt)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dial(addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		got := c.ConnectionState().PeerCertificates[0].SerialNumber
		c.Close()
		if got.Cmp(first) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("auto_reload did not reload the replaced certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A broken replacement is reported and the current certificate stays.
	// (Errors logged so far may come from a tick between the key and the
	// certificate writes above.)
	logs.Reset()
	writeFile(t, filepath.Join(f.dir, "b.crt"), []byte("not a certificate"))
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "tls certificates not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("broken file not reported:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "certificates.b: tls_cert/tls_key") {
		t.Fatalf("error does not name the key:\n%s", logs.String())
	}
	c, err = dial(addr, conf)
	if err != nil {
		t.Fatalf("certificate gone after a broken replacement: %v", err)
	}
	c.Close()
	f.cfg.Basic.AutoReload = false
	if err := f.store.Update(f.cfg); err == nil {
		t.Fatal("Update with a broken file succeeded")
	}
}

func TestClientCA(t *testing.T) {
	f := newSNIFixture(t)
	clientCA := newCA(t, "client root")
	caFile := filepath.Join(f.dir, "client-ca.pem")
	writeFile(t, caFile, clientCA.pem)
	web := f.cfg.Servers["web"]
	web.ClientCA = caFile
	f.cfg.Servers["mtls"] = web
	if err := f.store.Update(f.cfg); err != nil {
		t.Fatal(err)
	}
	addr := f.serve(t, "mtls")

	good, goodKey := clientCA.issue(t, "client.example")
	goodPair, err := tls.X509KeyPair(good, goodKey)
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t, "other root")
	bad, badKey := other.issue(t, "intruder.example")
	badPair, _ := tls.X509KeyPair(bad, badKey)

	tests := []struct {
		name string
		cert *tls.Certificate
		ok   bool
	}{
		{"no client certificate", nil, false},
		{"certificate from another CA", &badPair, false},
		{"certificate from client_ca", &goodPair, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := &tls.Config{ServerName: "a.example.com", RootCAs: f.ca.pool()}
			if tt.cert != nil {
				conf.Certificates = []tls.Certificate{*tt.cert}
			}
			c, err := dial(addr, conf)
			if err == nil {
				// With TLS 1.3 the server's verdict arrives after the
				// client's handshake: a read surfaces it.
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Write([]byte("ping"))
				if err == nil {
					buf := make([]byte, 4)
					_, err = c.Read(buf)
				}
				c.Close()
			}
			if tt.ok && err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("want the server to refuse the client, it accepted")
			}
		})
	}
}

func TestUpdateErrorsKeepPreviousState(t *testing.T) {
	f := newSNIFixture(t)
	addr := f.serve(t, "web")
	_, otherKey := f.ca.writePair(t, f.dir, "other", "other.example.com")
	acrt := f.cfg.Certificates["a"].TLSCert
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   string
	}{
		{"missing cert file", func(c *config.Config) {
			c.Certificates["a"] = config.Certificate{Domains: []string{"a.example.com"}, TLSCert: filepath.Join(f.dir, "nope.crt"), TLSKey: otherKey}
		}, "certificates.a: tls_cert"},
		{"key does not match", func(c *config.Config) {
			c.Certificates["a"] = config.Certificate{Domains: []string{"a.example.com"}, TLSCert: acrt, TLSKey: otherKey}
		}, "certificates.a: tls_cert/tls_key"},
		{"missing key", func(c *config.Config) {
			c.Certificates["a"] = config.Certificate{Domains: []string{"a.example.com"}, TLSCert: acrt}
		}, "certificates.a: tls_key"},
		{"server default missing", func(c *config.Config) {
			s := c.Servers["web"]
			s.TLSCert = filepath.Join(f.dir, "gone.crt")
			c.Servers["web"] = s
		}, "servers.web: tls_cert"},
		{"unknown certificate", func(c *config.Config) {
			s := c.Servers["web"]
			s.Certificates = append(s.Certificates, "ghost")
			c.Servers["web"] = s
		}, "servers.web: certificates: no [certificates.ghost]"},
		{"client_ca missing", func(c *config.Config) {
			s := c.Servers["web"]
			s.ClientCA = filepath.Join(f.dir, "none.pem")
			c.Servers["web"] = s
		}, "servers.web: client_ca"},
		{"bad domain", func(c *config.Config) {
			a := c.Certificates["a"]
			a.Domains = []string{"bad domain"}
			c.Certificates["a"] = a
		}, "certificates.a: domains"},
		{"acme wildcard", func(c *config.Config) {
			c.Certificates["auto"] = config.Certificate{Domains: []string{"*.auto.example.com"}, ACME: true}
		}, "certificates.auto: domains: wildcard"},
		{"acme bad challenge", func(c *config.Config) {
			c.Certificates["auto"] = config.Certificate{Domains: []string{"auto.example.com"}, ACME: true}
			c.ACME.Challenge = "dns-01"
		}, "acme: challenge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cloneConfig(f.cfg)
			tt.mutate(cfg)
			if err := Check(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check error = %v, want it to contain %q", err, tt.want)
			}
			err := f.store.Update(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Update error = %v, want it to contain %q", err, tt.want)
			}
			c, err := dial(addr, &tls.Config{ServerName: "a.example.com", RootCAs: f.ca.pool()})
			if err != nil {
				t.Fatalf("previous certificates no longer served: %v", err)
			}
			c.Close()
		})
	}
	if err := Check(f.cfg); err != nil {
		t.Fatalf("Check of a valid config: %v", err)
	}
	if _, err := f.store.TLSConfig("plain", f.cfg.Servers["plain"]); err == nil {
		t.Fatal("TLSConfig for a plain server succeeded")
	}
	if _, err := f.store.TLSConfig("nosuch", f.cfg.Servers["web"]); err == nil {
		t.Fatal("TLSConfig for an unknown server succeeded")
	}
}

func cloneConfig(c *config.Config) *config.Config {
	n := *c
	n.Certificates = map[string]config.Certificate{}
	for k, v := range c.Certificates {
		n.Certificates[k] = v
	}
	n.Servers = map[string]config.Server{}
	for k, v := range c.Servers {
		n.Servers[k] = v
	}
	return &n
}

func TestMetricsHook(t *testing.T) {
	f := newSNIFixture(t)
	got := map[string]time.Time{}
	s := NewStore(slog.New(slog.DiscardHandler), func(name string, notAfter time.Time) { got[name] = notAfter })
	if err := s.Update(f.cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "wild", "servers.web"} {
		if got[name].IsZero() {
			t.Errorf("no expiry reported for %s (got %v)", name, got)
		}
	}
	if len(s.Files()) == 0 {
		t.Fatal("Files() is empty")
	}
	// Removing a certificate reports it with a zero time.
	cfg := cloneConfig(f.cfg)
	delete(cfg.Certificates, "b")
	web := cfg.Servers["web"]
	web.Certificates = []string{"a", "wild"}
	cfg.Servers["web"] = web
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if v, ok := got["b"]; !ok || !v.IsZero() {
		t.Fatalf("removed certificate b reported as %v (present %v)", v, ok)
	}
	if got["a"].IsZero() {
		t.Fatal("certificate a reported as removed")
	}
}

func TestGetCertificateAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	f := newSNIFixture(t)
	ss := f.store.state.Load().servers["web"]
	for _, sni := range []string{"a.example.com", "x.w.example.com", "unknown.test"} {
		hello := &tls.ClientHelloInfo{ServerName: sni}
		if n := testing.AllocsPerRun(100, func() {
			if _, err := ss.getCertificate(hello); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocs per lookup, want 0", sni, n)
		}
	}
}

func TestLoadedLeafParsed(t *testing.T) {
	f := newSNIFixture(t)
	c := f.store.state.Load().servers["web"].exact["a.example.com"].cert.Load()
	if c.Leaf == nil || len(c.Certificate) != 2 {
		t.Fatalf("leaf %v, chain %d", c.Leaf, len(c.Certificate))
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: f.ca.pool(), DNSName: "a.example.com"}); err != nil {
		t.Fatal(err)
	}
	_, err := os.Stat(f.dir)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}
