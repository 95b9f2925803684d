package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pingap-go/pingap/internal/config"
	etcdtest "github.com/pingap-go/pingap/internal/testutil/etcd"
)

// etcdFileConfig exercises every item kind, sub-tables and plugin options.
const etcdFileConfig = `
[basic]
name = "etcd-test"
grace_period = "5s"
trusted_proxies = ["10.0.0.0/8"]

[tracing]
endpoint = "http://127.0.0.1:4318"
sample_ratio = 0.5

[upstreams.api]
addrs = ["127.0.0.1:8001", "127.0.0.1:8002"]
algorithm = "weighted_round_robin"
weights = [2, 1]
health_check = "http://localhost/health"

[locations.api]
upstream = "api"
path = "/api"
rewrite = "/"

[locations.api.headers_set]
X-Frame-Options = "DENY"

[plugins.pong]
category = "ping"
path = "/ping"

[locations.ping]
path = "/ping"
path_type = "exact"
plugins = ["pong"]

[servers.main]
addr = "127.0.0.1:6188"
locations = ["api", "ping"]
`

func etClient(t *testing.T, srv *etcdtest.Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func etOpen(t *testing.T, url string) *Etcd {
	t.Helper()
	s, err := OpenEtcd(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func etParse(t *testing.T, body string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(body), "file.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func etEncode(t *testing.T, cfg *config.Config) string {
	t.Helper()
	b, err := config.Encode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func etPut(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
}

// etCalls counts onChange calls and signals each on a channel.
type etCalls struct {
	n  atomic.Int64
	ch chan struct{}
}

func newEtCalls() *etCalls { return &etCalls{ch: make(chan struct{}, 100)} }

func (c *etCalls) fn() {
	c.n.Add(1)
	c.ch <- struct{}{}
}

func (c *etCalls) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-c.ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("onChange not called within 10s after %s", what)
	}
}

func TestParseEtcdURL(t *testing.T) {
	tests := []struct {
		in            string
		endpoints     string
		user, pw      string
		prefix        string
		tls           bool
		ca, cert, key string
		err           string
	}{
		{in: "etcd://127.0.0.1:2379/pingap", endpoints: "127.0.0.1:2379", prefix: "pingap"},
		{in: "etcd://127.0.0.1:2379/pingap/", endpoints: "127.0.0.1:2379", prefix: "pingap"},
		{in: "etcd://a:1,b:2/team/prod", endpoints: "a:1,b:2", prefix: "team/prod"},
		{in: "etcd://root:s3cret@127.0.0.1:2379/p", endpoints: "127.0.0.1:2379", user: "root", pw: "s3cret", prefix: "p"},
		{in: "etcd://h:1/p?tls=true", endpoints: "h:1", prefix: "p", tls: true},
		{in: "etcd://h:1/p?tls=false", endpoints: "h:1", prefix: "p"},
		{in: "etcd://h:1/p/?ca=/etc/ca.pem", endpoints: "h:1", prefix: "p", tls: true, ca: "/etc/ca.pem"},
		{in: "etcd://u:pw@h:1,h:2/p?ca=c.pem&cert=a.crt&key=a.key", endpoints: "h:1,h:2", user: "u", pw: "pw", prefix: "p", tls: true, ca: "c.pem", cert: "a.crt", key: "a.key"},
		{in: "etcd://h:1/p?cert=a.crt", err: "cert and key go together"},
		{in: "etcd://h:1/p?key=a.key", err: "cert and key go together"},
		{in: "etcd://h:1/p?tls=yes", err: `tls="yes" is not true or false`},
		{in: "etcd://h:1/p?cacert=x", err: `unknown parameter "cacert"`},
		{in: "etcd://h:1/p?ca=", err: `parameter "ca" needs one non-empty value`},
		{in: "etcd://h:1/p?ca=a&ca=b", err: `parameter "ca" needs one non-empty value`},
		{in: "etcd://h:1/p?ca=%zz", err: "bad query"},
		{in: "etcd://h:1?tls=true", err: "no key prefix"},
		{in: "etcd://127.0.0.1:2379", err: "no key prefix"},
		{in: "etcd://127.0.0.1:2379/", err: "no key prefix"},
		{in: "etcd:///p", err: `bad host ""`},
		{in: "etcd://a:1,,b:2/p", err: `bad host ""`},
		{in: "etcd://:pw@h:1/p", err: "empty user name"},
		{in: "etcd://h:1/a//b", err: "bad key prefix"},
		{in: "etcd://h:1/a#b", err: "bad key prefix"},
		{in: "http://h:1/p", err: "not an etcd:// URL"},
	}
	for _, tt := range tests {
		u, err := parseEtcdURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if strings.Join(u.endpoints, ",") != tt.endpoints || u.user != tt.user || u.password != tt.pw || u.prefix != tt.prefix ||
			u.tls != tt.tls || u.ca != tt.ca || u.cert != tt.cert || u.key != tt.key {
			t.Errorf("%s: got %+v", tt.in, u)
		}
	}
	if got := redact("etcd://root:s3cret@h:1/p"); got != "etcd://root:***@h:1/p" {
		t.Errorf("redact = %q", got)
	}
	if _, err := parseEtcdURL("etcd://root:s3cret@h:1/"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password or is missing: %v", err)
	}
}

// TestOpenEtcdTLSFileErrors: a TLS file that cannot be used fails OpenEtcd
// with the parameter's name, before any connection.
func TestOpenEtcdTLSFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ url, want string }{
		{"etcd://127.0.0.1:1/p?ca=" + filepath.Join(dir, "missing.pem"), "ca: open"},
		{"etcd://127.0.0.1:1/p?ca=" + notPEM, "no PEM certificate found"},
		{"etcd://127.0.0.1:1/p?cert=" + notPEM + "&key=" + notPEM, "cert/key:"},
	} {
		if _, err := OpenEtcd(tt.url); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.url, err, tt.want)
		}
	}
}

