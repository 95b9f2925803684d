package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

// ACME defaults (see the [acme] table of the contract).
const (
	defaultDirectoryURL = acme.LetsEncryptURL
	defaultStorage      = "./acme"
	defaultChallenge    = "http-01"
	defaultRenewBefore  = 30 * 24 * time.Hour

	// Failures back off exponentially from defaultBackoff up to maxBackoff:
	// 5m, 10m, 20m, 40m, ... keeps a broken setup under Let's Encrypt's
	// "5 failed validations per hostname per hour" limit.
	defaultBackoff = 5 * time.Minute
	maxBackoff     = 24 * time.Hour
	// obtainTimeout bounds one whole order (authorizations, finalize).
	obtainTimeout = 10 * time.Minute
)

// challengePrefix is the HTTP-01 path (RFC 8555 §8.3).
const challengePrefix = "/.well-known/acme-challenge/"

// acmeCertNames lists the [certificates] names with acme = true.
func acmeCertNames(cfg *config.Config) []string {
	var names []string
	for _, name := range sortedKeys(cfg.Certificates) {
		if cfg.Certificates[name].ACME {
			names = append(names, name)
		}
	}
	return names
}

// normalizeACME fills the [acme] defaults.
func normalizeACME(a config.ACME) config.ACME {
	if a.DirectoryURL == "" {
		a.DirectoryURL = defaultDirectoryURL
	}
	if a.Storage == "" {
		a.Storage = defaultStorage
	}
	if a.Challenge == "" {
		a.Challenge = defaultChallenge
	}
	if a.RenewBefore <= 0 {
		a.RenewBefore = config.Duration(defaultRenewBefore)
	}
	return a
}

// validateACME checks the [acme] keys that matter once an acme certificate
// exists.
func validateACME(a config.ACME) error {
	a = normalizeACME(a)
	var errs []error
	if a.Challenge != "http-01" && a.Challenge != "tls-alpn-01" {
		errs = append(errs, fmt.Errorf("acme: challenge: %q is not http-01 or tls-alpn-01", a.Challenge))
	}
	if !strings.HasPrefix(a.DirectoryURL, "https://") && !strings.HasPrefix(a.DirectoryURL, "http://") {
		errs = append(errs, fmt.Errorf("acme: directory_url: %q is not an http(s) URL", a.DirectoryURL))
	}
	if a.CARoot != "" {
		if _, err := os.ReadFile(a.CARoot); err != nil {
			errs = append(errs, fmt.Errorf("acme: ca_root: %w", err))
		}
	}
	return errors.Join(errs...)
}

// acmeManager obtains and renews the acme = true certificates of one [acme]
// setting. It outlives reloads that keep [acme] unchanged; each certificate
// has its own goroutine (see run) and a holder the SNI tables point at.
type acmeManager struct {
	logger  *slog.Logger
	report  func(name string, c *tls.Certificate)
	cfg     config.ACME // normalized
	dir     string      // storage folder of this CA
	http    *http.Client
	backoff time.Duration
	// recheck and lockPoll: see acme_shared.go (tests shorten them).
	recheck  time.Duration
	lockPoll time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // managed
	managed map[string]*managed

	accMu  sync.Mutex
	client *acme.Client

	chMu   sync.RWMutex
	tokens map[string][]byte           // http-01 token -> key authorization
	alpn   map[string]*tls.Certificate // tls-alpn-01 name -> challenge cert
}

// managed is one acme = true certificate.
type managed struct {
	name    string
	domains []string
	h       *holder
	cancel  context.CancelFunc
	done    chan struct{}
}

