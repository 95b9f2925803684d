package iprestriction

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestSet(t *testing.T) {
	s, err := ParseSet([]string{"10.0.0.0/8", "10.1.0.0/16", "192.168.1.7", "192.168.1.8", "2001:db8::/32", "::1", "172.16.0.1/12", "::ffff:203.0.113.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{
		"10.0.0.0": true, "10.255.255.255": true, "11.0.0.0": false, "9.255.255.255": false,
		"192.168.1.7": true, "192.168.1.8": true, "192.168.1.9": false, "192.168.1.6": false,
		"172.31.255.255": true, "172.32.0.0": false,
		"2001:db8::1": true, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": true, "2001:db9::": false,
		"::1": true, "::2": false, "::ffff:10.2.3.4": true, "203.0.113.200": true, "203.0.114.1": false,
	}
	for a, want := range tests {
		if got := s.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
	if s.Contains(netip.Addr{}) {
		t.Error("invalid address in the set")
	}
	// 10/8 absorbs 10.1/16, .7 and .8 merge.
	if s.Len() != 6 {
		t.Errorf("merged ranges = %d, want 6", s.Len())
	}
	all, _ := ParseSet([]string{"0.0.0.0/0", "::/0"})
	for _, a := range []string{"0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		if !all.Contains(netip.MustParseAddr(a)) {
			t.Errorf("/0 does not contain %s", a)
		}
	}
}

func TestIPRestriction(t *testing.T) {
	env := plugin.Env{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}
	tests := []struct {
		name    string
		opts    map[string]any
		peer    string
		headers []string
		status  int
	}{
		{name: "deny listed", opts: map[string]any{"ip_list": []any{"127.0.0.1"}}, peer: "127.0.0.1:1", status: 403},
		{name: "deny default type", opts: map[string]any{"ip_list": []any{"127.0.0.0/8"}, "type": "deny"}, peer: "127.0.0.2:1", status: 403},
		{name: "deny unlisted", opts: map[string]any{"ip_list": []any{"192.168.0.0/16"}}, peer: "127.0.0.1:1", status: 200},
		{name: "allow listed", opts: map[string]any{"ip_list": []any{"127.0.0.1", "::1"}, "type": "allow"}, peer: "[::1]:1", status: 200},
		{name: "allow unlisted", opts: map[string]any{"ip_list": []any{"::1"}, "type": "allow"}, peer: "127.0.0.1:1", status: 403},
		{name: "allow mapped v4 peer", opts: map[string]any{"ip_list": []any{"127.0.0.1"}, "type": "allow"}, peer: "[::ffff:127.0.0.1]:1", status: 200},
		{name: "xff ignored without trust_forwarded", opts: map[string]any{"ip_list": []any{"1.2.3.4"}}, peer: "127.0.0.1:1",
			headers: []string{"X-Forwarded-For: 1.2.3.4"}, status: 200},
		{name: "xff from trusted peer", opts: map[string]any{"ip_list": []any{"1.2.3.4"}, "trust_forwarded": true}, peer: "127.0.0.1:1",
			headers: []string{"X-Forwarded-For: 1.2.3.4"}, status: 403},
		{name: "xff skips trusted hops", opts: map[string]any{"ip_list": []any{"1.2.3.4"}, "trust_forwarded": true}, peer: "127.0.0.1:1",
			headers: []string{"X-Forwarded-For: 9.9.9.9, 1.2.3.4, 10.0.0.1", "X-Forwarded-For: 10.0.0.2"}, status: 403},
		{name: "xff spoof left of client", opts: map[string]any{"ip_list": []any{"5.5.5.5"}, "type": "allow", "trust_forwarded": true}, peer: "127.0.0.1:1",
			headers: []string{"X-Forwarded-For: 5.5.5.5, 6.6.6.6"}, status: 403},
		{name: "xff from untrusted peer", opts: map[string]any{"ip_list": []any{"5.5.5.5"}, "type": "allow", "trust_forwarded": true}, peer: "8.8.8.8:1",
			headers: []string{"X-Forwarded-For: 5.5.5.5"}, status: 403},
		{name: "xff with port", opts: map[string]any{"ip_list": []any{"2001:db8::/32"}, "trust_forwarded": true}, peer: "127.0.0.1:1",
			headers: []string{"X-Forwarded-For: [2001:db8::5]:443"}, status: 403},
		{name: "xff garbage stops walk", opts: map[string]any{"ip_list": []any{"127.0.0.1"}, "trust_forwarded": true}, peer: "127.0.0.1:1",
			headers: []string{"X-Forwarded-For: 1.1.1.1, unknown"}, status: 403},
		{name: "xff all trusted", opts: map[string]any{"ip_list": []any{"10.0.0.7"}, "trust_forwarded": true}, peer: "127.0.0.1:1",
			headers: []string{"X-Forwarded-For: 10.0.0.7, 10.0.0.8"}, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(env, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := plugintest.NewCtx("GET", "/", tt.headers...)
			c.Conn.RemoteAddr = netip.MustParseAddrPort(tt.peer)
			c.ClientIP = c.Conn.RemoteAddr.Addr()
			res := plugintest.Run(c, plugintest.Upstream{}, p)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.status == 403 && (res.Upstream || res.Body != `{"error":"forbidden"}`) {
				t.Fatalf("refusal: upstream=%v body=%q", res.Upstream, res.Body)
			}
			if tt.status == 200 && !res.Upstream {
				t.Fatal("allowed request did not reach the upstream")
			}
		})
	}
}

func TestIPRestrictionConfigErrors(t *testing.T) {
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{}, "ip_list"},
		{map[string]any{"ip_list": []any{"10.0.0.0/33"}}, "ip_list"},
		{map[string]any{"ip_list": []any{"1.2.3"}}, "ip_list"},
		{map[string]any{"ip_list": []any{"fe80::1%eth0"}}, "ip_list"},
		{map[string]any{"ip_list": "10.0.0.0/8"}, "ip_list"},
		{map[string]any{"ip_list": []any{"10.0.0.0/8"}, "type": "block"}, "type"},
		{map[string]any{"ip_list": []any{"10.0.0.0/8"}, "trust_forwarded": "yes"}, "trust_forwarded"},
		{map[string]any{"ip_list": []any{"10.0.0.0/8"}, "ips": 1}, "ips"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

// FuzzIPRestriction checks the range set against a naive prefix scan.
func FuzzIPRestriction(f *testing.F) {
	f.Add("10.0.0.0/8,192.168.1.1,::1,2001:db8::/32", "10.1.2.3")
	f.Add("0.0.0.0/0", "::ffff:1.2.3.4")
	f.Add("::/0,1.2.3.4/32", "255.255.255.255")
	f.Add("fe80::/10,::ffff:0.0.0.0/96", "fe80::1")
	f.Fuzz(func(t *testing.T, list, addr string) {
		entries := strings.Split(list, ",")
		if len(entries) > 64 {
			return
		}
		s, err := ParseSet(entries)
		if err != nil {
			return
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			s.Contains(a)
			return
		}
		a = a.WithZone("")
		want := false
		for _, e := range entries {
			p, _ := ParsePrefix(e)
			if p.Contains(a.Unmap()) {
				want = true
			}
		}
		if got := s.Contains(a); got != want {
			t.Fatalf("Contains(%s) = %v, want %v for %q", a, got, want, list)
		}
	})
}
