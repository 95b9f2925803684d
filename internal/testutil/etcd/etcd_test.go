package etcd

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStartIsHealthyAndRestarts(t *testing.T) {
	t0 := time.Now()
	s := Start(t)
	t.Logf("etcd started in %v", time.Since(t0))
	if !healthy(s.Addr) {
		t.Fatalf("%s not healthy", s.Addr)
	}
	if got, want := s.Endpoint("/pingap"), "etcd://"+s.Addr+"/pingap"; got != want {
		t.Fatalf("Endpoint = %q, want %q", got, want)
	}
	s.Stop()
	if healthy(s.Addr) {
		t.Fatal("healthy after Stop")
	}
	s.Restart()
	if !healthy(s.Addr) {
		t.Fatal("not healthy after Restart")
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
