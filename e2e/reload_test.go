package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// reloadConfig renders a config whose location /r goes to upstream target
// and, with extra, adds a second server.
func reloadConfig(metrics, target, a, b string, extraServer bool, autoReload bool) string {
	c := abConfig(fmt.Sprintf("metrics_addr = %q\nauto_reload = %v\ngrace_period = \"5s\"", metrics, autoReload), target, a, b)
	if extraServer {
		c.Extra = "[servers.extra]\naddr = \"127.0.0.1:0\"\nlocations = [\"r\"]"
	}
	return c.String()
}

func backendName(t *testing.T, url string) string {
	t.Helper()
	resp, body := do(t, "GET", url, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return resp.Header.Get("X-Backend")
}

func metricValue(t *testing.T, metricsAddr, series string) string {
	t.Helper()
	_, body := do(t, "GET", "http://"+metricsAddr+"/metrics", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

func TestReloadBySIGHUPAndInvalidConfigKeepsServing(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	maddr := freeAddr(t)
	p, base := serve(t, reloadConfig(maddr, "a", a.Addr, b.Addr, false, false))
	url := base + "/x"
	if got := backendName(t, url); got != "a" {
		t.Fatalf("before reload: backend %q", got)
	}
	pid := p.cmd.Process.Pid

	// A routing change plus a new server, applied by SIGHUP.
	p.reload(reloadConfig(maddr, "b", a.Addr, b.Addr, true, false))
	eventually(t, "route change", func() bool { return backendName(t, url) == "b" })
	extra := p.url("extra")
	if got := backendName(t, extra+"/y"); got != "b" {
		t.Fatalf("new server: backend %q", got)
	}
	if p.cmd.Process.Pid != pid {
		t.Fatal("pid changed")
	}
	if v := metricValue(t, maddr, `config_reloads_total{result="success"}`); v != "1" {
		t.Fatalf("success counter = %q", v)
	}

	// An invalid config is refused; the old one keeps serving.
	p.reload(reloadConfig(maddr, "missing", a.Addr, b.Addr, true, false))
	eventually(t, "failure counter", func() bool {
		return metricValue(t, maddr, `config_reloads_total{result="failure"}`) == "1"
	})
	if got := backendName(t, url); got != "b" {
		t.Fatalf("after a bad reload: backend %q, want the old config's b", got)
	}
	l := p.waitLog("reload failed; the running configuration stays", nil)
	if !strings.Contains(fmt.Sprint(l["error"]), "missing") {
		t.Fatalf("reload error does not name the problem: %v", l)
	}
}

func TestAutoReloadSeesEditAndRename(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	maddr := freeAddr(t)
	path := writeConfig(t, reloadConfig(maddr, "a", a.Addr, b.Addr, false, true))
	p := start(t, path, "main")
	url := p.url("main") + "/x"
	if got := backendName(t, url); got != "a" {
		t.Fatalf("backend %q", got)
	}
	os.WriteFile(path, []byte(reloadConfig(maddr, "b", a.Addr, b.Addr, false, true)), 0o644)
	eventually(t, "edit picked up", func() bool { return backendName(t, url) == "b" })

	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte(reloadConfig(maddr, "a", a.Addr, b.Addr, false, true)), 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "atomic rename picked up", func() bool { return backendName(t, url) == "a" })
}

// loadClients runs n keep-alive clients against url until stop is closed and
// returns the number of requests and failures (any error or non-200).
func loadClients(t *testing.T, n int, url string, stop <-chan struct{}) (total, failed *atomic.Int64, wait func()) {
	total, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErrs []string
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for j := 0; j < 100000; j++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, err.Error())
					}
					errMu.Unlock()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					errMu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, resp.Status)
					}
					errMu.Unlock()
				}
			}
		}()
	}
	return total, failed, func() {
		wg.Wait()
		if len(firstErrs) > 0 {
			t.Logf("first errors: %v", firstErrs)
		}
	}
}

func TestReloadsUnderLoadLoseNothing(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	maddr := freeAddr(t)
	cfgA := reloadConfig(maddr, "a", a.Addr, b.Addr, false, false)
	cfgB := reloadConfig(maddr, "b", a.Addr, b.Addr, false, false)
	p, base := serve(t, cfgA)
	stop := make(chan struct{})
	total, failed, wait := loadClients(t, 8, base+"/load", stop)
	for i := 0; i < 20; i++ {
		cfg := cfgB
		if i%2 == 1 {
			cfg = cfgA
		}
		p.reload(cfg)
		want := fmt.Sprint(i + 1)
		eventually(t, "reload "+want, func() bool {
			return metricValue(t, maddr, `config_reloads_total{result="success"}`) == want
		})
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wait()
	if total.Load() < 100 {
		t.Fatalf("only %d requests ran", total.Load())
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during 20 reloads", failed.Load(), total.Load())
	}
}

func TestBinaryUpgradeUnderLoad(t *testing.T) {
	a := echoBackend(t, "a")
	maddr := freeAddr(t)
	// A fixed port: the new process must find the same addr in its config.
	addr := freeAddr(t)
	path := writeConfig(t, strings.Replace(reloadConfig(maddr, "a", a.Addr, a.Addr, false, false), "127.0.0.1:0", addr, 1))
	p := start(t, path, "main")
	oldPid := p.cmd.Process.Pid
	stop := make(chan struct{})
	total, failed, wait := loadClients(t, 6, "http://"+addr+"/up", stop)
	time.Sleep(300 * time.Millisecond)
	p.signal(syscall.SIGUSR2)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("old process exit code %d", code)
	}
	// The new process serves on the same socket.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wait()
	resp, body := do(t, "GET", "http://"+addr+"/after", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("after upgrade: %d %s", resp.StatusCode, body)
	}
	// Stop the new process (its pid is in its own startup log line).
	l := p.waitLog("new process serves; draining this one", nil)
	newPid := int(l["new_pid"].(float64))
	if newPid == oldPid {
		t.Fatal("same pid")
	}
	defer syscall.Kill(newPid, syscall.SIGTERM)
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the upgrade", failed.Load(), total.Load())
	}
	if total.Load() < 50 {
		t.Fatalf("only %d requests ran", total.Load())
	}
}

func TestReloadRenamesServerOnSameAddr(t *testing.T) {
	a := echoBackend(t, "a")
	maddr := freeAddr(t)
	addr := freeAddr(t)
	cfg := strings.Replace(reloadConfig(maddr, "a", a.Addr, a.Addr, false, false), "127.0.0.1:0", addr, 1)
	p := start(t, writeConfig(t, cfg), "main")
	if got := backendName(t, "http://"+addr+"/x"); got != "a" {
		t.Fatalf("backend %q", got)
	}
	p.reload(strings.Replace(cfg, "[servers.main]", "[servers.renamed]", 1))
	eventually(t, "rename applied", func() bool {
		return metricValue(t, maddr, `config_reloads_total{result="success"}`) == "1"
	})
	if got := backendName(t, "http://"+addr+"/y"); got != "a" {
		t.Fatalf("after the rename: backend %q", got)
	}
	l := p.waitLog("access", func(m map[string]any) bool { return m["path"] == "/y" })
	if v := metricValue(t, maddr, `http_requests_total{location="r",method="GET",server="renamed",status="200"}`); v != "1" {
		t.Fatalf("requests are not counted under the new server name: %q (%v)", v, l)
	}
}
