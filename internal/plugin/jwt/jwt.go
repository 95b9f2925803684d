// Package jwt is the jwt plugin: the request must carry a JSON Web Token
// (RFC 7519) signed with the configured secret (HS256/384/512) or public key
// (RS*, PS*, ES*, EdDSA), with valid exp/nbf and, when configured, the
// expected issuer and audience; otherwise 401. Chosen claims can be handed
// to the upstream as request headers.
//
// The algorithm allow-list is fixed at build from the key type (or the
// algorithms key, checked against the key type), so a token can never pick
// its own verification method: "alg":"none" and HS256-with-a-public-key
// (algorithm confusion) are refused.
package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "jwt"

// maxTokenLen bounds the token we try to parse (8 KB is far beyond any
// sane JWT and well under header limits).
const maxTokenLen = 8 << 10

// Options is the [plugins.NAME] table.
type Options struct {
	// Secret is the HMAC key (HS256, HS384, HS512).
	Secret string `toml:"secret"`
	// PublicKey is a PEM file (PKIX public key, PKCS#1 RSA key or a
	// certificate) holding an RSA, ECDSA or Ed25519 key.
	PublicKey string `toml:"public_key"`
	// JWKS is a JSON Web Key Set: an http(s) URL or a file, reloaded every
	// JWKSRefresh and when a token names an unknown kid (at most every 30s).
	JWKS        string          `toml:"jwks"`
	JWKSRefresh config.Duration `toml:"jwks_refresh"`
	// Algorithms restricts the accepted "alg" values; default: every
	// algorithm of the key type.
	Algorithms []string `toml:"algorithms"`
	// Header carries the token, with a "Bearer " scheme (default
	// "Authorization"). Query and Cookie name further sources, tried in the
	// order header, query, cookie.
	Header   string          `toml:"header"`
	Query    string          `toml:"query"`
	Cookie   string          `toml:"cookie"`
	Issuer   string          `toml:"issuer"`
	Audience string          `toml:"audience"`
	Leeway   config.Duration `toml:"leeway"`
	// ForwardClaims maps a claim name to the upstream request header that
	// receives its value. The header is always removed from the client's
	// request first, so a client cannot forge it.
	ForwardClaims map[string]string `toml:"forward_claims"`
}

type forward struct {
	claim, header string
}

// JWT is a built jwt plugin.
type JWT struct {
	header, query, cookie string
	parser                *jwtlib.Parser
	keyFunc               jwtlib.Keyfunc
	forward               []forward
	jwks                  *keySet
	leeway                time.Duration
	cache                 *tokenCache
	now                   func() time.Time // time.Now; tests move it
}

var (
	_ plugin.Plugin = (*JWT)(nil)
	_ plugin.Closer = (*JWT)(nil)
)

var (
	hmacAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Algs = []string{"EdDSA"}
)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	var key any
	var algs []string
	set := 0
	for _, v := range []string{o.Secret, o.PublicKey, o.JWKS} {
		if v != "" {
			set++
		}
	}
	switch {
	case set > 1:
		return nil, errors.New("secret: set only one of secret, public_key and jwks")
	case o.Secret != "":
		key, algs = []byte(o.Secret), hmacAlgs
	case o.PublicKey != "":
		var err error
		key, algs, err = loadPublicKey(o.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("public_key: %w", err)
		}
	case o.JWKS != "":
		algs = asymmetricAlgs
	default:
		return nil, errors.New("secret: one of secret, public_key or jwks is required")
	}
	if o.JWKSRefresh.D() != 0 && (o.JWKS == "" || o.JWKSRefresh.D() < time.Minute) {
		return nil, errors.New("jwks_refresh: needs jwks and at least 1m")
	}
	if len(o.Algorithms) > 0 {
		for _, a := range o.Algorithms {
			if strings.EqualFold(a, "none") {
				return nil, errors.New(`algorithms: "none" is never accepted`)
			}
			if !contains(algs, a) {
				return nil, fmt.Errorf("algorithms: %q does not fit the key (allowed: %s)", a, strings.Join(algs, ", "))
			}
		}
		algs = o.Algorithms
	}
	p := &JWT{header: o.Header, query: o.Query, cookie: o.Cookie, leeway: o.Leeway.D(), cache: newTokenCache(), now: time.Now}
	if p.header == "" {
		p.header = "Authorization"
	}
	if !httpx.ValidToken(p.header) {
		return nil, fmt.Errorf("header: invalid header name %q", p.header)
	}
	if o.Cookie != "" && !httpx.ValidToken(o.Cookie) {
		return nil, fmt.Errorf("cookie: invalid cookie name %q", o.Cookie)
	}
	if o.Leeway.D() > 24*time.Hour {
		return nil, errors.New("leeway: must be at most one day")
	}
	popts := []jwtlib.ParserOption{
		jwtlib.WithValidMethods(algs),
		jwtlib.WithLeeway(o.Leeway.D()),
		jwtlib.WithJSONNumber(),
		jwtlib.WithTimeFunc(func() time.Time { return p.now() }),
	}
	if o.Issuer != "" {
		popts = append(popts, jwtlib.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwtlib.WithAudience(o.Audience))
	}
	p.parser = jwtlib.NewParser(popts...)
	p.keyFunc = func(*jwtlib.Token) (any, error) { return key, nil }
	for claim, h := range o.ForwardClaims {
		if claim == "" {
			return nil, errors.New("forward_claims: empty claim name")
		}
		if !httpx.ValidToken(h) {
			return nil, fmt.Errorf("forward_claims: %s: invalid header name %q", claim, h)
		}
		p.forward = append(p.forward, forward{claim: claim, header: h})
	}
	sort.Slice(p.forward, func(i, j int) bool { return p.forward[i].claim < p.forward[j].claim })
	if o.JWKS != "" {
		// Last: it may start a goroutine, so nothing may fail after it.
		refresh := o.JWKSRefresh.D()
		if refresh == 0 {
			refresh = defaultJWKSRefresh
		}
		ks, err := newKeySet(o.JWKS, refresh, env.Logger)
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		p.jwks = ks
		p.keyFunc = ks.keyFunc
	}
	return p, nil
}

