package redis

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestStartAnswersPing(t *testing.T) {
	addr := Start(t)
	if err := ping(addr); err != nil {
		t.Fatalf("ping %s: %v", addr, err)
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

// TestMissingBinaryFails: without redis-server the helper fails the test
// (never skips) and says how to fix it.
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
		t.Fatalf("Start without redis-server: %q, want a failure naming scripts/install-test-deps.sh", rec.msg)
	}
}
