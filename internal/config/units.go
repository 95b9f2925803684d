package config

import (
	"encoding/json"
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
		return secondsDuration(n)
	}
	// Expand "Nd" components into hours so time.ParseDuration handles the rest.
	var total time.Duration
	rest := s
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		days, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || !(days >= 0 && days <= maxDays) || strings.ContainsAny(rest[:i], "eEnNxXpP_-+") {
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
	if total+d < total {
		return 0, fmt.Errorf("duration %q too large", s)
	}
	return total + d, nil
}

// maxDays keeps a day count inside time.Duration's range (about 292 years).
const maxDays = 100000

// secondsDuration converts an integer number of seconds.
func secondsDuration(n int64) (time.Duration, error) {
	if n < 0 {
		return 0, fmt.Errorf("negative duration %d", n)
	}
	if n > int64(maxDays*24*3600) {
		return 0, fmt.Errorf("duration %d seconds too large", n)
	}
	return time.Duration(n) * time.Second, nil
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
		p, err := secondsDuration(x)
		if err != nil {
			return err
		}
		*d = Duration(p)
	default:
		return fmt.Errorf("must be a duration like \"10s\" or an integer number of seconds, not %s", tomlKind(v))
	}
	return nil
}

// MarshalText writes the duration in a form ParseDuration reads back:
// whole days as "30d", otherwise Go syntax without zero units ("1m", not
// "1m0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(FormatDuration(time.Duration(d))), nil }

// FormatDuration is the inverse of ParseDuration for non-negative values.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

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
		return fmt.Errorf("must be a size like \"1MB\" or an integer number of bytes, not %s", tomlKind(v))
	}
	return nil
}

// MarshalText writes the size as "64KB", "1MB", "2GB" when it is a whole
// number of those units, else as bytes ("1500").
func (s Size) MarshalText() ([]byte, error) { return []byte(FormatSize(int64(s))), nil }

// FormatSize is the inverse of ParseSize for non-negative values.
func FormatSize(n int64) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GB"
	case n > 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MB"
	case n > 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KB"
	}
	return strconv.FormatInt(n, 10)
}

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
		return fmt.Errorf("must be true, false or a file path, not %s", tomlKind(v))
	}
	return nil
}

// MarshalText writes "true", "false" or the path.
func (a AccessLog) MarshalText() ([]byte, error) {
	if a.Path != "" {
		return []byte(a.Path), nil
	}
	return []byte(strconv.FormatBool(a.Enabled)), nil
}

// MarshalTOML writes a TOML boolean, or the path as a TOML string, so that
// the value reads back as it was (MarshalText alone would turn false into
// the path "false").
func (a AccessLog) MarshalTOML() ([]byte, error) {
	if a.Path != "" {
		return []byte(tomlQuote(a.Path)), nil
	}
	return []byte(strconv.FormatBool(a.Enabled)), nil
}

// MarshalJSON writes true, false or the path as a JSON string.
func (a AccessLog) MarshalJSON() ([]byte, error) {
	if a.Path != "" {
		return json.Marshal(a.Path)
	}
	return []byte(strconv.FormatBool(a.Enabled)), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *AccessLog) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return a.UnmarshalTOML(v)
}

// tomlKind names the kind of a decoded TOML value for error messages.
func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("%T", v)
}