func TestEtcdLoad(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etClient(t, srv)
	etPut(t, cli, "pingap/upstreams/a", `addrs = ["127.0.0.1:9001"]`)
	etPut(t, cli, "pingap/locations/l", "upstream = \"a\"\npath = \"/\"\n[headers_set]\nX-A = \"1\"\n")
	etPut(t, cli, "pingap/servers/s", `addr = "127.0.0.1:0"`+"\nlocations = [\"l\"]\n")
	etPut(t, cli, "pingap/basic", `name = "from-etcd"`)
	// Neighbours that share the string prefix but not the key prefix.
	etPut(t, cli, "pingapx/basic", `garbage = 1`)
	etPut(t, cli, "pingap", `garbage = 1`)

	s := etOpen(t, srv.Endpoint("pingap"))
	cfg, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Basic.Name != "from-etcd" || cfg.Upstreams["a"].Addrs[0] != "127.0.0.1:9001" ||
		cfg.Locations["l"].Upstream != "a" || cfg.Servers["s"].Locations[0] != "l" {
		t.Fatalf("loaded %+v", cfg)
	}
	if cfg.Source != "etcd://"+srv.Addr+"/pingap" || s.Source() != cfg.Source {
		t.Errorf("Source = %q", cfg.Source)
	}
	if got := cfg.FileOf("locations.l"); got != cfg.Source+"/locations/l" {
		t.Errorf("FileOf = %q", got)
	}
	if s.Revision() == 0 {
		t.Error("Revision not recorded")
	}

	// An empty prefix is an error, not an empty proxy.
	empty := etOpen(t, srv.Endpoint("nothing/here"))
	if _, err := empty.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "no configuration under the prefix") {
		t.Errorf("empty prefix: %v", err)
	}
}

