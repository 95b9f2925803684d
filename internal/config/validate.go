package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pingap-go/pingap/internal/httpx"
)

// algorithms are the upstream selection policies (read-only).
var algorithms = []string{"round_robin", "weighted_round_robin", "least_conn", "ip_hash", "random", "hash"}

// pathTypes are the location path match kinds (read-only).
var pathTypes = []string{"exact", "prefix", "regex"}

// Section returns the section string of an item as Error and FileOf use it:
// kind + "." + name, the name quoted when TOML needs it.
func Section(kind, name string) string { return kind + "." + keyString(name) }

// Validate checks the whole config (after ApplyDefaults) and returns every
// problem at once as a sorted Errors, or nil. It is pure: it opens no file
// and resolves no name (certificate files, CA files and plugin options are
// checked when the engine builds the config).
func Validate(c *Config) error {
	v := &validator{c: c}
	v.basic()
	for _, name := range sortedKeys(c.Upstreams) {
		v.upstream(name, c.Upstreams[name])
	}
	for _, name := range sortedKeys(c.Locations) {
		v.location(name, c.Locations[name])
	}
	listeners := map[string]string{}
	if c.Basic.MetricsAddr != "" {
		if n, ok := normalizeAddr(c.Basic.MetricsAddr); ok {
			listeners[n] = "basic.metrics_addr"
		}
	}
	if c.Basic.AdminAddr != "" {
		if n, ok := normalizeAddr(c.Basic.AdminAddr); ok {
			if prev, dup := listeners[n]; dup {
				v.add("basic", "admin_addr", "same address as %s", prev)
			} else {
				listeners[n] = "basic.admin_addr"
			}
		}
	}
	for _, name := range sortedKeys(c.Servers) {
		v.server(name, c.Servers[name], listeners)
	}
	for _, name := range sortedKeys(c.Plugins) {
		v.plugin(name, c.Plugins[name])
	}
	for _, name := range sortedKeys(c.Certificates) {
		v.certificate(name, c.Certificates[name])
	}
	v.acme()
	v.tracing()
	return v.errs.Err()
}

type validator struct {
	c    *Config
	errs Errors
}

// add reports a problem in section (file found with FileOf).
func (v *validator) add(section, key, format string, args ...any) {
	v.errs.Add(v.c.FileOf(section), section, key, fmt.Sprintf(format, args...))
}

func oneOf(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func (v *validator) name(section, name string) {
	if !validName(name) {
		v.add(section, "", "invalid name %q: use letters, digits, '_', '-' and '.' (at most 128)", name)
	}
}

// validName: names end up in references, metrics labels and etcd keys.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func (v *validator) basic() {
	b := &v.c.Basic
	const s = "basic"
	if b.Threads < 0 {
		v.add(s, "threads", "must be 0 (all CPUs) or more, not %d", b.Threads)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, b.LogLevel) {
		v.add(s, "log_level", "unknown level %q (want %s)", b.LogLevel, oneOf([]string{"debug", "info", "warn", "error"}))
	}
	if !slices.Contains([]string{"json", "text"}, b.LogFormat) {
		v.add(s, "log_format", "unknown format %q (want \"json\" or \"text\")", b.LogFormat)
	}
	if b.MetricsAddr != "" {
		if msg := checkHostPort(b.MetricsAddr, true); msg != "" {
			v.add(s, "metrics_addr", "%s", msg)
		}
	}
	if b.AdminAddr != "" {
		if msg := checkHostPort(b.AdminAddr, true); msg != "" {
			v.add(s, "admin_addr", "%s", msg)
		} else if !isLoopbackAddr(b.AdminAddr) && (b.AdminUser == "" || b.AdminPassword == "") {
			v.add(s, "admin_addr", "%q is not a loopback address: admin_user and admin_password are required", b.AdminAddr)
		}
	}
	if (b.AdminUser == "") != (b.AdminPassword == "") {
		if b.AdminUser == "" {
			v.add(s, "admin_user", "must be set together with admin_password")
		} else {
			v.add(s, "admin_password", "must be set together with admin_user")
		}
	}
	if strings.ContainsRune(b.AdminUser, ':') {
		v.add(s, "admin_user", "must not contain ':' (HTTP basic authentication)")
	}
	for i, p := range b.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			v.add(s, "trusted_proxies", "entry %d %q is not an IP address or CIDR", i+1, p)
		}
	}
}

