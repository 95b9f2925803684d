package engine

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/metrics"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/catalog"
	"github.com/pingap-go/pingap/internal/proxy"
	"github.com/pingap-go/pingap/internal/router"
	"github.com/pingap-go/pingap/internal/server/http3"
	"github.com/pingap-go/pingap/internal/upstream"
)

// Snapshot is one immutable, compiled configuration. The request path reads
// the current one through a single atomic load; a reload builds a new one
// off the hot path and swaps it in.
type Snapshot struct {
	cfg      *config.Config
	servers  map[string]*serverState
	pools    map[string]*upstream.Pool
	plugins  map[string]*pluginInstance
	trusted  []netip.Prefix
	hostname string
}

// Config returns the configuration the snapshot was built from.
func (s *Snapshot) Config() *config.Config { return s.cfg }

type serverState struct {
	name string
	// altSvc is the Alt-Svc value advertising HTTP/3 ("" without http3).
	altSvc   string
	router   *router.Router[*Location]
	notFound *metrics.LocationMetrics
}

// Location is a [locations.NAME] compiled for one server (the server's
// plugins are part of its chain).
type Location struct {
	Name        string
	Chain       *plugin.Chain
	PluginNames []string
	Route       proxy.Route
	RespAdd     []proxy.HeaderOp
	RespSet     []proxy.HeaderOp
	RespRemove  []string
	Metrics     *metrics.LocationMetrics
}

type pluginInstance struct {
	name     string
	category string
	options  map[string]any
	trusted  []netip.Prefix
	plugin   plugin.Plugin
}

// buildSnapshot compiles cfg. prev, when not nil, is the live snapshot:
// plugins whose configuration did not change are reused with their state.
func (e *Engine) buildSnapshot(cfg *config.Config, prev *Snapshot) (*Snapshot, error) {
	var errs config.Errors
	file := cfg.Source
	s := &Snapshot{
		cfg:     cfg,
		servers: make(map[string]*serverState, len(cfg.Servers)),
		pools:   make(map[string]*upstream.Pool, len(cfg.Upstreams)),
		plugins: make(map[string]*pluginInstance, len(cfg.Plugins)),
	}
	s.hostname, _ = os.Hostname()
	for _, p := range cfg.Basic.TrustedProxies {
		if pfx, err := parsePrefix(p); err == nil {
			s.trusted = append(s.trusted, pfx)
		}
	}

	// Plugins: reuse an instance whose configuration is unchanged, so its
	// state (rate-limit counters, cache contents) survives the reload.
	for _, name := range sortedKeys(cfg.Plugins) {
		pc := cfg.Plugins[name]
		if prev != nil {
			if old := prev.plugins[name]; old != nil && old.category == pc.Category &&
				reflect.DeepEqual(old.options, pc.Options) && reflect.DeepEqual(old.trusted, s.trusted) {
				s.plugins[name] = old
				continue
			}
		}
		env := plugin.Env{Name: name, TrustedProxies: s.trusted, Logger: e.log.With(slog.String("plugin", name))}
		p, err := catalog.Build(env, pc.Category, pc.Options)
		if err != nil {
			section := config.Section("plugins", name)
			errs.Append(cfg.FileOf(section), section, err)
			continue
		}
		s.plugins[name] = &pluginInstance{name: name, category: pc.Category, options: pc.Options, trusted: s.trusted, plugin: p}
	}

	for _, name := range sortedKeys(cfg.Upstreams) {
		pool, err := e.registry.Build(name, cfg.Upstreams[name])
		if err != nil {
			section := config.Section("upstreams", name)
			errs.Append(cfg.FileOf(section), section, err)
			continue
		}
		for _, h := range pool.Hosts {
			am := e.metrics.UpstreamAddr(name, h.Addr)
			am.SetHealth(h.Healthy())
			h.Metrics = am
		}
		s.pools[name] = pool
	}

	for _, sname := range sortedKeys(cfg.Servers) {
		sc := cfg.Servers[sname]
		var routes []router.Route[*Location]
		for _, lname := range sc.Locations {
			lc, ok := cfg.Locations[lname]
			if !ok {
				errs = append(errs, config.NewError(file, "servers."+sname, "locations", fmt.Sprintf("unknown location %q", lname)))
				continue
			}
			loc, lerrs := s.compileLocation(e, file, sname, sc, lname, lc)
			errs = append(errs, lerrs...)
			if loc == nil {
				continue
			}
			routes = append(routes, router.Route[*Location]{
				Name: lname, Host: lc.Host, Path: lc.Path, PathType: lc.PathType,
				Priority: lc.Priority, Rewrite: lc.Rewrite, Value: loc,
			})
		}
		r, err := router.New(routes)
		if err != nil {
			errs = append(errs, config.NewError(file, "servers."+sname, "locations", err.Error()))
			continue
		}
		ss := &serverState{name: sname, router: r, notFound: e.metrics.Location(sname, "")}
		if sc.HTTP3 && sc.TLSEnabled() {
			if _, port, err := net.SplitHostPort(sc.Addr); err == nil {
				if p, err := strconv.Atoi(port); err == nil && p > 0 {
					ss.altSvc = http3.AltSvc(p)
				}
			}
		}
		s.servers[sname] = ss
	}
	if len(errs) > 0 {
		// Plugins built for this failed snapshot hold resources (a JWKS
		// refresher); close them, but not the ones reused from prev.
		s.closePlugins(prev)
		pools := make([]*upstream.Pool, 0, len(s.pools))
		for _, p := range s.pools {
			pools = append(pools, p)
		}
		e.registry.Discard(pools)
		return nil, errs
	}
	return s, nil
}

