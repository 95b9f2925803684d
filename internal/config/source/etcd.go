package source

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pingap-go/pingap/internal/config"
)

// EtcdScheme starts a -config value that names an etcd prefix.
const EtcdScheme = "etcd://"

// IsEtcd reports whether a -config value names an etcd prefix.
func IsEtcd(path string) bool { return strings.HasPrefix(path, EtcdScheme) }

// DefaultEtcdDebounce is how long Watch waits after the last change under
// the prefix before calling onChange: a push of many keys is one
// transaction (one event batch), but several writers or an etcdctl loop
// should still give one reload.
const DefaultEtcdDebounce = 200 * time.Millisecond

// etcdTimeout bounds one Load, Push or Persist when the caller's context
// has no deadline.
const etcdTimeout = 10 * time.Second

// Etcd is a configuration stored in etcd, one key per section:
// PREFIX/basic, PREFIX/acme, PREFIX/tracing and PREFIX/KIND/NAME (see
// config.ParseItems), each value the TOML body of that one section. It is
// safe for concurrent use; many pingap instances may share one prefix.
//
// The URL is etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/PREFIX; the
// key prefix is the URL path without its leading slash (etcd://h:2379/pingap
// keeps pingap/basic, pingap/upstreams/NAME, ...). Query parameters turn on
// TLS to etcd: tls=true (system roots), ca=FILE, cert=FILE&key=FILE (client
// certificate).
type Etcd struct {
	// Log receives watch problems (lost connection, compaction). Set it
	// before Watch; nil discards.
	Log *slog.Logger
	// Debounce overrides DefaultEtcdDebounce when > 0. Set it before Watch.
	Debounce time.Duration

	cli       *clientv3.Client
	source    string // etcd://HOST:PORT/PREFIX, without credentials
	keyPrefix string // PREFIX + "/"
	rev       atomic.Int64
}

// OpenEtcd parses rawURL and creates a client for it. It does not wait for
// etcd to answer: the first Load does (and fails if etcd is unreachable).
// Close releases the client.
func OpenEtcd(rawURL string) (*Etcd, error) {
	u, err := parseEtcdURL(rawURL)
	if err != nil {
		return nil, err
	}
	tlsConf, err := u.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", redact(rawURL), err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            u.endpoints,
		Username:             u.user,
		Password:             u.password,
		TLS:                  tlsConf,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		// The client's own zap logs would interleave with pingap's slog
		// lines; the watch loop logs what matters through Log.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact(rawURL), err)
	}
	return &Etcd{
		cli:       cli,
		source:    EtcdScheme + strings.Join(u.endpoints, ",") + "/" + u.prefix,
		keyPrefix: u.prefix + "/",
	}, nil
}

// etcdURL is a parsed -config etcd://... value.
type etcdURL struct {
	endpoints      []string
	user, password string
	prefix         string
	// TLS to etcd: tls=true alone trusts the system roots; ca, cert and
	// key are PEM files (any of them turns TLS on).
	tls           bool
	ca, cert, key string
}

