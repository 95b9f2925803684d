package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"250ms", 250 * time.Millisecond, true},
		{"10s", 10 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"2h", 2 * time.Hour, true},
		{"30d", 30 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0.5d", 12 * time.Hour, true},
		{"45", 45 * time.Second, true},
		{" 5s ", 5 * time.Second, true},
		{"0", 0, true},
		{"", 0, false},
		{"abc", 0, false},
		{"-1s", 0, false},
		{"-5", 0, false},
		{"-1d", 0, false},
		{"1y", 0, false},
		{"d", 0, false},
		{"1dd", 0, false},
		{"Infd", 0, false},
		{"NaNd", 0, false},
		{"1e9d", 0, false},
		{"99999999999d", 0, false},
		{"9999999999999", 0, false},
		{"2h1d", 0, false},
	} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512KB", 512 << 10, true},
		{"1MB", 1 << 20, true},
		{"1GB", 1 << 30, true},
		{"64kb", 64 << 10, true},
		{"2k", 2 << 10, true},
		{"3m", 3 << 20, true},
		{"4g", 4 << 30, true},
		{"4G", 4 << 30, true},
		{"100", 100, true},
		{"100b", 100, true},
		{"10 MB", 10 << 20, true},
		{"0", 0, true},
		{"", 0, false},
		{"1.5MB", 0, false},
		{"-1KB", 0, false},
		{"1TB", 0, false},
		{"MB", 0, false},
		{"99999999999GB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatUnitsRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, 1500 * time.Millisecond, time.Minute, 90 * time.Second,
		time.Hour, 61 * time.Minute, 24 * time.Hour, 36 * time.Hour, 30 * 24 * time.Hour, time.Hour + time.Second} {
		s := FormatDuration(d)
		back, err := ParseDuration(s)
		if err != nil || back != d {
			t.Errorf("FormatDuration(%v) = %q, parses back to %v, %v", d, s, back, err)
		}
	}
	for _, want := range []struct {
		d time.Duration
		s string
	}{{time.Minute, "1m"}, {time.Hour, "1h"}, {30 * 24 * time.Hour, "30d"}, {90 * time.Second, "1m30s"}} {
		if got := FormatDuration(want.d); got != want.s {
			t.Errorf("FormatDuration(%v) = %q, want %q", want.d, got, want.s)
		}
	}
	for _, n := range []int64{0, 1, 1023, 1024, 1536, 64 << 10, 1 << 20, 3 << 30, 1<<30 + 1} {
		s := FormatSize(n)
		back, err := ParseSize(s)
		if err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q, parses back to %d, %v", n, s, back, err)
		}
	}
}

// TestUnitsInTOML checks the TOML forms: strings, integers (seconds, bytes)
// and the errors for other types, located by section and key.
func TestUnitsInTOML(t *testing.T) {
	c, err := Parse([]byte(base+`
[basic]
grace_period = 15
[servers.big]
addr = "127.0.0.1:8081"
locations = ["root"]
max_header_bytes = 2048
idle_timeout = "2d"
[locations.up]
upstream = "backend"
path = "/up"
client_max_body_size = "1g"
`), "u.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Basic.GracePeriod.D() != 15*time.Second {
		t.Errorf("grace_period = %v", c.Basic.GracePeriod.D())
	}
	if s := c.Servers["big"]; s.MaxHeaderBytes != 2048 || s.IdleTimeout.D() != 48*time.Hour {
		t.Errorf("server = %+v", s)
	}
	if c.Locations["up"].ClientMaxBodySize != 1<<30 {
		t.Errorf("client_max_body_size = %d", c.Locations["up"].ClientMaxBodySize)
	}

	_, err = Parse([]byte(base+`
[basic]
grace_period = 1.5
[locations.up]
upstream = "backend"
client_max_body_size = true
`), "u.toml")
	want := `u.toml: [basic] grace_period: must be a duration like "10s" or an integer number of seconds, not a float` + "\n" +
		`u.toml: [locations.up] client_max_body_size: must be a size like "1MB" or an integer number of bytes, not a boolean`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
