package e2e

// End-to-end tests of the plugin system (issue 6): chains in order, server
// plugins before location plugins, refusals that stop the chain before the
// upstream, config errors at `pingap -t` and at reload, and the
// authentication / request-handling plugins against real backends.
// Helpers in this file and traffic_test.go are prefixed with "pl".

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// plCounting wraps h and counts the requests that reached it.
type plCounting struct {
	hits atomic.Int64
	h    http.Handler
}

func (c *plCounting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.hits.Add(1)
	c.h.ServeHTTP(w, r)
}

// plEchoBackend is echoBackend with a hit counter.
func plEchoBackend(t *testing.T, name string) (*backend, *plCounting) {
	t.Helper()
	e := echoBackend(t, name)
	c := &plCounting{h: e.Handler}
	e.Handler = c
	return e, c
}

// plErrorBody checks that body is the contract's JSON error.
func plErrorBody(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil || m["error"] == "" {
		t.Errorf("%s: body %q is not {\"error\":...}", what, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
}

func plExpect(t *testing.T, what string, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", what, resp.StatusCode, status, body)
	}
}

// plRefused checks that the answer is status with the contract's JSON
// error body: a refusal by a plugin or the proxy.
func plRefused(t *testing.T, what string, resp *http.Response, body []byte, status int) {
	t.Helper()
	plExpect(t, what, resp, body, status)
	plErrorBody(t, what, resp, body)
}

var plUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestPluginChainOrderRefusalAndServerPlugins(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	api := loc("api", "a", "/api", "rid", "keys", "local_only", "loc_headers").with(`headers_add = ["X-Resp-Id: $request_id"]
[locations.api.proxy_set_headers]
X-Rid = "$request_id"`)
	cfg := plSite(up.Addr, plugin("srv_headers", "headers", `request_add = ["X-Order: server"]`)+
		plugin("rid", "request_id")+
		plugin("keys", "key_auth", `header = "X-API-Key"`, `keys = ["k1", "k2"]`)+
		plugin("local_only", "ip_restriction", `type = "allow"`, `ip_list = ["127.0.0.0/8", "::1"]`)+
		plugin("no_local", "ip_restriction", `type = "deny"`, `ip_list = ["127.0.0.1"]`)+
		plugin("loc_headers", "headers", `request_add = ["X-Order: location"]`, `request_set = { "X-Seen-Id" = "$request_id" }`, `response_set = { "X-Loc" = "yes" }`),
		api, loc("denied", "a", "/denied", "rid", "no_local", "loc_headers"))
	cfg.ServerOpts = `plugins = ["srv_headers"]`
	p, base := serve(t, cfg.String())

	t.Run("missing key refused before upstream", func(t *testing.T) {
		before := hits.hits.Load()
		resp, body := do(t, "GET", base+"/api/x", nil)
		plRefused(t, "no key", resp, body, 401)
		// request_id ran before key_auth, so its response phase stamps the
		// refusal too.
		if id := resp.Header.Get("X-Request-Id"); !plUUID.MatchString(id) {
			t.Errorf("401 X-Request-Id = %q, want a uuid", id)
		}
		// loc_headers is after the refusing plugin: its response phase must
		// not run.
		if resp.Header.Get("X-Loc") != "" {
			t.Errorf("a plugin after the refusal ran its response phase")
		}
		resp, body = do(t, "GET", base+"/api/x", nil, "X-API-Key: wrong")
		plExpect(t, "bad key", resp, body, 401)
		if n := hits.hits.Load() - before; n != 0 {
			t.Fatalf("upstream saw %d refused requests", n)
		}
	})

	t.Run("accepted request went through every plugin in order", func(t *testing.T) {
		before := hits.hits.Load()
		resp, body := do(t, "GET", base+"/api/x", nil, "X-API-Key: k2", "X-Order: client")
		plExpect(t, "good key", resp, body, 200)
		e := decodeEcho(t, body)
		if got := e.Header.Values("X-Order"); strings.Join(got, ",") != "client,server,location" {
			t.Errorf("upstream X-Order = %q, want client,server,location (server plugins first)", got)
		}
		id := resp.Header.Get("X-Request-Id")
		if !plUUID.MatchString(id) {
			t.Fatalf("response X-Request-Id = %q", id)
		}
		if e.Header.Get("X-Request-Id") != id {
			t.Errorf("upstream X-Request-Id %q != response %q", e.Header.Get("X-Request-Id"), id)
		}
		if e.Header.Get("X-Seen-Id") != id {
			t.Errorf("$request_id seen by a later plugin = %q, want %q", e.Header.Get("X-Seen-Id"), id)
		}
		if e.Header.Get("X-Rid") != id || resp.Header.Get("X-Resp-Id") != id {
			t.Errorf("$request_id in proxy_set_headers %q, in headers_add %q, want %q", e.Header.Get("X-Rid"), resp.Header.Get("X-Resp-Id"), id)
		}
		if e.Header.Get("X-Api-Key") != "" {
			t.Errorf("key_auth hide_credentials: the key reached the upstream")
		}
		if resp.Header.Get("X-Loc") != "yes" {
			t.Errorf("response phase of the last plugin did not run")
		}
		if n := hits.hits.Load() - before; n != 1 {
			t.Fatalf("upstream hits %d, want 1", n)
		}
		l := p.waitLog("access", func(m map[string]any) bool { return m["request_id"] == id })
		if l["status"] != float64(200) || l["location"] != "api" {
			t.Errorf("access line for %s: %v", id, l)
		}
	})

	t.Run("ip deny stops the chain", func(t *testing.T) {
		before := hits.hits.Load()
		resp, body := do(t, "GET", base+"/denied", nil)
		plRefused(t, "denied", resp, body, 403)
		if n := hits.hits.Load() - before; n != 0 {
			t.Fatalf("upstream saw a denied request")
		}
		id := resp.Header.Get("X-Request-Id")
		l := p.waitLog("access", func(m map[string]any) bool { return m["request_id"] == id })
		if l["status"] != float64(403) {
			t.Errorf("access line for the refusal: %v", l)
		}
	})

	t.Run("client id kept and validated", func(t *testing.T) {
		resp, body := do(t, "GET", base+"/api/x", nil, "X-API-Key: k1", "X-Request-Id: client-abc")
		plExpect(t, "client id", resp, body, 200)
		if e := decodeEcho(t, body); e.Header.Get("X-Request-Id") != "client-abc" || resp.Header.Get("X-Request-Id") != "client-abc" {
			t.Errorf("client id not kept: upstream %q response %q", e.Header.Get("X-Request-Id"), resp.Header.Get("X-Request-Id"))
		}
		resp, body = do(t, "GET", base+"/api/x", nil, "X-API-Key: k1", `X-Request-Id: bad "id"`)
		if id := resp.Header.Get("X-Request-Id"); !plUUID.MatchString(id) {
			t.Errorf("invalid client id not replaced: %q", id)
		}
	})
}

// plBadPlugins is one broken plugin per category: name -> (table body, key
// the error must name).
var plBadPlugins = []struct{ name, body, key string }{
	{"bad_jwt", `category = "jwt"` + "\n" + `secret = "s"` + "\n" + `algorithms = ["none"]`, "algorithms"},
	{"bad_key_auth", `category = "key_auth"` + "\n" + `header = "X-Key"` + "\n" + `keys = []`, "keys"},
	{"bad_forward_auth", `category = "forward_auth"` + "\n" + `url = "ftp://127.0.0.1/"`, "url"},
	{"bad_basic_auth", `category = "basic_auth"` + "\n" + `users = ["nopassword"]`, "users"},
	{"bad_csrf", `category = "csrf"` + "\n" + `key = "0123456789abcdef0123456789abcdef"` + "\n" + `ttl = "forever"`, "ttl"},
	{"bad_ip_restriction", `category = "ip_restriction"` + "\n" + `ip_list = ["10.0.0.0/33"]`, "ip_list"},
	{"bad_ua_restriction", `category = "ua_restriction"` + "\n" + `ua_list = ["(["]`, "ua_list"},
	{"bad_referer_restriction", `category = "referer_restriction"` + "\n" + `referer_list = ["example.com"]` + "\n" + `type = "maybe"`, "type"},
	{"bad_limit", `category = "limit"` + "\n" + `max = 10` + "\n" + `interval = "soon"`, "interval"},
	{"bad_body_limit", `category = "body_limit"` + "\n" + `max = "lots"`, "max"},
	{"bad_cache", `category = "cache"` + "\n" + `max_size = "huge"`, "max_size"},
	{"bad_compression", `category = "compression"` + "\n" + `gzip_level = 42`, "gzip_level"},
	{"bad_cors", `category = "cors"` + "\n" + `max_age = "long"`, "max_age"},
	{"bad_redirect", `category = "redirect"` + "\n" + `http_to_https = true` + "\n" + `status = 200`, "status"},
	{"bad_request_id", `category = "request_id"` + "\n" + `algorithm = "sha1"`, "algorithm"},
	{"bad_mock", `category = "mock"` + "\n" + `status = 42`, "status"},
	{"bad_ping", `category = "ping"` + "\n" + `bogus = 1`, "bogus"},
	{"bad_headers", `category = "headers"` + "\n" + `request_add = ["NoColonHere"]`, "request_add"},
	{"bad_category", `category = "no_such_plugin"`, "category"},
	{"no_category", `header = "X"`, "category"},
}

// plBadPluginConfig is a config whose one location runs the plugins
// plBadPlugins[i] for each i in bad.
func plBadPluginConfig(upAddr string, bad ...int) string {
	var plugins string
	var names []string
	for _, i := range bad {
		bp := plBadPlugins[i]
		plugins += fmt.Sprintf("[plugins.%s]\n%s\n", bp.name, bp.body)
		names = append(names, bp.name)
	}
	return minimalConfig(upAddr, plugins, names...).String()
}

func TestPluginConfigErrorsRejectedByValidate(t *testing.T) {
	t.Parallel()
	all := make([]int, len(plBadPlugins))
	for i := range all {
		all[i] = i
	}
	path := writeConfig(t, plBadPluginConfig("127.0.0.1:9", all...))
	out, err := exec.Command(binary, "-config", path, "-t").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("-t with broken plugins: err %v, want exit 1\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	for _, bp := range plBadPlugins {
		t.Run(bp.name, func(t *testing.T) {
			for _, l := range lines {
				if strings.Contains(l, "plugins."+bp.name) && strings.Contains(l, bp.key) {
					return
				}
			}
			t.Errorf("no line of -t output names plugins.%s and key %q:\n%s", bp.name, bp.key, out)
		})
	}
	// Each category alone is also refused (one error does not hide behind
	// another), checked on a few without paying 18 process starts.
	for _, i := range []int{0, 8, 14} {
		bp := plBadPlugins[i]
		path := writeConfig(t, plBadPluginConfig("127.0.0.1:9", i))
		out, err := exec.Command(binary, "-config", path, "-t").CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "plugins."+bp.name) || !strings.Contains(string(out), bp.key) {
			t.Errorf("%s alone: err %v\n%s", bp.name, err, out)
		}
	}
}

