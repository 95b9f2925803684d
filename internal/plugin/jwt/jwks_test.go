package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	raw, _ := k.Bytes() // 0x04 | x | y
	size := (len(raw) - 1) / 2
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:])}
}

func signKid(t testing.TB, m jwtlib.SigningMethod, key any, kid string) string {
	tok := jwtlib.NewWithClaims(m, jwtlib.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer serves a key set that the test can replace (key rotation).
type jwksServer struct {
	mu   sync.Mutex
	keys []map[string]any
	hits int
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
}

func (s *jwksServer) set(keys ...map[string]any) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func TestJWKS(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	srv := &jwksServer{}
	srv.set(rsaJWK("r1", &rsaKey.PublicKey), ecJWK("e1", &ecKey.PublicKey),
		map[string]any{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, // skipped
		map[string]any{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(edKey.Public().(ed25519.PublicKey))})
	hs := httptest.NewServer(srv)
	defer hs.Close()

	pp, err := New(plugin.Env{}, map[string]any{"jwks": hs.URL + "/.well-known/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	p := pp.(*JWT)
	defer p.Close()
	run := func(tok string) int {
		return plugintest.Run(plugintest.NewCtx("GET", "/", "Authorization: Bearer "+tok), plugintest.Upstream{}, p).Status
	}
	for name, tc := range map[string]struct {
		tok  string
		want int
	}{
		"rsa kid":             {signKid(t, jwtlib.SigningMethodRS256, rsaKey, "r1"), 200},
		"ec kid":              {signKid(t, jwtlib.SigningMethodES256, ecKey, "e1"), 200},
		"ed kid":              {signKid(t, jwtlib.SigningMethodEdDSA, edKey, "ed"), 200},
		"wrong kid for key":   {signKid(t, jwtlib.SigningMethodRS256, rsaKey, "e1"), 401},
		"no kid, several":     {signKid(t, jwtlib.SigningMethodRS256, rsaKey, ""), 401},
		"hmac with oct kid":   {signKid(t, jwtlib.SigningMethodHS256, []byte("secret"), "sym"), 401},
		"unknown kid":         {signKid(t, jwtlib.SigningMethodRS256, rotated, "r2"), 401},
		"ec key alg mismatch": {signKid(t, jwtlib.SigningMethodES384, mustEC384(t), "e1"), 401},
	} {
		if got := run(tc.tok); got != tc.want {
			t.Errorf("%s: status %d, want %d", name, got, tc.want)
		}
	}

	// Rotation: the provider publishes r2; a token with kid r2 triggers a
	// refresh and passes once it has landed.
	srv.set(rsaJWK("r2", &rotated.PublicKey))
	p.jwks.kidRefresh = 0
	tok := signKid(t, jwtlib.SigningMethodRS256, rotated, "r2")
	deadline := time.Now().Add(10 * time.Second)
	for run(tok) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("rotated key never accepted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustEC384(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestJWKSFile(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	data, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK("", &rsaKey.PublicKey)}})
	os.WriteFile(path, data, 0o600)
	pp, err := New(plugin.Env{}, map[string]any{"jwks": path, "jwks_refresh": "1h", "algorithms": []any{"RS256"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pp.(plugin.Closer).Close()
	tok := signKid(t, jwtlib.SigningMethodRS256, rsaKey, "")
	if st := plugintest.Run(plugintest.NewCtx("GET", "/", "Authorization: Bearer "+tok), plugintest.Upstream{}, pp).Status; st != 200 {
		t.Fatalf("status %d", st)
	}
	tok = signKid(t, jwtlib.SigningMethodPS256, rsaKey, "")
	if st := plugintest.Run(plugintest.NewCtx("GET", "/", "Authorization: Bearer "+tok), plugintest.Upstream{}, pp).Status; st != 401 {
		t.Fatalf("PS256 outside algorithms: status %d", st)
	}

	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, []byte(`{"keys":[{"kty":"oct","k":"x"}]}`), 0o600)
	for _, opts := range []map[string]any{
		{"jwks": filepath.Join(dir, "missing.json")},
		{"jwks": empty},
		{"jwks": path, "secret": "x"},
		{"jwks": path, "algorithms": []any{"HS256"}},
		{"jwks": path, "jwks_refresh": "1s"},
		{"secret": "x", "jwks_refresh": "1h"},
	} {
		p, err := New(plugin.Env{}, opts)
		if err == nil {
			p.(plugin.Closer).Close()
			t.Errorf("%v: no error", opts)
			continue
		}
		if !strings.Contains(err.Error(), "jwks") && !strings.Contains(err.Error(), "algorithms") && !strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: %v does not name the key", opts, err)
		}
	}
}

func TestJWKSUnreachableStarts(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	pp, err := New(plugin.Env{}, map[string]any{"jwks": url + "/jwks"})
	if err != nil {
		t.Fatalf("an unreachable JWKS URL must not be a config error: %v", err)
	}
	defer pp.(plugin.Closer).Close()
	if st := plugintest.Run(plugintest.NewCtx("GET", "/", "Authorization: Bearer a.b.c"), plugintest.Upstream{}, pp).Status; st != 401 {
		t.Fatalf("status %d", st)
	}
}
