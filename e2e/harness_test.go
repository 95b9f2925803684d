// Package e2e runs the real pingap binary on loopback ports against real
// backends. TestMain builds the binary once.
package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pingap-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pingap")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/pingap")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building pingap:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running pingap.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	config string

	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	addrs map[string]string // server name -> bound addr
	added chan struct{}
	// done is closed when the log pipe ends (every process holding it,
	// including a process started by a binary upgrade, has exited); exited
	// when this process has.
	done    chan struct{}
	exited  chan struct{}
	exitErr error
	logR    *os.File
}

// writeConfig writes body to a config file in a new temp dir.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pingap.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs pingap on config (a file path) and waits until every server in
// servers is listening. Servers should use "127.0.0.1:0": the bound address
// is read from the "listening" log line.
func start(t *testing.T, config string, servers ...string) *proc {
	t.Helper()
	p := &proc{t: t, config: config, addrs: map[string]string{}, added: make(chan struct{}, 64), done: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(binary, "-config", config)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p.logR = r
	go p.readLogs(r)
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(); r.Close() })
	for _, s := range servers {
		p.waitAddr(s)
	}
	p.waitLog("pingap started", nil)
	return p
}

func (p *proc) readLogs(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		p.mu.Lock()
		p.raw.Write(line)
		p.raw.WriteByte('\n')
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			p.lines = append(p.lines, m)
			if m["msg"] == "listening" {
				if s, ok := m["server"].(string); ok {
					p.addrs[s], _ = m["addr"].(string)
				}
			}
		}
		p.mu.Unlock()
		select {
		case p.added <- struct{}{}:
		default:
		}
	}
}

// waitAddr returns the bound address of server, waiting for it up to 20s.
func (p *proc) waitAddr(server string) string {
	p.t.Helper()
	var a string
	p.await(fmt.Sprintf("server %q listening", server), 20*time.Second, p.exited, "pingap exited", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		a = p.addrs[server]
		return a != ""
	})
	return a
}

// await returns once cond holds, checking it again after every log line.
// It fails the test, naming what it waited for, when end closes first
// (ended says how) or after timeout.
func (p *proc) await(what string, timeout time.Duration, end <-chan struct{}, ended string, cond func() bool) {
	p.t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-p.added:
		case <-end:
			p.t.Fatalf("%s while waiting for %s:\n%s", ended, what, p.logs())
		case <-deadline:
			p.t.Fatalf("no %s after %v:\n%s", what, timeout, p.logs())
		}
	}
}

// url returns "http://ADDR" of server.
func (p *proc) url(server string) string { return "http://" + p.waitAddr(server) }

// logs returns everything pingap logged so far.
func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// logLines returns the parsed JSON log lines with msg.
func (p *proc) logLines(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits up to 10s for a log line with msg for which match returns
// true (match may be nil).
func (p *proc) waitLog(msg string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	var found map[string]any
	p.await(fmt.Sprintf("log %q", msg), 10*time.Second, p.done, "log ended", func() bool {
		for _, l := range p.logLines(msg) {
			if match == nil || match(l) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func (p *proc) signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("pingap did not exit within %v:\n%s", timeout, p.dump())
	}
	err := p.exitErr
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatal(err)
	return -1
}

// dump asks a stuck process for its goroutine stacks (SIGQUIT makes the Go
// runtime print them to stderr and exit) and returns everything it logged.
func (p *proc) dump() string {
	p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	return p.logs()
}

func (p *proc) stop() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.t.Errorf("pingap did not stop within 10s of SIGTERM:\n%s", p.dump())
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if p.t.Failed() {
		p.t.Logf("pingap logs:\n%s", p.logs())
	}
}

// backend is a real HTTP server on 127.0.0.1 that tags its answers.
type backend struct {
	*http.Server
	ln   net.Listener
	Addr string
}

func newBackend(t *testing.T, h http.Handler) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{Server: &http.Server{Handler: h}, ln: ln, Addr: ln.Addr().String()}
	go b.Serve(ln)
	t.Cleanup(func() { b.Close() })
	return b
}

// echoBackend answers with a JSON description of the request and
// X-Backend: name.
func echoBackend(t *testing.T, name string) *backend {
	return newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Backend", name)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{
			Backend: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			RequestURI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(body),
		})
	}))
}

