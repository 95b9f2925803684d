package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/testutil/race"
)

// collector is a fake OTLP/HTTP collector on 127.0.0.1.
type collector struct {
	srv   *http.Server
	ln    net.Listener
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []map[string]string // resource attributes per span
	paths []string
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{ln: ln}
	c.srv = &http.Server{Handler: http.HandlerFunc(c.handle), ReadHeaderTimeout: 5 * time.Second}
	go c.srv.Serve(ln)
	t.Cleanup(func() { c.srv.Close() })
	return c
}

func (c *collector) url() string { return "http://" + c.ln.Addr().String() }

func (c *collector) handle(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.paths = append(c.paths, r.URL.Path)
	c.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		ra := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			ra[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, s)
				c.res = append(c.res, ra)
			}
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (c *collector) got() ([]*tracepb.Span, []map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...), append([]map[string]string(nil), c.res...)
}

func attrs(s *tracepb.Span) map[string]any {
	m := map[string]any{}
	for _, kv := range s.GetAttributes() {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = v.IntValue
		}
	}
	return m
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

func newCtx(traceparent string) *httpx.Ctx {
	c := &httpx.Ctx{}
	c.Req.Method = "GET"
	c.Req.Path = "/api/users"
	c.Req.Host = "example.com:8080"
	c.Req.Proto = "HTTP/1.1"
	c.Scheme = "http"
	c.Conn.Server = "web"
	c.ClientIP = netip.MustParseAddr("203.0.113.7")
	c.Req.Header.Add("User-Agent", "test/1")
	if traceparent != "" {
		c.Req.Header.Add("Traceparent", traceparent)
		c.Req.Header.Add("tracestate", "vendor=abc")
	}
	return c
}

// proxyRequest runs one request through the tracer the way the engine
// does and returns the outbound header.
func proxyRequest(tr *Tracer, c *httpx.Ctx, status int, rtErr error) *httpx.Header {
	ctx, span := tr.StartServer(c)
	c.Context = ctx
	c.Location = "api"
	c.Upstream = "backend"
	c.UpstreamAddr = "127.0.0.1:9999"
	out := &httpx.OutRequest{Method: c.Req.Method, URI: c.Req.Path, Header: new(httpx.Header)}
	out.Header.CopyFrom(&c.Req.Header)
	_, cspan := tr.StartClient(ctx, c, out)
	tr.EndClient(cspan, status, rtErr)
	c.Resp.Status = status
	if rtErr != nil {
		c.Resp.Status = 502
	}
	tr.EndServer(span, c)
	return out.Header
}

const clientTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestSpansExported(t *testing.T) {
	col := newCollector(t)
	tr, err := New(config.Tracing{Endpoint: col.url(), SampleRatio: 1}, "edge-1")
	if err != nil || tr == nil {
		t.Fatalf("New = %v, %v", tr, err)
	}
	c := newCtx(clientTP)
	out := proxyRequest(tr, c, 200, nil)
	c2 := newCtx("")
	c2.Req.Method = "PROPFIND"
	out2 := proxyRequest(tr, c2, 503, nil)
	c3 := newCtx("")
	proxyRequest(tr, c3, 0, &httpx.TransportError{Op: "dial", Err: errors.New("refused")})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	spans, res := col.got()
	if len(spans) != 6 {
		t.Fatalf("collector got %d spans, want 6", len(spans))
	}
	if res[0]["service.name"] != "edge-1" {
		t.Fatalf("resource %v", res[0])
	}

	// Request 1: continues the client's trace.
	var server, client *tracepb.Span
	for _, s := range spans {
		if hexID(s.TraceId) != "4bf92f3577b34da6a3ce929d0e0e4736" {
			continue
		}
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		}
	}
	if server == nil || client == nil {
		t.Fatalf("spans of the client's trace missing: %v", spans)
	}
	if hexID(server.ParentSpanId) != "00f067aa0ba902b7" {
		t.Errorf("server span parent = %s, want the client's 00f067aa0ba902b7", hexID(server.ParentSpanId))
	}
	if !bytes.Equal(client.ParentSpanId, server.SpanId) {
		t.Errorf("client span parent = %x, want server span %x", client.ParentSpanId, server.SpanId)
	}
	if server.Name != "GET api" {
		t.Errorf("server span name %q", server.Name)
	}
	sa := attrs(server)
	for k, v := range map[string]any{
		"http.request.method": "GET", "http.route": "api", "pingap.location": "api",
		"http.response.status_code": int64(200), "pingap.upstream_addr": "127.0.0.1:9999",
		"pingap.upstream": "backend", "server.address": "example.com", "url.path": "/api/users",
		"client.address": "203.0.113.7", "pingap.server": "web", "user_agent.original": "test/1",
	} {
		if sa[k] != v {
			t.Errorf("server attr %s = %#v, want %#v", k, sa[k], v)
		}
	}
	ca := attrs(client)
	for k, v := range map[string]any{
		"server.address": "127.0.0.1", "server.port": "9999", "http.response.status_code": int64(200),
	} {
		if ca[k] != v {
			t.Errorf("client attr %s = %#v, want %#v", k, ca[k], v)
		}
	}
	// The upstream got a traceparent naming the client span, same trace,
	// and the client's tracestate.
	wantTP := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + hexID(client.SpanId) + "-01"
	if got := out.Get("traceparent"); got != wantTP {
		t.Errorf("outbound traceparent %q, want %q", got, wantTP)
	}
	if out.Count("traceparent") != 1 {
		t.Errorf("outbound has %d traceparent fields", out.Count("traceparent"))
	}
	if got := out.Get("tracestate"); got != "vendor=abc" {
		t.Errorf("outbound tracestate %q", got)
	}

	// Request 2: no traceparent from the client: a new trace, injected.
	tp2 := out2.Get("traceparent")
	if len(tp2) != 55 || strings.Contains(tp2, "4bf92f3577b34da6a3ce929d0e0e4736") || !strings.HasSuffix(tp2, "-01") {
		t.Errorf("new traceparent %q", tp2)
	}
	var s2 *tracepb.Span
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER && hexID(s.TraceId) == tp2[3:35] {
			s2 = s
		}
	}
	if s2 == nil {
		t.Fatal("server span of request 2 missing")
	}
	if len(s2.ParentSpanId) != 0 {
		t.Errorf("request 2 server span has a parent")
	}
	if s2.Name != "HTTP api" {
		t.Errorf("unknown method span name %q", s2.Name)
	}
	if s2.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("503 span status %v", s2.Status)
	}
	// Request 3: transport error on the client span.
	var failed bool
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_CLIENT && s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR && attrs(s)["error.type"] == "dial" {
			failed = true
		}
	}
	if !failed {
		t.Error("failed round trip not marked on its client span")
	}
	_, sp := tr.StartServer(c)
	if got := tr.AccessTraceID(c, sp); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("AccessTraceID = %q", got)
	}
	sp.End()
}

func TestSampleRatioZero(t *testing.T) {
	col := newCollector(t)
	tr, err := New(config.Tracing{Endpoint: col.url() + "/", SampleRatio: 0}, "")
	if err != nil {
		t.Fatal(err)
	}
	// No parent: not sampled, but a traceparent (flags 00) still goes up.
	out := proxyRequest(tr, newCtx(""), 200, nil)
	if tp := out.Get("traceparent"); len(tp) != 55 || !strings.HasSuffix(tp, "-00") {
		t.Errorf("unsampled traceparent %q", tp)
	}
	// A sampled parent is followed (parent-based sampler).
	proxyRequest(tr, newCtx(clientTP), 200, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans, res := col.got()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want the 2 of the sampled parent", len(spans))
	}
	for _, s := range spans {
		if hexID(s.TraceId) != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("unsampled trace exported: %x", s.TraceId)
		}
	}
	if res[0]["service.name"] != "pingap" {
		t.Errorf("default service name %q", res[0]["service.name"])
	}
}

