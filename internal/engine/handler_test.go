package engine

import (
	"net/netip"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		peer    string
		headers []string
		want    string
	}{
		{"untrusted peer ignores XFF", "192.0.2.1:1000", []string{"X-Forwarded-For: 1.2.3.4"}, "192.0.2.1"},
		{"trusted peer, one hop", "10.0.0.5:1000", []string{"X-Forwarded-For: 1.2.3.4"}, "1.2.3.4"},
		{"rightmost untrusted wins over spoofed left", "10.0.0.5:1000", []string{"X-Forwarded-For: 6.6.6.6, 1.2.3.4, 10.0.0.9"}, "1.2.3.4"},
		{"several fields", "10.0.0.5:1000", []string{"X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 5.5.5.5"}, "5.5.5.5"},
		{"all trusted: leftmost", "10.0.0.5:1000", []string{"X-Forwarded-For: 10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"garbage stops the walk", "10.0.0.5:1000", []string{"X-Forwarded-For: 1.2.3.4, nonsense"}, "10.0.0.5"},
		{"no XFF", "10.0.0.5:1000", nil, "10.0.0.5"},
		{"IPv6 trusted peer", "[::1]:1000", []string{"X-Forwarded-For: 2001:db8::1"}, "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := plugintest.NewCtx("GET", "/", tt.headers...)
			c.Conn.RemoteAddr = netip.MustParseAddrPort(tt.peer)
			if got := clientIP(c, trusted); got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	c := plugintest.NewCtx("GET", "/", "X-Forwarded-For: 1.2.3.4")
	if got := clientIP(c, nil); got.String() != "127.0.0.1" {
		t.Fatalf("without trusted proxies: %s", got)
	}
}
