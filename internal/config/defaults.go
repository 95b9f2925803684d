package config

import "time"

// Default values of the contract (shared/spec/interface.md). A zero value in
// the config means "use the default" for every key listed here.
const (
	DefaultName                = "pingap"
	DefaultGracePeriod         = 30 * time.Second
	DefaultLogLevel            = "info"
	DefaultLogFormat           = "json"
	DefaultAlgorithm           = "round_robin"
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultHealthCheckTimeout  = 3 * time.Second
	DefaultHealthyThreshold    = 2
	DefaultUnhealthyThreshold  = 3
	DefaultConnectionTimeout   = 10 * time.Second
	DefaultReadTimeout         = 60 * time.Second
	DefaultUpstreamIdleTimeout = 90 * time.Second
	DefaultMaxIdleConns        = 128
	DefaultPath                = "/"
	DefaultPathType            = "prefix"
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultServerIdleTimeout   = 120 * time.Second
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultACMEDirectory       = "https://acme-v02.api.letsencrypt.org/directory"
	DefaultACMEStorage         = "./acme"
	DefaultACMEChallenge       = "http-01"
	DefaultRenewBefore         = 30 * 24 * time.Hour
	DefaultSampleRatio         = 1.0
)

// Default returns an empty config with every default applied, including the
// two that a zero value cannot express: basic.access_log = true and
// tracing.sample_ratio = 1.0. Start from it when building a Config in Go.
func Default() *Config {
	c := &Config{}
	c.Basic.AccessLog = AccessLog{Enabled: true}
	c.Tracing.SampleRatio = DefaultSampleRatio
	ApplyDefaults(c)
	return c
}

// ApplyDefaults fills every unset (zero) key with its default. It is
// idempotent. basic.access_log and tracing.sample_ratio are not touched:
// false and 0 are meaningful values for them, so their defaults (true, 1.0)
// are applied while decoding, when "not written" can be told apart (see
// Default for configs built in Go).
func ApplyDefaults(c *Config) {
	b := &c.Basic
	if b.Name == "" {
		b.Name = DefaultName
	}
	setDur(&b.GracePeriod, DefaultGracePeriod)
	setStr(&b.LogLevel, DefaultLogLevel)
	setStr(&b.LogFormat, DefaultLogFormat)

	for name, u := range c.Upstreams {
		setStr(&u.Algorithm, DefaultAlgorithm)
		if u.Algorithm == "weighted_round_robin" && len(u.Weights) == 0 && len(u.Addrs) > 0 {
			u.Weights = make([]int, len(u.Addrs))
			for i := range u.Weights {
				u.Weights[i] = 1
			}
		}
		setDur(&u.HealthCheckInterval, DefaultHealthCheckInterval)
		setDur(&u.HealthCheckTimeout, DefaultHealthCheckTimeout)
		setInt(&u.HealthyThreshold, DefaultHealthyThreshold)
		setInt(&u.UnhealthyThreshold, DefaultUnhealthyThreshold)
		setDur(&u.ConnectionTimeout, DefaultConnectionTimeout)
		setDur(&u.ReadTimeout, DefaultReadTimeout)
		setDur(&u.IdleTimeout, DefaultUpstreamIdleTimeout)
		setInt(&u.MaxIdleConns, DefaultMaxIdleConns)
		c.Upstreams[name] = u
	}
	for name, l := range c.Locations {
		setStr(&l.Path, DefaultPath)
		setStr(&l.PathType, DefaultPathType)
		c.Locations[name] = l
	}
	for name, s := range c.Servers {
		setDur(&s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
		setDur(&s.IdleTimeout, DefaultServerIdleTimeout)
		if s.MaxHeaderBytes == 0 {
			s.MaxHeaderBytes = DefaultMaxHeaderBytes
		}
		c.Servers[name] = s
	}
	a := &c.ACME
	setStr(&a.DirectoryURL, DefaultACMEDirectory)
	setStr(&a.Storage, DefaultACMEStorage)
	setStr(&a.Challenge, DefaultACMEChallenge)
	setDur(&a.RenewBefore, DefaultRenewBefore)

	setStr(&c.Tracing.ServiceName, b.Name)
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
