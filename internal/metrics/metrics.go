// Package metrics holds the proxy's Prometheus metrics (names fixed by the
// interface spec) on a registry of its own, and hands the engine
// pre-resolved per-location, per-addr, per-server and per-plugin handles so
// the request path never looks a label set up by string.
//
// Wiring, in the order the engine meets it:
//
//	m := metrics.New(cfg.Basic.Name)                // once, at start
//	http.Handle("/metrics", m.Handler())            // on basic.metrics_addr
//	// when building a config snapshot:
//	lm := m.Location(serverName, locationName)      // and (server, "") for "no match"
//	am := m.UpstreamAddr(upstreamName, addr)
//	sm := m.Server(serverName)
//	pm := m.Plugin(pluginName)
//	m.Retain(locations, addrs)                      // after the swap: drop series of removed items
//	m.ConfigReload(err == nil)                      // after every reload attempt
//	// per request:
//	m.RequestStarted(); defer m.RequestDone()
//	lm.Observe(method, status, time.Since(start), bytesIn, bytesOut)
//	am.Done(upstreamDuration, reused, err != nil)
//
// Handles are cached by label set: asking again for the same
// (server, location) after a reload returns the same handle, so lazily
// resolved children survive reloads.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, exported so the dashboard test and the docs can refer to
// them.
const (
	NameRequests          = "http_requests_total"
	NameRequestDuration   = "http_request_duration_seconds"
	NameInFlight          = "http_requests_in_flight"
	NameConnectionsOpen   = "http_connections_open"
	NameRequestBytes      = "http_request_bytes_total"
	NameResponseBytes     = "http_response_bytes_total"
	NameUpstreamRequests  = "upstream_requests_total"
	NameUpstreamHealth    = "upstream_health"
	NameUpstreamDuration  = "upstream_response_duration_seconds"
	NameUpstreamConns     = "upstream_connections_total"
	NameUpstreamErrors    = "upstream_errors_total"
	NameConfigReloads     = "config_reloads_total"
	NamePluginResponses   = "plugin_responses_total"
	NameCacheResponses    = "http_cache_responses_total"
	NameTLSHandshakes     = "tls_handshakes_total"
	NameCertificateExpiry = "tls_certificate_expiry_seconds"
	NameInfo              = "pingap_info"
)

// DurationBuckets are the histogram buckets (seconds) of both request
// duration histograms: 0.5ms to 30s.
var DurationBuckets = [...]float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30,
}

// Metrics is the proxy's metric set. All methods are safe for concurrent
// use. The request-path methods live on the handles (LocationMetrics,
// AddrMetrics, ServerMetrics, PluginMetrics); the methods on Metrics that
// take label strings are for build time (snapshot construction, reloads).
type Metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec // method, status, server, location
	duration      *durationVec           // server, location
	inFlight      prometheus.Gauge
	connsOpen     *prometheus.GaugeVec   // server
	reqBytes      *prometheus.CounterVec // server
	respBytes     *prometheus.CounterVec // server
	tlsHandshakes *prometheus.CounterVec // server

	upHealth   *prometheus.GaugeVec   // upstream, server(addr)
	upDuration *durationVec           // upstream, server(addr); also upstream_requests_total
	upConns    *prometheus.CounterVec // upstream, server(addr), reused
	upErrors   *prometheus.CounterVec // upstream, server(addr)

	reloadOK, reloadFail prometheus.Counter
	pluginResponses      *prometheus.CounterVec // plugin, status
	certExpiry           *prometheus.GaugeVec   // name
	// cacheStatus holds the pre-resolved children of
	// http_cache_responses_total, indexed like cacheStatuses.
	cacheStatus [len(cacheStatuses)]prometheus.Counter

	handler http.Handler

	// mu guards the handle caches; it is only taken at build time.
	mu        sync.Mutex
	locations map[[2]string]*LocationMetrics
	addrs     map[[2]string]*AddrMetrics
	servers   map[string]*ServerMetrics
	plugins   map[string]*PluginMetrics
	// pluginsRO is a read-only copy of plugins for PluginResponse's
	// lock-free lookup; it is replaced (copy on write) under mu.
	pluginsRO atomic.Pointer[map[string]*PluginMetrics]
	certs     map[string]struct{}
	// serverNames are the servers with server-labelled series.
	serverNames map[string]struct{}
}