type echo struct {
	Backend    string      `json:"backend"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Query      string      `json:"query"`
	RequestURI string      `json:"request_uri"`
	Host       string      `json:"host"`
	Header     http.Header `json:"header"`
	Body       string      `json:"body"`
}

var client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get sends a GET with optional header lines and returns the response with
// its body read.
func do(t *testing.T, method, url string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		if strings.EqualFold(k, "Host") {
			req.Host = strings.TrimSpace(v)
			continue
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

// setHeaders sets each "Name: value" of headers on req (replacing what
// was there; do adds instead, and takes Host).
func setHeaders(req *http.Request, headers ...string) {
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
}

// getStatusAsync GETs url on a goroutine with http.DefaultClient (no
// timeout: a request the backend holds stays held), reads the body and
// delivers the status, or -1 on a transport error.
func getStatusAsync(url string) <-chan int {
	status := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			status <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	return status
}

func decodeEcho(t *testing.T, b []byte) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not an echo body: %v: %q", err, b)
	}
	return e
}

// rawRequest writes raw bytes to addr and returns everything read back
// until the server closes or 5s pass.
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	return string(b)
}

// oneUpstreamConfig is the smallest useful config: every path of server
// "main" (on a free loopback port) goes to the one addr of upstream "u".
func oneUpstreamConfig(addr string) string { return oneUpstream(addr).String() }

// oneUpstream is oneUpstreamConfig as a siteConfig (upstream "u" with
// addrs), for tests that add a [basic] line, an upstream option or a
// server option to it.
func oneUpstream(addrs ...string) siteConfig {
	return siteConfig{
		Upstreams: []siteUpstream{{Name: "u", Addrs: addrs}},
		Locations: []siteLocation{{Name: "all", Upstream: "u"}},
	}
}

// abConfig is the reload, etcd and admin tests' config: upstreams "a"
// and "b" (one addr each) and location "r" sending every path to target
// (usually "a" or "b"), under the [basic] lines basic.
func abConfig(basic, target, a, b string) siteConfig {
	return siteConfig{
		Basic:     basic,
		Upstreams: []siteUpstream{{Name: "a", Addrs: []string{a}}, {Name: "b", Addrs: []string{b}}},
		Locations: []siteLocation{loc("r", target, "/")},
	}
}

// minimalConfig is the config `pingap -t` tests start from: upstream "u"
// at upAddr, the plugin tables, location "l" running chain, server "s".
func minimalConfig(upAddr, plugins string, chain ...string) siteConfig {
	return siteConfig{Upstreams: []siteUpstream{{Name: "u", Addrs: []string{upAddr}}}, Plugins: plugins,
		Locations: []siteLocation{loc("l", "u", "", chain...)}, Server: "s"}
}

// routes is a config whose server "main" routes /NAME (and below) to
// upstream NAME, through a location NAME, for each of ups in order.
func routes(ups ...siteUpstream) siteConfig {
	c := siteConfig{Upstreams: ups}
	for _, u := range ups {
		c.Locations = append(c.Locations, loc(u.Name, u.Name, "/"+u.Name))
	}
	return c
}

// siteConfig is the shape of nearly every e2e config: optional [basic]
// lines, upstreams, plugin tables, locations, and one server (default
// "main" on 127.0.0.1:0) that serves every location in order. String
// renders it as TOML, so a test states only what it is about instead of
// repeating the same tables. Free-form fields hold TOML lines verbatim;
// names, addrs and paths are quoted Go-style (%q), which is valid TOML for
// the plain ASCII the tests use.
type siteConfig struct {
	Basic      string         // lines of [basic]; "" = no [basic] table
	Upstreams  []siteUpstream // in order
	Plugins    string         // [plugins.NAME] tables, verbatim
	Locations  []siteLocation // in order; the server lists them all
	Extra      string         // other tables (more servers, certificates), verbatim
	Server     string         // name of the server; "" = "main"
	Addr       string         // its addr; "" = "127.0.0.1:0"
	ServerOpts string         // more lines of the server table (h2c, plugins, tls_cert, ...)
}

// siteUpstream is an [upstreams.NAME] table; Opts are more lines of it
// (timeouts, http2, health checks).
type siteUpstream struct {
	Name  string
	Addrs []string
	Opts  string
}

// siteLocation is a [locations.NAME] table. Upstream and Path are left out
// when empty (no path: every path); Opts are more lines of it (rewrite,
// headers, client_max_body_size; a sub-table such as
// [locations.NAME.headers_set] must come last).
type siteLocation struct {
	Name, Upstream, Path string
	Plugins              []string
	Opts                 string
}

// loc is a siteLocation on upstream for path ("" = every path) running
// plugins.
func loc(name, upstream, path string, plugins ...string) siteLocation {
	return siteLocation{Name: name, Upstream: upstream, Path: path, Plugins: plugins}
}

// with returns l with the more lines opts.
func (l siteLocation) with(opts string) siteLocation {
	l.Opts = opts
	return l
}

// String renders c as a TOML config file.
func (c siteConfig) String() string {
	var b strings.Builder
	lines := func(s string) {
		if s = strings.Trim(s, "\n"); s != "" {
			b.WriteString(s + "\n")
		}
	}
	if c.Basic != "" {
		b.WriteString("[basic]\n")
		lines(c.Basic)
	}
	for _, u := range c.Upstreams {
		fmt.Fprintf(&b, "[upstreams.%s]\naddrs = %s\n", u.Name, tomlList(u.Addrs))
		lines(u.Opts)
	}
	lines(c.Plugins)
	var names []string
	for _, l := range c.Locations {
		names = append(names, l.Name)
		fmt.Fprintf(&b, "[locations.%s]\n", l.Name)
		if l.Upstream != "" {
			fmt.Fprintf(&b, "upstream = %q\n", l.Upstream)
		}
		if l.Path != "" {
			fmt.Fprintf(&b, "path = %q\n", l.Path)
		}
		if len(l.Plugins) > 0 {
			fmt.Fprintf(&b, "plugins = %s\n", tomlList(l.Plugins))
		}
		lines(l.Opts)
	}
	lines(c.Extra)
	fmt.Fprintf(&b, "[servers.%s]\naddr = %q\nlocations = %s\n", cmp.Or(c.Server, "main"), cmp.Or(c.Addr, "127.0.0.1:0"), tomlList(names))
	lines(c.ServerOpts)
	return b.String()
}

// plugin renders a [plugins.NAME] table of category with more lines, for
// siteConfig.Plugins.
func plugin(name, category string, lines ...string) string {
	return fmt.Sprintf("[plugins.%s]\ncategory = %q\n%s", name, category, strings.Join(append(lines, ""), "\n"))
}

// tomlList renders ss as a TOML array of strings.
func tomlList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// serve writes cfg to a config file, starts pingap on it, waits for its
// server "main" and returns the process and "http://ADDR" of that server.
func serve(t *testing.T, cfg string) (*proc, string) {
	t.Helper()
	p := start(t, writeConfig(t, cfg), "main")
	return p, p.url("main")
}

// writeFile replaces the file at path with body.
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload replaces p's config file with body and sends SIGHUP. It does not
// wait: follow it with waitReloads (or a failure check) as the test needs.
func (p *proc) reload(body string) {
	p.t.Helper()
	writeFile(p.t, p.config, body)
	p.signal(syscall.SIGHUP)
}

// waitReloads waits until p has logged n successful reloads in all.
func (p *proc) waitReloads(n int) {
	p.t.Helper()
	eventually(p.t, fmt.Sprintf("%d reloads", n), func() bool {
		return len(p.logLines("configuration reloaded")) >= n
	})
}

// freeAddr returns a loopback TCP address that was free a moment ago
// (nothing listens there: a dead upstream, or a fixed addr for a config).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond every 20ms until it holds, failing the test with what
// once timeout has passed. cond is always checked once more at the
// deadline.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually is waitFor with the usual 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitFor(t, 10*time.Second, what, cond)
}