// Close stops the JWKS refresher.
func (p *JWT) Close() error {
	if p.jwks != nil {
		p.jwks.close()
	}
	return nil
}

// loadPublicKey reads a PEM file and returns the key and the algorithms
// that fit it.
func loadPublicKey(path string) (any, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", path)
	}
	var pub any
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		pub = cert.PublicKey
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return k, rsaAlgs, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
		return nil, nil, fmt.Errorf("%s: unsupported ECDSA curve", path)
	case ed25519.PublicKey:
		return k, ed25519Algs, nil
	}
	return nil, nil, fmt.Errorf("%s: unsupported key type %T", path, pub)
}

// Request verifies the token.
func (p *JWT) Request(c *httpx.Ctx) bool {
	raw := p.token(c)
	if raw == "" {
		c.Error(401, "missing token")
		return true
	}
	if len(raw) > maxTokenLen {
		c.Error(401, "invalid token")
		return true
	}
	now := p.now()
	// Hash through the per-request scratch buffer: []byte(raw) would
	// allocate a copy of the token.
	c.Scratch = append(c.Scratch[:0], raw...)
	key := sha256.Sum256(c.Scratch)
	if e := p.cache.get(&key, now.UnixNano()); e != nil {
		p.forwardClaims(c, e.claims)
		return false
	}
	tok, err := p.parser.Parse(raw, p.keyFunc)
	if err != nil || !tok.Valid {
		msg := "invalid token"
		switch {
		case errors.Is(err, jwtlib.ErrTokenExpired):
			msg = "token expired"
		case errors.Is(err, jwtlib.ErrTokenNotValidYet):
			msg = "token not valid yet"
		}
		c.Error(401, msg)
		return true
	}
	claims, _ := tok.Claims.(jwtlib.MapClaims)
	e := &cached{expires: now.Add(cacheTTL).UnixNano()}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		if t := exp.Add(p.leeway).UnixNano(); t < e.expires {
			e.expires = t
		}
	}
	if len(p.forward) > 0 {
		e.claims = make([]claimVal, len(p.forward))
		for i, f := range p.forward {
			e.claims[i].v, e.claims[i].ok = claimString(claims[f.claim])
		}
	}
	p.cache.put(&key, e)
	p.forwardClaims(c, e.claims)
	return false
}

// forwardClaims sets the forward_claims headers on the upstream request,
// removing the client's own values first.
func (p *JWT) forwardClaims(c *httpx.Ctx, vals []claimVal) {
	for i, f := range p.forward {
		c.Req.Header.Del(f.header)
		if vals[i].ok {
			c.Req.Header.Set(f.header, vals[i].v)
		}
	}
}

// token finds the token: header (with an optional "Bearer " scheme), then
// query parameter, then cookie.
func (p *JWT) token(c *httpx.Ctx) string {
	if v := strings.TrimSpace(c.Req.Header.Get(p.header)); v != "" {
		const bearer = "bearer "
		if len(v) > len(bearer) && httpx.EqualFold(v[:len(bearer)], bearer) {
			return strings.TrimSpace(v[len(bearer):])
		}
		// In Authorization another scheme (Basic) is not our token; in a
		// header of its own the token may come bare.
		if !httpx.EqualFold(p.header, "Authorization") {
			return v
		}
	}
	if p.query != "" {
		if v := queryValue(c.Req.RawQuery, p.query); v != "" {
			return v
		}
	}
	if p.cookie != "" {
		if v, _ := httpx.CookieValue(&c.Req.Header, p.cookie); v != "" {
			return v
		}
	}
	return ""
}

// claimString renders a claim value as a header value: strings as they
// are, numbers in their JSON form, other values as compact JSON. Values
// with control characters are dropped (they cannot be header values).
func claimString(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		s = x
	case json.Number:
		s = x.String()
	case bool:
		s = strconv.FormatBool(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		s = string(b)
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return "", false
		}
	}
	return s, true
}

func queryValue(raw, name string) string {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return ""
			}
			return u
		}
		return v
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
