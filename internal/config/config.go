// Package config holds pingap-go's configuration schema: the TOML shape users
// write (see docs/configuration.md and the contract in shared/spec), its
// defaults and its validation. It is pure data: nothing here opens a socket
// or starts a goroutine. The engine compiles a validated *Config into an
// immutable snapshot.
package config

// Config is one whole, validated configuration. Maps are keyed by the item
// name (the part after the dot in [upstreams.NAME]).
type Config struct {
	Basic        Basic                  `toml:"basic" json:"basic"`
	Upstreams    map[string]Upstream    `toml:"upstreams" json:"upstreams,omitempty"`
	Locations    map[string]Location    `toml:"locations" json:"locations,omitempty"`
	Servers      map[string]Server      `toml:"servers" json:"servers,omitempty"`
	Plugins      map[string]Plugin      `toml:"plugins,omitempty" json:"plugins,omitempty"`
	Certificates map[string]Certificate `toml:"certificates,omitempty" json:"certificates,omitempty"`
	ACME         ACME                   `toml:"acme,omitempty" json:"acme"`
	Tracing      Tracing                `toml:"tracing" json:"tracing"`

	// Source names where the config came from (a file, a folder or an etcd
	// URL); it is not part of the TOML.
	Source string `toml:"-" json:"-"`

	// origins maps a section ("basic", "upstreams.NAME") to the file that
	// defined it, for configs merged from a folder; see FileOf.
	origins map[string]string
}

// FileOf returns the file that defined section ("basic",
// "upstreams.backend", "plugins.api_keys"): the file inside a config folder,
// else Source. The engine uses it to locate the errors it reports with
// NewError.
func (c *Config) FileOf(section string) string {
	if f, ok := c.origins[section]; ok {
		return f
	}
	return c.Source
}

// SetFileOf records that section came from file (for sources that assemble
// a config from many places, such as etcd keys).
func (c *Config) SetFileOf(section, file string) {
	if c.origins == nil {
		c.origins = make(map[string]string)
	}
	c.origins[section] = file
}

// Basic is the [basic] section.
type Basic struct {
	Name           string    `toml:"name" json:"name"`
	Threads        int       `toml:"threads,omitzero" json:"threads"`
	GracePeriod    Duration  `toml:"grace_period,omitzero" json:"grace_period"`
	LogLevel       string    `toml:"log_level,omitempty" json:"log_level"`
	LogFormat      string    `toml:"log_format,omitempty" json:"log_format"`
	AccessLog      AccessLog `toml:"access_log" json:"access_log"`
	MetricsAddr    string    `toml:"metrics_addr,omitempty" json:"metrics_addr"`
	AdminAddr      string    `toml:"admin_addr,omitempty" json:"admin_addr"`
	AdminUser      string    `toml:"admin_user,omitempty" json:"admin_user"`
	AdminPassword  string    `toml:"admin_password,omitempty" json:"admin_password"`
	AutoReload     bool      `toml:"auto_reload,omitempty" json:"auto_reload"`
	TrustedProxies []string  `toml:"trusted_proxies,omitempty" json:"trusted_proxies"`
}

// Upstream is one [upstreams.NAME] section.
type Upstream struct {
	Addrs               []string `toml:"addrs" json:"addrs"`
	Algorithm           string   `toml:"algorithm" json:"algorithm"`
	Weights             []int    `toml:"weights,omitempty" json:"weights,omitempty"`
	HashKey             string   `toml:"hash_key,omitempty" json:"hash_key,omitempty"`
	HealthCheck         string   `toml:"health_check,omitempty" json:"health_check,omitempty"`
	HealthCheckInterval Duration `toml:"health_check_interval,omitzero" json:"health_check_interval"`
	HealthCheckTimeout  Duration `toml:"health_check_timeout,omitzero" json:"health_check_timeout"`
	HealthyThreshold    int      `toml:"healthy_threshold,omitzero" json:"healthy_threshold"`
	UnhealthyThreshold  int      `toml:"unhealthy_threshold,omitzero" json:"unhealthy_threshold"`
	ConnectionTimeout   Duration `toml:"connection_timeout,omitzero" json:"connection_timeout"`
	ReadTimeout         Duration `toml:"read_timeout,omitzero" json:"read_timeout"`
	IdleTimeout         Duration `toml:"idle_timeout,omitzero" json:"idle_timeout"`
	MaxIdleConns        int      `toml:"max_idle_conns,omitzero" json:"max_idle_conns"`
	TLS                 bool     `toml:"tls,omitempty" json:"tls"`
	SNI                 string   `toml:"sni,omitempty" json:"sni,omitempty"`
	InsecureSkipVerify  bool     `toml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify"`
	HTTP2               bool     `toml:"http2,omitempty" json:"http2"`
	TLSClientCert       string   `toml:"tls_client_cert,omitempty" json:"tls_client_cert,omitempty"`
	TLSClientKey        string   `toml:"tls_client_key,omitempty" json:"tls_client_key,omitempty"`
	TLSCA               string   `toml:"tls_ca,omitempty" json:"tls_ca,omitempty"`
}

