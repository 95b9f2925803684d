package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/testutil/testca"
)

// newTLSFiles writes a CA, a server certificate for 127.0.0.1/localhost
// and a client certificate, all signed by the CA, into a temp dir.
func newTLSFiles(t testing.TB) *TLSFiles {
	t.Helper()
	dir := t.TempDir()
	ca := testca.New(t, "etcd test CA")
	f := &TLSFiles{CA: ca.WriteCA(t, dir, "ca.pem")}
	f.serverCert, f.serverKey = ca.WriteFiles(t, dir, "server", x509.ExtKeyUsageServerAuth)
	f.ClientCert, f.ClientKey = ca.WriteFiles(t, dir, "client", x509.ExtKeyUsageClientAuth)
	pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	f.health = &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}},
	}}
	return f
}
