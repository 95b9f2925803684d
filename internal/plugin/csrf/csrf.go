// Package csrf is the csrf plugin: double-submit tokens signed by the
// proxy. GET token_path answers {"token": "..."} and sets the same token as
// a cookie; a state-changing request (POST, PUT, PATCH, DELETE) must send
// the token back in the header called name, equal to the cookie of that
// name, with a valid signature and not expired; otherwise 403.
//
// A token is base64url(nonce[16] | expiry[8] | HMAC-SHA256(key, nonce|expiry)):
// stateless, so every instance sharing the key accepts it. Other sites
// cannot read the cookie nor the token-path answer (same-origin policy), so
// they cannot produce the header.
package csrf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "csrf"

const (
	defaultTokenPath = "/csrf-token"
	defaultName      = "X-CSRF-Token"
	defaultTTL       = time.Hour

	nonceLen = 16
	rawLen   = nonceLen + 8 + sha256.Size
)

// tokenLen is the length of the encoded token.
var tokenLen = base64.RawURLEncoding.EncodedLen(rawLen)

// Options is the [plugins.NAME] table.
type Options struct {
	// Key is the signing secret (use 32 random bytes or more).
	Key       string          `toml:"key"`
	TokenPath string          `toml:"token_path"`
	Name      string          `toml:"name"`
	TTL       config.Duration `toml:"ttl"`
}

// CSRF is a built csrf plugin.
type CSRF struct {
	tokenPath string
	name      string
	ttl       time.Duration
	maxAge    string    // ttl in seconds, for Set-Cookie
	signers   sync.Pool // *signer
	now       func() time.Time
}

var _ plugin.Plugin = (*CSRF)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	if o.Key == "" {
		return nil, errors.New("key: a signing secret is required")
	}
	p := &CSRF{tokenPath: o.TokenPath, name: o.Name, ttl: o.TTL.D(), now: time.Now}
	if p.tokenPath == "" {
		p.tokenPath = defaultTokenPath
	}
	if p.tokenPath[0] != '/' {
		return nil, fmt.Errorf("token_path: %q must start with /", o.TokenPath)
	}
	if p.name == "" {
		p.name = defaultName
	}
	if !httpx.ValidToken(p.name) {
		return nil, fmt.Errorf("name: %q is not a valid header and cookie name", p.name)
	}
	if p.ttl == 0 {
		p.ttl = defaultTTL
	}
	if p.ttl < time.Second {
		return nil, fmt.Errorf("ttl: %s is shorter than 1s", p.ttl)
	}
	p.maxAge = strconv.FormatInt(int64(p.ttl/time.Second), 10)
	key := []byte(o.Key)
	p.signers.New = func() any { return &signer{mac: hmac.New(sha256.New, key)} }
	return p, nil
}

// Request issues tokens on token_path and checks unsafe methods.
func (p *CSRF) Request(c *httpx.Ctx) bool {
	switch c.Req.Method {
	case "GET":
		if c.Req.Path == p.tokenPath {
			p.issue(c)
			return true
		}
	case "POST", "PUT", "PATCH", "DELETE":
		header := c.Req.Header.Get(p.name)
		cookie, _ := httpx.CookieValue(&c.Req.Header, p.name)
		if header == "" || !equalCT(header, cookie) || !p.Valid(cookie) {
			c.Error(403, "invalid CSRF token")
			return true
		}
	}
	return false
}

func (p *CSRF) issue(c *httpx.Ctx) {
	tok := p.NewToken()
	b := c.Scratch[:0]
	b = append(b, p.name...)
	b = append(b, '=')
	b = append(b, tok...)
	b = append(b, "; Path=/; Max-Age="...)
	b = append(b, p.maxAge...)
	b = append(b, "; HttpOnly; SameSite=Strict"...)
	if c.Scheme == "https" {
		b = append(b, "; Secure"...)
	}
	cookie := string(b)
	c.Scratch = b
	body := make([]byte, 0, len(tok)+12)
	body = append(body, `{"token":"`...)
	body = append(body, tok...)
	body = append(body, `"}`...)
	c.Send(200, "application/json", body)
	c.Resp.Header.Add("Set-Cookie", cookie)
	c.Resp.Header.Set("Cache-Control", "no-store")
}

// signer is a pooled HMAC with scratch space: slices handed to hash.Hash
// (an interface) escape, so they live here instead of on each call's heap.
type signer struct {
	mac hash.Hash
	raw [rawLen + 2]byte
	src [128]byte
	sum [sha256.Size]byte
}

// NewToken returns a fresh signed token valid for ttl.
func (p *CSRF) NewToken() string {
	s := p.signers.Get().(*signer)
	defer p.signers.Put(s)
	raw := s.raw[:rawLen]
	rand.Read(raw[:nonceLen])
	binary.BigEndian.PutUint64(raw[nonceLen:], uint64(p.now().Add(p.ttl).Unix()))
	s.mac.Reset()
	s.mac.Write(raw[:nonceLen+8])
	s.mac.Sum(raw[:nonceLen+8])
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Valid reports whether tok is a token signed with our key and not expired.
func (p *CSRF) Valid(tok string) bool {
	if len(tok) != tokenLen {
		return false
	}
	s := p.signers.Get().(*signer)
	defer p.signers.Put(s)
	n, err := base64.RawURLEncoding.Decode(s.raw[:], s.src[:copy(s.src[:], tok)])
	if err != nil || n != rawLen {
		return false
	}
	s.mac.Reset()
	s.mac.Write(s.raw[:nonceLen+8])
	if !hmac.Equal(s.mac.Sum(s.sum[:0]), s.raw[nonceLen+8:rawLen]) {
		return false
	}
	exp := int64(binary.BigEndian.Uint64(s.raw[nonceLen:]))
	return p.now().Unix() < exp
}

// equalCT compares a and b in time that depends only on their lengths.
func equalCT(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}
