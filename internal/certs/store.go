// Package certs owns the proxy's server certificates: PEM pairs named in the
// config ([certificates.NAME] and a server's tls_cert/tls_key), certificates
// obtained and renewed through ACME (RFC 8555), SNI selection, downstream
// client-certificate verification (client_ca) and the *tls.Config every TLS
// listener (HTTP/1.1, HTTP/2 and HTTP/3) is built with.
//
// Hot reload: a listener's *tls.Config is built once (TLSConfig) and never
// changes; every handshake asks the Store for the server's current settings
// through one atomic pointer (GetConfigForClient), so Update swaps
// certificates, SNI tables and client CAs for new handshakes without touching
// listeners, and established connections keep what they negotiated.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/config"
)

// ALPNProto is the ALPN protocol of TLS-ALPN-01 validation handshakes
// (RFC 8737). A server whose connection negotiated it must close the
// connection without reading a request: the validator only looks at the
// certificate.
const ALPNProto = "acme-tls/1"

// cipherSuites are the TLS 1.2 suites offered: forward-secret AEADs only.
// TLS 1.3 suites are not configurable in crypto/tls (all are modern).
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// nextProtos is the ALPN list of every TLS server: h2 preferred, then
// HTTP/1.1, and the ACME TLS-ALPN-01 protocol, which only validators offer
// (it is always listed so that switching [acme].challenge needs no new
// listener; a handshake offering it without a pending challenge fails).
var nextProtos = []string{"h2", "http/1.1", ALPNProto}

// MetricsHook receives a certificate's expiry each time one is loaded,
// obtained or renewed; the engine exports it as
// tls_certificate_expiry_seconds{name}. name is the [certificates] name, or
// "servers.NAME" for a server's own tls_cert. A zero notAfter means the
// certificate left the config: drop its series. It is called from Update
// and from ACME goroutines: it must be safe for concurrent use.
type MetricsHook func(name string, notAfter time.Time)

// Store holds the current certificates. Create it with NewStore, feed it
// every validated config with Update, and build each TLS listener's config
// with TLSConfig. Its methods are safe for concurrent use.
type Store struct {
	logger *slog.Logger
	hook   MetricsHook

	// state is what handshakes read: one atomic load per handshake.
	state atomic.Pointer[state]

	// mu serializes Update (and ACME's lifecycle changes).
	mu   sync.Mutex
	last *config.Config
	// names are the certificate names of the last config (see MetricsHook).
	names map[string]bool
	acme  *acmeManager
	// acmeLive is acme for the request path (HandleHTTPChallenge).
	acmeLive atomic.Pointer[acmeManager]
	// acmeBackoff is the first retry delay after a failed order (tests
	// shorten it); 0 means defaultBackoff.
	acmeBackoff time.Duration
	// acmeRecheck is how often a certificate waiting for its renewal looks
	// for a newer one in the storage folder (tests shorten it).
	acmeRecheck time.Duration
	// watchCancel stops the auto_reload file watcher (nil: not running);
	// watchInterval is its period (tests shorten it).
	watchCancel   context.CancelFunc
	watchInterval time.Duration
}

// state is one immutable generation built by Update.
type state struct {
	servers map[string]*serverState
	// certs are the file certificates of [certificates.*] (for reports).
	certs map[string]*holder
	// files are the PEM paths this generation loaded, with their stat
	// fingerprints (see watch).
	files map[string]fileStamp
}

// serverState is one TLS server's handshake settings.
type serverState struct {
	conf  *tls.Config
	exact map[string]*holder // lower-case DNS name -> certificate
	// wild maps the parent of a wildcard ("example.com" for
	// "*.example.com") to its certificate.
	wild map[string]*holder
	def  *holder // tls_cert: for names nothing else matches
	acme *acmeManager
}

