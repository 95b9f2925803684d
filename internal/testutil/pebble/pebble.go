// Package pebble runs Pebble, Let's Encrypt's test ACME server, as a real
// process on loopback for tests. Its HTTPS listener uses a certificate from
// a CA generated here (CARoot, handed to pingap as [acme].ca_root); the
// certificates it issues chain to a root Pebble regenerates at every start,
// fetched from its management endpoint (Roots).
//
// Pebble comes from Debian's "pebble" package (scripts/install-test-deps.sh).
// A missing binary fails the test: it is never skipped.
package pebble

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
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/testutil/testca"
)

// Options says how Pebble validates challenges.
type Options struct {
	// AlwaysValid skips validation (PEBBLE_VA_ALWAYS_VALID).
	AlwaysValid bool
	// HTTPPort and TLSPort are where Pebble sends HTTP-01 and TLS-ALPN-01
	// validations; 0 picks a free port nothing listens on.
	HTTPPort, TLSPort int
	// DNSServer is Pebble's -dnsserver (see internal/testutil/dnsstub).
	DNSServer string
	// Validity is certificateValidityPeriod in seconds; 0 keeps Pebble's.
	Validity int
}

// Server is one running Pebble.
type Server struct {
	Dir    string // ACME directory URL
	Mgmt   string // management base URL
	CARoot string // PEM file of the CA of Pebble's HTTPS listener
	// ListenerCAs trusts Pebble's HTTPS listener.
	ListenerCAs *x509.CertPool
	// IssuerCAs trusts the certificates Pebble issues.
	IssuerCAs *x509.CertPool
}

// Start runs Pebble until the end of the test.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		t.Fatalf("pebble (Let's Encrypt's test ACME server) is not installed: run scripts/install-test-deps.sh (Debian package \"pebble\"): %v", err)
	}
	dir := t.TempDir()
	ca := testca.New(t, "pebble listener CA")
	certFile, keyFile := ca.WriteFiles(t, dir, "pebble", x509.ExtKeyUsageServerAuth)
	caRoot, pool := ca.WriteCA(t, dir, "listener-ca.pem"), ca.Pool()
	if o.HTTPPort == 0 {
		o.HTTPPort = freePort(t)
	}
	if o.TLSPort == 0 {
		o.TLSPort = freePort(t)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // free ports can be taken meanwhile
		acmePort, mgmtPort := freePort(t), freePort(t)
		conf := map[string]any{
			"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", acmePort),
			"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
			"certificate":                    certFile,
			"privateKey":                     keyFile,
			"httpPort":                       o.HTTPPort,
			"tlsPort":                        o.TLSPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
		}
		if o.Validity > 0 {
			conf["certificateValidityPeriod"] = o.Validity
		}
		b, _ := json.Marshal(map[string]any{"pebble": conf})
		cfgFile := filepath.Join(dir, "pebble-config.json")
		if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"-config", cfgFile}
		if o.DNSServer != "" {
			args = append(args, "-dnsserver", o.DNSServer)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		if o.AlwaysValid {
			cmd.Env = append(cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
		}
		logFile, err := os.Create(filepath.Join(dir, fmt.Sprintf("pebble-%d.log", attempt)))
		if err != nil {
			t.Fatal(err)
		}
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
		s := &Server{
			Dir:         fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort),
			Mgmt:        fmt.Sprintf("https://127.0.0.1:%d", mgmtPort),
			CARoot:      caRoot,
			ListenerCAs: pool,
		}
		if lastErr = s.waitReady(exited); lastErr != nil {
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
		if s.IssuerCAs, err = s.roots(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("pebble did not start: %v", lastErr)
	return nil
}

// Client is an HTTP client that trusts Pebble's listener.
func (s *Server) Client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.ListenerCAs},
	}}
}

// waitReady polls the directory until Pebble answers (bounded).
func (s *Server) waitReady(exited chan struct{}) error {
	c := s.Client()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("pebble exited")
		default:
		}
		if resp, err := c.Get(s.Dir); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("pebble not ready at %s", s.Dir)
}

// roots fetches Pebble's issuing root from the management endpoint.
func (s *Server) roots() (*x509.CertPool, error) {
	resp, err := s.Client().Get(s.Mgmt + "/roots/0")
	if err != nil {
		return nil, fmt.Errorf("pebble /roots/0: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("pebble /roots/0: no PEM: %q", b)
	}
	return pool, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