func newACMEManager(logger *slog.Logger, report func(string, *tls.Certificate), a config.ACME, backoff, recheck time.Duration) (*acmeManager, error) {
	a = normalizeACME(a)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if a.CARoot != "" {
		pem, err := os.ReadFile(a.CARoot)
		if err != nil {
			return nil, fmt.Errorf("acme: ca_root: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme: ca_root: %s: no PEM certificate found", a.CARoot)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	dir := filepath.Join(a.Storage, storageKey(a.DirectoryURL))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: storage: %w", err)
	}
	if backoff <= 0 {
		backoff = defaultBackoff
	}
	if recheck <= 0 {
		recheck = storageRecheck
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &acmeManager{
		logger:  logger.With("component", "acme", "directory", a.DirectoryURL),
		report:  report,
		cfg:     a,
		dir:     dir,
		http:    &http.Client{Transport: tr, Timeout: 60 * time.Second},
		backoff: backoff,
		recheck: recheck, lockPoll: lockPoll,
		ctx:     ctx,
		cancel:  cancel,
		managed: map[string]*managed{},
		tokens:  map[string][]byte{},
		alpn:    map[string]*tls.Certificate{},
	}, nil
}

// storageKey names a CA's folder after its directory URL, so that staging
// and production certificates never mix.
func storageKey(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	b := []byte(u)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	return strings.Trim(string(b), "_")
}

// acmeHolders picks the holder of every acme certificate of cfg: the live one
// when the same [acme] setting already manages it with the same domains (a
// reload keeps serving it), else a fresh one.
func (s *Store) acmeHolders(cfg *config.Config, names []string) map[string]*holder {
	out := make(map[string]*holder, len(names))
	var m *acmeManager
	if s.acme != nil && s.acme.cfg == normalizeACME(cfg.ACME) {
		m = s.acme
	}
	for _, name := range names {
		if m != nil {
			m.mu.Lock()
			mc := m.managed[name]
			m.mu.Unlock()
			if mc != nil && slices.Equal(mc.domains, cfg.Certificates[name].Domains) {
				out[name] = mc.h
				continue
			}
		}
		out[name] = &holder{name: name}
	}
	return out
}

// syncACME makes the running ACME state match cfg: with no acme certificate
// it stops everything; a changed [acme] setting gets a new manager (the old
// one is stopped after the new one was built); certificates whose holder
// changed are restarted, removed ones stopped.
func (s *Store) syncACME(cfg *config.Config, holders map[string]*holder) error {
	if len(holders) == 0 {
		if s.acme != nil {
			s.acme.stop()
			s.acme = nil
			s.acmeLive.Store(nil)
		}
		return nil
	}
	m := s.acme
	if m == nil || m.cfg != normalizeACME(cfg.ACME) {
		nm, err := newACMEManager(s.logger, s.report, cfg.ACME, s.acmeBackoff, s.acmeRecheck)
		if err != nil {
			return err
		}
		if m != nil {
			m.stop()
		}
		m = nm
	}
	m.mu.Lock()
	for name, mc := range m.managed {
		if h, ok := holders[name]; !ok || h != mc.h {
			mc.cancel()
			<-mc.done
			delete(m.managed, name)
		}
	}
	for _, name := range sortedKeys(holders) {
		if _, ok := m.managed[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(m.ctx)
		mc := &managed{
			name:    name,
			domains: slices.Clone(cfg.Certificates[name].Domains),
			h:       holders[name],
			cancel:  cancel,
			done:    make(chan struct{}),
		}
		// Serve the stored certificate from the moment the new state is
		// swapped in, not a goroutine later.
		if c, err := m.loadStored(mc); err == nil {
			mc.h.cert.Store(c)
		} else if !errors.Is(err, os.ErrNotExist) {
			m.logger.Warn("acme stored certificate unusable, obtaining a new one", "name", name, "error", err)
		}
		m.managed[name] = mc
		go m.run(ctx, mc)
	}
	m.mu.Unlock()
	s.acme = m
	s.acmeLive.Store(m)
	return nil
}

// stop ends every certificate goroutine and waits for them.
func (m *acmeManager) stop() {
	m.cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, mc := range m.managed {
		<-mc.done
		delete(m.managed, name)
	}
}

// run keeps one certificate valid: the holder has the stored copy when
// there was one (syncACME loads it); run obtains or renews at renewAt, backing off exponentially after
// failures (the stored certificate stays in service meanwhile).
func (m *acmeManager) run(ctx context.Context, mc *managed) {
	defer close(mc.done)
	log := m.logger.With("name", mc.name, "domains", mc.domains)
	if c := mc.h.cert.Load(); c != nil {
		m.report(mc.name, c)
		log.Info("acme certificate loaded", "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339),
			"renew_at", m.renewAt(c.Leaf).UTC().Format(time.RFC3339))
	}
	failures := 0
	var issued time.Time // last successful order
	for {
		var wait time.Duration
		recheck := false // the wait is only a look at the storage folder
		if failures > 0 {
			wait = m.backoff << min(failures-1, 20)
			wait = min(wait, maxBackoff)
		} else if c := mc.h.cert.Load(); c != nil {
			wait = time.Until(m.renewAt(c.Leaf))
			// A CA handing out certificates that are due at once
			// (zero lifetime, clock skew) must not cause an order loop.
			if !issued.IsZero() {
				wait = max(wait, time.Until(issued.Add(m.backoff)))
			}
			if wait > m.recheck {
				wait, recheck = m.recheck, true
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		// Another instance sharing the folder may have obtained one.
		if c := m.newerStored(mc); c != nil {
			failures = 0
			m.adopt(mc, c, log)
			continue
		}
		if recheck {
			continue
		}
		unlock, err := m.lockOrder(ctx, mc)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			log.Error("acme order lock failed", "error", err, "failures", failures)
			continue
		}
		// ... or while this one waited for the lock.
		if c := m.newerStored(mc); c != nil {
			unlock()
			failures = 0
			m.adopt(mc, c, log)
			continue
		}
		renewal := mc.h.cert.Load() != nil
		c, err := m.obtain(ctx, mc)
		if err != nil {
			unlock()
			if ctx.Err() != nil {
				return
			}
			failures++
			next := min(m.backoff<<min(failures-1, 20), maxBackoff)
			log.Error("acme certificate request failed", "error", err, "renewal", renewal,
				"failures", failures, "retry_in", next.String())
			continue
		}
		failures = 0
		issued = time.Now()
		if err := m.save(mc, c); err != nil {
			log.Error("acme certificate not persisted", "error", err)
		}
		unlock()
		mc.h.cert.Store(c)
		m.report(mc.name, c)
		msg := "acme certificate obtained"
		if renewal {
			msg = "acme certificate renewed"
		}
		log.Info(msg, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339),
			"renew_at", m.renewAt(c.Leaf).UTC().Format(time.RFC3339))
	}
}

// adopt serves a certificate another instance stored.
func (m *acmeManager) adopt(mc *managed, c *tls.Certificate, log *slog.Logger) {
	mc.h.cert.Store(c)
	m.report(mc.name, c)
	log.Info("acme certificate loaded from storage (obtained by another instance)",
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"renew_at", m.renewAt(c.Leaf).UTC().Format(time.RFC3339))
}

func (m *acmeManager) renewAt(leaf *x509.Certificate) time.Time {
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	window := max(lifetime/3, time.Duration(m.cfg.RenewBefore))
	window = min(window, lifetime*2/3)
	return leaf.NotAfter.Add(-window)
}

// account returns the ACME client with its registered account, creating and
// persisting the account key on first use (a restart reuses it).
func (m *acmeManager) account(ctx context.Context) (*acme.Client, error) {
	m.accMu.Lock()
	defer m.accMu.Unlock()
	if m.client != nil {
		return m.client, nil
	}
	key, err := m.accountKey()
	if err != nil {
		return nil, err
	}
	c := &acme.Client{Key: key, DirectoryURL: m.cfg.DirectoryURL, HTTPClient: m.http, UserAgent: "pingap-go"}
	acct := &acme.Account{}
	if m.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + m.cfg.Email}
	}
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	m.client = c
	return c, nil
}

func (m *acmeManager) accountKey() (crypto.Signer, error) {
	path := filepath.Join(m.dir, "account.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("acme account key %s: %w", path, err)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	return k, nil
}

// obtain runs one RFC 8555 order for mc's domains.
func (m *acmeManager) obtain(ctx context.Context, mc *managed) (*tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, obtainTimeout)
	defer cancel()
	client, err := m.account(ctx)
	if err != nil {
		return nil, err
	}
	order, err := client.AuthorizeOrder(ctx, acme.DomainIDs(mc.domains...))
	if err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	for _, u := range order.AuthzURLs {
		z, err := client.GetAuthorization(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("authorization: %w", err)
		}
		if z.Status == acme.StatusValid {
			continue
		}
		if err := m.solve(ctx, client, z); err != nil {
			return nil, err
		}
	}
	order, err = client.WaitOrder(ctx, order.URI)
	if err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: mc.domains[0]},
		DNSNames: mc.domains,
	}, key)
	if err != nil {
		return nil, err
	}
	der, _, err := client.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	return certFromDER(der, key)
}