// holder is a certificate slot. File certificates get a new holder per
// Update; an ACME certificate's holder outlives reloads and is refilled on
// renewal, so the SNI tables never need rebuilding for a renewal.
type holder struct {
	name string
	cert atomic.Pointer[tls.Certificate]
}

// NewStore returns an empty Store. logger may be nil (slog.Default); hook may
// be nil.
func NewStore(logger *slog.Logger, hook MetricsHook) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	if hook == nil {
		hook = func(string, time.Time) {}
	}
	s := &Store{logger: logger, hook: hook}
	s.state.Store(&state{servers: map[string]*serverState{}, files: map[string]fileStamp{}})
	return s
}

// Update loads every PEM file the config names ([certificates.*] pairs,
// servers' tls_cert/tls_key and client_ca), checks that each key matches its
// certificate, and swaps them in for new handshakes. It is all or nothing: on
// any error the previous certificates stay in service and the error names
// the section and key. ACME certificates are started, kept or stopped to
// match the config; obtaining them happens in the background. With
// basic.auto_reload the PEM files are also polled and reloaded when they
// change (see watch).
func (s *Store) Update(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked(cfg)
}

// Check loads and validates every certificate, key and CA file cfg names,
// like Update, without serving them or starting ACME: for `pingap -t` and
// for validating a config before it is applied. Errors name the section
// and key.
func Check(cfg *config.Config) error {
	s := &Store{logger: slog.New(slog.DiscardHandler)}
	_, _, err := s.build(cfg)
	return err
}

func (s *Store) updateLocked(cfg *config.Config) error {
	st, acmeHolders, err := s.build(cfg)
	if err != nil {
		return err
	}

	return s.commit(cfg, st, acmeHolders)
}

// build loads everything cfg names into a new generation without touching
// the Store's live state (it only reads which ACME holders can be kept).
func (s *Store) build(cfg *config.Config) (*state, map[string]*holder, error) {
	if cfg == nil {
		return nil, nil, errors.New("certs: nil config")
	}
	st := &state{servers: map[string]*serverState{}, files: map[string]fileStamp{}}
	var errs []error

	// ACME holders are reused across reloads; decide them first.
	acmeNames := acmeCertNames(cfg)
	if len(acmeNames) > 0 {
		if err := validateACME(cfg.ACME); err != nil {
			errs = append(errs, err)
		}
	}
	acmeHolders := s.acmeHolders(cfg, acmeNames)

	certs := make(map[string]*holder, len(cfg.Certificates))
	st.certs = certs
	for _, name := range sortedKeys(cfg.Certificates) {
		c := cfg.Certificates[name]
		section := "certificates." + name
		if len(c.Domains) == 0 {
			errs = append(errs, fmt.Errorf("%s: domains: at least one domain is required", section))
			continue
		}
		for _, d := range c.Domains {
			if !validDomain(d) {
				errs = append(errs, fmt.Errorf("%s: domains: %q is not a DNS name or wildcard", section, d))
			}
		}
		if c.ACME {
			if c.TLSCert != "" || c.TLSKey != "" {
				errs = append(errs, fmt.Errorf("%s: acme: acme = true cannot be combined with tls_cert/tls_key", section))
			}
			for _, d := range c.Domains {
				if strings.HasPrefix(d, "*.") {
					errs = append(errs, fmt.Errorf("%s: domains: wildcard %q needs the DNS-01 challenge, which is not supported", section, d))
				}
			}
			continue
		}
		cert, err := loadPair(section, c.TLSCert, c.TLSKey, st.files)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h := &holder{name: name}
		h.cert.Store(cert)
		certs[name] = h
	}

	for _, name := range sortedKeys(cfg.Servers) {
		sc := cfg.Servers[name]
		if !sc.TLSEnabled() {
			continue
		}
		section := "servers." + name
		ss := &serverState{exact: map[string]*holder{}, wild: map[string]*holder{}}
		if sc.TLSCert != "" || sc.TLSKey != "" {
			cert, err := loadPair(section, sc.TLSCert, sc.TLSKey, st.files)
			if err != nil {
				errs = append(errs, err)
			} else {
				ss.def = &holder{name: section}
				ss.def.cert.Store(cert)
			}
		}
		var clientCAs *x509.CertPool
		if sc.ClientCA != "" {
			pool, err := loadPool(sc.ClientCA, st.files)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: client_ca: %w", section, err))
			}
			clientCAs = pool
		}
		for _, cn := range sc.Certificates {
			c, ok := cfg.Certificates[cn]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: certificates: no [certificates.%s]", section, cn))
				continue
			}
			h := certs[cn]
			if c.ACME {
				h = acmeHolders[cn]
			}
			if h == nil {
				continue // load error already reported
			}
			for _, d := range c.Domains {
				d = strings.ToLower(strings.TrimSuffix(d, "."))
				if parent, ok := strings.CutPrefix(d, "*."); ok {
					if _, dup := ss.wild[parent]; !dup {
						ss.wild[parent] = h
					}
				} else if _, dup := ss.exact[d]; !dup {
					ss.exact[d] = h
				}
			}
		}
		ss.conf = newTLSConfig(ss, clientCAs)
		st.servers[name] = ss
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return st, acmeHolders, nil
}

