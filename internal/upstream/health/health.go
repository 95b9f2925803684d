// Package health runs the active health checks of [upstreams.NAME]
// health_check: one goroutine per (upstream, addr) probes the addr every
// health_check_interval and writes the verdict into the addr's live
// upstream.HostState, which the selection policies read.
//
// Probes:
//   - "http://HOST/path?query" and "https://HOST/path?query": a GET of
//     path?query sent to EACH addr (not to HOST) with HOST as the Host
//     header; https is TLS to the addr with SNI = HOST (without port),
//     verified against the upstream's tls_ca (system roots when empty)
//     unless its insecure_skip_verify is set, and with its client
//     certificate when set. A 2xx or 3xx answer (redirects not followed)
//     within health_check_timeout is a success. Every probe uses a new
//     connection, so a probe tests what a new request would hit.
//   - "tcp://HOST": a TCP connect to each addr within the timeout.
//
// An addr starts healthy. It is marked down after unhealthy_threshold
// consecutive failures and up again after healthy_threshold consecutive
// successes. Transitions are logged (up at info, down at warn) and reported
// to the onChange callback (metrics). Probes are not requests: they do not
// touch the HostState counters.
package health

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/upstream"
)

// Checker manages the probe goroutines of every upstream with a
// health_check. Sync it with the pools of each new snapshot, after
// upstream.Registry.Commit.
type Checker struct {
	logger   *slog.Logger
	onChange func(upstream, addr string, healthy bool)

	mu      sync.Mutex
	ups     map[string]*upCheck
	stopped bool
}

// settings is everything a running check depends on. A Sync with equal
// settings keeps the check (and its consecutive counters) running.
type settings struct {
	url                  string
	interval, timeout    time.Duration
	healthy, unhealthy   int
	insecure             bool
	sni                  string
	tlsCA, cert, key     string
	caMod, certMod, kMod time.Time
}

func settingsOf(c *config.Upstream) settings {
	return settings{
		url:       c.HealthCheck,
		interval:  cmp.Or(c.HealthCheckInterval.D(), upstream.DefaultHealthCheckInterval),
		timeout:   cmp.Or(c.HealthCheckTimeout.D(), upstream.DefaultHealthCheckTimeout),
		healthy:   max(1, cmp.Or(c.HealthyThreshold, upstream.DefaultHealthyThreshold)),
		unhealthy: max(1, cmp.Or(c.UnhealthyThreshold, upstream.DefaultUnhealthyThreshold)),
		insecure:  c.InsecureSkipVerify,
		sni:       c.SNI,
		tlsCA:     c.TLSCA, cert: c.TLSClientCert, key: c.TLSClientKey,
		caMod: modTime(c.TLSCA), certMod: modTime(c.TLSClientCert), kMod: modTime(c.TLSClientKey),
	}
}

