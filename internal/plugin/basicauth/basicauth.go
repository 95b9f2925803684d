// Package basicauth is the basic_auth plugin: HTTP Basic authentication
// (RFC 7617) against a list of users with plain or bcrypt passwords; 401
// with WWW-Authenticate otherwise.
//
// Plain passwords are compared as SHA-256 digests of "name:password" in
// constant time against every user. bcrypt is deliberately slow (tens of
// milliseconds), so a successful bcrypt verification is remembered for
// cacheTTL keyed by a SHA-256 of the presented credentials: a hot client
// pays bcrypt once per cacheTTL, and a wrong password is never cached.
package basicauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "basic_auth"

const (
	defaultRealm = "pingap"
	// cacheTTL bounds how long a verified bcrypt credential is trusted
	// without re-running bcrypt; cacheMax bounds the cache's memory.
	cacheTTL = time.Minute
	cacheMax = 4096
	// maxCredentials bounds the decoded credentials we look at.
	maxCredentials = 512
)

// Options is the [plugins.NAME] table.
type Options struct {
	// Users are "name:password" or "name:$2a$..." (bcrypt) entries.
	Users []string `toml:"users"`
	Realm string   `toml:"realm"`
	// HideCredentials strips Authorization before the upstream (default true).
	HideCredentials *bool `toml:"hide_credentials"`
}

type user struct {
	name [sha256.Size]byte // SHA-256 of the name
	// plain is SHA-256("name:password") for plain users.
	plain [sha256.Size]byte
	// hash is the bcrypt hash for bcrypt users, nil otherwise.
	hash []byte
}

// BasicAuth is a built basic_auth plugin.
type BasicAuth struct {
	users     []user
	hasBcrypt bool
	decoy     int // a bcrypt user whose hash unknown names are checked against
	hide      bool
	challenge string // WWW-Authenticate value

	now     func() time.Time
	compare func(hash, password []byte) error // bcrypt.CompareHashAndPassword
	mu      sync.Mutex
	cache   map[[sha256.Size]byte]time.Time // credential digest -> expiry
}

var _ plugin.Plugin = (*BasicAuth)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &BasicAuth{hide: true, now: time.Now, compare: bcrypt.CompareHashAndPassword, cache: make(map[[sha256.Size]byte]time.Time)}
	if o.HideCredentials != nil {
		p.hide = *o.HideCredentials
	}
	realm := o.Realm
	if realm == "" {
		realm = defaultRealm
	}
	for i := 0; i < len(realm); i++ {
		if b := realm[i]; b < 0x20 || b == 0x7f || b == '"' || b == '\\' {
			return nil, fmt.Errorf("realm: %q must not contain quotes, backslashes or control characters", realm)
		}
	}
	p.challenge = `Basic realm="` + realm + `", charset="UTF-8"`
	if len(o.Users) == 0 {
		return nil, errors.New("users: at least one \"name:password\" entry is required")
	}
	seen := map[string]bool{}
	for i, entry := range o.Users {
		name, pass, ok := strings.Cut(entry, ":")
		if !ok || name == "" || pass == "" {
			return nil, fmt.Errorf("users: entry %d must be \"name:password\" or \"name:$2a$...\" (bcrypt)", i)
		}
		if seen[name] {
			return nil, fmt.Errorf("users: duplicate user %q", name)
		}
		seen[name] = true
		u := user{name: sha256.Sum256([]byte(name))}
		if isBcrypt(pass) {
			if _, err := bcrypt.Cost([]byte(pass)); err != nil {
				return nil, fmt.Errorf("users: entry %d (%s): invalid bcrypt hash: %w", i, name, err)
			}
			u.hash = []byte(pass)
			if !p.hasBcrypt {
				p.decoy = len(p.users)
			}
			p.hasBcrypt = true
		} else {
			u.plain = sha256.Sum256([]byte(entry))
		}
		p.users = append(p.users, u)
	}
	return p, nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// Request checks the credentials.
func (p *BasicAuth) Request(c *httpx.Ctx) bool {
	if !p.check(c.Req.Header.Get("Authorization")) {
		c.Error(401, "unauthorized")
		c.Resp.Header.Set("WWW-Authenticate", p.challenge)
		return true
	}
	if p.hide {
		c.Req.Header.Del("Authorization")
	}
	return false
}

func (p *BasicAuth) check(auth string) bool {
	const prefix = "basic "
	if len(auth) <= len(prefix) || !httpx.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	enc := strings.TrimSpace(auth[len(prefix):])
	var buf [maxCredentials]byte
	var src [maxCredentials/3*4 + 4]byte // a stack copy: []byte(enc) would be heap-allocated
	if base64.StdEncoding.DecodedLen(len(enc)) > len(buf) || len(enc) > len(src) {
		return false
	}
	n, err := base64.StdEncoding.Decode(buf[:], src[:copy(src[:], enc)])
	if err != nil {
		return false
	}
	cred := buf[:n]
	colon := -1
	for i, b := range cred {
		if b == ':' {
			colon = i
			break
		}
	}
	if colon < 0 {
		return false
	}
	digest := sha256.Sum256(cred)
	// Plain users: the digest of "name:password" against every one of them,
	// without an early exit.
	var plainOK int
	for i := range p.users {
		if u := &p.users[i]; u.hash == nil {
			plainOK |= subtle.ConstantTimeCompare(digest[:], u.plain[:])
		}
	}
	// bcrypt users: find the one with this name (also without early exit).
	match := -1
	if p.hasBcrypt && plainOK != 1 {
		name := sha256.Sum256(cred[:colon])
		for i := range p.users {
			u := &p.users[i]
			if u.hash != nil && subtle.ConstantTimeCompare(name[:], u.name[:]) == 1 {
				match = i
			}
		}
	}
	if plainOK == 1 {
		return true
	}
	if match < 0 {
		if p.hasBcrypt {
			// An unknown name costs the same bcrypt as a wrong password,
			// so timing does not tell which names exist; the result is
			// ignored (the password may well be that user's).
			_ = p.compare(p.users[p.decoy].hash, cred[colon+1:])
		}
		return false
	}
	if p.cached(digest) {
		return true
	}
	if p.compare(p.users[match].hash, cred[colon+1:]) != nil {
		return false
	}
	p.remember(digest)
	return true
}

func (p *BasicAuth) cached(d [sha256.Size]byte) bool {
	now := p.now()
	p.mu.Lock()
	exp, ok := p.cache[d]
	p.mu.Unlock()
	return ok && now.Before(exp)
}

func (p *BasicAuth) remember(d [sha256.Size]byte) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.cache) >= cacheMax {
		for k, exp := range p.cache {
			if !now.Before(exp) {
				delete(p.cache, k)
			}
		}
		if len(p.cache) >= cacheMax {
			clear(p.cache)
		}
	}
	p.cache[d] = now.Add(cacheTTL)
}