// commit starts, keeps or stops ACME to match cfg and swaps st in.
func (s *Store) commit(cfg *config.Config, st *state, acmeHolders map[string]*holder) error {
	// ACME: keep, start or stop managed certificates (their holders are
	// already in the SNI tables built above).
	if err := s.syncACME(cfg, acmeHolders); err != nil {
		return err
	}
	for _, ss := range st.servers {
		ss.acme = s.acme
	}

	for _, name := range sortedKeys(st.certs) {
		s.report(name, st.certs[name].cert.Load())
	}
	for _, name := range sortedKeys(st.servers) {
		if d := st.servers[name].def; d != nil {
			s.report(d.name, d.cert.Load())
		}
	}
	// Certificates gone from the config: tell the hook (zero time) so the
	// engine can drop their expiry series.
	names := make(map[string]bool, len(st.certs)+len(st.servers)+len(acmeHolders))
	for name := range st.certs {
		names[name] = true
	}
	for name := range acmeHolders {
		names[name] = true
	}
	for _, ss := range st.servers {
		if ss.def != nil {
			names[ss.def.name] = true
		}
	}
	for _, name := range sortedKeys(s.names) {
		if !names[name] {
			s.hook(name, time.Time{})
		}
	}
	s.names = names

	s.state.Store(st)
	s.last = cfg
	s.syncWatch(cfg.Basic.AutoReload)
	return nil
}

// report logs a loaded certificate's expiry and feeds the metrics hook.
func (s *Store) report(name string, c *tls.Certificate) {
	if c == nil || c.Leaf == nil {
		return
	}
	left := time.Until(c.Leaf.NotAfter)
	s.hook(name, c.Leaf.NotAfter)
	level := slog.LevelInfo
	switch {
	case left <= 0:
		level = slog.LevelError
	case left < 14*24*time.Hour:
		level = slog.LevelWarn
	}
	s.logger.Log(context.Background(), level, "tls certificate", "name", name,
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"days_left", int(left.Hours()/24), "domains", c.Leaf.DNSNames)
}