// New builds the metric set on a fresh registry (never the global default
// one, so tests and several instances in one process do not collide), with
// the Go runtime and process collectors. instance is basic.name; it is
// exported as pingap_info{name=instance} 1 rather than as a label on every
// series, because Prometheus already attaches its own "instance" label to
// scraped series.
func New(instance string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRequests,
			Help: "HTTP requests answered, by method, status, server and location (\"\" when no location matched).",
		}, []string{"method", "status", "server", "location"}),
		duration: newDurationVec(NameRequestDuration,
			"Whole-request time from the request head to the last response byte.",
			[2]string{"server", "location"}, "", ""),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: NameInFlight,
			Help: "Requests being handled right now.",
		}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameConnectionsOpen,
			Help: "Client connections open, by server.",
		}, []string{"server"}),
		reqBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRequestBytes,
			Help: "Request body bytes received from clients, by server.",
		}, []string{"server"}),
		respBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameResponseBytes,
			Help: "Response body bytes sent to clients, by server.",
		}, []string{"server"}),
		tlsHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTLSHandshakes,
			Help: "Completed TLS handshakes, by server.",
		}, []string{"server"}),
		upHealth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameUpstreamHealth,
			Help: "Upstream addr health: 1 up, 0 down (1 when the upstream has no check).",
		}, []string{"upstream", "server"}),
		upDuration: newDurationVec(NameUpstreamDuration,
			"Time from sending the request to an upstream addr to its response head.",
			[2]string{"upstream", "server"}, NameUpstreamRequests,
			"Requests sent to an upstream addr (server = the addr). Health probes are not counted."),
		upConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameUpstreamConns,
			Help: "Upstream round trips by whether they reused a pooled connection (reused=\"false\" counts new connections).",
		}, []string{"upstream", "server", "reused"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameUpstreamErrors,
			Help: "Round trips to an upstream addr that failed without a response (connect, write, read or protocol errors, timeouts).",
		}, []string{"upstream", "server"}),
		pluginResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NamePluginResponses,
			Help: "Requests a plugin answered itself (the upstream was not asked), by plugin and status.",
		}, []string{"plugin", "status"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameCertificateExpiry,
			Help: "Expiry (NotAfter) of a configured certificate as a Unix timestamp in seconds.",
		}, []string{"name"}),
		locations: make(map[[2]string]*LocationMetrics),
		addrs:     make(map[[2]string]*AddrMetrics),
		servers:   make(map[string]*ServerMetrics),
		plugins:   make(map[string]*PluginMetrics),
		certs:     make(map[string]struct{}),

		serverNames: make(map[string]struct{}),
	}
	cacheVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameCacheResponses,
		Help: "Responses that carried X-Cache-Status (the cache plugin's outcome), by status: HIT, MISS, EXPIRED, STALE, BYPASS, OTHER.",
	}, []string{"status"})
	for i, st := range cacheStatuses {
		m.cacheStatus[i] = cacheVec.WithLabelValues(st)
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameConfigReloads,
		Help: "Config reload attempts after start (not the initial load), by result.",
	}, []string{"result"})
	m.reloadOK = reloads.WithLabelValues("success")
	m.reloadFail = reloads.WithLabelValues("failure")
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        NameInfo,
		Help:        "Always 1; the name label is basic.name.",
		ConstLabels: prometheus.Labels{"name": clean(instance)},
	})
	info.Set(1)

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.inFlight, m.connsOpen, m.reqBytes,
		m.respBytes, m.tlsHandshakes, m.upHealth,
		m.upDuration, m.upConns, m.upErrors, reloads, m.pluginResponses, m.certExpiry,
		cacheVec, info,
	)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          reg,
		EnableOpenMetrics: false,
	})
	return m
}

// Registry returns the registry, for tests and for callers that want to add
// collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the Prometheus text format for this registry (mount it on
// /metrics at basic.metrics_addr).
func (m *Metrics) Handler() http.Handler { return m.handler }

// ConfigReload counts one reload attempt after start.
func (m *Metrics) ConfigReload(ok bool) {
	if ok {
		m.reloadOK.Inc()
	} else {
		m.reloadFail.Inc()
	}
}

// RequestStarted and RequestDone bracket a proxied request
// (http_requests_in_flight). Admin and metrics requests should not call
// them.
func (m *Metrics) RequestStarted() { m.inFlight.Inc() }

// RequestDone: see RequestStarted.
func (m *Metrics) RequestDone() { m.inFlight.Dec() }

// SetCertificateExpiry records a certificate's NotAfter (as a Unix
// timestamp) under its [certificates] name. Build time, not per request.
func (m *Metrics) SetCertificateExpiry(name string, notAfter time.Time) {
	name = clean(name)
	m.mu.Lock()
	m.certs[name] = struct{}{}
	m.mu.Unlock()
	m.certExpiry.WithLabelValues(name).Set(float64(notAfter.Unix()))
}

