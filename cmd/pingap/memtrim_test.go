package main

import (
	"bytes"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
)

func TestMemTrimmerOptOut(t *testing.T) {
	tests := []struct {
		env  string
		want bool
	}{
		{"", true},
		{"on", true},
		{"1", true},
		{"off", false},
		{"OFF", false},
		{" off ", false},
		{"0", false},
		{"false", false},
		{"no", false},
	}
	for _, tt := range tests {
		if got := newMemTrimmer(slog.Default(), tt.env).on; got != tt.want {
			t.Errorf("%s=%q: on = %v, want %v", memTrimEnv, tt.env, got, tt.want)
		}
	}
}

// TestMemTrimmerTrims: an enabled trimmer trims (Linux: the debug line
// reports a lower RssFile) and logs no warning; a disabled one does
// nothing.
func TestMemTrimmerTrims(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	newMemTrimmer(log, "off").trim("start-up")
	if buf.Len() != 0 {
		t.Fatalf("disabled trimmer logged: %s", buf.String())
	}
	newMemTrimmer(log, "").trim("start-up")
	out := buf.String()
	if strings.Contains(out, "WARN") {
		t.Fatalf("trim warned: %s", out)
	}
	if runtime.GOOS == "linux" && !strings.Contains(out, `msg="memory trim" after=start-up rss_file_kb_before=`) {
		t.Fatalf("no trim result logged: %q", out)
	}
}

// TestAfterStartupCollects: afterStartup runs a garbage collection (which
// turns on the runtime's periodic GC) even with the trim turned off.
func TestAfterStartupCollects(t *testing.T) {
	cycles := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := cycles()
	afterStartup(newMemTrimmer(slog.Default(), "off"))
	if after := cycles(); after <= before {
		t.Fatalf("GC cycles %d -> %d: afterStartup did not collect", before, after)
	}
}