func (s *Snapshot) compileLocation(e *Engine, file, sname string, sc config.Server, lname string, lc config.Location) (*Location, config.Errors) {
	var errs config.Errors
	section := "locations." + lname
	loc := &Location{Name: lname, Metrics: e.metrics.Location(sname, lname)}
	var plugins []plugin.Plugin
	for _, list := range [][]string{sc.Plugins, lc.Plugins} {
		for _, pn := range list {
			pi := s.plugins[pn]
			if pi == nil {
				if _, declared := s.cfg.Plugins[pn]; !declared {
					errs = append(errs, config.NewError(file, section, "plugins", fmt.Sprintf("unknown plugin %q", pn)))
				}
				continue
			}
			plugins = append(plugins, pi.plugin)
			loc.PluginNames = append(loc.PluginNames, pn)
		}
	}
	loc.Chain = plugin.NewChain(plugins...)
	if lc.Upstream != "" {
		loc.Route.Pool = s.pools[lc.Upstream]
		if loc.Route.Pool == nil {
			if _, declared := s.cfg.Upstreams[lc.Upstream]; !declared {
				errs = append(errs, config.NewError(file, section, "upstream", fmt.Sprintf("unknown upstream %q", lc.Upstream)))
			}
		}
	}
	loc.Route.MaxBodySize = int64(lc.ClientMaxBodySize)
	compile := func(key, name, value string) (proxy.HeaderOp, bool) {
		t, err := httpx.CompileTemplate(value, s.hostname)
		if err != nil {
			errs = append(errs, config.NewError(file, section, key, err.Error()))
			return proxy.HeaderOp{}, false
		}
		return proxy.HeaderOp{Name: name, Value: t}, true
	}
	for _, name := range sortedKeys(lc.ProxySetHeaders) {
		if op, ok := compile("proxy_set_headers", name, lc.ProxySetHeaders[name]); ok {
			loc.Route.SetHeaders = append(loc.Route.SetHeaders, op)
		}
	}
	for _, line := range lc.ProxyAddHeaders {
		name, value := splitHeaderLine(line)
		if op, ok := compile("proxy_add_headers", name, value); ok {
			loc.Route.AddHeaders = append(loc.Route.AddHeaders, op)
		}
	}
	loc.Route.RemoveHeaders = lc.ProxyRemoveHeaders
	loc.Route.Compile()
	for _, name := range sortedKeys(lc.HeadersSet) {
		if op, ok := compile("headers_set", name, lc.HeadersSet[name]); ok {
			loc.RespSet = append(loc.RespSet, op)
		}
	}
	for _, line := range lc.HeadersAdd {
		name, value := splitHeaderLine(line)
		if op, ok := compile("headers_add", name, value); ok {
			loc.RespAdd = append(loc.RespAdd, op)
		}
	}
	loc.RespRemove = lc.HeadersRemove
	if len(errs) > 0 {
		return nil, errs
	}
	return loc, nil
}

func splitHeaderLine(line string) (name, value string) {
	name, value, _ = strings.Cut(line, ":")
	return strings.TrimSpace(name), strings.TrimSpace(value)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closePlugins closes the plugins of s that keep resources, except those
// that keep serving in keep (may be nil).
func (s *Snapshot) closePlugins(keep *Snapshot) {
	for name, pi := range s.plugins {
		if keep != nil && keep.plugins[name] == pi {
			continue
		}
		if c, ok := pi.plugin.(plugin.Closer); ok {
			c.Close()
		}
	}
}