func TestPluginConfigErrorOnReloadKeepsServing(t *testing.T) {
	t.Parallel()
	up, _ := plEchoBackend(t, "a")
	cfg := minimalConfig(up.Addr, plugin("keys", "key_auth", `header = "X-API-Key"`, `keys = ["k1"]`), "keys")
	cfg.Basic = `grace_period = "1s"`
	good := cfg.String()
	p := start(t, writeConfig(t, good), "s")
	base := p.url("s")
	resp, body := do(t, "GET", base+"/", nil, "X-API-Key: k1")
	plExpect(t, "before reload", resp, body, 200)

	// Every category's error, one reload each.
	for i, bad := range plBadPlugins {
		p.reload(good + fmt.Sprintf("[plugins.%s]\n%s\n", bad.name, bad.body))
		n := i + 1
		eventually(t, "reload failure log", func() bool {
			return len(p.logLines("reload failed; the running configuration stays")) >= n
		})
		l := p.logLines("reload failed; the running configuration stays")[n-1]
		if msg := fmt.Sprint(l["error"]); !strings.Contains(msg, "plugins."+bad.name) || !strings.Contains(msg, bad.key) {
			t.Errorf("reload error does not name plugins.%s and %s: %v", bad.name, bad.key, l)
		}
		// The old configuration (and its key_auth) keeps serving.
		resp, body = do(t, "GET", base+"/", nil, "X-API-Key: k1")
		plExpect(t, "after bad reload", resp, body, 200)
		resp, body = do(t, "GET", base+"/", nil)
		plExpect(t, "after bad reload, no key", resp, body, 401)
	}
}

