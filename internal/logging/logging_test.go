package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	cases := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"DEBUG", slog.LevelDebug, false},
		{"", slog.LevelInfo, false},
		{"info", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"warning", slog.LevelWarn, false},
		{" error ", slog.LevelError, false},
		{"verbose", slog.LevelInfo, true},
	}
	for _, c := range cases {
		got, err := ParseLevel(c.in), CheckLevel(c.in)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, err=%v", c.in, got, err, c.want, c.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "basic.log_level") {
			t.Errorf("error %q does not name the key", err)
		}
	}
}

func TestNewJSONAndRuntimeLevel(t *testing.T) {
	var buf bytes.Buffer
	log, lv := New("warn", "json", &buf)
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if err := SetLevel(lv, "debug"); err != nil {
		t.Fatal(err)
	}
	log.Debug("now shown")
	if err := SetLevel(lv, "nope"); err == nil {
		t.Fatal("SetLevel accepted an unknown level")
	}
	if lv.Level() != slog.LevelDebug {
		t.Fatalf("failed SetLevel changed the level to %v", lv.Level())
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" || rec["k"] != "v" {
		t.Fatalf("record %v", rec)
	}
	if !strings.Contains(lines[1], `"msg":"now shown"`) {
		t.Fatalf("debug line %q", lines[1])
	}
}

func TestNewText(t *testing.T) {
	var buf bytes.Buffer
	log, _ := New("info", "text", &buf)
	log.Info("hello", "k", "v")
	if !strings.Contains(buf.String(), "level=INFO msg=hello k=v") {
		t.Fatalf("text output %q", buf.String())
	}
	for _, f := range []string{"", "json", "TEXT"} {
		if !ValidFormat(f) {
			t.Errorf("ValidFormat(%q) = false", f)
		}
	}
	if ValidFormat("xml") {
		t.Error("ValidFormat(xml) = true")
	}
}
