package certs

import (
	"crypto/tls"
	"testing"
)

// BenchmarkGetCertificate is the per-handshake SNI lookup: exact, wildcard
// and default hits.
func BenchmarkGetCertificate(b *testing.B) {
	f := newSNIFixture(b)
	base, err := f.store.TLSConfig("web", f.cfg.Servers["web"])
	if err != nil {
		b.Fatal(err)
	}
	for _, sni := range []string{"a.example.com", "x.w.example.com", "unknown.test", "A.Example.com"} {
		hello := &tls.ClientHelloInfo{ServerName: sni}
		b.Run(sni, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				conf, err := base.GetConfigForClient(hello)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conf.GetCertificate(hello); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
