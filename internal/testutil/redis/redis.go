// Package redis starts a real redis-server for tests that need one (the
// shared rate limit). The server listens on a free 127.0.0.1 port, keeps its
// files in the test's temp dir, persists nothing, and is stopped when the
// test ends.
//
// A missing redis-server binary is a test FAILURE, not a skip: a skipped
// shared-limit test would look green while covering nothing. Run
// scripts/install-test-deps.sh to install it.
package redis

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds the wait for the server to answer PING.
const startTimeout = 10 * time.Second

// Start launches redis-server and returns its "127.0.0.1:PORT" address. The
// server is killed at test cleanup.
func Start(t testing.TB) (addr string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (needed by this test): run scripts/install-test-deps.sh")
	}
	// A free port can be taken by someone else between our probe and the
	// server's bind; retry a few times with a new port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := startOnce(t, bin)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return ""
}

func startOnce(t testing.TB, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--loglevel", "warning",
	)
	var logBuf strings.Builder
	cmd.Stdout = &logBuf
	cmd.Stderr = &logBuf
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			exited <- err // let stop() (not called) or cleanup see it
			return "", fmt.Errorf("redis-server exited: %v: %s", err, logBuf.String())
		default:
		}
		if ping(addr) == nil {
			t.Cleanup(stop)
			return addr, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("redis-server on %s did not answer PING within %v: %s", addr, startTimeout, logBuf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected PING answer %q", line)
	}
	return nil
}