// parseEtcdURL splits
// etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT]/PREFIX[?tls=true&ca=F&cert=F&key=F].
func parseEtcdURL(raw string) (etcdURL, error) {
	var u etcdURL
	bad := func(why string) (etcdURL, error) {
		return etcdURL{}, fmt.Errorf("config %s: %s (want etcd://HOST:PORT/PREFIX)", redact(raw), why)
	}
	rest, ok := strings.CutPrefix(raw, EtcdScheme)
	if !ok {
		return bad("not an etcd:// URL")
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	hosts, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(hosts, '@'); at >= 0 {
		userinfo := hosts[:at]
		hosts = hosts[at+1:]
		u.user, u.password, _ = strings.Cut(userinfo, ":")
		if u.user == "" {
			return bad("empty user name")
		}
	}
	for _, h := range strings.Split(hosts, ",") {
		if h == "" || strings.ContainsAny(h, " \t?#") {
			return bad(fmt.Sprintf("bad host %q", h))
		}
		u.endpoints = append(u.endpoints, h)
	}
	u.prefix = strings.Trim(path, "/")
	if u.prefix == "" {
		return bad("no key prefix")
	}
	if strings.ContainsAny(u.prefix, "?#") || strings.Contains(u.prefix, "//") {
		return bad(fmt.Sprintf("bad key prefix %q", u.prefix))
	}
	if hasQuery {
		params, err := url.ParseQuery(query)
		if err != nil {
			return bad(fmt.Sprintf("bad query: %v", err))
		}
		for _, k := range slices.Sorted(maps.Keys(params)) {
			v := params[k]
			if len(v) != 1 || v[0] == "" {
				return bad(fmt.Sprintf("parameter %q needs one non-empty value", k))
			}
			switch k {
			case "tls":
				on, err := strconv.ParseBool(v[0])
				if err != nil {
					return bad(fmt.Sprintf("tls=%q is not true or false", v[0]))
				}
				u.tls = on
			case "ca":
				u.ca = v[0]
			case "cert":
				u.cert = v[0]
			case "key":
				u.key = v[0]
			default:
				return bad(fmt.Sprintf("unknown parameter %q (tls, ca, cert, key)", k))
			}
		}
		if (u.cert == "") != (u.key == "") {
			return bad("cert and key go together")
		}
		if u.ca != "" || u.cert != "" {
			u.tls = true
		}
	}
	return u, nil
}

// tlsConfig builds the client TLS settings, nil for plain gRPC.
func (u etcdURL) tlsConfig() (*tls.Config, error) {
	if !u.tls {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if u.ca != "" {
		pem, err := os.ReadFile(u.ca)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca: %s: no PEM certificate found", u.ca)
		}
		conf.RootCAs = pool
	}
	if u.cert != "" {
		pair, err := tls.LoadX509KeyPair(u.cert, u.key)
		if err != nil {
			return nil, fmt.Errorf("cert/key: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// redact drops a password from an etcd URL for messages.
func redact(raw string) string {
	rest, ok := strings.CutPrefix(raw, EtcdScheme)
	if !ok {
		return raw
	}
	hosts, path, slash := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(hosts, '@'); at >= 0 {
		user, _, _ := strings.Cut(hosts[:at], ":")
		hosts = user + ":***@" + hosts[at+1:]
	}
	if slash {
		return EtcdScheme + hosts + "/" + path
	}
	return EtcdScheme + hosts
}

// Source returns the URL the config came from, without credentials
// (config.Config.Source and error messages use it).
func (s *Etcd) Source() string { return s.source }

// KeyPrefix returns the etcd key prefix, ending in "/".
func (s *Etcd) KeyPrefix() string { return s.keyPrefix }

// Revision returns the etcd revision of the last Load (0 before one).
func (s *Etcd) Revision() int64 { return s.rev.Load() }

// Close releases the client. End Watch's ctx first: a watch on a closed
// client keeps retrying (with backoff) until its ctx ends.
func (s *Etcd) Close() error { return s.cli.Close() }

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, etcdTimeout)
}

// Load reads every item under the prefix in one Get (so at one revision:
// never half of a push) and parses them as config.ParseItems does: strict
// decoding, defaults, validation; a problem names its key
// (etcd://HOST:PORT/PREFIX/upstreams/NAME). An empty prefix is an error.
// As with config.Load, a config that decoded but failed validation comes
// back along with the error (for `pingap -t`); it must not be run.
func (s *Etcd) Load(ctx context.Context) (*config.Config, error) {
	items, rev, err := s.items(ctx)
	if err != nil {
		return nil, err
	}
	s.rev.Store(rev)
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no configuration under the prefix %q (upload one with `pingap config push`)", s.source, s.keyPrefix)
	}
	return config.ParseItems(items, s.source)
}

// items returns the item bodies under the prefix, keyed relative to it, and
// the revision they were read at.
func (s *Etcd) items(ctx context.Context) (map[string][]byte, int64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keyPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("%s: read: %w", s.source, err)
	}
	items := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		items[strings.TrimPrefix(string(kv.Key), s.keyPrefix)] = kv.Value
	}
	return items, resp.Header.Revision, nil
}

