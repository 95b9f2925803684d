// Package etcd starts a real etcd server for tests that need one (the etcd
// configuration source). The server listens on free 127.0.0.1 ports (client
// and peer), keeps its data in the test's temp dir, and is stopped when the
// test ends.
//
// A missing etcd binary is a test FAILURE, not a skip: a skipped etcd test
// would look green while covering nothing. Run scripts/install-test-deps.sh
// to install it (Debian package etcd-server, binary /usr/bin/etcd; 3.4 or
// newer, spoken to over the v3 API).
package etcd

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the wait for the server to report itself healthy.
const startTimeout = 15 * time.Second

// Server is a running single-member etcd.
type Server struct {
	// Addr is the client address, "127.0.0.1:PORT".
	Addr string

	t        testing.TB
	bin      string
	dir      string
	peerPort int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
	log    *lockedBuffer

	// TLS (StartTLS): etcd serves HTTPS and requires a client certificate.
	TLS *TLSFiles

	extra []string // more etcd flags (StartWith)
}

// TLSFiles are the PEM files of a TLS etcd (StartTLS): the CA that signed
// the server's and the client's certificates, and the client's pair.
type TLSFiles struct {
	CA, ClientCert, ClientKey string
	serverCert, serverKey     string
	health                    *http.Client
}

// Start launches etcd and returns it once it answers /health. The server is
// killed at test cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// StartWith is Start with more etcd flags (e.g. "--max-txn-ops", "10").
func StartWith(t testing.TB, flags ...string) *Server {
	t.Helper()
	return start(t, nil, flags...)
}

// StartTLS is Start with client TLS: etcd listens with HTTPS and requires a
// client certificate signed by the CA in s.TLS (client-cert-auth).
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, newTLSFiles(t))
}

func start(t testing.TB, tlsFiles *TLSFiles, flags ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed (needed by this test): run scripts/install-test-deps.sh")
	}
	dir := t.TempDir()
	// A free port can be taken by someone else between our probe and the
	// server's bind; retry a few times with new ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		cport, err1 := freePort()
		pport, err2 := freePort()
		if err1 != nil || err2 != nil || cport == pport {
			lastErr = fmt.Errorf("free ports: %v %v", err1, err2)
			continue
		}
		s := &Server{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(cport)),
			t:    t, bin: bin, dir: fmt.Sprintf("%s/data%d", dir, attempt), peerPort: pport,
			TLS: tlsFiles, extra: flags,
		}
		if err := s.run(); err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(s.Stop)
		return s
	}
	t.Fatalf("etcd did not start: %v", lastErr)
	return nil
}

// Endpoint returns "etcd://ADDR/prefix", the form pingap's -config takes
// (with ?ca=...&cert=...&key=... for a TLS server).
func (s *Server) Endpoint(prefix string) string {
	u := "etcd://" + s.Addr + "/" + strings.TrimPrefix(prefix, "/")
	if s.TLS != nil {
		u += "?ca=" + url.QueryEscape(s.TLS.CA) + "&cert=" + url.QueryEscape(s.TLS.ClientCert) + "&key=" + url.QueryEscape(s.TLS.ClientKey)
	}
	return u
}

// scheme is the client URL scheme.
func (s *Server) scheme() string {
	if s.TLS != nil {
		return "https://"
	}
	return "http://"
}

// Stop kills the server (its data stays, Restart brings it back). Stopping
// a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts a stopped server again on the same ports and data: clients
// that lost it reconnect to the same address.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The old process's ports may linger briefly; retry for a short while.
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.run(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("etcd restart: %v", err)
}

// Logs returns what the current (or last) process wrote.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

func (s *Server) run() error {
	client := s.scheme() + s.Addr
	peer := "http://127.0.0.1:" + strconv.Itoa(s.peerPort)
	args := []string{
		"--name", "test",
		"--data-dir", s.dir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test=" + peer,
		"--initial-cluster-state", "new",
		// A lone member elects itself at once; short timers only make the
		// first election and a restart faster on loopback.
		"--heartbeat-interval", "20",
		"--election-timeout", "200",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
	args = append(args, s.extra...)
	if s.TLS != nil {
		args = append(args, "--cert-file", s.TLS.serverCert, "--key-file", s.TLS.serverKey,
			"--client-cert-auth", "--trusted-ca-file", s.TLS.CA)
	}
	cmd := exec.Command(s.bin, args...)
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("etcd exited: %v: %s", err, log.String())
		default:
		}
		if s.healthy() {
			s.mu.Lock()
			s.cmd, s.exited, s.log = cmd, exited, log
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("etcd on %s not healthy within %v: %s", s.Addr, startTimeout, log.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

var healthClient = &http.Client{Timeout: time.Second}

// healthy asks the client port's /health endpoint (true once a leader is
// elected and the member serves).
func (s *Server) healthy() bool {
	c := healthClient
	if s.TLS != nil {
		c = s.TLS.health
	}
	resp, err := c.Get(s.scheme() + s.Addr + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"true"`)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects the process output (written by exec's copier
// goroutine, read by the test).
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
