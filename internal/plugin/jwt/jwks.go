package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
)

const (
	defaultJWKSRefresh = 10 * time.Minute
	// minKidRefresh bounds refreshes triggered by tokens with an unknown
	// kid (key rotation), so random kids cannot hammer the JWKS endpoint.
	minKidRefresh = 30 * time.Second
	jwksTimeout   = 10 * time.Second
	maxJWKSBytes  = 1 << 20
)

var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwk is one usable key of a key set.
type jwk struct {
	key any
	alg string // "" = any algorithm that fits the key type
}

// keySet is a JSON Web Key Set (RFC 7517) from a file or URL, refreshed in
// the background. Lookups read one atomic pointer.
type keySet struct {
	source string
	isURL  bool
	client *http.Client
	logger *slog.Logger
	keys   atomic.Pointer[map[string]jwk] // kid -> key ("" for a key without kid)

	lastFetch  atomic.Int64 // unix nanos of the last fetch attempt
	kidRefresh time.Duration
	fetching   atomic.Bool
	stop       chan struct{}
	stopOnce   sync.Once
	done       chan struct{}
}

// newKeySet loads source once and starts the refresher. A file that cannot
// be read or parsed is a config error; a URL that cannot be fetched yet is
// logged and retried (tokens get 401 until keys arrive), so an identity
// provider that is down does not stop the proxy from starting.
func newKeySet(source string, refresh time.Duration, logger *slog.Logger) (*keySet, error) {
	ks := &keySet{source: source, logger: logger, kidRefresh: minKidRefresh, stop: make(chan struct{}), done: make(chan struct{})}
	ks.isURL = strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://")
	empty := map[string]jwk{}
	ks.keys.Store(&empty)
	if ks.isURL {
		ks.client = &http.Client{Timeout: jwksTimeout, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute,
			TLSHandshakeTimeout: jwksTimeout, ResponseHeaderTimeout: jwksTimeout,
		}}
	}
	if err := ks.fetch(); err != nil {
		if !ks.isURL {
			return nil, err
		}
		ks.warn("jwt: jwks not loaded yet, retrying", err)
	}
	go ks.loop(refresh)
	return ks, nil
}

func (ks *keySet) warn(msg string, err error) {
	if ks.logger != nil {
		ks.logger.Warn(msg, "jwks", ks.source, "error", err)
	}
}

func (ks *keySet) loop(refresh time.Duration) {
	defer close(ks.done)
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		select {
		case <-ks.stop:
			return
		case <-t.C:
			if err := ks.fetch(); err != nil {
				ks.warn("jwt: jwks refresh failed, keeping the previous keys", err)
			}
		}
	}
}

func (ks *keySet) close() {
	ks.stopOnce.Do(func() { close(ks.stop) })
	<-ks.done
	if ks.client != nil {
		ks.client.CloseIdleConnections()
	}
}

// fetch loads and parses the set, replacing the keys on success.
func (ks *keySet) fetch() error {
	ks.lastFetch.Store(time.Now().UnixNano())
	var data []byte
	var err error
	if ks.isURL {
		data, err = ks.get()
	} else {
		data, err = os.ReadFile(ks.source)
	}
	if err != nil {
		return err
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return fmt.Errorf("%s: %w", ks.source, err)
	}
	ks.keys.Store(&keys)
	return nil
}

func (ks *keySet) get() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
	defer cancel()
	go func() {
		select {
		case <-ks.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.source, nil)
	if err != nil {
		return nil, err
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", ks.source, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
}

// refreshSoon fetches in the background when a token names an unknown kid,
// at most once per minKidRefresh.
func (ks *keySet) refreshSoon() {
	if time.Since(time.Unix(0, ks.lastFetch.Load())) < ks.kidRefresh || !ks.fetching.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer ks.fetching.Store(false)
		select {
		case <-ks.stop:
			return
		default:
		}
		if err := ks.fetch(); err != nil {
			ks.warn("jwt: jwks refresh failed", err)
		}
	}()
}

// keyFunc picks the key named by the token's kid (or the only key when the
// token has no kid) and checks a key's own "alg".
func (ks *keySet) keyFunc(t *jwtlib.Token) (any, error) {
	keys := *ks.keys.Load()
	kid, _ := t.Header["kid"].(string)
	k, ok := keys[kid]
	if !ok && kid == "" && len(keys) == 1 {
		for _, only := range keys {
			k, ok = only, true
		}
	}
	if !ok {
		if kid != "" {
			ks.refreshSoon()
		}
		return nil, errors.New("unknown key id")
	}
	if k.alg != "" && t.Method.Alg() != k.alg {
		return nil, errors.New("algorithm does not match the key")
	}
	return k.key, nil
}

type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a key set, keeping the signature keys it understands
// (RSA, EC P-256/384/521, OKP Ed25519). A set with no usable key is an error.
func parseJWKS(data []byte) (map[string]jwk, error) {
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("invalid JWKS: %w", err)
	}
	keys := map[string]jwk{}
	for _, r := range set.Keys {
		if r.Use != "" && r.Use != "sig" {
			continue
		}
		key, err := r.publicKey()
		if err != nil {
			continue // unknown kinds are skipped, as RFC 7517 5 asks
		}
		keys[r.Kid] = jwk{key: key, alg: r.Alg}
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signature key in the JWKS")
	}
	return keys, nil
}

func (r *rawJWK) publicKey() (any, error) {
	b64 := base64.RawURLEncoding
	switch r.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(r.N)
		e, err2 := b64.DecodeString(r.E)
		if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		var exp int
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case "EC":
		var curve elliptic.Curve
		switch r.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, errors.New("unsupported curve")
		}
		x, err1 := b64.DecodeString(r.X)
		y, err2 := b64.DecodeString(r.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC key")
		}
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "OKP":
		x, err := b64.DecodeString(r.X)
		if r.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, errors.New("unsupported key type")
}