// Location is one [locations.NAME] section.
type Location struct {
	Upstream           string            `toml:"upstream,omitempty" json:"upstream,omitempty"`
	Host               string            `toml:"host,omitempty" json:"host,omitempty"`
	Path               string            `toml:"path" json:"path"`
	PathType           string            `toml:"path_type" json:"path_type"`
	Priority           int               `toml:"priority,omitzero" json:"priority"`
	Rewrite            string            `toml:"rewrite,omitempty" json:"rewrite,omitempty"`
	HeadersAdd         []string          `toml:"headers_add,omitempty" json:"headers_add,omitempty"`
	HeadersSet         map[string]string `toml:"headers_set,omitempty" json:"headers_set,omitempty"`
	HeadersRemove      []string          `toml:"headers_remove,omitempty" json:"headers_remove,omitempty"`
	ProxySetHeaders    map[string]string `toml:"proxy_set_headers,omitempty" json:"proxy_set_headers,omitempty"`
	ProxyAddHeaders    []string          `toml:"proxy_add_headers,omitempty" json:"proxy_add_headers,omitempty"`
	ProxyRemoveHeaders []string          `toml:"proxy_remove_headers,omitempty" json:"proxy_remove_headers,omitempty"`
	Plugins            []string          `toml:"plugins,omitempty" json:"plugins,omitempty"`
	ClientMaxBodySize  Size              `toml:"client_max_body_size,omitzero" json:"client_max_body_size"`
}

// Server is one [servers.NAME] section: a listener.
type Server struct {
	Addr              string   `toml:"addr" json:"addr"`
	Locations         []string `toml:"locations" json:"locations"`
	TLSCert           string   `toml:"tls_cert,omitempty" json:"tls_cert,omitempty"`
	TLSKey            string   `toml:"tls_key,omitempty" json:"tls_key,omitempty"`
	Certificates      []string `toml:"certificates,omitempty" json:"certificates,omitempty"`
	H2C               bool     `toml:"h2c,omitempty" json:"h2c"`
	HTTP3             bool     `toml:"http3,omitempty" json:"http3"`
	ClientCA          string   `toml:"client_ca,omitempty" json:"client_ca,omitempty"`
	Plugins           []string `toml:"plugins,omitempty" json:"plugins,omitempty"`
	ReadHeaderTimeout Duration `toml:"read_header_timeout,omitzero" json:"read_header_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout,omitzero" json:"idle_timeout"`
	MaxHeaderBytes    Size     `toml:"max_header_bytes,omitzero" json:"max_header_bytes"`
}

// TLSEnabled reports whether the server terminates TLS.
func (s *Server) TLSEnabled() bool { return s.TLSCert != "" || len(s.Certificates) > 0 }

// Plugin is one [plugins.NAME] section. Category picks the kind; the other
// keys are kept raw in Options and decoded strictly by that kind's builder
// (see DecodeOptions).
type Plugin struct {
	Category string         `toml:"category" json:"category"`
	Options  map[string]any `toml:"-" json:"options,omitempty"`
}

// Certificate is one [certificates.NAME] section.
type Certificate struct {
	Domains []string `toml:"domains" json:"domains"`
	TLSCert string   `toml:"tls_cert,omitempty" json:"tls_cert,omitempty"`
	TLSKey  string   `toml:"tls_key,omitempty" json:"tls_key,omitempty"`
	ACME    bool     `toml:"acme,omitempty" json:"acme"`
}

// ACME is the [acme] section.
type ACME struct {
	Email        string   `toml:"email,omitempty" json:"email,omitempty"`
	DirectoryURL string   `toml:"directory_url,omitempty" json:"directory_url"`
	CARoot       string   `toml:"ca_root,omitempty" json:"ca_root,omitempty"`
	Storage      string   `toml:"storage,omitempty" json:"storage"`
	Challenge    string   `toml:"challenge,omitempty" json:"challenge"`
	RenewBefore  Duration `toml:"renew_before,omitzero" json:"renew_before"`
}

// Tracing is the [tracing] section.
type Tracing struct {
	Endpoint    string  `toml:"endpoint,omitempty" json:"endpoint,omitempty"`
	ServiceName string  `toml:"service_name,omitempty" json:"service_name,omitempty"`
	SampleRatio float64 `toml:"sample_ratio" json:"sample_ratio"`
}
