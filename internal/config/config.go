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
	Plugins      map[string]Plugin      `toml:"plugins" json:"plugins,omitempty"`
	Certificates map[string]Certificate `toml:"certificates" json:"certificates,omitempty"`
	ACME         ACME                   `toml:"acme" json:"acme"`
	Tracing      Tracing                `toml:"tracing" json:"tracing"`

	// Source names where the config came from (a file, a folder or an etcd
	// URL); it is not part of the TOML.
	Source string `toml:"-" json:"-"`
}

// Basic is the [basic] section.
type Basic struct {
	Name           string    `toml:"name" json:"name"`
	Threads        int       `toml:"threads" json:"threads"`
	GracePeriod    Duration  `toml:"grace_period" json:"grace_period"`
	LogLevel       string    `toml:"log_level" json:"log_level"`
	LogFormat      string    `toml:"log_format" json:"log_format"`
	AccessLog      AccessLog `toml:"access_log" json:"access_log"`
	MetricsAddr    string    `toml:"metrics_addr" json:"metrics_addr"`
	AdminAddr      string    `toml:"admin_addr" json:"admin_addr"`
	AdminUser      string    `toml:"admin_user" json:"admin_user"`
	AdminPassword  string    `toml:"admin_password" json:"admin_password"`
	AutoReload     bool      `toml:"auto_reload" json:"auto_reload"`
	TrustedProxies []string  `toml:"trusted_proxies" json:"trusted_proxies"`
}

// Upstream is one [upstreams.NAME] section.
type Upstream struct {
	Addrs               []string `toml:"addrs" json:"addrs"`
	Algorithm           string   `toml:"algorithm" json:"algorithm"`
	Weights             []int    `toml:"weights" json:"weights,omitempty"`
	HashKey             string   `toml:"hash_key" json:"hash_key,omitempty"`
	HealthCheck         string   `toml:"health_check" json:"health_check,omitempty"`
	HealthCheckInterval Duration `toml:"health_check_interval" json:"health_check_interval"`
	HealthCheckTimeout  Duration `toml:"health_check_timeout" json:"health_check_timeout"`
	HealthyThreshold    int      `toml:"healthy_threshold" json:"healthy_threshold"`
	UnhealthyThreshold  int      `toml:"unhealthy_threshold" json:"unhealthy_threshold"`
	ConnectionTimeout   Duration `toml:"connection_timeout" json:"connection_timeout"`
	ReadTimeout         Duration `toml:"read_timeout" json:"read_timeout"`
	IdleTimeout         Duration `toml:"idle_timeout" json:"idle_timeout"`
	MaxIdleConns        int      `toml:"max_idle_conns" json:"max_idle_conns"`
	TLS                 bool     `toml:"tls" json:"tls"`
	SNI                 string   `toml:"sni" json:"sni,omitempty"`
	InsecureSkipVerify  bool     `toml:"insecure_skip_verify" json:"insecure_skip_verify"`
	HTTP2               bool     `toml:"http2" json:"http2"`
	TLSClientCert       string   `toml:"tls_client_cert" json:"tls_client_cert,omitempty"`
	TLSClientKey        string   `toml:"tls_client_key" json:"tls_client_key,omitempty"`
	TLSCA               string   `toml:"tls_ca" json:"tls_ca,omitempty"`
}

// Location is one [locations.NAME] section.
type Location struct {
	Upstream           string            `toml:"upstream" json:"upstream,omitempty"`
	Host               string            `toml:"host" json:"host,omitempty"`
	Path               string            `toml:"path" json:"path"`
	PathType           string            `toml:"path_type" json:"path_type"`
	Priority           int               `toml:"priority" json:"priority"`
	Rewrite            string            `toml:"rewrite" json:"rewrite,omitempty"`
	HeadersAdd         []string          `toml:"headers_add" json:"headers_add,omitempty"`
	HeadersSet         map[string]string `toml:"headers_set" json:"headers_set,omitempty"`
	HeadersRemove      []string          `toml:"headers_remove" json:"headers_remove,omitempty"`
	ProxySetHeaders    map[string]string `toml:"proxy_set_headers" json:"proxy_set_headers,omitempty"`
	ProxyAddHeaders    []string          `toml:"proxy_add_headers" json:"proxy_add_headers,omitempty"`
	ProxyRemoveHeaders []string          `toml:"proxy_remove_headers" json:"proxy_remove_headers,omitempty"`
	Plugins            []string          `toml:"plugins" json:"plugins,omitempty"`
	ClientMaxBodySize  Size              `toml:"client_max_body_size" json:"client_max_body_size"`
}

// Server is one [servers.NAME] section: a listener.
type Server struct {
	Addr              string   `toml:"addr" json:"addr"`
	Locations         []string `toml:"locations" json:"locations"`
	TLSCert           string   `toml:"tls_cert" json:"tls_cert,omitempty"`
	TLSKey            string   `toml:"tls_key" json:"tls_key,omitempty"`
	Certificates      []string `toml:"certificates" json:"certificates,omitempty"`
	H2C               bool     `toml:"h2c" json:"h2c"`
	HTTP3             bool     `toml:"http3" json:"http3"`
	ClientCA          string   `toml:"client_ca" json:"client_ca,omitempty"`
	Plugins           []string `toml:"plugins" json:"plugins,omitempty"`
	ReadHeaderTimeout Duration `toml:"read_header_timeout" json:"read_header_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout" json:"idle_timeout"`
	MaxHeaderBytes    Size     `toml:"max_header_bytes" json:"max_header_bytes"`
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
	TLSCert string   `toml:"tls_cert" json:"tls_cert,omitempty"`
	TLSKey  string   `toml:"tls_key" json:"tls_key,omitempty"`
	ACME    bool     `toml:"acme" json:"acme"`
}

// ACME is the [acme] section.
type ACME struct {
	Email        string   `toml:"email" json:"email,omitempty"`
	DirectoryURL string   `toml:"directory_url" json:"directory_url"`
	CARoot       string   `toml:"ca_root" json:"ca_root,omitempty"`
	Storage      string   `toml:"storage" json:"storage"`
	Challenge    string   `toml:"challenge" json:"challenge"`
	RenewBefore  Duration `toml:"renew_before" json:"renew_before"`
}

// Tracing is the [tracing] section.
type Tracing struct {
	Endpoint    string  `toml:"endpoint" json:"endpoint,omitempty"`
	ServiceName string  `toml:"service_name" json:"service_name,omitempty"`
	SampleRatio float64 `toml:"sample_ratio" json:"sample_ratio"`
}