// Push replaces the items under the prefix with cfg's: keys cfg does not
// have are deleted, changed items are written, unchanged ones are left
// alone (so a push of the running config is no change and no reload).
// Writes only commit if nothing under the prefix changed since it was
// read; a concurrent writer makes Push read again (a few times). cfg
// should be valid (config.Load/Parse made it); Push does not validate.
//
// The changes go in one transaction when etcd takes that many operations
// in one (--max-txn-ops, 128 by default). A bigger push is written in
// transactions of up to etcdTxnOps operations, in an order that keeps
// every step's references resolvable (upstreams, plugins and
// certificates first, then locations, servers and basic; deletions in the
// reverse order): watching proxies may load an intermediate state (each
// reload is validated; one that fails keeps the old config serving), and
// the last transaction completes the config. If a concurrent writer
// changes the prefix between two of them, Push starts over and writes
// the whole of cfg again.
func (s *Etcd) Push(ctx context.Context, cfg *config.Config) error {
	want, err := config.EncodeItems(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", s.source, err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	batch := 0 // all changes in one transaction
	for attempt := 0; attempt < 5; attempt++ {
		have, rev, err := s.items(ctx)
		if err != nil {
			return err
		}
		ops := pushOps(s.keyPrefix, have, want)
		if len(ops) == 0 {
			return nil
		}
		done, err := s.commit(ctx, ops, batch, rev)
		if errors.Is(err, rpctypes.ErrTooManyOps) && batch != 1 {
			// Smaller transactions: etcd's default limit first, then
			// halves (a member may be configured lower).
			if batch == 0 {
				batch = etcdTxnOps
			} else {
				batch /= 2
			}
			attempt-- // not a conflict
			continue
		}
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	return fmt.Errorf("%s: the prefix kept changing while pushing; try again", s.source)
}

// etcdTxnOps is etcd's default --max-txn-ops: the size of the transactions
// a push that etcd refused in one is split into.
const etcdTxnOps = 128

// commit writes ops in transactions of up to batch operations (0: one),
// each only if nothing under the prefix changed since revision rev or
// since the previous one. It reports false when something had.
func (s *Etcd) commit(ctx context.Context, ops []clientv3.Op, batch int, rev int64) (bool, error) {
	if batch <= 0 {
		batch = len(ops)
	}
	for i := 0; i < len(ops); i += batch {
		part := ops[i:min(i+batch, len(ops))]
		unchanged := clientv3.Compare(clientv3.ModRevision(s.keyPrefix), "<", rev+1).
			WithRange(clientv3.GetPrefixRangeEnd(s.keyPrefix))
		resp, err := s.cli.Txn(ctx).If(unchanged).Then(part...).Commit()
		if err != nil {
			if batch == len(ops) {
				return false, fmt.Errorf("%s: write %d changes in one transaction: %w", s.source, len(ops), err)
			}
			return false, fmt.Errorf("%s: write changes %d-%d of %d: %w", s.source, i+1, i+len(part), len(ops), err)
		}
		if !resp.Succeeded {
			return false, nil
		}
		rev = resp.Header.Revision
	}
	return true, nil
}

// pushOps lists the operations that turn the items have into want, in
// the order a push split over several transactions writes them: the kinds
// that others refer to are written before the kinds that refer to them and
// deleted after them.
func pushOps(prefix string, have, want map[string][]byte) []clientv3.Op {
	var ops []clientv3.Op
	put := func(rank int) {
		for _, k := range sortedKeys(want) {
			if itemRank(k) != rank {
				continue
			}
			if old, ok := have[k]; !ok || !bytes.Equal(old, want[k]) {
				ops = append(ops, clientv3.OpPut(prefix+k, string(want[k])))
			}
		}
	}
	del := func(rank int) {
		for _, k := range sortedKeys(have) {
			if _, ok := want[k]; !ok && itemRank(k) == rank {
				ops = append(ops, clientv3.OpDelete(prefix+k))
			}
		}
	}
	put(0)
	put(1)
	del(2)
	put(2)
	del(1)
	del(0)
	return ops
}

// itemRank orders item keys by what refers to what: 0 for upstreams,
// plugins, certificates, acme and tracing (and unknown keys), 1 for
// locations (they name upstreams and plugins), 2 for servers and basic
// (they name locations, plugins and certificates).
func itemRank(key string) int {
	switch {
	case strings.HasPrefix(key, "locations/"):
		return 1
	case strings.HasPrefix(key, "servers/"), key == "basic":
		return 2
	}
	return 0
}

// Persist validates a whole TOML config (as a config file would be) and
// pushes it: the admin API's way to write a config back. A config error is
// returned as is (config.Errors, one entry per problem, nothing written).
// Running proxies, this one included, pick the change up through Watch.
func (s *Etcd) Persist(data []byte) error {
	cfg, err := config.Parse(data, s.source)
	if err != nil {
		return err
	}
	return s.Push(context.Background(), cfg)
}

// Watch calls onChange (debounced, see Debounce) after keys under the
// prefix change. It runs in the background until ctx ends. It resumes after
// the revision of the last Load, so a change made between Load and Watch
// is not missed (before any Load it starts from now). A lost connection or
// a lost leader restarts the watch from the last revision seen; when etcd
// compacted past that revision, onChange is called (a full Load catches up)
// and the watch continues from the compaction point.
func (s *Etcd) Watch(ctx context.Context, onChange func()) {
	go s.watchLoop(ctx, onChange)
}

func (s *Etcd) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (s *Etcd) watchLoop(ctx context.Context, onChange func()) {
	delay := s.Debounce
	if delay <= 0 {
		delay = DefaultEtcdDebounce
	}
	log := s.logger()
	var next int64
	if r := s.rev.Load(); r > 0 {
		next = r + 1
	}
	var timer *time.Timer
	var fire <-chan time.Time
	schedule := func() {
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		fire = timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		// Without a leader the member cannot serve new revisions: have etcd
		// cancel the watch then, so we retry (possibly on another member).
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if next > 0 {
			opts = append(opts, clientv3.WithRev(next))
		}
		wch := s.cli.Watch(wctx, s.keyPrefix, opts...)
		broken := false
		for !broken {
			select {
			case <-ctx.Done():
				cancel()
				return
			case <-fire:
				fire = nil
				onChange()
			case resp, ok := <-wch:
				if !ok {
					broken = true
					break
				}
				if resp.CompactRevision != 0 {
					log.Warn("etcd watch: revisions compacted; reloading the whole config",
						slog.String("source", s.source), slog.Int64("from", next), slog.Int64("compacted_to", resp.CompactRevision))
					next = resp.CompactRevision
					schedule()
					broken = true
					break
				}
				if err := resp.Err(); err != nil {
					if ctx.Err() == nil {
						log.Warn("etcd watch interrupted; retrying", slog.String("source", s.source), slog.String("error", err.Error()))
					}
					broken = true
					break
				}
				if len(resp.Events) > 0 {
					next = resp.Header.Revision + 1
					backoff = minBackoff
					schedule()
				}
			}
		}
		cancel()
		// Wait before watching again, still honouring a pending reload.
		wait := time.NewTimer(backoff)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-fire:
				fire = nil
				onChange()
			case <-wait.C:
				waiting = false
			}
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