// TLSConfig returns the *tls.Config for the TLS server serverName (a
// [servers] name the last successful Update knew). It is meant to be built
// once per listener: handshakes always use the Store's current settings for
// that server, so later Updates need no new config. The result has TLS 1.2
// as minimum, ALPN h2 and http/1.1 (and acme-tls/1), modern TLS 1.2 cipher
// suites and session tickets with keys rotated by crypto/tls; certificates
// are chosen by SNI: exact name, then wildcard, then the server's tls_cert,
// else the handshake fails. With client_ca, client certificates are required
// and verified. sc is accepted for symmetry with the config and checked
// for TLS being enabled.
func (s *Store) TLSConfig(serverName string, sc config.Server) (*tls.Config, error) {
	if !sc.TLSEnabled() {
		return nil, fmt.Errorf("servers.%s: tls_cert or certificates is required for TLS", serverName)
	}
	if _, ok := s.state.Load().servers[serverName]; !ok {
		return nil, fmt.Errorf("servers.%s: unknown to the certificate store (Update it with the config first)", serverName)
	}
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
		NextProtos:   append([]string(nil), nextProtos...),
	}
	if sc.ClientCA != "" {
		// Informational: the per-handshake config below decides.
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		ss, ok := s.state.Load().servers[serverName]
		if !ok {
			return nil, fmt.Errorf("certs: server %q has no TLS settings any more", serverName)
		}
		return ss.conf, nil
	}
	// A certificate getter on the base config too, for code paths that
	// bypass GetConfigForClient.
	base.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		ss, ok := s.state.Load().servers[serverName]
		if !ok {
			return nil, fmt.Errorf("certs: server %q has no TLS settings any more", serverName)
		}
		return ss.getCertificate(hello)
	}
	return base, nil
}

// newTLSConfig builds a server's per-generation handshake config. Session
// ticket keys are not set here, so crypto/tls uses (and rotates) the keys of
// the listener's base config: resumption survives reloads.
func newTLSConfig(ss *serverState, clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   cipherSuites,
		NextProtos:     nextProtos,
		GetCertificate: ss.getCertificate,
	}
	if clientCAs != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = clientCAs
	}
	return c
}

// errNoCertificate is the handshake error when no certificate matches.
var errNoCertificate = errors.New("certs: no certificate for this server name")

// getCertificate picks by SNI: exact name, then a wildcard one level up,
// then the server's default. It allocates nothing for lower-case names.
func (ss *serverState) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProto {
		// TLS-ALPN-01 validation (RFC 8737 §3): only the challenge
		// certificate may answer.
		if ss.acme != nil {
			if c := ss.acme.alpnCert(lowerName(name)); c != nil {
				return c, nil
			}
		}
		return nil, errors.New("certs: no pending tls-alpn-01 challenge for this name")
	}
	if name != "" {
		name = lowerName(name)
		if h := ss.exact[name]; h != nil {
			if c := h.cert.Load(); c != nil {
				return c, nil
			}
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if h := ss.wild[name[i+1:]]; h != nil {
				if c := h.cert.Load(); c != nil {
					return c, nil
				}
			}
		}
	}
	if ss.def != nil {
		return ss.def.cert.Load(), nil
	}
	return nil, errNoCertificate
}

// lowerName lower-cases an SNI name and drops a trailing dot, allocating
// only when it has to.
func lowerName(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// loadPair reads a PEM certificate chain and its key. The leaf is parsed
// (tls.Certificate.Leaf) and the key checked against it; errors name the
// section and key.
func loadPair(section, certFile, keyFile string, files map[string]fileStamp) (*tls.Certificate, error) {
	switch {
	case certFile == "":
		return nil, fmt.Errorf("%s: tls_cert: required with tls_key", section)
	case keyFile == "":
		return nil, fmt.Errorf("%s: tls_key: required with tls_cert", section)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("%s: tls_cert: %w", section, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: tls_key: %w", section, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: tls_cert/tls_key (%s, %s): %w", section, certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: tls_cert: %w", section, err)
		}
	}
	files[certFile] = stampOf(certFile)
	files[keyFile] = stampOf(keyFile)
	return &cert, nil
}

// loadPool reads a PEM bundle of CA certificates.
func loadPool(file string, files map[string]fileStamp) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	files[file] = stampOf(file)
	return pool, nil
}

// validDomain accepts DNS names and one leading "*." label.
func validDomain(d string) bool {
	d = strings.TrimPrefix(d, "*.")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