func TestServiceNameAndPath(t *testing.T) {
	col := newCollector(t)
	tr, err := New(config.Tracing{Endpoint: col.url() + "/v1/traces", ServiceName: "svc", SampleRatio: 1}, "inst")
	if err != nil {
		t.Fatal(err)
	}
	proxyRequest(tr, newCtx(""), 200, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	tr.Shutdown(ctx)
	spans, res := col.got()
	if len(spans) != 2 || res[0]["service.name"] != "svc" || res[0]["service.instance.id"] != "inst" {
		t.Fatalf("spans %d, resource %v", len(spans), res)
	}
}

func TestDisabledNoAlloc(t *testing.T) {
	tr, err := New(config.Tracing{SampleRatio: 1}, "x")
	if err != nil || tr != nil {
		t.Fatalf("New without endpoint = %v, %v; want nil, nil", tr, err)
	}
	if tr.Enabled() {
		t.Fatal("nil tracer enabled")
	}
	c := newCtx(clientTP)
	out := proxyRequest(tr, c, 200, nil)
	if got := out.Get("traceparent"); got != clientTP {
		t.Fatalf("traceparent changed to %q with tracing off", got)
	}
	if got := tr.AccessTraceID(c, nil); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("AccessTraceID off = %q", got)
	}
	if tr.Shutdown(context.Background()) != nil || tr.ForceFlush(context.Background()) != nil {
		t.Fatal("nil Shutdown/ForceFlush failed")
	}
	// The no-op path allocates nothing.
	c.Context = context.Background()
	n := testing.AllocsPerRun(100, func() {
		ctx, span := tr.StartServer(c)
		out := &httpx.OutRequest{Header: &c.Req.Header}
		_, cs := tr.StartClient(ctx, c, out)
		tr.EndClient(cs, 200, nil)
		tr.EndServer(span, c)
		_ = tr.AccessTraceID(c, span)
	})
	if n != 0 && !race.Enabled {
		t.Fatalf("disabled tracing allocates %v per request", n)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		cfg     config.Tracing
		wantErr string
	}{
		{config.Tracing{}, ""},
		{config.Tracing{Endpoint: "http://127.0.0.1:4318", SampleRatio: 1}, ""},
		{config.Tracing{Endpoint: "https://collector:4318/custom", SampleRatio: 0.5}, ""},
		{config.Tracing{Endpoint: "127.0.0.1:4318"}, "tracing.endpoint"},
		{config.Tracing{Endpoint: "ftp://x"}, "tracing.endpoint"},
		{config.Tracing{Endpoint: "http://"}, "tracing.endpoint"},
		{config.Tracing{Endpoint: "http://[::1"}, "tracing.endpoint"},
		{config.Tracing{SampleRatio: 1.5}, "tracing.sample_ratio"},
		{config.Tracing{SampleRatio: -0.1}, "tracing.sample_ratio"},
	}
	for _, c := range cases {
		err := Validate(c.cfg)
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.wantErr)
		}
		if c.cfg.Endpoint != "" && c.wantErr != "" {
			if tr, err := New(c.cfg, ""); err == nil || tr != nil {
				t.Errorf("New(%+v) accepted a bad config", c.cfg)
			}
		}
	}
}

// TestCollectorDownDoesNotBlock: with nothing listening, 10k requests'
// spans must neither block nor grow without bound; the bound below is a
// deadlock guard, not a speed assertion.
func TestCollectorDownDoesNotBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs := &syncBuffer{}
	tr, err := New(config.Tracing{Endpoint: "http://" + addr, SampleRatio: 1}, "down",
		WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := newCtx("")
		for i := 0; i < 10000; i++ {
			_, span := tr.StartServer(c)
			tr.EndServer(span, c)
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("span creation blocked with the collector down")
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	shut := make(chan error, 1)
	go func() { shut <- tr.Shutdown(sctx) }()
	select {
	case <-shut: // an error (deadline, connection refused) is expected
	case <-ctx.Done():
		t.Fatal("Shutdown ignored its context")
	}
	out := logs.String()
	if !strings.Contains(out, "span export failed") {
		t.Fatalf("export failure not reported through the logger: %q", out)
	}
	if n := strings.Count(out, "\n"); n > 2 {
		t.Fatalf("export failures not rate-limited: %d lines", n)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestHeaderTraceID(t *testing.T) {
	cases := []struct{ in, want string }{
		{clientTP, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", ""},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736", ""},
		{"", ""},
		{"garbage-garbage-garbage-garbage-garbage-garbage-garbage", ""},
	}
	for _, c := range cases {
		var h httpx.Header
		if c.in != "" {
			h.Add("traceparent", c.in)
		}
		if got := HeaderTraceID(&h); got != c.want {
			t.Errorf("HeaderTraceID(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHeaderCarrier(t *testing.T) {
	var h httpx.Header
	h.Add("TraceParent", "a")
	h.Add("X", "1")
	hc := (*HeaderCarrier)(&h)
	if hc.Get("traceparent") != "a" {
		t.Fatal("case-insensitive Get")
	}
	hc.Set("traceparent", "b")
	if h.Count("traceparent") != 1 || h.Get("traceparent") != "b" {
		t.Fatal("Set did not replace")
	}
	if k := hc.Keys(); len(k) != 2 || k[1] != "X" {
		t.Fatalf("Keys = %v", k)
	}
}
