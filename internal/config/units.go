package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a Go duration string
// ("250ms", "1m30s") with "d" for days also accepted, or as an integer
// number of seconds.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses the string forms Duration accepts.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	// Expand "Nd" components into hours so time.ParseDuration handles the rest.
	var total time.Duration
	rest := s
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		days, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		total = time.Duration(days * float64(24*time.Hour))
		rest = rest[i+1:]
		if rest == "" {
			return total, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. \"250ms\", \"10s\", \"1m\", \"30d\")", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return total + d, nil
}

// UnmarshalTOML implements toml.Unmarshaler (BurntSushi/toml).
func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		p, err := ParseDuration(x)
		if err != nil {
			return err
		}
		*d = Duration(p)
	case int64:
		if x < 0 {
			return fmt.Errorf("negative duration %d", x)
		}
		*d = Duration(time.Duration(x) * time.Second)
	default:
		return fmt.Errorf("duration must be a string like \"10s\" or an integer number of seconds, got %T", v)
	}
	return nil
}

// MarshalText writes the Go duration form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Size is a byte count written in TOML as "512KB", "1MB", "1GB" (KB = 1024
// bytes, case-insensitive, "k"/"m"/"g" accepted) or as an integer of bytes.
type Size int64

// ParseSize parses the string forms Size accepts.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (use e.g. \"512KB\", \"1MB\", \"1GB\" or bytes)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}

// UnmarshalTOML implements toml.Unmarshaler.
func (s *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		n, err := ParseSize(x)
		if err != nil {
			return err
		}
		*s = Size(n)
	case int64:
		if x < 0 {
			return fmt.Errorf("negative size %d", x)
		}
		*s = Size(x)
	default:
		return fmt.Errorf("size must be a string like \"1MB\" or an integer of bytes, got %T", v)
	}
	return nil
}

// MarshalText writes the size in bytes.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// AccessLog is basic.access_log: true/false, or a file path (which implies
// enabled).
type AccessLog struct {
	Enabled bool
	Path    string
}

// UnmarshalTOML implements toml.Unmarshaler.
func (a *AccessLog) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case bool:
		*a = AccessLog{Enabled: x}
	case string:
		if x == "" {
			*a = AccessLog{}
			return nil
		}
		*a = AccessLog{Enabled: true, Path: x}
	default:
		return fmt.Errorf("access_log must be true, false or a file path, got %T", v)
	}
	return nil
}

// MarshalText writes "true", "false" or the path. A path-valued access_log
// round-trips as a TOML string.
func (a AccessLog) MarshalText() ([]byte, error) {
	if a.Path != "" {
		return []byte(a.Path), nil
	}
	return []byte(strconv.FormatBool(a.Enabled)), nil
}