// parsePrefix parses an IP ("10.0.0.1") or a CIDR ("10.0.0.0/8").
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (v *validator) upstream(name string, u Upstream) {
	s := Section("upstreams", name)
	v.name(s, name)
	if len(u.Addrs) == 0 {
		v.add(s, "addrs", "at least one \"host:port\" is required")
	}
	seen := map[string]bool{}
	for i, a := range u.Addrs {
		if msg := checkHostPort(a, false); msg != "" {
			v.add(s, "addrs", "entry %d: %s", i+1, msg)
			continue
		}
		n, _ := normalizeAddr(a)
		if seen[n] {
			v.add(s, "addrs", "%q is listed twice (use weights to send it more traffic)", a)
		}
		seen[n] = true
	}
	if !slices.Contains(algorithms, u.Algorithm) {
		v.add(s, "algorithm", "unknown algorithm %q (want %s)", u.Algorithm, oneOf(algorithms))
	}
	if len(u.Weights) > 0 {
		if u.Algorithm != "weighted_round_robin" {
			v.add(s, "weights", "only used with algorithm = \"weighted_round_robin\"")
		}
		if len(u.Weights) != len(u.Addrs) {
			v.add(s, "weights", "has %d entries for %d addrs (one weight per addr)", len(u.Weights), len(u.Addrs))
		}
		for i, w := range u.Weights {
			if w < 1 {
				v.add(s, "weights", "entry %d is %d: weights must be 1 or more", i+1, w)
			}
		}
	}
	if u.HashKey != "" {
		if u.Algorithm != "hash" {
			v.add(s, "hash_key", "only used with algorithm = \"hash\"")
		}
		if msg := checkHashKey(u.HashKey); msg != "" {
			v.add(s, "hash_key", "%s", msg)
		}
	} else if u.Algorithm == "hash" {
		v.add(s, "hash_key", "required with algorithm = \"hash\" (\"uri\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\")")
	}
	if u.HealthCheck != "" {
		if msg := checkHealthCheck(u.HealthCheck); msg != "" {
			v.add(s, "health_check", "%s", msg)
		}
	}
	if u.HealthyThreshold < 1 {
		v.add(s, "healthy_threshold", "must be 1 or more, not %d", u.HealthyThreshold)
	}
	if u.UnhealthyThreshold < 1 {
		v.add(s, "unhealthy_threshold", "must be 1 or more, not %d", u.UnhealthyThreshold)
	}
	if u.MaxIdleConns < 0 {
		v.add(s, "max_idle_conns", "must be 0 (default %d) or more, not %d", DefaultMaxIdleConns, u.MaxIdleConns)
	}
	if !u.TLS {
		for _, k := range []struct {
			key string
			set bool
		}{{"sni", u.SNI != ""}, {"insecure_skip_verify", u.InsecureSkipVerify}, {"tls_ca", u.TLSCA != ""},
			{"tls_client_cert", u.TLSClientCert != ""}, {"tls_client_key", u.TLSClientKey != ""}} {
			if k.set {
				v.add(s, k.key, "needs tls = true")
			}
		}
	}
	if u.TLSClientCert != "" && u.TLSClientKey == "" {
		v.add(s, "tls_client_key", "required with tls_client_cert")
	}
	if u.TLSClientKey != "" && u.TLSClientCert == "" {
		v.add(s, "tls_client_cert", "required with tls_client_key")
	}
	if u.SNI != "" && !validHostname(u.SNI) {
		v.add(s, "sni", "%q is not a valid host name", u.SNI)
	}
}