func plToken(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPluginAuthentication(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	authHits := atomic.Int64{}
	auth := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authHits.Add(1)
		switch {
		case r.Header.Get("Authorization") == "Bearer letmein":
			w.Header().Set("X-User", "alice")
			w.Header().Set("X-Auth-Uri", r.Header.Get("X-Forwarded-Uri"))
			w.Header().Set("X-Auth-Method", r.Header.Get("X-Forwarded-Method"))
			w.WriteHeader(204)
		case r.Header.Get("Authorization") == "Bearer slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			w.WriteHeader(204)
		case r.Header.Get("Authorization") == "Bearer login":
			http.Redirect(w, r, "https://sso.example/login", http.StatusFound)
		default:
			w.Header().Set("X-Auth-Reason", "bad token")
			w.WriteHeader(401)
			w.Write([]byte("go away"))
		}
	}))
	const secret = "e2e-jwt-secret-0123456789"
	verify := fmt.Sprintf("url = \"http://%s/verify\"", auth.Addr)
	_, base := serve(t, plSite(up.Addr,
		plugin("jwt", "jwt", fmt.Sprintf("secret = %q", secret), `algorithms = ["HS256"]`, `issuer = "e2e"`, `forward_claims = { sub = "X-User-Id" }`)+
			plugin("basic", "basic_auth", `realm = "e2e"`, `users = ["ops:s3cr:et", "dev:$2a$04$ys0hCVJE9w3yLmx6FAK5NuaSzBj2Rn1bLjeQlRG2xbIA4z0gfGrqO"]`)+
			plugin("fwd", "forward_auth", verify, `request_headers = ["Authorization"]`, `upstream_headers = ["X-User", "X-Auth-Uri", "X-Auth-Method"]`, `timeout = "2s"`)+
			plugin("fwd_slow", "forward_auth", verify, `request_headers = ["Authorization"]`, `timeout = "300ms"`)+
			plugin("fwd_down", "forward_auth", `url = "http://127.0.0.1:1/verify"`, `timeout = "1s"`),
		loc("jwt", "a", "/jwt", "jwt"), loc("basic", "a", "/basic", "basic"), loc("fwd", "a", "/fwd", "fwd"),
		loc("fwd_down", "a", "/down", "fwd_down"), loc("fwd_slow", "a", "/slowauth", "fwd_slow")).String())
	now := time.Now()

	t.Run("jwt", func(t *testing.T) {
		good := plToken(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "user-7", "iss": "e2e", "exp": now.Add(time.Hour).Unix()})
		before := hits.hits.Load()
		resp, body := do(t, "GET", base+"/jwt/a", nil, "Authorization: Bearer "+good, "X-User-Id: forged")
		plExpect(t, "valid HS256", resp, body, 200)
		if got := decodeEcho(t, body).Header.Values("X-User-Id"); len(got) != 1 || got[0] != "user-7" {
			t.Errorf("forwarded claim X-User-Id = %q, want [user-7]", got)
		}
		// Again (verified-token cache) still works.
		resp, body = do(t, "GET", base+"/jwt/a", nil, "Authorization: Bearer "+good)
		plExpect(t, "valid HS256 again", resp, body, 200)
		if n := hits.hits.Load() - before; n != 2 {
			t.Fatalf("upstream hits %d, want 2", n)
		}

		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"x","iss":"e2e","exp":%d}`, now.Add(time.Hour).Unix()))) + "."
		refused := map[string]string{
			"missing":       "",
			"wrong secret":  "Bearer " + plToken(t, jwt.SigningMethodHS256, []byte("other-secret"), jwt.MapClaims{"iss": "e2e", "exp": now.Add(time.Hour).Unix()}),
			"expired":       "Bearer " + plToken(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iss": "e2e", "exp": now.Add(-time.Hour).Unix()}),
			"not yet valid": "Bearer " + plToken(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iss": "e2e", "nbf": now.Add(time.Hour).Unix()}),
			"wrong issuer":  "Bearer " + plToken(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iss": "evil", "exp": now.Add(time.Hour).Unix()}),
			"HS512":         "Bearer " + plToken(t, jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"iss": "e2e", "exp": now.Add(time.Hour).Unix()}),
			"alg none":      "Bearer " + none,
			"malformed":     "Bearer abc.def",
			"basic scheme":  "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")),
		}
		before = hits.hits.Load()
		for name, h := range refused {
			var hdrs []string
			if h != "" {
				hdrs = append(hdrs, "Authorization: "+h)
			}
			resp, body := do(t, "GET", base+"/jwt/a", nil, hdrs...)
			if resp.StatusCode != 401 {
				t.Errorf("%s: status %d, want 401: %s", name, resp.StatusCode, body)
				continue
			}
			plErrorBody(t, name, resp, body)
		}
		if n := hits.hits.Load() - before; n != 0 {
			t.Fatalf("upstream saw %d refused jwt requests", n)
		}
	})

	t.Run("basic_auth", func(t *testing.T) {
		before := hits.hits.Load()
		resp, body := do(t, "GET", base+"/basic", nil)
		plRefused(t, "no credentials", resp, body, 401)
		if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="e2e", charset="UTF-8"` {
			t.Errorf("WWW-Authenticate = %q", got)
		}
		req, _ := http.NewRequest("GET", base+"/basic", nil)
		req.SetBasicAuth("ops", "wrong")
		r2, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != 401 || r2.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("wrong password: %d %q", r2.StatusCode, r2.Header.Get("WWW-Authenticate"))
		}
		if n := hits.hits.Load() - before; n != 0 {
			t.Fatalf("upstream saw %d unauthenticated requests", n)
		}
		for _, up := range [][2]string{{"ops", "s3cr:et"}, {"dev", "devpass"}} {
			req, _ := http.NewRequest("GET", base+"/basic", nil)
			req.SetBasicAuth(up[0], up[1])
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e echo
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: status %d", up[0], resp.StatusCode)
				continue
			}
			if e.Header.Get("Authorization") != "" {
				t.Errorf("%s: Authorization reached the upstream (hide_credentials)", up[0])
			}
		}
	})

	t.Run("forward_auth", func(t *testing.T) {
		before, authBefore := hits.hits.Load(), authHits.Load()
		resp, body := do(t, "POST", base+"/fwd/item?id=3", strings.NewReader("x"), "Authorization: Bearer letmein", "X-User: mallory")
		plExpect(t, "authorized", resp, body, 200)
		e := decodeEcho(t, body)
		if got := e.Header.Values("X-User"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("upstream X-User = %q, want [alice] (client value removed)", got)
		}
		if e.Header.Get("X-Auth-Uri") != "/fwd/item?id=3" || e.Header.Get("X-Auth-Method") != "POST" {
			t.Errorf("auth service saw uri %q method %q", e.Header.Get("X-Auth-Uri"), e.Header.Get("X-Auth-Method"))
		}

		resp, body = do(t, "GET", base+"/fwd/item", nil, "Authorization: Bearer nope")
		plExpect(t, "refused by auth", resp, body, 401)
		if string(body) != "go away" || resp.Header.Get("X-Auth-Reason") != "bad token" {
			t.Errorf("auth answer not returned as is: %q %v", body, resp.Header)
		}
		req, _ := http.NewRequest("GET", base+"/fwd/item", nil)
		req.Header.Set("Authorization", "Bearer login")
		r3, err := client.Transport.RoundTrip(req) // do not follow the redirect
		if err != nil {
			t.Fatal(err)
		}
		r3.Body.Close()
		if r3.StatusCode != 302 || r3.Header.Get("Location") != "https://sso.example/login" {
			t.Errorf("auth redirect: %d %q", r3.StatusCode, r3.Header.Get("Location"))
		}
		if n := hits.hits.Load() - before; n != 1 {
			t.Errorf("upstream hits %d, want 1 (only the authorized request)", n)
		}
		if n := authHits.Load() - authBefore; n != 3 {
			t.Errorf("auth service hits %d, want 3", n)
		}

		before = hits.hits.Load()
		resp, body = do(t, "GET", base+"/down", nil)
		plRefused(t, "auth unreachable", resp, body, 503)
		resp, body = do(t, "GET", base+"/slowauth", nil, "Authorization: Bearer slow")
		plRefused(t, "auth slower than timeout", resp, body, 503)
		if hits.hits.Load() != before {
			t.Errorf("upstream reached with the auth service down or slow")
		}
	})
}