// TestEtcdTLS: with ca, cert and key in the URL the source pushes, loads
// and watches through an etcd that requires TLS client certificates; the
// source names no file paths; without a client certificate it fails.
func TestEtcdTLS(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	s := etOpen(t, srv.Endpoint("tls"))
	if want := "etcd://" + srv.Addr + "/tls"; s.Source() != want {
		t.Errorf("Source = %q, want %q (no TLS parameters)", s.Source(), want)
	}
	ctx := context.Background()
	if err := s.Push(ctx, etParse(t, etcdFileConfig)); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Basic.Name != "etcd-test" {
		t.Fatalf("loaded %+v", cfg.Basic)
	}
	calls := newEtCalls()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.Debounce = 50 * time.Millisecond
	s.Watch(wctx, calls.fn)
	if err := s.Persist([]byte(strings.Replace(etcdFileConfig, `name = "etcd-test"`, `name = "changed"`, 1))); err != nil {
		t.Fatal(err)
	}
	calls.wait(t, "a persist over TLS")

	// Trusting the CA without a client certificate: etcd refuses.
	onlyCA := etOpen(t, "etcd://"+srv.Addr+"/tls?ca="+srv.TLS.CA)
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
	defer lcancel()
	if _, err := onlyCA.Load(lctx); err == nil {
		t.Fatal("loaded from a client-cert-auth etcd without a client certificate")
	}
}

func TestEtcdLoadBadItemNamesTheKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etClient(t, srv)
	s := etOpen(t, srv.Endpoint("p"))
	if err := s.Push(context.Background(), etParse(t, etcdFileConfig)); err != nil {
		t.Fatal(err)
	}
	etPut(t, cli, "p/upstreams/api", `addrs = "not-a-list"`)
	etPut(t, cli, "p/widgets/w", ``)
	_, err := s.Load(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("not config.Errors: %T %v", err, err)
	}
	for _, want := range []string{
		"etcd://" + srv.Addr + "/p/upstreams/api: [upstreams.api] addrs",
		"etcd://" + srv.Addr + "/p/widgets/w: unknown entry",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}