// checkHashKey checks "uri", "header:NAME", "cookie:NAME" or "query:NAME".
func checkHashKey(k string) string {
	if k == "uri" {
		return ""
	}
	kind, arg, ok := strings.Cut(k, ":")
	switch {
	case !ok || !slices.Contains([]string{"header", "cookie", "query"}, kind):
		return fmt.Sprintf("invalid %q (want \"uri\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\")", k)
	case arg == "":
		return fmt.Sprintf("%q needs a name after the colon", k)
	case kind != "query" && !httpx.ValidToken(arg):
		return fmt.Sprintf("%q: %q is not a valid %s name", k, arg, kind)
	}
	return ""
}

// checkHealthCheck checks "http://HOST/path", "https://HOST/path" or
// "tcp://HOST".
func checkHealthCheck(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("invalid URL %q", s)
	}
	switch u.Scheme {
	case "http", "https", "tcp":
	default:
		return fmt.Sprintf("%q: scheme must be http, https or tcp", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("%q: a host is required (e.g. \"%s://backend/healthz\"; sent as the Host header)", s, u.Scheme)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%q: invalid port %q", s, p)
		}
	}
	if u.Scheme == "tcp" && (u.Path != "" && u.Path != "/" || u.RawQuery != "") {
		return fmt.Sprintf("%q: a tcp check has no path or query", s)
	}
	return ""
}

