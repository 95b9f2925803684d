package certs

import (
	"net/http"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/testutil/race"
)

// unreachableACME is a config whose CA refuses connections: the manager
// runs, fails once and backs off for an hour.
func unreachableACME(t *testing.T) (*Store, *config.Config) {
	t.Helper()
	// The storage dir is made before s.Close is registered: cleanups run
	// last-in first-out, so the manager stops before its dir is removed.
	storage := t.TempDir()
	s := NewStore(testLogger(t), nil)
	s.acmeBackoff = time.Hour
	t.Cleanup(s.Close)
	cfg := unreachableACMEConfig(storage)
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	return s, cfg
}

// unreachableACMEConfig has one acme certificate "auto" on server "tls",
// from a CA that refuses connections, stored in storage.
func unreachableACMEConfig(storage string) *config.Config {
	return &config.Config{
		Certificates: map[string]config.Certificate{"auto": {Domains: []string{"auto.pingap.test"}, ACME: true}},
		Servers:      map[string]config.Server{"tls": {Addr: "127.0.0.1:0", Certificates: []string{"auto"}}},
		ACME:         config.ACME{DirectoryURL: "https://127.0.0.1:1/dir", Storage: storage},
	}
}

func TestHandleHTTPChallenge(t *testing.T) {
	s, _ := unreachableACME(t)
	m := s.acmeLive.Load()
	m.chMu.Lock()
	m.tokens["tok123"] = []byte("tok123.thumbprint")
	m.chMu.Unlock()

	tests := []struct {
		method, path string
		handled      bool
		status       int
		body         string
	}{
		{"GET", "/.well-known/acme-challenge/tok123", true, 200, "tok123.thumbprint"},
		{"HEAD", "/.well-known/acme-challenge/tok123", true, 200, "tok123.thumbprint"},
		{"GET", "/.well-known/acme-challenge/other", true, 404, ""},
		{"POST", "/.well-known/acme-challenge/tok123", true, 405, ""},
		{"GET", "/.well-known/acme-challengeX", false, 0, ""},
		{"GET", "/", false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var c httpx.Ctx
			c.Req.Method, c.Req.Path = tt.method, tt.path
			if got := s.HandleHTTPChallenge(&c); got != tt.handled {
				t.Fatalf("handled = %v, want %v", got, tt.handled)
			}
			if c.Resp.Status != tt.status {
				t.Fatalf("status = %d, want %d", c.Resp.Status, tt.status)
			}
			if tt.status == 405 && c.Resp.Header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("405 without Allow")
			}
			if tt.body != "" {
				buf := make([]byte, 64)
				n, _ := c.Resp.Body.Read(buf)
				if string(buf[:n]) != tt.body {
					t.Fatalf("body %q, want %q", buf[:n], tt.body)
				}
			}
		})
	}
}

// TestHandleHTTPChallengeOtherPathsNoAlloc: with ACME on, the check every
// plain-HTTP request passes through costs no allocation.
func TestHandleHTTPChallengeOtherPathsNoAlloc(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	s, _ := unreachableACME(t)
	var c httpx.Ctx
	c.Req.Method, c.Req.Path = http.MethodGet, "/app/page"
	if n := testing.AllocsPerRun(100, func() { s.HandleHTTPChallenge(&c) }); n != 0 {
		t.Fatalf("%v allocs for a non-challenge path", n)
	}
}

func TestACMELifecycleFollowsConfig(t *testing.T) {
	s, cfg := unreachableACME(t)
	first := s.acmeLive.Load()
	h := first.managed["auto"].h

	// Same config: same manager, same holder (a reload keeps serving).
	if err := s.Update(cloneConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	if s.acmeLive.Load() != first || s.acme.managed["auto"].h != h {
		t.Fatal("an unchanged reload restarted ACME")
	}
	// New domains: same manager, new holder.
	c2 := cloneConfig(cfg)
	c2.Certificates["auto"] = config.Certificate{Domains: []string{"auto.pingap.test", "www.pingap.test"}, ACME: true}
	if err := s.Update(c2); err != nil {
		t.Fatal(err)
	}
	if s.acmeLive.Load() != first || s.acme.managed["auto"].h == h {
		t.Fatal("changed domains did not restart the certificate")
	}
	// Changed [acme]: a new manager.
	c3 := cloneConfig(c2)
	c3.ACME.Email = "new@pingap.test"
	if err := s.Update(c3); err != nil {
		t.Fatal(err)
	}
	if s.acmeLive.Load() == first {
		t.Fatal("changed [acme] kept the old manager")
	}
	// No acme certificate left: ACME stops, challenges are not answered.
	c4 := cloneConfig(c3)
	delete(c4.Certificates, "auto")
	c4.Servers = map[string]config.Server{}
	if err := s.Update(c4); err != nil {
		t.Fatal(err)
	}
	if s.acmeLive.Load() != nil {
		t.Fatal("ACME still running without acme certificates")
	}
	if _, handled := challengeGet(s, "/.well-known/acme-challenge/x"); handled {
		t.Fatal("challenge answered with ACME off")
	}
}

func TestHTTPChallengeOffWithTLSALPN(t *testing.T) {
	s, cfg := unreachableACME(t)
	cfg.ACME.Challenge = "tls-alpn-01"
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if _, handled := challengeGet(s, "/.well-known/acme-challenge/x"); handled {
		t.Fatal("HTTP-01 path answered with challenge = tls-alpn-01")
	}
}