// solve answers one authorization with the configured challenge type.
func (m *acmeManager) solve(ctx context.Context, client *acme.Client, z *acme.Authorization) error {
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == m.cfg.Challenge {
			chal = c
			break
		}
	}
	domain := z.Identifier.Value
	if chal == nil {
		return fmt.Errorf("%s: the CA offers no %s challenge", domain, m.cfg.Challenge)
	}
	switch chal.Type {
	case "http-01":
		ka, err := client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return err
		}
		defer m.putToken(chal.Token, []byte(ka))()
	case "tls-alpn-01":
		c, err := client.TLSALPN01ChallengeCert(chal.Token, domain)
		if err != nil {
			return err
		}
		name := strings.ToLower(domain)
		m.chMu.Lock()
		m.alpn[name] = &c
		m.chMu.Unlock()
		defer func() {
			m.chMu.Lock()
			delete(m.alpn, name)
			m.chMu.Unlock()
		}()
	}
	if _, err := client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("%s: accept %s: %w", domain, chal.Type, err)
	}
	if _, err := client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("%s: %s validation: %w", domain, chal.Type, err)
	}
	return nil
}

// alpnCert returns the pending TLS-ALPN-01 certificate for name, or nil.
func (m *acmeManager) alpnCert(name string) *tls.Certificate {
	m.chMu.RLock()
	defer m.chMu.RUnlock()
	return m.alpn[name]
}