func (v *validator) location(name string, l Location) {
	s := Section("locations", name)
	v.name(s, name)
	if l.Upstream != "" {
		if _, ok := v.c.Upstreams[l.Upstream]; !ok {
			v.add(s, "upstream", "unknown upstream %q%s", l.Upstream, suggest(l.Upstream, sortedKeys(v.c.Upstreams)))
		}
	} else if len(l.Plugins) == 0 {
		v.add(s, "upstream", "required (a location without an upstream needs a plugin that answers)")
	}
	v.pluginRefs(s, l.Plugins)
	if l.Host != "" {
		if msg := checkHostPattern(l.Host); msg != "" {
			v.add(s, "host", "%s", msg)
		}
	}
	var re *regexp.Regexp
	switch l.PathType {
	case "exact", "prefix":
		if !strings.HasPrefix(l.Path, "/") {
			v.add(s, "path", "%q must start with \"/\"", l.Path)
		} else if !isNormalizedPath(l.Path) {
			v.add(s, "path", "%q is not normalized (no \"//\", \".\" or \"..\" segments): request paths are normalized before matching, so it would never match", l.Path)
		}
		if l.Rewrite != "" && !strings.HasPrefix(l.Rewrite, "/") {
			v.add(s, "rewrite", "%q must start with \"/\"", l.Rewrite)
		}
	case "regex":
		var err error
		re, err = regexp.Compile(l.Path)
		if err != nil {
			v.add(s, "path", "invalid regex: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		} else if l.Rewrite != "" {
			if msg := checkExpandTemplate(re, l.Rewrite); msg != "" {
				v.add(s, "rewrite", "%s", msg)
			}
		}
	default:
		v.add(s, "path_type", "unknown path_type %q (want %s)", l.PathType, oneOf(pathTypes))
	}
	for i, h := range l.HeadersAdd {
		if msg := checkHeaderLine(h); msg != "" {
			v.add(s, "headers_add", "entry %d: %s", i+1, msg)
		}
	}
	for i, h := range l.ProxyAddHeaders {
		if msg := checkHeaderLine(h); msg != "" {
			v.add(s, "proxy_add_headers", "entry %d: %s", i+1, msg)
		}
	}
	v.headerTable(s, "headers_set", l.HeadersSet)
	v.headerTable(s, "proxy_set_headers", l.ProxySetHeaders)
	for _, h := range l.HeadersRemove {
		if !httpx.ValidToken(h) {
			v.add(s, "headers_remove", "%q is not a valid header name", h)
		}
	}
	for _, h := range l.ProxyRemoveHeaders {
		if !httpx.ValidToken(h) {
			v.add(s, "proxy_remove_headers", "%q is not a valid header name", h)
		}
	}
}

// headerTable checks a Name = value table. Header names are
// case-insensitive, so "Host" and "host" in one table would race.
func (v *validator) headerTable(s, key string, m map[string]string) {
	seen := map[string]string{}
	for _, k := range sortedKeys(m) {
		if msg := checkHeader(k, m[k]); msg != "" {
			v.add(s, key, "%s", msg)
		}
		lk := strings.ToLower(k)
		if prev, dup := seen[lk]; dup {
			v.add(s, key, "%q and %q are the same header", prev, k)
		}
		seen[lk] = k
	}
}

func (v *validator) pluginRefs(s string, names []string) {
	seen := map[string]bool{}
	for _, p := range names {
		if seen[p] {
			v.add(s, "plugins", "%q is listed twice", p)
			continue
		}
		seen[p] = true
		if _, ok := v.c.Plugins[p]; !ok {
			v.add(s, "plugins", "unknown plugin %q%s", p, suggest(p, sortedKeys(v.c.Plugins)))
		}
	}
}

// isNormalizedPath reports whether p survives path normalization unchanged
// (the router matches normalized request paths).
func isNormalizedPath(p string) bool {
	if strings.Contains(p, "//") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// checkExpandTemplate checks that every $N / ${N} / $name / ${name} of a
// regexp.Expand template refers to a group of re ("$$" is a dollar).
func checkExpandTemplate(re *regexp.Regexp, t string) string {
	names := re.SubexpNames()
	for i := 0; i < len(t); i++ {
		if t[i] != '$' {
			continue
		}
		if i+1 < len(t) && t[i+1] == '$' {
			i++
			continue
		}
		var name string
		rest := t[i+1:]
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return fmt.Sprintf("%q: unterminated ${", t)
			}
			name = rest[1:end]
			if name == "" || !isGroupName(name) {
				return fmt.Sprintf("%q: invalid group reference ${%s}", t, name)
			}
			i += end + 1
		} else {
			j := 0
			for j < len(rest) && isGroupByte(rest[j]) {
				j++
			}
			name = rest[:j]
			if name == "" {
				continue // a lone "$" is kept as is by regexp.Expand
			}
			i += j
		}
		if n, err := strconv.Atoi(name); err == nil {
			if n > re.NumSubexp() {
				return fmt.Sprintf("%q refers to group $%d but the regex has %d group(s)", t, n, re.NumSubexp())
			}
			continue
		}
		if !slices.Contains(names[1:], name) {
			hint := ""
			if name[0] >= '0' && name[0] <= '9' {
				hint = fmt.Sprintf(" (write ${%s} when text follows a group number)", strings.TrimRight(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"))
			}
			return fmt.Sprintf("%q refers to unknown group ${%s}%s", t, name, hint)
		}
	}
	return ""
}

func isGroupByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isGroupName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isGroupByte(s[i]) {
			return false
		}
	}
	return true
}

// checkHostPattern checks a location host: "name" or "*.name", no port.
func checkHostPattern(h string) string {
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return fmt.Sprintf("invalid host %q: only a leading \"*.\" wildcard is allowed", h)
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		// An IPv6 literal, as it appears in a Host header.
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil && a.Is6() {
			return ""
		}
		return fmt.Sprintf("invalid host %q: not an IPv6 address", h)
	}
	if strings.Contains(name, ":") {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
			return "" // a bare IPv6 literal, as the router accepts it
		}
		return fmt.Sprintf("invalid host %q: no port (the port in Host is ignored when matching)", h)
	}
	// One trailing dot (a fully qualified name) is allowed, as the router
	// strips it.
	if n := len(name); n > 1 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if !validHostname(name) {
		return fmt.Sprintf("invalid host %q: want \"example.com\" or \"*.example.com\"", h)
	}
	return ""
}

