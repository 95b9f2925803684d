// Package logging builds the proxy's structured logger (log/slog, on
// stderr, level changeable at runtime for reloads) and its access log: one
// JSON line per request, hand-formatted into pooled buffers and written in
// batches, independent of log_level.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a logger writing to w in format "json" (the default; also
// used for an unknown value) or "text", and the LevelVar that controls it:
// a reload sets the new level on it (lv.Set(ParseLevel(...))) instead of
// rebuilding the logger. An unknown level means info; validate the config
// with CheckLevel first.
func New(level, format string, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(ParseLevel(level))
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if strings.EqualFold(format, "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), lv
}

// ParseLevel maps basic.log_level (debug, info, warn or warning, error;
// case-insensitive) to a slog level. "" and unknown values are info: config
// validation reports those through CheckLevel.
func ParseLevel(s string) slog.Level {
	l, _ := parseLevel(s)
	return l
}

// CheckLevel reports an error naming the key when basic.log_level is not
// one ParseLevel knows.
func CheckLevel(s string) error {
	_, err := parseLevel(s)
	return err
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("basic.log_level: unknown level %q (want debug, info, warn or error)", s)
}

// ValidFormat reports whether basic.log_format is one New understands
// explicitly ("json", "text", or "" for the default).
func ValidFormat(s string) bool {
	return s == "" || strings.EqualFold(s, "json") || strings.EqualFold(s, "text")
}

// SetLevel applies a new basic.log_level to lv (on reload). On error lv is
// left unchanged.
func SetLevel(lv *slog.LevelVar, level string) error {
	l, err := parseLevel(level)
	if err != nil {
		return err
	}
	lv.Set(l)
	return nil
}
