package config

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// base is a minimal valid config that cases extend with more sections.
const base = `
[upstreams.backend]
addrs = ["127.0.0.1:8001"]

[locations.root]
upstream = "backend"

[servers.web]
addr = "127.0.0.1:8080"
locations = ["root"]
`

// fullConfig uses every section and most keys, validly.
const fullConfig = `
[basic]
name = "edge"
threads = 2
grace_period = "1m"
log_level = "debug"
log_format = "text"
access_log = "/var/log/pingap/access.log"
metrics_addr = "127.0.0.1:9090"
admin_addr = "0.0.0.0:3000"
admin_user = "admin"
admin_password = "secret"
auto_reload = true
trusted_proxies = ["10.0.0.0/8", "192.168.1.1", "fd00::/8"]

[upstreams.api]
addrs = ["127.0.0.1:8001", "127.0.0.1:8002", "[::1]:8003"]
algorithm = "weighted_round_robin"
weights = [3, 1, 1]
health_check = "http://api.internal/healthz?full=1"
health_check_interval = "2s"
health_check_timeout = 1
healthy_threshold = 1
unhealthy_threshold = 5
connection_timeout = "500ms"
read_timeout = "30s"
idle_timeout = "1m30s"
max_idle_conns = 16
tls = true
sni = "api.internal"
insecure_skip_verify = true
http2 = true
tls_client_cert = "client.pem"
tls_client_key = "client.key"
tls_ca = "ca.pem"

[upstreams.static]
addrs = ["localhost:9000", "static-1.internal:9000"]
algorithm = "hash"
hash_key = "header:X-User"
health_check = "tcp://static"

[upstreams.grpc]
addrs = ["127.0.0.1:50051"]
algorithm = "least_conn"
http2 = true

[locations.api]
upstream = "api"
host = "*.example.com"
path = "/api"
rewrite = "/v2/"
priority = 10
headers_add = ["X-Served-By: $hostname", "Cache-Control: no-store"]
headers_set = { "X-Frame-Options" = "DENY", "X-Host" = "$host" }
headers_remove = ["Server"]
proxy_set_headers = { Host = "api.internal", "X-Real-IP" = "$remote_addr" }
proxy_add_headers = ["X-Request-URI: $scheme://$host$request_uri"]
proxy_remove_headers = ["Cookie"]
plugins = ["api_keys", "limit"]
client_max_body_size = "10MB"

[locations.users]
upstream = "api"
path = '^/users/(?P<id>[0-9]+)/(.*)$'
path_type = "regex"
rewrite = '/u/${id}/$2'

[locations.health]
path = "/ping"
path_type = "exact"
plugins = ["ping"]

[locations.static]
upstream = "static"
host = "static.example.com"

[servers.http]
addr = "0.0.0.0:80"
locations = ["api", "users", "health", "static"]
h2c = true
plugins = ["request_id"]

[servers.https]
addr = "[::]:443"
locations = ["api", "users", "static"]
tls_cert = "site.pem"
tls_key = "site.key"
certificates = ["example", "auto"]
http3 = true
client_ca = "clients.pem"
read_header_timeout = "5s"
idle_timeout = "1m"
max_header_bytes = "32KB"

[plugins.api_keys]
category = "key_auth"
header = "X-API-Key"
keys = ["k1", "k2"]
hide_credentials = true

[plugins.limit]
category = "limit"
key = "ip"
max = 100
interval = "1s"

[plugins.ping]
category = "ping"

[plugins.request_id]
category = "request_id"
header = "X-Request-Id"
overwrite = false

[plugins.claims]
category = "jwt"
secret = "s3cr3t"
algorithms = ["HS256", "HS512"]
leeway = 30
forward_claims = { sub = "X-User", role = "X-Role" }

[certificates.example]
domains = ["example.com", "*.example.com"]
tls_cert = "example.pem"
tls_key = "example.key"

[certificates.auto]
domains = ["auto.example.com"]
acme = true

[acme]
email = "ops@example.com"
directory_url = "https://acme-staging-v02.api.letsencrypt.org/directory"
ca_root = "pebble.pem"
storage = "/var/lib/pingap/acme"
challenge = "http-01"
renew_before = "20d"

[tracing]
endpoint = "http://127.0.0.1:4318"
service_name = "edge-proxy"
sample_ratio = 0.25
`