// validHostname accepts DNS names (letters, digits, '-', '_'; labels of
// 1-63 bytes) and IPv4 literals.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// checkHeaderLine checks "Name: value".
func checkHeaderLine(line string) string {
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return fmt.Sprintf("%q must be \"Name: value\"", line)
	}
	return checkHeader(strings.TrimSpace(name), strings.TrimSpace(value))
}

// checkHeader checks a header name and a value template.
func checkHeader(name, value string) string {
	if !httpx.ValidToken(name) {
		return fmt.Sprintf("%q is not a valid header name", name)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Sprintf("%s: value has a control character (CR, LF, NUL, ...)", name)
		}
	}
	if _, err := httpx.CompileTemplate(value, ""); err != nil {
		return fmt.Sprintf("%s: %v", name, err)
	}
	return ""
}

func (v *validator) server(name string, sv Server, listeners map[string]string) {
	s := Section("servers", name)
	v.name(s, name)
	if sv.Addr == "" {
		v.add(s, "addr", "required (e.g. \"0.0.0.0:80\")")
	} else if msg := checkHostPort(sv.Addr, true); msg != "" {
		v.add(s, "addr", "%s", msg)
	} else if n, ok := normalizeAddr(sv.Addr); ok {
		if prev, dup := listeners[n]; dup {
			v.add(s, "addr", "%q is already used by %s", sv.Addr, prev)
		} else {
			listeners[n] = s
		}
	}
	if len(sv.Locations) == 0 {
		v.add(s, "locations", "at least one location is required")
	}
	seen := map[string]bool{}
	for _, l := range sv.Locations {
		if _, ok := v.c.Locations[l]; !ok {
			v.add(s, "locations", "unknown location %q%s", l, suggest(l, sortedKeys(v.c.Locations)))
		}
		if seen[l] {
			v.add(s, "locations", "%q is listed twice", l)
		}
		seen[l] = true
	}
	v.pluginRefs(s, sv.Plugins)
	if sv.TLSCert != "" && sv.TLSKey == "" {
		v.add(s, "tls_key", "required with tls_cert")
	}
	if sv.TLSKey != "" && sv.TLSCert == "" {
		v.add(s, "tls_cert", "required with tls_key")
	}
	seenCert := map[string]bool{}
	for _, cn := range sv.Certificates {
		if _, ok := v.c.Certificates[cn]; !ok {
			v.add(s, "certificates", "unknown certificate %q%s", cn, suggest(cn, sortedKeys(v.c.Certificates)))
		}
		if seenCert[cn] {
			v.add(s, "certificates", "%q is listed twice", cn)
		}
		seenCert[cn] = true
	}
	tls := sv.TLSEnabled()
	if sv.HTTP3 && !tls {
		v.add(s, "http3", "needs TLS (tls_cert/tls_key or certificates)")
	}
	if sv.ClientCA != "" && !tls {
		v.add(s, "client_ca", "needs TLS (tls_cert/tls_key or certificates)")
	}
	if sv.H2C && tls {
		v.add(s, "h2c", "is for cleartext servers (a TLS server speaks HTTP/2 through ALPN)")
	}
	if sv.MaxHeaderBytes < 1024 && sv.MaxHeaderBytes != 0 {
		v.add(s, "max_header_bytes", "%d bytes is too small (at least 1KB)", int64(sv.MaxHeaderBytes))
	}
}

func (v *validator) plugin(name string, p Plugin) {
	s := Section("plugins", name)
	v.name(s, name)
	if p.Category == "" {
		v.add(s, "category", "required (the plugin kind, e.g. \"key_auth\")")
	}
}

