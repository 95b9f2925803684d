package etcd

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStartIsHealthyAndRestarts(t *testing.T) {
	t0 := time.Now()
	s := Start(t)
	t.Logf("etcd started in %v", time.Since(t0))
	if !s.healthy() {
		t.Fatalf("%s not healthy", s.Addr)
	}
	if got, want := s.Endpoint("/pingap"), "etcd://"+s.Addr+"/pingap"; got != want {
		t.Fatalf("Endpoint = %q, want %q", got, want)
	}
	s.Stop()
	if s.healthy() {
		t.Fatal("healthy after Stop")
	}
	s.Restart()
	if !s.healthy() {
		t.Fatal("not healthy after Restart")
	}
}

// TestStartTLSNeedsAClientCertificate: the TLS server answers a client with
// the generated certificate and refuses plain HTTP and a client without one.
func TestStartTLSNeedsAClientCertificate(t *testing.T) {
	s := StartTLS(t)
	if !s.healthy() {
		t.Fatalf("%s not healthy over TLS", s.Addr)
	}
	if healthy := (&Server{Addr: s.Addr}).healthy(); healthy {
		t.Fatal("plain HTTP answered by the TLS server")
	}
	noCert := &Server{Addr: s.Addr, TLS: &TLSFiles{health: &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: s.TLS.health.Transport.(*http.Transport).TLSClientConfig.Clone(),
	}}}}
	noCert.TLS.health.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	if noCert.healthy() {
		t.Fatal("a client without a certificate was answered")
	}
	if e := s.Endpoint("p"); !strings.HasPrefix(e, "etcd://"+s.Addr+"/p?ca=") || !strings.Contains(e, "&cert=") || !strings.Contains(e, "&key=") {
		t.Fatalf("Endpoint = %q", e)
	}
}

// fatalRecorder records Fatalf instead of failing the real test.
type fatalRecorder struct {
	*testing.T
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestMissingBinaryFails: without etcd the helper fails the test (never
// skips) and says how to fix it.
func TestMissingBinaryFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rec := &fatalRecorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(rec)
	}()
	<-done
	if !strings.Contains(rec.msg, "scripts/install-test-deps.sh") {
		t.Fatalf("Start without etcd: %q, want a failure naming scripts/install-test-deps.sh", rec.msg)
	}
}