func modTime(path string) time.Time {
	if path == "" {
		return time.Time{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// upCheck is the check of one upstream.
type upCheck struct {
	name  string
	set   settings
	probe *prober
	addrs map[string]*addrCheck
}

// addrCheck is the probe loop of one addr.
type addrCheck struct {
	addr   string
	state  atomic.Pointer[upstream.HostState] // swapped when a reload replaces the state
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Checker. onChange (may be nil) is called on every health
// transition an active check decides, from the probe goroutine; it must be
// quick and must not call the Checker (Sync waits for stopped probes).
func New(logger *slog.Logger, onChange func(upstream, addr string, healthy bool)) *Checker {
	if logger == nil {
		logger = slog.Default()
	}
	return &Checker{logger: logger, onChange: onChange, ups: map[string]*upCheck{}}
}

// Sync makes the running checks match pools: it starts checks of pools with
// a health_check that are new or whose check settings changed, stops those
// of upstreams (and addrs) that are gone or lost their health_check, and
// leaves unchanged ones running without resetting their counters (they just
// pick up the pool's current HostState). Stopped probe goroutines have
// exited when Sync returns: no probe is sent by them afterwards.
func (c *Checker) Sync(pools []*upstream.Pool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	var stopping []*addrCheck
	seen := make(map[string]bool, len(pools))
	for _, p := range pools {
		if p.Config.HealthCheck == "" {
			continue
		}
		seen[p.Name] = true
		set := settingsOf(&p.Config)
		uc := c.ups[p.Name]
		if uc != nil && uc.set != set {
			stopping = append(stopping, uc.stopAll()...)
			uc = nil
		}
		if uc == nil {
			pr, err := newProber(set)
			if err != nil {
				c.logger.Error("health check disabled", "upstream", p.Name, "health_check", set.url, "error", err)
				delete(c.ups, p.Name)
				continue
			}
			uc = &upCheck{name: p.Name, set: set, probe: pr, addrs: map[string]*addrCheck{}}
			c.ups[p.Name] = uc
		}
		keep := make(map[string]bool, len(p.Hosts))
		for _, h := range p.Hosts {
			keep[h.Addr] = true
			if ac := uc.addrs[h.Addr]; ac != nil {
				ac.state.Store(h.HostState)
				continue
			}
			uc.addrs[h.Addr] = c.start(uc, h.HostState)
		}
		for addr, ac := range uc.addrs {
			if !keep[addr] {
				ac.cancel()
				stopping = append(stopping, ac)
				delete(uc.addrs, addr)
			}
		}
	}
	for name, uc := range c.ups {
		if !seen[name] {
			stopping = append(stopping, uc.stopAll()...)
			delete(c.ups, name)
		}
	}
	for _, ac := range stopping {
		<-ac.done
	}
}

// Stop ends every check and waits for the goroutines to exit. Later Syncs
// do nothing.
func (c *Checker) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	var stopping []*addrCheck
	for name, uc := range c.ups {
		stopping = append(stopping, uc.stopAll()...)
		delete(c.ups, name)
	}
	for _, ac := range stopping {
		<-ac.done
	}
}

func (uc *upCheck) stopAll() []*addrCheck {
	out := make([]*addrCheck, 0, len(uc.addrs))
	for _, ac := range uc.addrs {
		ac.cancel()
		out = append(out, ac)
	}
	return out
}

func (c *Checker) start(uc *upCheck, st *upstream.HostState) *addrCheck {
	ctx, cancel := context.WithCancel(context.Background())
	ac := &addrCheck{addr: st.Addr, cancel: cancel, done: make(chan struct{})}
	ac.state.Store(st)
	go c.run(ctx, uc.name, uc.set, uc.probe, ac)
	return ac
}

// run probes one addr until ctx is canceled. The first probe goes out at
// once; the next one interval after a probe ends, so a slow addr never
// stacks probes (and never delays another addr's, which has its own loop).
func (c *Checker) run(ctx context.Context, name string, set settings, pr *prober, ac *addrCheck) {
	defer close(ac.done)
	okRun, failRun := 0, 0
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := pr.probe(ctx, ac.addr)
		if ctx.Err() != nil {
			return
		}
		st := ac.state.Load()
		if err == nil {
			okRun, failRun = okRun+1, 0
			// Compared with the state's actual health, not a remembered
			// one, so a state swapped in by a reload converges too.
			if okRun >= set.healthy && !st.Healthy() && st.SetHealthy(true) {
				c.logger.Info("upstream addr up", "upstream", name, "addr", ac.addr, "successes", okRun)
				c.notify(name, ac.addr, true)
			}
		} else {
			failRun, okRun = failRun+1, 0
			if failRun >= set.unhealthy && st.Healthy() && st.SetHealthy(false) {
				c.logger.Warn("upstream addr down", "upstream", name, "addr", ac.addr, "failures", failRun, "error", err.Error())
				c.notify(name, ac.addr, false)
			}
		}
		t.Reset(set.interval)
	}
}

func (c *Checker) notify(name, addr string, healthy bool) {
	if c.onChange != nil {
		c.onChange(name, addr, healthy)
	}
}

// prober sends one kind of probe; it is shared by the addr loops of one
// upstream and safe for concurrent use.
type prober struct {
	tcp     bool
	scheme  string
	host    string // Host header and, without port, SNI
	target  string // path?query
	timeout time.Duration
	tls     *tls.Config // https only; ServerName set
}

func newProber(set settings) (*prober, error) {
	u, err := url.Parse(set.url)
	if err != nil {
		return nil, fmt.Errorf("health_check: %w", err)
	}
	pr := &prober{scheme: u.Scheme, host: u.Host, timeout: set.timeout}
	switch u.Scheme {
	case "tcp":
		pr.tcp = true
		return pr, nil
	case "http", "https":
	default:
		return nil, fmt.Errorf("health_check: scheme %q: want http, https or tcp", u.Scheme)
	}
	pr.target = u.EscapedPath()
	if pr.target == "" {
		pr.target = "/"
	}
	if u.RawQuery != "" {
		pr.target += "?" + u.RawQuery
	}
	if u.Scheme == "https" {
		tc := &tls.Config{
			ServerName:         cmp.Or(u.Hostname(), set.sni),
			InsecureSkipVerify: set.insecure,
			MinVersion:         tls.VersionTLS12,
			NextProtos:         []string{"http/1.1"},
		}
		if set.tlsCA != "" {
			pem, err := os.ReadFile(set.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("tls_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls_ca: %s: no PEM certificate", set.tlsCA)
			}
			tc.RootCAs = pool
		}
		if set.cert != "" || set.key != "" {
			cert, err := tls.LoadX509KeyPair(set.cert, set.key)
			if err != nil {
				return nil, fmt.Errorf("tls_client_cert: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		pr.tls = tc
	}
	return pr, nil
}

var errStatus = errors.New("unhealthy status")

// probe checks addr once, within the timeout.
func (pr *prober) probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, pr.timeout)
	defer cancel()
	var d net.Dialer
	if pr.tcp {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig:    pr.tls,
		DisableKeepAlives:  true,
		DisableCompression: true,
		Proxy:              nil,
	}
	defer tr.CloseIdleConnections()
	client := http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	host := cmp.Or(pr.host, addr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.scheme+"://"+host+pr.target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "pingap-go-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	return nil
}