func (v *validator) certificate(name string, ct Certificate) {
	s := Section("certificates", name)
	v.name(s, name)
	if len(ct.Domains) == 0 {
		v.add(s, "domains", "at least one domain is required")
	}
	for _, d := range ct.Domains {
		if msg := checkHostPattern(d); msg != "" || strings.ContainsAny(d, "[:") || strings.HasSuffix(d, ".") {
			v.add(s, "domains", "invalid domain %q: want \"example.com\" or \"*.example.com\"", d)
		}
	}
	files := ct.TLSCert != "" || ct.TLSKey != ""
	switch {
	case files && ct.ACME:
		v.add(s, "acme", "use either tls_cert/tls_key or acme = true, not both")
	case !files && !ct.ACME:
		v.add(s, "", "needs tls_cert and tls_key, or acme = true")
	}
	if ct.TLSCert != "" && ct.TLSKey == "" {
		v.add(s, "tls_key", "required with tls_cert")
	}
	if ct.TLSKey != "" && ct.TLSCert == "" {
		v.add(s, "tls_cert", "required with tls_key")
	}
}

func (v *validator) acme() {
	a := &v.c.ACME
	const s = "acme"
	if a.DirectoryURL != "" {
		if u, err := url.Parse(a.DirectoryURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add(s, "directory_url", "%q is not an http(s) URL", a.DirectoryURL)
		}
	}
	if a.Challenge != "http-01" && a.Challenge != "tls-alpn-01" {
		v.add(s, "challenge", "unknown challenge %q (want \"http-01\" or \"tls-alpn-01\")", a.Challenge)
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		v.add(s, "email", "%q is not an email address", a.Email)
	}
	// An acme certificate can only be obtained when some server can answer
	// the configured challenge.
	usesACME := false
	for _, ct := range v.c.Certificates {
		usesACME = usesACME || ct.ACME
	}
	if !usesACME {
		return
	}
	plain, tls := false, false
	for _, sv := range v.c.Servers {
		if sv.TLSEnabled() {
			tls = true
		} else {
			plain = true
		}
	}
	if a.Challenge == "http-01" && !plain {
		v.add(s, "challenge", "\"http-01\" needs a plain-HTTP server to answer the challenges (add one, or use \"tls-alpn-01\")")
	}
	if a.Challenge == "tls-alpn-01" && !tls {
		v.add(s, "challenge", "\"tls-alpn-01\" needs a TLS server to answer the challenges")
	}
}

func (v *validator) tracing() {
	t := &v.c.Tracing
	const s = "tracing"
	if t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add(s, "endpoint", "%q is not an http(s) URL (e.g. \"http://127.0.0.1:4318\")", t.Endpoint)
		}
	}
	if math.IsNaN(t.SampleRatio) || t.SampleRatio < 0 || t.SampleRatio > 1 {
		v.add(s, "sample_ratio", "must be between 0 and 1, not %v", t.SampleRatio)
	}
}

// checkHostPort checks "host:port" with a numeric port 1-65535. For listen
// addresses only, the host may be empty (":8080", all interfaces) and the
// port may be 0 (the system picks a free one: tests, -t checks).
func checkHostPort(a string, listen bool) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Sprintf("%q must be \"host:port\"", a)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || port[0] == '+' || n == 0 && !listen {
		return fmt.Sprintf("%q: port must be a number from 1 to 65535", a)
	}
	if host == "" {
		if listen {
			return ""
		}
		return fmt.Sprintf("%q: host is required", a)
	}
	if strings.Contains(host, ":") || strings.Contains(host, "%") {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("%q: invalid IPv6 address", a)
		}
		return ""
	}
	if !validHostname(host) {
		return fmt.Sprintf("%q: invalid host %q", a, host)
	}
	return ""
}

// normalizeAddr returns a comparable form of a valid host:port: the host
// lower-cased, IP literals in canonical form. Names are not resolved, so
// "localhost:80" and "127.0.0.1:80" differ, as do "0.0.0.0:80" and
// "[::]:80" (separate sockets).
func normalizeAddr(a string) (string, bool) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n == 0 {
		// Port 0 never clashes: every such listener gets its own port.
		return "", false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	} else {
		host = strings.ToLower(host)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), true
}

// isLoopbackAddr reports whether a listen address is loopback only:
// localhost, 127.0.0.0/8 or ::1.
func isLoopbackAddr(a string) bool {
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