var validateCases = []struct {
	name string
	toml string
}{
	{"ok_base", base},
	{"ok_full", fullConfig},
	{"missing_refs", `
[upstreams.backend]
addrs = ["127.0.0.1:8001"]

[locations.root]
upstream = "backnd"
plugins = ["nope", "nope"]

[servers.web]
addr = "127.0.0.1:8080"
locations = ["root", "rot", "root"]
plugins = ["missing"]
certificates = ["nocert"]
`},
	{"location_without_upstream", base + `
[locations.empty]
path = "/x"
`},
	{"server_without_locations", base + `
[servers.bare]
addr = "127.0.0.1:8081"
locations = []

[servers.noaddr]
locations = ["root"]
`},
	{"algorithm_weights", base + `
[upstreams.a]
addrs = ["127.0.0.1:1", "127.0.0.1:2"]
algorithm = "fastest"

[upstreams.w]
addrs = ["127.0.0.1:1", "127.0.0.1:2"]
algorithm = "weighted_round_robin"
weights = [1, 0, -2]

[upstreams.rr]
addrs = ["127.0.0.1:1"]
weights = [5]
`},
	{"hash_key", base + `
[upstreams.nokey]
addrs = ["127.0.0.1:1"]
algorithm = "hash"

[upstreams.badkey]
addrs = ["127.0.0.1:1"]
algorithm = "hash"
hash_key = "body"

[upstreams.badheader]
addrs = ["127.0.0.1:1"]
algorithm = "hash"
hash_key = "header:Bad Name"

[upstreams.emptyname]
addrs = ["127.0.0.1:1"]
algorithm = "hash"
hash_key = "cookie:"

[upstreams.notahash]
addrs = ["127.0.0.1:1"]
hash_key = "uri"

[upstreams.good]
addrs = ["127.0.0.1:1"]
algorithm = "hash"
hash_key = "query:user"
`},
	{"addrs", base + `
[upstreams.bad]
addrs = ["localhost", "127.0.0.1:0", "127.0.0.1:70000", "http://x:80", ":80", "bad_host!:80", "[::1:80", "127.0.0.1:8001", "127.0.0.1:8001"]

[upstreams.none]
addrs = []
`},
	{"health_check", base + `
[upstreams.ftp]
addrs = ["127.0.0.1:1"]
health_check = "ftp://backend/"

[upstreams.nohost]
addrs = ["127.0.0.1:1"]
health_check = "http:///healthz"

[upstreams.tcppath]
addrs = ["127.0.0.1:1"]
health_check = "tcp://backend/health"

[upstreams.thresholds]
addrs = ["127.0.0.1:1"]
health_check = "https://backend:99999/"
healthy_threshold = -1
unhealthy_threshold = -3
max_idle_conns = -1
`},
	{"upstream_tls", base + `
[upstreams.notls]
addrs = ["127.0.0.1:1"]
sni = "x.example.com"
insecure_skip_verify = true
tls_ca = "ca.pem"

[upstreams.halfcert]
addrs = ["127.0.0.1:1"]
tls = true
tls_client_cert = "c.pem"
`},
	{"paths", base + `
[locations.nopath]
upstream = "backend"
path = "api"

[locations.badtype]
upstream = "backend"
path_type = "glob"

[locations.badre]
upstream = "backend"
path = "^/(a"
path_type = "regex"

[locations.group2]
upstream = "backend"
path = "^/a/(.*)$"
path_type = "regex"
rewrite = "/b/$2"

[locations.named]
upstream = "backend"
path = "^/a/(?P<rest>.*)$"
path_type = "regex"
rewrite = "/b/${nope}"

[locations.glued]
upstream = "backend"
path = "^/a/(.*)$"
path_type = "regex"
rewrite = "/b/$1x"

[locations.unterminated]
upstream = "backend"
path = "^/a/(.*)$"
path_type = "regex"
rewrite = "/b/${1"

[locations.dollars]
upstream = "backend"
path = "^/a/(.*)$"
path_type = "regex"
rewrite = "/b/$$/${1}x/$0"

[locations.notnormal]
upstream = "backend"
path = "/a//b/../c"
path_type = "exact"

[locations.badrewrite]
upstream = "backend"
path = "/a"
rewrite = "b"
`},
	{"hosts", base + `
[locations.h1]
upstream = "backend"
host = "a.*.com"

[locations.h2]
upstream = "backend"
host = "*."

[locations.h3]
upstream = "backend"
host = "example.com:8080"

[locations.h4]
upstream = "backend"
host = "Example.COM"

[locations.h5]
upstream = "backend"
host = "*.example.com"

[locations.h6]
upstream = "backend"
host = "exa mple.com"

[locations.h7]
upstream = "backend"
host = "[::1]"

[locations.h8]
upstream = "backend"
host = "[1.2.3.4]"

[locations.h9]
upstream = "backend"
host = "example.com."

[locations.h10]
upstream = "backend"
host = "example.com.."

[locations.h11]
upstream = "backend"
host = "fe80::1"
`},
	{"headers", base + `
[locations.hdr]
upstream = "backend"
headers_add = ["NoColon", "Bad Name: v", "X-Var: $unknown_var", "X-Ok: $http_user_agent", "X-Ctl: a` + "\\r\\n" + `b"]
headers_set = { "Bad(Name)" = "v", "X-Open" = "${host" }
headers_remove = ["bad name", "X-Fine"]
proxy_set_headers = { Host = "$host", "X-Bad" = "$nope", host = "x" }
proxy_add_headers = [": novalue", "X-Fine: $remote_addr:$remote_port"]
proxy_remove_headers = ["X@Y"]
`},
	{"listeners", `
[basic]
metrics_addr = "127.0.0.1:9090"
admin_addr = "127.0.0.1:9090"

[upstreams.backend]
addrs = ["127.0.0.1:8001"]

[locations.root]
upstream = "backend"

[servers.a]
addr = "0.0.0.0:80"
locations = ["root"]

[servers.b]
addr = "[::]:80"
locations = ["root"]

[servers.c]
addr = "[0::0]:80"
locations = ["root"]

[servers.d]
addr = "LOCALHOST:81"
locations = ["root"]

[servers.e]
addr = "localhost:81"
locations = ["root"]

[servers.f]
addr = "127.0.0.1:9090"
locations = ["root"]

[servers.g]
addr = "127.0.0.1"
locations = ["root"]

[servers.h]
addr = ":8080"
locations = ["root"]

[servers.random1]
addr = "127.0.0.1:0"
locations = ["root"]

[servers.random2]
addr = "127.0.0.1:0"
locations = ["root"]
`},
	{"server_tls", base + `
[servers.certonly]
addr = "127.0.0.1:8443"
locations = ["root"]
tls_cert = "a.pem"

[servers.keyonly]
addr = "127.0.0.1:8444"
locations = ["root"]
tls_key = "a.key"

[servers.plain]
addr = "127.0.0.1:8081"
locations = ["root"]
http3 = true
client_ca = "ca.pem"
max_header_bytes = 100

[servers.h2ctls]
addr = "127.0.0.1:8445"
locations = ["root"]
tls_cert = "a.pem"
tls_key = "a.key"
h2c = true
`},
	{"certificates", base + `
[certificates.neither]
domains = ["example.com"]

[certificates.both]
domains = ["example.com"]
tls_cert = "a.pem"
tls_key = "a.key"
acme = true

[certificates.nodomains]
domains = []
acme = true

[certificates.baddomain]
domains = ["*.*.example.com", "ex ample.com", "example.com:443", "example.org.", "::1"]
tls_cert = "a.pem"

[acme]
challenge = "dns-01"
email = "nobody"
directory_url = "ftp://acme"
`},
	{"acme_needs_server", `
[upstreams.backend]
addrs = ["127.0.0.1:8001"]

[locations.root]
upstream = "backend"

[servers.tls]
addr = "127.0.0.1:8443"
locations = ["root"]
certificates = ["auto"]

[certificates.auto]
domains = ["example.com"]
acme = true
`},
	{"basic", base + `
[basic]
threads = -1
log_level = "verbose"
log_format = "xml"
metrics_addr = "9090"
admin_addr = "0.0.0.0:3000"
admin_user = "a:b"
trusted_proxies = ["10.0.0.0/33", "not-an-ip", "::1", "10.1.2.3/8"]
`},
	{"admin_loopback", base + `
[basic]
admin_addr = "localhost:3000"
`},
	{"admin_all_interfaces", base + `
[basic]
admin_addr = ":3000"
admin_user = "admin"
`},
	{"tracing", base + `
[tracing]
endpoint = "127.0.0.1:4318"
sample_ratio = 1.5
`},
	{"tracing_nan", base + `
[tracing]
sample_ratio = nan
`},
	{"plugins", base + `
[plugins.nocat]
header = "X"

[plugins.emptycat]
category = ""
`},
	{"names", `
[upstreams."bad name"]
addrs = ["127.0.0.1:1"]

[locations."a/b"]
upstream = "bad name"

[servers."dotted.name"]
addr = "127.0.0.1:8080"
locations = ["a/b"]
`},
	{"decode_errors", `
[basic]
nme = "x"
grace_period = "abc"
threads = "3"
access_log = 1

[upstreams.a]
addrs = ["127.0.0.1:80", 3]
health_check_interval = true
read_timeout = -5
foo = 1

[upstreams.b]
addrs = "127.0.0.1:80"
weights = [1.5]

[locations.l]
upstream = "a"
client_max_body_size = "1XB"
headers_set = ["x"]
[locations.l.extra]
x = 1

[servers.s]
addr = "127.0.0.1:8080"
locations = ["l"]
max_header_bytes = -1
idle_timeout = "-1s"

[plugins.p]
category = 5

[tracing]
sample_ratio = "high"

[acme]
renew_before = "1y"

[bogus]
x = 1

[upstream.typo]
addrs = []

toplevel = 1
`},
	{"decode_and_validate", `
[upstreams.u]
addrs = ["127.0.0.1:9"]
algorithm = "fastest"
weights = "x"

[locations.l]
upstream = "missing"
path_type = "regex"
path = "(["
bogus = 1

[servers.s]
addr = "127.0.0.1:0"
locations = ["l", "nope"]
max_header_bytes = "huge"
`},
	{"decode_not_tables", `
basic = 1
upstreams = "x"

[servers]
web = 3
`},
	{"syntax_error", `
[basic]
name = "x"

[upstreams.a]
addrs = ["127.0.0.1:80"
`},
	{"duplicate_table", `
[upstreams.a]
addrs = ["127.0.0.1:80"]

[upstreams.a]
addrs = ["127.0.0.1:81"]
`},
}

// TestValidateGolden runs every case through Parse and compares the whole
// error output with testdata/validate/NAME.golden (go test -update rewrites
// them).
func TestValidateGolden(t *testing.T) {
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			got := "OK\n"
			if _, err := Parse([]byte(tc.toml), "test.toml"); err != nil {
				if _, ok := err.(Errors); !ok {
					t.Fatalf("error is %T, want Errors", err)
				}
				got = err.Error() + "\n"
			}
			golden := filepath.Join("testdata", "validate", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestValidateDeterministic checks that the error order does not depend on
// map iteration.
func TestValidateDeterministic(t *testing.T) {
	for _, tc := range validateCases {
		_, err1 := Parse([]byte(tc.toml), "test.toml")
		for range 5 {
			_, err2 := Parse([]byte(tc.toml), "test.toml")
			if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
				t.Fatalf("%s: output changes between runs", tc.name)
			}
		}
	}
}