// Retain deletes the series of servers, locations and upstream addrs that
// are no longer configured, and forgets their handles. locations are
// {server, location} pairs and must include {server, ""} for every server
// (requests no location matched); the servers kept are those named there.
// addrs are {upstream, addr} pairs. Call it after a new snapshot is swapped
// in. A request still running on the old snapshot may update a deleted
// series' detached child; that update is simply lost (it never resurrects
// the series, except for a (method, status) pair first seen on the old
// handle after Retain, which comes back until the next Retain).
func (m *Metrics) Retain(locations, addrs [][2]string) {
	locs := make(map[[2]string]bool, len(locations))
	servers := make(map[string]bool)
	for _, p := range locations {
		p = [2]string{clean(p[0]), clean(p[1])}
		locs[p] = true
		servers[p[0]] = true
	}
	addrSet := make(map[[2]string]bool, len(addrs))
	for _, p := range addrs {
		addrSet[[2]string{clean(p[0]), clean(p[1])}] = true
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.locations {
		if !locs[k] {
			delete(m.locations, k)
			l := prometheus.Labels{"server": k[0], "location": k[1]}
			m.requests.DeletePartialMatch(l)
			m.duration.delete(k[0], k[1])
		}
	}
	for k := range m.servers {
		if !servers[k] {
			delete(m.servers, k)
		}
	}
	// Server-level series come from Server and Location handles alike.
	for k := range m.serverNames {
		if !servers[k] {
			delete(m.serverNames, k)
			l := prometheus.Labels{"server": k}
			m.connsOpen.Delete(l)
			m.reqBytes.Delete(l)
			m.respBytes.Delete(l)
			m.tlsHandshakes.Delete(l)
		}
	}
	for k := range m.addrs {
		if !addrSet[k] {
			delete(m.addrs, k)
			l := prometheus.Labels{"upstream": k[0], "server": k[1]}
			m.upHealth.Delete(l)
			m.upDuration.delete(k[0], k[1])
			m.upConns.DeletePartialMatch(l)
			m.upErrors.Delete(l)
		}
	}
}

// RetainPlugins deletes plugin_responses_total series of plugins not in
// names.
func (m *Metrics) RetainPlugins(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[clean(n)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for k := range m.plugins {
		if !keep[k] {
			delete(m.plugins, k)
			m.pluginResponses.DeletePartialMatch(prometheus.Labels{"plugin": k})
			changed = true
		}
	}
	if changed {
		m.publishPluginsLocked()
	}
}

// RetainCertificates deletes tls_certificate_expiry_seconds series of
// certificates not in names.
func (m *Metrics) RetainCertificates(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[clean(n)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.certs {
		if !keep[k] {
			delete(m.certs, k)
			m.certExpiry.DeleteLabelValues(k)
		}
	}
}

// clean makes a label value valid UTF-8 (client_golang panics otherwise).
// Config names always are; this is for bad input that must not panic.
func clean(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// --- per-location ---------------------------------------------------------

// Methods are the request methods with their own label value; any other
// method is counted as "OTHER" (bounded label cardinality).
var Methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"}

const numMethods = len(Methods)

// methodIndex maps a method to its index in Methods (OTHER for the rest).
// Methods are case-sensitive (RFC 9110 §9.1).
func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "CONNECT":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "PATCH":
		return 8
	}
	return numMethods - 1
}

// statusText holds "100".."599" so a status label costs no allocation.
var statusText = func() (t [600]string) {
	for i := 100; i < 600; i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// StatusText returns the 3-digit label value of a status; statuses outside
// 100-599 (a response never started, bad input) are "000".
func StatusText(status int) string {
	if status < 100 || status > 599 {
		return "000"
	}
	return statusText[status]
}

// Status rows are compact: the registered statuses (and nginx's 499) get a
// slot each, so a row costs 512 bytes instead of 4 KB for a dense 100-599
// table. Slot 0 is the slow path: a status outside the list (or out of
// range, "000") is looked up by label on every call. It is still correct,
// only slower, and such statuses are rare.
var commonStatuses = [...]int{
	100, 101, 102, 103,
	200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
	300, 301, 302, 303, 304, 305, 307, 308,
	400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413,
	414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431,
	451, 499,
	500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
}

const numSlots = len(commonStatuses) + 1

// slotOf maps a status (index) to its row slot; 0 means "not in the list".
var slotOf = func() (t [600]uint8) {
	for i, s := range commonStatuses {
		t[s] = uint8(i + 1)
	}
	return t
}()

func statusSlot(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return int(slotOf[status])
}

type counterBox struct{ c prometheus.Counter }

// statusRow is the lazily filled table of counter children for one method
// of one location (or of one plugin), indexed by statusSlot. A row is only
// allocated for a (location, method) pair actually seen.
type statusRow [numSlots]atomic.Pointer[counterBox]

// LocationMetrics are the pre-resolved series of one (server, location).
// Observe is the per-request call.
type LocationMetrics struct {
	vec              *prometheus.CounterVec
	server, location string
	duration         *durationHist
	reqBytes         prometheus.Counter
	respBytes        prometheus.Counter
	rows             [numMethods]atomic.Pointer[statusRow]
}

// Location returns the handle of (server, location); location "" is for
// requests that matched no location. Build time: it takes a lock and may
// allocate.
func (m *Metrics) Location(server, location string) *LocationMetrics {
	k := [2]string{clean(server), clean(location)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if lm := m.locations[k]; lm != nil {
		return lm
	}
	lm := &LocationMetrics{
		vec:       m.requests,
		server:    k[0],
		location:  k[1],
		duration:  m.duration.child(k[0], k[1]),
		reqBytes:  m.reqBytes.WithLabelValues(k[0]),
		respBytes: m.respBytes.WithLabelValues(k[0]),
	}
	m.locations[k] = lm
	m.serverNames[k[0]] = struct{}{}
	return lm
}

// Observe records one finished request: http_requests_total,
// http_request_duration_seconds and the server's byte counters. It does no
// label lookup once a (method, status) pair has been seen on this handle
// and allocates nothing. A nil handle does nothing.
func (lm *LocationMetrics) Observe(method string, status int, d time.Duration, bytesIn, bytesOut int64) {
	if lm == nil {
		return
	}
	lm.counter(methodIndex(method), status).Inc()
	lm.duration.Observe(d)
	if bytesIn > 0 {
		lm.reqBytes.Add(float64(bytesIn))
	}
	if bytesOut > 0 {
		lm.respBytes.Add(float64(bytesOut))
	}
}

func (lm *LocationMetrics) counter(mi, status int) prometheus.Counter {
	row := lm.rows[mi].Load()
	if row == nil {
		row = new(statusRow)
		if !lm.rows[mi].CompareAndSwap(nil, row) {
			row = lm.rows[mi].Load()
		}
	}
	si := statusSlot(status)
	if si == 0 {
		return lm.vec.WithLabelValues(Methods[mi], StatusText(status), lm.server, lm.location)
	}
	slot := &row[si]
	if b := slot.Load(); b != nil {
		return b.c
	}
	b := &counterBox{lm.vec.WithLabelValues(Methods[mi], StatusText(status), lm.server, lm.location)}
	if !slot.CompareAndSwap(nil, b) {
		b = slot.Load()
	}
	return b.c
}

// --- per-server -----------------------------------------------------------

// ServerMetrics are the pre-resolved series of one [servers] entry.
type ServerMetrics struct {
	connsOpen prometheus.Gauge
	tls       prometheus.Counter
}

// Server returns the handle of a server. Build time.
func (m *Metrics) Server(name string) *ServerMetrics {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if sm := m.servers[name]; sm != nil {
		return sm
	}
	sm := &ServerMetrics{
		connsOpen: m.connsOpen.WithLabelValues(name),
		tls:       m.tlsHandshakes.WithLabelValues(name),
	}
	m.servers[name] = sm
	m.serverNames[name] = struct{}{}
	return sm
}

// ConnHook returns the server's connection callback (server.Options.OnConn):
// called with true when a connection opens, false when it closes.
func (m *Metrics) ConnHook(server string) func(open bool) {
	sm := m.Server(server)
	return func(open bool) {
		if open {
			sm.ConnOpened()
		} else {
			sm.ConnClosed()
		}
	}
}

// TLSHandshake counts a completed TLS handshake on server. Build-time
// lookup: hold the Server handle on hot paths.
func (m *Metrics) TLSHandshake(server string) { m.Server(server).TLSHandshake() }

// ConnOpened and ConnClosed bracket a client connection
// (http_connections_open). A nil handle does nothing.
func (sm *ServerMetrics) ConnOpened() {
	if sm != nil {
		sm.connsOpen.Inc()
	}
}

// ConnClosed: see ConnOpened.
func (sm *ServerMetrics) ConnClosed() {
	if sm != nil {
		sm.connsOpen.Dec()
	}
}

// TLSHandshake counts a completed TLS handshake.
func (sm *ServerMetrics) TLSHandshake() {
	if sm != nil {
		sm.tls.Inc()
	}
}

// --- per-upstream-addr ----------------------------------------------------

// AddrMetrics are the pre-resolved series of one (upstream, addr).
type AddrMetrics struct {
	duration *durationHist
	health   prometheus.Gauge
	reused   prometheus.Counter
	fresh    prometheus.Counter
	errors   prometheus.Counter
}

// UpstreamAddr returns the handle of (upstream, addr). A new handle starts
// healthy (upstream_health 1): the spec says an addr is healthy until its
// checks say otherwise. Build time.
func (m *Metrics) UpstreamAddr(upstream, addr string) *AddrMetrics {
	k := [2]string{clean(upstream), clean(addr)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if am := m.addrs[k]; am != nil {
		return am
	}
	am := &AddrMetrics{
		duration: m.upDuration.child(k[0], k[1]),
		health:   m.upHealth.WithLabelValues(k[0], k[1]),
		reused:   m.upConns.WithLabelValues(k[0], k[1], "true"),
		fresh:    m.upConns.WithLabelValues(k[0], k[1], "false"),
		errors:   m.upErrors.WithLabelValues(k[0], k[1]),
	}
	am.health.Set(1)
	m.addrs[k] = am
	return am
}

// Done records one round trip to the addr: upstream_requests_total,
// upstream_response_duration_seconds (d = time to the response head, or to
// the failure), upstream_connections_total by reuse, and
// upstream_errors_total when failed (no usable response). Call it once per
// attempt (a retry to another addr is another call on that addr's handle).
// Allocation-free. A nil handle does nothing.
func (am *AddrMetrics) Done(d time.Duration, reused, failed bool) {
	if am == nil {
		return
	}
	am.duration.Observe(d) // upstream_requests_total too
	if reused {
		am.reused.Inc()
	} else {
		am.fresh.Inc()
	}
	if failed {
		am.errors.Inc()
	}
}

// SetHealth sets upstream_health (health checks call it on transitions).
func (am *AddrMetrics) SetHealth(up bool) {
	if am == nil {
		return
	}
	if up {
		am.health.Set(1)
	} else {
		am.health.Set(0)
	}
}

// --- per-plugin -----------------------------------------------------------

// PluginMetrics are the pre-resolved series of one plugin.
type PluginMetrics struct {
	vec  *prometheus.CounterVec
	name string
	row  statusRow
}

// Plugin returns the handle of a [plugins] entry. Build time.
func (m *Metrics) Plugin(name string) *PluginMetrics {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if pm := m.plugins[name]; pm != nil {
		return pm
	}
	pm := &PluginMetrics{vec: m.pluginResponses, name: name}
	m.plugins[name] = pm
	m.publishPluginsLocked()
	return pm
}

func (m *Metrics) publishPluginsLocked() {
	ro := make(map[string]*PluginMetrics, len(m.plugins))
	for k, v := range m.plugins {
		ro[k] = v
	}
	m.pluginsRO.Store(&ro)
}

// PluginResponse counts a request plugin answered itself with status. It
// finds the plugin's handle without a lock (a map read); only the first call
// for a plugin takes the build-time path. Prefer holding the handle from
// Plugin when the caller can.
func (m *Metrics) PluginResponse(plugin string, status int) {
	if ro := m.pluginsRO.Load(); ro != nil {
		if pm := (*ro)[plugin]; pm != nil {
			pm.Responded(status)
			return
		}
	}
	m.Plugin(plugin).Responded(status)
}

// Responded counts a request the plugin answered itself with status.
// Allocation-free after the first time a status is seen.
func (pm *PluginMetrics) Responded(status int) {
	if pm == nil {
		return
	}
	si := statusSlot(status)
	if si == 0 {
		pm.vec.WithLabelValues(pm.name, StatusText(status)).Inc()
		return
	}
	slot := &pm.row[si]
	b := slot.Load()
	if b == nil {
		b = &counterBox{pm.vec.WithLabelValues(pm.name, StatusText(status))}
		if !slot.CompareAndSwap(nil, b) {
			b = slot.Load()
		}
	}
	b.c.Inc()
}

// cacheStatuses are the X-Cache-Status values counted; anything else is
// counted as the last, OTHER, so the label stays bounded.
var cacheStatuses = [...]string{"HIT", "MISS", "EXPIRED", "STALE", "BYPASS", "OTHER"}

// CacheResponse counts a response by its X-Cache-Status value.
func (m *Metrics) CacheResponse(status string) {
	for i, st := range cacheStatuses[:len(cacheStatuses)-1] {
		if st == status {
			m.cacheStatus[i].Inc()
			return
		}
	}
	m.cacheStatus[len(cacheStatuses)-1].Inc()
}