func TestEtcdUnreachableLoadFails(t *testing.T) {
	srv := etcdtest.Start(t)
	srv.Stop()
	s := etOpen(t, srv.Endpoint("p"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := s.Load(ctx); err == nil || !strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("Load from a stopped etcd: %v", err)
	}
}

func TestEtcdPushPullRoundTrip(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etClient(t, srv)
	path := filepath.Join(t.TempDir(), "pingap.toml")
	if err := os.WriteFile(path, []byte(etcdFileConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	fileCfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// A stale item from an earlier config must go.
	etPut(t, cli, "pingap/upstreams/old", `addrs = ["127.0.0.1:1"]`)

	s := etOpen(t, srv.Endpoint("pingap"))
	if err := s.Push(context.Background(), fileCfg); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := etEncode(t, got), etEncode(t, fileCfg); a != b {
		t.Fatalf("pull differs from the pushed file\npull:\n%s\nfile:\n%s", a, b)
	}
	if _, ok := got.Upstreams["old"]; ok {
		t.Fatal("stale upstreams/old survived the push")
	}
	resp, err := cli.Get(context.Background(), "pingap/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	want := "pingap/acme pingap/basic pingap/locations/api pingap/locations/ping pingap/plugins/pong pingap/servers/main pingap/tracing pingap/upstreams/api"
	if strings.Join(keys, " ") != want {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(keys, " "), want)
	}
	// The pulled TOML parses back to the same config.
	again, err := config.Parse([]byte(etEncode(t, got)), "pulled.toml")
	if err != nil {
		t.Fatalf("pulled TOML does not parse: %v", err)
	}
	if etEncode(t, again) != etEncode(t, fileCfg) {
		t.Fatal("pulled TOML parses to a different config")
	}

	// Pushing the same config again writes nothing (no new revision, so
	// no reload anywhere).
	before := resp.Header.Revision
	if err := s.Push(context.Background(), fileCfg); err != nil {
		t.Fatal(err)
	}
	resp, err = cli.Get(context.Background(), "pingap/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision != before {
		t.Errorf("an identical push wrote: revision %d -> %d", before, resp.Header.Revision)
	}
}

func TestEtcdPersist(t *testing.T) {
	srv := etcdtest.Start(t)
	s := etOpen(t, srv.Endpoint("pingap"))
	if err := s.Persist([]byte(etcdFileConfig)); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(etcdFileConfig, `upstream = "api"`, `upstream = "missing"`, 1)
	err := s.Persist([]byte(bad))
	var errs config.Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("invalid Persist: %v", err)
	}
	got, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Locations["api"].Upstream != "api" {
		t.Fatalf("an invalid Persist wrote something: %+v", got.Locations["api"])
	}
}

func TestEtcdWatchSeesChanges(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etClient(t, srv)
	s := etOpen(t, srv.Endpoint("pingap"))
	if err := s.Push(context.Background(), etParse(t, etcdFileConfig)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A change between Load and Watch is not missed.
	etPut(t, cli, "pingap/basic", `name = "between"`)
	calls := newEtCalls()
	s.Debounce = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Watch(ctx, calls.fn)
	calls.wait(t, "a change made between Load and Watch")

	// A change after the watch started.
	etPut(t, cli, "pingap/basic", `name = "after"`)
	calls.wait(t, "a put")
	cfg, err := s.Load(context.Background())
	if err != nil || cfg.Basic.Name != "after" {
		t.Fatalf("Load after the change: %v %v", cfg, err)
	}
	// A delete counts too; a key outside the prefix does not.
	etPut(t, cli, "other/basic", `name = "x"`)
	if _, err := cli.Delete(context.Background(), "pingap/tracing"); err != nil {
		t.Fatal(err)
	}
	calls.wait(t, "a delete")
	cancel()
}

func TestEtcdWatchDebounces(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etClient(t, srv)
	s := etOpen(t, srv.Endpoint("pingap"))
	s.Debounce = 500 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Push(ctx, etParse(t, etcdFileConfig)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	calls := newEtCalls()
	s.Watch(ctx, calls.fn)
	t0 := time.Now()
	for i := 0; i < 5; i++ {
		etPut(t, cli, "pingap/basic", "grace_period = \""+string(rune('1'+i))+"s\"")
	}
	burst := time.Since(t0)
	calls.wait(t, "a burst of puts")
	// Only meaningful when the burst was well inside the debounce window.
	if burst < 250*time.Millisecond {
		select {
		case <-calls.ch:
			t.Fatalf("a burst of 5 puts in %v gave %d onChange calls, want 1", burst, calls.n.Load())
		case <-time.After(750 * time.Millisecond):
		}
	}
}

func TestEtcdWatchSurvivesRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etClient(t, srv)
	s := etOpen(t, srv.Endpoint("pingap"))
	s.Debounce = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Push(ctx, etParse(t, etcdFileConfig)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	calls := newEtCalls()
	s.Watch(ctx, calls.fn)
	etPut(t, cli, "pingap/basic", `name = "one"`)
	calls.wait(t, "a put before the restart")

	srv.Restart()
	etPut(t, cli, "pingap/basic", `name = "two"`)
	calls.wait(t, "a put after etcd restarted")
	cfg, err := s.Load(ctx)
	if err != nil || cfg.Basic.Name != "two" {
		t.Fatalf("Load after restart: %v %v", cfg, err)
	}
}

func TestEtcdWatchAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etClient(t, srv)
	s := etOpen(t, srv.Endpoint("pingap"))
	s.Debounce = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Push(ctx, etParse(t, etcdFileConfig)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// Changes, then compaction past them, all before the watch starts: the
	// watch cannot replay them and must ask for a full reload instead.
	etPut(t, cli, "pingap/basic", `name = "one"`)
	etPut(t, cli, "pingap/basic", `name = "two"`)
	resp, err := cli.Get(ctx, "pingap/basic")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	calls := newEtCalls()
	s.Watch(ctx, calls.fn)
	calls.wait(t, "compaction past the watch start")
	// And the watch goes on from there.
	etPut(t, cli, "pingap/basic", `name = "three"`)
	calls.wait(t, "a put after compaction")
}

func TestEtcdPushConcurrentWriters(t *testing.T) {
	srv := etcdtest.Start(t)
	a := etOpen(t, srv.Endpoint("shared"))
	b := etOpen(t, srv.Endpoint("shared"))
	cfgA := etParse(t, etcdFileConfig)
	cfgB := etParse(t, strings.Replace(etcdFileConfig, `name = "etcd-test"`, `name = "b"`, 1))
	errs := make(chan error, 2)
	for _, w := range []struct {
		s   *Etcd
		cfg *config.Config
	}{{a, cfgA}, {b, cfgB}} {
		go func() {
			var err error
			for i := 0; i < 10 && err == nil; i++ {
				err = w.s.Push(context.Background(), w.cfg)
			}
			errs <- err
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Whoever won, the result is one whole config, never a mix.
	got, err := a.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	enc := etEncode(t, got)
	if enc != etEncode(t, cfgA) && enc != etEncode(t, cfgB) {
		t.Fatalf("mixed config after concurrent pushes:\n%s", enc)
	}
}

// bigConfig is a valid config with n locations (l000, l001, ...) on one
// upstream, all served by one server; tag varies the locations' bodies.
func bigConfig(t *testing.T, n int, tag string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("[basic]\nname = \"big\"\n\n[upstreams.u]\naddrs = [\"127.0.0.1:8001\"]\n")
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%q", fmt.Sprintf("l%03d", i))
		fmt.Fprintf(&b, "\n[locations.l%03d]\nupstream = \"u\"\npath = \"/%s/%d\"\n", i, tag, i)
	}
	fmt.Fprintf(&b, "\n[servers.main]\naddr = \"127.0.0.1:6188\"\nlocations = [%s]\n", strings.Join(names, ", "))
	return etParse(t, b.String())
}

// TestEtcdPushBeyondMaxTxnOps: a push with more changes than etcd takes in
// one transaction (--max-txn-ops) is split and lands whole; with a member
// configured below the default limit, the transactions get smaller until
// they fit.
func TestEtcdPushBeyondMaxTxnOps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default limit", nil},
		{"limit 10", []string{"--max-txn-ops", "10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := etcdtest.StartWith(t, tc.flags...)
			s := etOpen(t, srv.Endpoint("big"))
			cli := etClient(t, srv)
			for _, step := range []struct {
				n   int
				tag string
			}{
				{300, "a"}, // 303 new keys
				{200, "b"}, // 200 changed, 100 deleted, server changed
				{260, "c"}, // 200 changed, 60 new
			} {
				cfg := bigConfig(t, step.n, step.tag)
				if err := s.Push(context.Background(), cfg); err != nil {
					t.Fatalf("push %d locations: %v", step.n, err)
				}
				got, err := s.Load(context.Background())
				if err != nil {
					t.Fatalf("load after pushing %d locations: %v", step.n, err)
				}
				if a, b := etEncode(t, got), etEncode(t, cfg); a != b {
					t.Fatalf("pull after pushing %d locations differs from the push", step.n)
				}
				resp, err := cli.Get(context.Background(), "big/locations/", clientv3.WithPrefix(), clientv3.WithCountOnly())
				if err != nil {
					t.Fatal(err)
				}
				if resp.Count != int64(step.n) {
					t.Fatalf("%d location keys after pushing %d", resp.Count, step.n)
				}
			}
		})
	}
}

// TestPushOpsOrder: split over transactions, a push writes what others
// refer to before what refers to it, and deletes in the reverse order, so
// each step's references resolve.
func TestPushOpsOrder(t *testing.T) {
	have := map[string][]byte{
		"basic": []byte("old"), "servers/old": []byte("x"), "locations/old": []byte("x"),
		"upstreams/old": []byte("x"), "upstreams/same": []byte("s"),
	}
	want := map[string][]byte{
		"basic": []byte("new"), "servers/new": []byte("y"), "locations/new": []byte("y"),
		"upstreams/new": []byte("y"), "upstreams/same": []byte("s"), "plugins/p": []byte("y"),
	}
	var got []string
	for _, op := range pushOps("p/", have, want) {
		verb := "put"
		if op.IsDelete() {
			verb = "del"
		}
		got = append(got, verb+" "+string(op.KeyBytes()))
	}
	wantOps := []string{
		"put p/plugins/p", "put p/upstreams/new",
		"put p/locations/new",
		"del p/servers/old", "put p/basic", "put p/servers/new",
		"del p/locations/old",
		"del p/upstreams/old",
	}
	if strings.Join(got, ", ") != strings.Join(wantOps, ", ") {
		t.Fatalf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantOps, "\n"))
	}
}