func TestPluginCSRFRedirectMockPing(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	token := loc("token", "a", "/csrf-token", "csrf").with(`path_type = "exact"`)
	_, base := serve(t, plSite(up.Addr,
		plugin("csrf", "csrf", `key = "0123456789abcdef0123456789abcdef"`, `ttl = "1h"`)+
			plugin("https", "redirect", "http_to_https = true")+
			plugin("v2", "redirect", `prefix = "/v2"`, "status = 308")+
			plugin("maint", "mock", "status = 503", `headers = ["Retry-After: 300", "X-Mock: on"]`, `data = '{"maintenance":true}'`)+
			plugin("ping", "ping", `path = "/healthz"`),
		loc("csrf", "a", "/app", "csrf"), token, loc("secure", "a", "/secure", "https"), loc("v2", "a", "/old", "v2"),
		loc("maint", "", "/maint", "maint"), loc("probe", "", "/healthz", "ping")).String())

	t.Run("csrf token flow", func(t *testing.T) {
		before := hits.hits.Load()
		resp, body := do(t, "GET", base+"/csrf-token", nil)
		plExpect(t, "token", resp, body, 200)
		var tok struct{ Token string }
		if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
			t.Fatalf("token body %q", body)
		}
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "X-CSRF-Token" {
				cookie = c
			}
		}
		if cookie == nil || cookie.Value != tok.Token || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
			t.Fatalf("cookie %+v, want the token, HttpOnly, SameSite=Strict (headers %v)", cookie, resp.Header)
		}
		if hits.hits.Load() != before {
			t.Fatal("the token path reached the upstream")
		}
		cookieHdr := "Cookie: X-CSRF-Token=" + tok.Token
		cases := []struct {
			name, method string
			headers      []string
			status       int
		}{
			{"GET needs nothing", "GET", nil, 200},
			{"POST without token", "POST", nil, 403},
			{"POST with cookie only", "POST", []string{cookieHdr}, 403},
			{"POST header mismatch", "POST", []string{cookieHdr, "X-CSRF-Token: " + tok.Token + "x"}, 403},
			{"POST forged token", "POST", []string{"Cookie: X-CSRF-Token=AAAA", "X-CSRF-Token: AAAA"}, 403},
			{"POST valid", "POST", []string{cookieHdr, "X-CSRF-Token: " + tok.Token}, 200},
			{"DELETE valid", "DELETE", []string{cookieHdr, "X-CSRF-Token: " + tok.Token}, 200},
		}
		for _, c := range cases {
			before := hits.hits.Load()
			resp, body := do(t, c.method, base+"/app/form", strings.NewReader(""), c.headers...)
			if resp.StatusCode != c.status {
				t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
				continue
			}
			reached := hits.hits.Load() - before
			if c.status == 403 {
				plErrorBody(t, c.name, resp, body)
				if reached != 0 {
					t.Errorf("%s: upstream reached", c.name)
				}
			} else if reached != 1 {
				t.Errorf("%s: upstream hits %d", c.name, reached)
			}
		}
	})

	noFollow := func(t *testing.T, url, host string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := client.Transport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	t.Run("redirect", func(t *testing.T) {
		before := hits.hits.Load()
		resp := noFollow(t, base+"/secure/a/b?x=1&y=%20", "shop.example:8080")
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://shop.example/secure/a/b?x=1&y=%20" {
			t.Errorf("http_to_https: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp = noFollow(t, base+"/old/thing?q=1", "")
		if resp.StatusCode != 308 || !strings.HasSuffix(resp.Header.Get("Location"), "/v2/old/thing?q=1") {
			t.Errorf("prefix: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if hits.hits.Load() != before {
			t.Error("a redirect reached the upstream")
		}
	})

	t.Run("mock and ping without upstream", func(t *testing.T) {
		resp, body := do(t, "GET", base+"/maint/anything", nil)
		plExpect(t, "mock", resp, body, 503)
		if string(body) != `{"maintenance":true}` || resp.Header.Get("Retry-After") != "300" || resp.Header.Get("X-Mock") != "on" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("mock answer: %q %v", body, resp.Header)
		}
		for _, m := range []string{"GET", "HEAD", "POST"} {
			resp, body := do(t, m, base+"/healthz", nil)
			plExpect(t, "ping "+m, resp, body, 200)
			if m != "HEAD" && string(body) != "pong" {
				t.Errorf("ping %s body %q", m, body)
			}
		}
		// A location without upstream whose plugin does not answer: the
		// ping plugin passes /healthz/x (exact path only).
		resp, body = do(t, "GET", base+"/healthz/x", nil)
		if resp.StatusCode < 500 {
			t.Errorf("no upstream and no answer: status %d %s", resp.StatusCode, body)
		}
	})
}

// TestPluginServerPluginsPerServer: server plugins run for a location
// without plugins of its own, and only on the server that lists them when a
// location is shared; key_auth by query hides only its parameter.
func TestPluginServerPluginsPerServer(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	cfg := plSite(up.Addr, plugin("tag", "headers", `request_set = { "X-Server-Plugin" = "ran" }`, `response_set = { "X-Server-Plugin" = "ran" }`)+
		plugin("qkey", "key_auth", `query = "api_key"`, `keys = ["secret-1"]`),
		loc("plain", "a", "/plain"), loc("q", "a", "/q", "qkey"))
	cfg.Extra = `[servers.with]
addr = "127.0.0.1:0"
plugins = ["tag"]
locations = ["plain", "q"]`
	cfg.Server = "without"
	p := start(t, writeConfig(t, cfg.String()), "with", "without")
	resp, b := do(t, "GET", p.url("with")+"/plain", nil)
	plExpect(t, "with", resp, b, 200)
	if decodeEcho(t, b).Header.Get("X-Server-Plugin") != "ran" || resp.Header.Get("X-Server-Plugin") != "ran" {
		t.Errorf("server plugin did not run on a location without plugins")
	}
	resp, b = do(t, "GET", p.url("without")+"/plain", nil)
	plExpect(t, "without", resp, b, 200)
	if decodeEcho(t, b).Header.Get("X-Server-Plugin") != "" || resp.Header.Get("X-Server-Plugin") != "" {
		t.Errorf("another server's plugin ran on a shared location")
	}

	before := hits.hits.Load()
	resp, b = do(t, "GET", p.url("with")+"/q?a=1&api_key=wrong", nil)
	plExpect(t, "wrong query key", resp, b, 401)
	if resp.Header.Get("X-Server-Plugin") != "ran" {
		t.Errorf("server plugin's response phase did not run on the location plugin's refusal")
	}
	if hits.hits.Load() != before {
		t.Fatal("refused request reached the upstream")
	}
	resp, b = do(t, "GET", p.url("without")+"/q?a=1&api_key=secret-1&b=x%20y&c", nil)
	plExpect(t, "query key", resp, b, 200)
	if q := decodeEcho(t, b).Query; q != "a=1&b=x%20y&c" {
		t.Errorf("upstream query %q, want the key removed and the rest as written", q)
	}
}

// TestPluginCORSBeforeAuth: with cors listed before key_auth, a preflight
// needs no key (cors answers it), and key_auth's 401 still carries the CORS
// fields so a browser can read it.
func TestPluginCORSBeforeAuth(t *testing.T) {
	t.Parallel()
	up, hits := plEchoBackend(t, "a")
	_, base := serve(t, plSite(up.Addr, plugin("cors", "cors", `allow_origins = ["https://app.example.com"]`)+
		plugin("keys", "key_auth", `header = "X-API-Key"`, `keys = ["k"]`), loc("api", "a", "", "cors", "keys")).String())
	resp, b := do(t, "OPTIONS", base+"/x", nil, "Origin: https://app.example.com", "Access-Control-Request-Method: POST", "Access-Control-Request-Headers: X-API-Key")
	plExpect(t, "preflight without a key", resp, b, 204)
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("preflight Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp, b = do(t, "POST", base+"/x", nil, "Origin: https://app.example.com")
	plExpect(t, "POST without a key", resp, b, 401)
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("the 401 lacks Access-Control-Allow-Origin: a browser could not read it")
	}
	if hits.hits.Load() != 0 {
		t.Fatal("upstream reached")
	}
	resp, b = do(t, "POST", base+"/x", nil, "Origin: https://app.example.com", "X-API-Key: k")
	plExpect(t, "POST with the key", resp, b, 200)
}
