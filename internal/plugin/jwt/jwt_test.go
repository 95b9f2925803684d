package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

const secret = "s3cret-s3cret-s3cret"

func sign(t testing.TB, m jwtlib.SigningMethod, key any, claims jwtlib.MapClaims) string {
	t.Helper()
	s, err := jwtlib.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writePEM(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJWT(t *testing.T) {
	now := time.Now()
	valid := jwtlib.MapClaims{"sub": "u1", "exp": now.Add(time.Hour).Unix(), "iss": "me", "aud": "api", "admin": true, "n": 42, "roles": []string{"a", "b"}}
	hs := sign(t, jwtlib.SigningMethodHS256, []byte(secret), valid)
	hs512 := sign(t, jwtlib.SigningMethodHS512, []byte(secret), valid)
	otherKey := sign(t, jwtlib.SigningMethodHS256, []byte("other"), valid)
	expired := sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"exp": now.Add(-time.Minute).Unix()})
	expiredLeeway := sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"exp": now.Add(-5 * time.Second).Unix()})
	notYet := sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"nbf": now.Add(time.Hour).Unix()})
	wrongIss := sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"iss": "you", "aud": "api"})
	wrongAud := sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"iss": "me", "aud": "web"})
	none := sign(t, jwtlib.SigningMethodNone, jwtlib.UnsafeAllowNoneSignatureType, valid)
	// "alg":"none" with a signature part copied from a valid token.
	parts := strings.Split(hs, ".")
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	noneForged := noneHeader + "." + parts[1] + "." + parts[2]

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaPath := writePEM(t, &rsaKey.PublicKey)
	ecPath := writePEM(t, &ecKey.PublicKey)
	edPath := writePEM(t, edKey.Public())
	rs := sign(t, jwtlib.SigningMethodRS256, rsaKey, valid)
	ps := sign(t, jwtlib.SigningMethodPS384, rsaKey, valid)
	es := sign(t, jwtlib.SigningMethodES256, ecKey, valid)
	ed := sign(t, jwtlib.SigningMethodEdDSA, edKey, valid)
	// Algorithm confusion: HS256 signed with the RSA public key's PEM bytes.
	pemBytes, _ := os.ReadFile(rsaPath)
	confused := sign(t, jwtlib.SigningMethodHS256, pemBytes, valid)

	hsOpts := map[string]any{"secret": secret}
	tests := []struct {
		name    string
		opts    map[string]any
		target  string
		headers []string
		status  int
		up      map[string]string // upstream headers expected ("" = absent)
	}{
		{name: "hs256 ok", opts: hsOpts, headers: []string{"Authorization: Bearer " + hs}, status: 200},
		{name: "hs512 ok", opts: hsOpts, headers: []string{"Authorization: bearer " + hs512}, status: 200},
		{name: "algorithms restrict", opts: map[string]any{"secret": secret, "algorithms": []any{"HS256"}}, headers: []string{"Authorization: Bearer " + hs512}, status: 401},
		{name: "missing", opts: hsOpts, status: 401},
		{name: "basic scheme", opts: hsOpts, headers: []string{"Authorization: Basic " + hs}, status: 401},
		{name: "malformed", opts: hsOpts, headers: []string{"Authorization: Bearer abc.def"}, status: 401},
		{name: "garbage", opts: hsOpts, headers: []string{"Authorization: Bearer ...."}, status: 401},
		{name: "wrong secret", opts: hsOpts, headers: []string{"Authorization: Bearer " + otherKey}, status: 401},
		{name: "expired", opts: hsOpts, headers: []string{"Authorization: Bearer " + expired}, status: 401},
		{name: "leeway covers", opts: map[string]any{"secret": secret, "leeway": "30s"}, headers: []string{"Authorization: Bearer " + expiredLeeway}, status: 200},
		{name: "leeway integer seconds", opts: map[string]any{"secret": secret, "leeway": 30}, headers: []string{"Authorization: Bearer " + expiredLeeway}, status: 200},
		{name: "not yet valid", opts: hsOpts, headers: []string{"Authorization: Bearer " + notYet}, status: 401},
		{name: "alg none", opts: hsOpts, headers: []string{"Authorization: Bearer " + none}, status: 401},
		{name: "alg none forged", opts: hsOpts, headers: []string{"Authorization: Bearer " + noneForged}, status: 401},
		{name: "issuer ok", opts: map[string]any{"secret": secret, "issuer": "me", "audience": "api"}, headers: []string{"Authorization: Bearer " + hs}, status: 200},
		{name: "issuer wrong", opts: map[string]any{"secret": secret, "issuer": "me"}, headers: []string{"Authorization: Bearer " + wrongIss}, status: 401},
		{name: "audience wrong", opts: map[string]any{"secret": secret, "audience": "api"}, headers: []string{"Authorization: Bearer " + wrongAud}, status: 401},
		{name: "custom header raw", opts: map[string]any{"secret": secret, "header": "X-Token"}, headers: []string{"X-Token: " + hs}, status: 200},
		{name: "query", opts: map[string]any{"secret": secret, "query": "token"}, target: "/?a=1&token=" + hs, status: 200},
		{name: "query wrong", opts: map[string]any{"secret": secret, "query": "token"}, target: "/?token=" + otherKey, status: 401},
		{name: "cookie", opts: map[string]any{"secret": secret, "cookie": "jwt"}, headers: []string{"Cookie: a=b; jwt=" + hs}, status: 200},
		{name: "cookie after basic header", opts: map[string]any{"secret": secret, "cookie": "jwt"}, headers: []string{"Authorization: Basic YTpi", "Cookie: jwt=" + hs}, status: 200},
		{name: "cookie absent", opts: map[string]any{"secret": secret, "cookie": "jwt"}, headers: []string{"Cookie: a=b"}, status: 401},
		{name: "rsa ok", opts: map[string]any{"public_key": rsaPath}, headers: []string{"Authorization: Bearer " + rs}, status: 200},
		{name: "rsa-pss ok", opts: map[string]any{"public_key": rsaPath}, headers: []string{"Authorization: Bearer " + ps}, status: 200},
		{name: "rsa algorithm confusion", opts: map[string]any{"public_key": rsaPath}, headers: []string{"Authorization: Bearer " + confused}, status: 401},
		{name: "rsa refuses hs", opts: map[string]any{"public_key": rsaPath}, headers: []string{"Authorization: Bearer " + hs}, status: 401},
		{name: "ecdsa ok", opts: map[string]any{"public_key": ecPath}, headers: []string{"Authorization: Bearer " + es}, status: 200},
		{name: "ecdsa refuses rsa", opts: map[string]any{"public_key": ecPath}, headers: []string{"Authorization: Bearer " + rs}, status: 401},
		{name: "ed25519 ok", opts: map[string]any{"public_key": edPath}, headers: []string{"Authorization: Bearer " + ed}, status: 200},
		{name: "forward claims", opts: map[string]any{"secret": secret, "forward_claims": map[string]any{"sub": "X-User", "admin": "X-Admin", "n": "X-N", "roles": "X-Roles", "missing": "X-Missing"}},
			headers: []string{"Authorization: Bearer " + hs, "X-Missing: forged", "X-User: forged"}, status: 200,
			up: map[string]string{"X-User": "u1", "X-Admin": "true", "X-N": "42", "X-Roles": `["a","b"]`, "X-Missing": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			target := tt.target
			if target == "" {
				target = "/"
			}
			res := plugintest.Run(plugintest.NewCtx("GET", target, tt.headers...), plugintest.Upstream{}, p)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d (%s)", res.Status, tt.status, res.Body)
			}
			if tt.status != 200 {
				if res.Upstream || !strings.HasPrefix(res.Body, `{"error":`) {
					t.Fatalf("refusal reached the upstream or lacks the JSON body: %q", res.Body)
				}
				return
			}
			for h, want := range tt.up {
				got, ok := res.UpstreamHeader.Lookup(h)
				if want == "" && ok {
					t.Errorf("upstream %s = %q, want absent", h, got)
				} else if want != "" && got != want {
					t.Errorf("upstream %s = %q, want %q", h, got, want)
				}
				if n := res.UpstreamHeader.Count(h); n > 1 {
					t.Errorf("upstream %s appears %d times", h, n)
				}
			}
		})
	}
}

func TestJWTConfigErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPath := writePEM(t, &ecKey.PublicKey)
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{}, "secret"},
		{map[string]any{"secret": "a", "public_key": ecPath}, "public_key"},
		{map[string]any{"public_key": filepath.Join(dir, "nope.pem")}, "public_key"},
		{map[string]any{"public_key": junk}, "public_key"},
		{map[string]any{"secret": "a", "algorithms": []any{"none"}}, "algorithms"},
		{map[string]any{"secret": "a", "algorithms": []any{"RS256"}}, "algorithms"},
		{map[string]any{"public_key": ecPath, "algorithms": []any{"ES384"}}, "algorithms"},
		{map[string]any{"secret": "a", "algorithms": "HS256"}, "algorithms"},
		{map[string]any{"secret": "a", "leeway": "soon"}, "leeway"},
		{map[string]any{"secret": "a", "leeway": "48h"}, "leeway"},
		{map[string]any{"secret": "a", "header": "bad header"}, "header"},
		{map[string]any{"secret": "a", "cookie": "a;b"}, "cookie"},
		{map[string]any{"secret": "a", "forward_claims": []any{"sub"}}, "forward_claims"},
		{map[string]any{"secret": "a", "forward_claims": map[string]any{"sub": "X User"}}, "forward_claims"},
		{map[string]any{"secret": "a", "issuer": 1}, "issuer"},
		{map[string]any{"secret": "a", "jwks": "x"}, "jwks"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func TestJWTCache(t *testing.T) {
	base := time.Now()
	pp, err := New(plugin.Env{}, map[string]any{"secret": secret, "leeway": "5s", "forward_claims": map[string]any{"sub": "X-User", "none": "X-None"}})
	if err != nil {
		t.Fatal(err)
	}
	p := pp.(*JWT)
	now := base
	p.now = func() time.Time { return now }
	withExp := sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"sub": "u1", "exp": base.Add(30 * time.Second).Unix()})
	noExp := sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"sub": "u2"})
	run := func(tok string) plugintest.Result {
		return plugintest.Run(plugintest.NewCtx("GET", "/", "Authorization: Bearer "+tok, "X-None: forged"), plugintest.Upstream{}, p)
	}
	for _, tok := range []string{withExp, noExp} {
		if res := run(tok); res.Status != 200 {
			t.Fatalf("first use: %d", res.Status)
		}
	}
	// From now on the signature check fails: only cached tokens pass.
	verify := p.keyFunc
	p.keyFunc = func(*jwtlib.Token) (any, error) { return nil, errors.New("key gone") }
	res := run(withExp)
	if res.Status != 200 || res.UpstreamHeader.Get("X-User") != "u1" || res.UpstreamHeader.Has("X-None") {
		t.Fatalf("cached token: %d, upstream %v", res.Status, res.UpstreamHeader.Fields())
	}
	if res := run(sign(t, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"sub": "new"})); res.Status != 401 {
		t.Fatalf("uncached token passed without a key: %d", res.Status)
	}
	// exp + leeway bounds the entry: at +34s it still holds, at +36s it is
	// re-checked (and expired).
	p.keyFunc = verify
	now = base.Add(34 * time.Second)
	if res := run(withExp); res.Status != 200 {
		t.Fatalf("within leeway: %d", res.Status)
	}
	now = base.Add(36 * time.Second)
	if res := run(withExp); res.Status != 401 || res.Body != `{"error":"token expired"}` {
		t.Fatalf("after exp+leeway: %d %s", res.Status, res.Body)
	}
	// Without exp, cacheTTL bounds the entry.
	p.keyFunc = func(*jwtlib.Token) (any, error) { return nil, errors.New("key gone") }
	now = base.Add(cacheTTL + time.Second)
	if res := run(noExp); res.Status != 401 {
		t.Fatalf("entry outlived cacheTTL: %d", res.Status)
	}
}