// HandleHTTPChallenge answers ACME HTTP-01 validation requests (GET or HEAD
// /.well-known/acme-challenge/TOKEN) on plain-HTTP servers; the engine calls
// it before routing and plugins. It returns true when it answered (c.Resp is
// then filled with c.Send): 200 with the key authorization for a pending
// token, 404 for another token. With no acme certificate configured, or
// with challenge = "tls-alpn-01", it never answers, so such paths route as
// usual. Costs one prefix check otherwise.
func (s *Store) HandleHTTPChallenge(c *httpx.Ctx) bool {
	if !strings.HasPrefix(c.Req.Path, challengePrefix) {
		return false
	}
	m := s.acmeLive.Load()
	if m == nil || m.cfg.Challenge != "http-01" {
		return false
	}
	if c.Req.Method != http.MethodGet && c.Req.Method != http.MethodHead {
		c.Error(http.StatusMethodNotAllowed, "method not allowed")
		c.Resp.Header.Set("Allow", "GET, HEAD")
		return true
	}
	ka, ok := m.keyAuth(c.Req.Path[len(challengePrefix):])
	if !ok {
		c.Error(http.StatusNotFound, "no such ACME challenge")
		return true
	}
	c.Send(http.StatusOK, "text/plain", ka)
	return true
}

// Storage: DIR/account.key, DIR/certificates/NAME/{cert.pem,key.pem}, DIR
// being storage/<directory URL>.
func (m *acmeManager) certPaths(name string) (string, string) {
	d := filepath.Join(m.dir, "certificates", name)
	return filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
}

// loadStored returns the stored certificate when it covers exactly mc's
// domains and has not expired.
func (m *acmeManager) loadStored(mc *managed) (*tls.Certificate, error) {
	cf, kf := m.certPaths(mc.name)
	certPEM, err := os.ReadFile(cf)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(kf)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	if !sameNames(c.Leaf.DNSNames, mc.domains) {
		return nil, fmt.Errorf("stored certificate is for %v", c.Leaf.DNSNames)
	}
	if time.Now().After(c.Leaf.NotAfter) {
		return nil, errors.New("stored certificate expired")
	}
	return &c, nil
}

func (m *acmeManager) save(mc *managed, c *tls.Certificate) error {
	cf, kf := m.certPaths(mc.name)
	if err := os.MkdirAll(filepath.Dir(cf), 0o700); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	var chain []byte
	for _, b := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b})...)
	}
	if err := writeFileAtomic(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(cf, chain, 0o644)
}

func certFromDER(der [][]byte, key crypto.Signer) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("not a signing key")
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	return x509.ParsePKCS1PrivateKey(blk.Bytes)
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x := make([]string, len(a))
	y := make([]string, len(b))
	for i := range a {
		x[i] = strings.ToLower(a[i])
		y[i] = strings.ToLower(b[i])
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// writeFileAtomic writes through a temporary file and a rename, so a crash
// never leaves half a key behind.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
