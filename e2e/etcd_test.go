package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pingap-go/pingap/internal/config"
	etcdtest "github.com/pingap-go/pingap/internal/testutil/etcd"
)

// etConfig renders a config whose location /r goes to upstream target.
// metrics may be "" (two instances on one prefix cannot share a metrics
// addr).
func etConfig(metrics, target, a, b string) string {
	c := abConfig(fmt.Sprintf("metrics_addr = %q\ngrace_period = \"2s\"", metrics), target, a, b)
	c.Locations[0] = c.Locations[0].with(fmt.Sprintf("[locations.r.headers_set]\nX-Route = %q", target))
	return c.String()
}

// etPingap runs `pingap ARGS...` to completion and returns its exit code,
// stdout and stderr.
func etPingap(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("pingap %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// etPush uploads body (a TOML file config) with `pingap config push`.
func etPush(t *testing.T, url, body string) {
	t.Helper()
	file := writeConfig(t, body)
	code, out, errOut := etPingap(t, "config", "push", "-config", file, "-to", url)
	if code != 0 || !strings.Contains(out, "pushed") {
		t.Fatalf("config push: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// etPull runs `pingap config pull -from url`, which must succeed, and
// returns its output and that output parsed.
func etPull(t *testing.T, url string) (string, *config.Config) {
	t.Helper()
	code, out, errOut := etPingap(t, "config", "pull", "-from", url)
	if code != 0 {
		t.Fatalf("config pull: exit %d: %s", code, errOut)
	}
	pulled, err := config.Parse([]byte(out), "pulled.toml")
	if err != nil {
		t.Fatalf("pulled TOML does not parse: %v\n%s", err, out)
	}
	return out, pulled
}

// etFollow pushes a config routing to a, starts one pingap per route on
// url, checks each routes per etcd, then pushes one routing to b and waits
// for every instance to follow.
func etFollow(t *testing.T, url string, routes ...string) {
	t.Helper()
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	etPush(t, url, etConfig("", "a", a.Addr, b.Addr))
	var urls []string
	for _, r := range routes {
		urls = append(urls, start(t, url, "main").url("main")+r)
	}
	for _, u := range urls {
		if got := backendName(t, u); got != "a" {
			t.Fatalf("routed per etcd: %s went to backend %q, want a", u, got)
		}
	}
	etPush(t, url, etConfig("", "b", a.Addr, b.Addr))
	eventually(t, "every instance reroutes after a push", func() bool {
		for _, u := range urls {
			if backendName(t, u) != "b" {
				return false
			}
		}
		return true
	})
}

func etClient(t *testing.T, srv *etcdtest.Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestEtcdRoutesAndPushReroutesWithoutRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	url := srv.Endpoint("pingap/e2e")
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	maddr := freeAddr(t)
	etPush(t, url, etConfig(maddr, "a", a.Addr, b.Addr))

	// -t validates what is in etcd.
	if code, out, errOut := etPingap(t, "-config", url, "-t"); code != 0 || !strings.Contains(out, "is valid") {
		t.Fatalf("-t on etcd: exit %d: %s %s", code, out, errOut)
	}

	p := start(t, url, "main")
	route := p.url("main") + "/x"
	if got := backendName(t, route); got != "a" {
		t.Fatalf("routed per etcd: backend %q, want a", got)
	}
	pid := p.cmd.Process.Pid

	// A changed file pushed with the CLI reroutes the running proxy.
	etPush(t, url, etConfig(maddr, "b", a.Addr, b.Addr))
	eventually(t, "reroute after push", func() bool { return backendName(t, route) == "b" })
	resp, _ := do(t, "GET", route, nil)
	if got := resp.Header.Get("X-Route"); got != "b" {
		t.Fatalf("headers_set after push: X-Route %q", got)
	}
	eventually(t, "success counter", func() bool {
		return metricValue(t, maddr, `config_reloads_total{result="success"}`) == "1"
	})
	if p.cmd.Process.Pid != pid {
		t.Fatal("pid changed")
	}
	p.waitLog("configuration changed in etcd: reloading", nil)

	// An invalid item is refused, counted, and the old config keeps serving.
	cli := etClient(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "pingap/e2e/locations/r", "upstream = \"missing\"\npath = \"/\"\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "failure counter", func() bool {
		return metricValue(t, maddr, `config_reloads_total{result="failure"}`) == "1"
	})
	if got := backendName(t, route); got != "b" {
		t.Fatalf("after an invalid item: backend %q, want the old config's b", got)
	}
	l := p.waitLog("reload failed; the running configuration stays", nil)
	if msg := fmt.Sprint(l["error"]); !strings.Contains(msg, url+"/locations/r") || !strings.Contains(msg, "missing") {
		t.Fatalf("reload error does not name the key and the problem: %v", msg)
	}

	// SIGHUP reloads from etcd too: still invalid, a second failure.
	p.signal(syscall.SIGHUP)
	eventually(t, "failure counter after SIGHUP", func() bool {
		return metricValue(t, maddr, `config_reloads_total{result="failure"}`) == "2"
	})

	// Fixing the item recovers.
	etPush(t, url, etConfig(maddr, "a", a.Addr, b.Addr))
	eventually(t, "recovery", func() bool { return backendName(t, route) == "a" })
	if v := metricValue(t, maddr, `config_reloads_total{result="success"}`); v != "2" {
		t.Fatalf("success counter after recovery = %q", v)
	}
}

func TestEtcdTwoInstancesShareAPrefix(t *testing.T) {
	srv := etcdtest.Start(t)
	etFollow(t, srv.Endpoint("shared"), "/one", "/two")
}

// TestEtcdOverTLS: the binary pushes, runs from and follows an etcd that
// requires TLS client certificates (?ca=&cert=&key= on the URL).
func TestEtcdOverTLS(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	etFollow(t, srv.Endpoint("tls"), "/x")
}

func TestEtcdPullPrintsTOMLThatParsesBack(t *testing.T) {
	srv := etcdtest.Start(t)
	url := srv.Endpoint("pull")
	body := etConfig("127.0.0.1:9", "b", "127.0.0.1:8001", "127.0.0.1:8002")
	etPush(t, url, body)
	out, pulled := etPull(t, url)
	file, err := config.Parse([]byte(body), "file.toml")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := config.Encode(file)
	got, _ := config.Encode(pulled)
	if !bytes.Equal(got, want) {
		t.Fatalf("pull differs from the pushed file\npull:\n%s\nfile:\n%s", got, want)
	}

	// Usage errors and an empty prefix are failures, with a message.
	if code, _, errOut := etPingap(t, "config", "pull", "-from", srv.Endpoint("empty")); code != 1 || !strings.Contains(errOut, "no configuration") {
		t.Fatalf("pull of an empty prefix: exit %d: %s", code, errOut)
	}
	if code, _, errOut := etPingap(t, "config", "push", "-config", "x.toml"); code != 2 || !strings.Contains(errOut, "usage") {
		t.Fatalf("push without -to: exit %d: %s", code, errOut)
	}
	// An invalid file is not pushed.
	bad := writeConfig(t, strings.Replace(body, `upstream = "b"`, `upstream = "nope"`, 1))
	if code, _, errOut := etPingap(t, "config", "push", "-config", bad, "-to", url); code != 1 || !strings.Contains(errOut, "nothing pushed") {
		t.Fatalf("push of an invalid file: exit %d: %s", code, errOut)
	}
	if _, out2, _ := etPingap(t, "config", "pull", "-from", url); out2 != out {
		t.Fatal("an invalid push changed etcd")
	}
}
