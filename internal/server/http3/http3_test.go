package http3

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	qhttp3 "github.com/quic-go/quic-go/http3"

	"github.com/pingap-go/pingap/internal/certs"
	"github.com/pingap-go/pingap/internal/config"
)

// selfSigned writes a self-signed certificate for names and returns the
// file paths and a pool trusting it.
func selfSigned(t *testing.T, names ...string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return cf, kf, pool
}

// startH3 serves h on UDP loopback with the TLS config a certs.Store builds
// for a server with http3 = true.
func startH3(t *testing.T, sc config.Server, h http.Handler) (string, *Server) {
	t.Helper()
	addr, srv, _ := startH3Store(t, sc, h)
	return addr, srv
}

func startH3Store(t *testing.T, sc config.Server, h http.Handler) (string, *Server, *certs.Store) {
	t.Helper()
	store := certs.NewStore(slog.New(slog.DiscardHandler), nil)
	cfg := &config.Config{Servers: map[string]config.Server{"h3": sc}}
	if err := store.Update(cfg); err != nil {
		t.Fatal(err)
	}
	conf, err := store.TLSConfig("h3", sc)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{TLSConfig: conf, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pc) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		pc.Close()
	})
	return pc.LocalAddr().String(), srv, store
}

func TestHTTP3Request(t *testing.T) {
	cf, kf, pool := selfSigned(t, "h3.pingap.test")
	addr, _ := startH3(t, config.Server{TLSCert: cf, TLSKey: kf, HTTP3: true},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Proto", r.Proto)
			_, _ = io.WriteString(w, "hello over "+r.Proto+" to "+r.TLS.ServerName)
		}))
	tr := &qhttp3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "h3.pingap.test"}}
	defer tr.Close()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("https://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.ProtoMajor != 3 || string(body) != "hello over HTTP/3.0 to h3.pingap.test" {
		t.Fatalf("status %d proto %s body %q", resp.StatusCode, resp.Proto, body)
	}
}

func TestHTTP3ClientCA(t *testing.T) {
	cf, kf, pool := selfSigned(t, "mtls.pingap.test")
	ccf, ckf, _ := selfSigned(t, "client.pingap.test")
	addr, _ := startH3(t, config.Server{TLSCert: cf, TLSKey: kf, HTTP3: true, ClientCA: ccf},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
		}))
	clientCert, err := tls.LoadX509KeyPair(ccf, ckf)
	if err != nil {
		t.Fatal(err)
	}
	for _, withCert := range []bool{true, false} {
		conf := &tls.Config{RootCAs: pool, ServerName: "mtls.pingap.test"}
		if withCert {
			conf.Certificates = []tls.Certificate{clientCert}
		}
		tr := &qhttp3.Transport{TLSClientConfig: conf}
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := client.Get("https://" + addr + "/")
		if withCert {
			if err != nil {
				t.Fatalf("with a client certificate: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "client.pingap.test" {
				t.Fatalf("handler saw %q", body)
			}
		} else if err == nil {
			resp.Body.Close()
			t.Fatal("request without a client certificate succeeded")
		}
		tr.Close()
	}
}

func TestShutdownReturns(t *testing.T) {
	cf, kf, _ := selfSigned(t, "h3.pingap.test")
	_, srv := startH3(t, config.Server{TLSCert: cf, TLSKey: kf, HTTP3: true}, http.NotFoundHandler())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
}

func TestAltSvc(t *testing.T) {
	for _, tt := range []struct {
		port int
		want string
	}{{443, `h3=":443"; ma=86400`}, {8443, `h3=":8443"; ma=86400`}} {
		if got := AltSvc(tt.port); got != tt.want {
			t.Errorf("AltSvc(%d) = %q, want %q", tt.port, got, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{Handler: http.NotFoundHandler()}); err == nil {
		t.Fatal("no TLSConfig accepted")
	}
	if _, err := New(Options{TLSConfig: &tls.Config{}}); err == nil {
		t.Fatal("no Handler accepted")
	}
}

// TestHTTP3CertificateReload: a Store Update changes the certificate of new
// QUIC handshakes with no new listener.
func TestHTTP3CertificateReload(t *testing.T) {
	cf, kf, pool1 := selfSigned(t, "reload.pingap.test")
	sc := config.Server{TLSCert: cf, TLSKey: kf, HTTP3: true}
	addr, _, store := startH3Store(t, sc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	get := func(pool *x509.CertPool) error {
		tr := &qhttp3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "reload.pingap.test"}}
		defer tr.Close()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(pool1); err != nil {
		t.Fatal(err)
	}
	cf2, kf2, pool2 := selfSigned(t, "reload.pingap.test")
	sc.TLSCert, sc.TLSKey = cf2, kf2
	if err := store.Update(&config.Config{Servers: map[string]config.Server{"h3": sc}}); err != nil {
		t.Fatal(err)
	}
	if err := get(pool2); err != nil {
		t.Fatalf("new certificate not served over QUIC: %v", err)
	}
	if err := get(pool1); err == nil {
		t.Fatal("old certificate still served after Update")
	}
}
