package jwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// FuzzJWTParse feeds arbitrary token strings through the plugin: it must
// never panic, and a request it lets through must carry a valid HMAC
// signature by the configured secret.
func FuzzJWTParse(f *testing.F) {
	valid := sign(f, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
	f.Add(valid)
	f.Add(valid + "x")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("....")
	f.Add("")
	p, err := New(plugin.Env{}, map[string]any{"secret": secret, "forward_claims": map[string]any{"sub": "X-Sub"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c := plugintest.NewCtx("GET", "/")
		c.Req.Header.Add("Authorization", "Bearer "+tok)
		res := plugintest.Run(c, plugintest.Upstream{}, p)
		if !res.Upstream {
			if res.Status != 401 {
				t.Fatalf("refusal status %d", res.Status)
			}
			return
		}
		if !validHMAC(strings.TrimSpace(tok)) {
			t.Fatalf("token %q passed without a valid signature", tok)
		}
	})
}

// validHMAC checks the signature of tok independently of the library.
func validHMAC(tok string) bool {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		return false
	}
	for _, h := range []func() hash.Hash{sha256.New, sha512.New384, sha512.New} {
		m := hmac.New(h, []byte(secret))
		m.Write([]byte(tok[:i]))
		if hmac.Equal(m.Sum(nil), sig) {
			return true
		}
	}
	return false
}
