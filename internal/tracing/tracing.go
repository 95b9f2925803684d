// Package tracing exports OpenTelemetry spans of proxied requests to an
// OTLP/HTTP collector ([tracing] in the config) and continues W3C trace
// context: a client's traceparent becomes the parent of the proxy's server
// span, and the upstream receives a traceparent naming the proxy's client
// span.
//
// A nil *Tracer (tracing off, endpoint "") is valid: every method is a
// cheap no-op that allocates nothing, and the client's traceparent reaches
// the upstream untouched because the proxy copies request headers anyway.
//
// Spans never block requests: they go through a BatchSpanProcessor with a
// bounded queue that drops spans when full (collector slow or down).
//
// Engine wiring:
//
//	ctx, span := tr.StartServer(c)          // after routing, so c.Location is known
//	c.Context = ctx
//	cctx, cspan := tr.StartClient(ctx, c, out) // just before RoundTrip; injects traceparent into out.Header
//	tr.EndClient(cspan, resp.Status, err)
//	tr.EndServer(span, c)                   // after the response is written
//	accessLog.Log(c, tr.AccessTraceID(c, span))
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

// Batching limits: at most QueueSize finished spans wait for export; more
// are dropped (counted by the SDK, never blocking a request).
const (
	QueueSize      = 8192
	exportBatch    = 512
	batchTimeout   = 2 * time.Second
	exportTimeout  = 10 * time.Second
	retryMaxWait   = 30 * time.Second
	errorEvery     = 30 * time.Second
	defaultService = "pingap"
	tracerName     = "github.com/pingap-go/pingap"
)

// Tracer creates the proxy's spans. Build one per config that has an
// endpoint; Shutdown it when the config changes or the proxy stops.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// Option adjusts New.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger sets where export failures are reported (default
// slog.Default()). They are reported at most once per errorEvery, with the
// number of spans lost since the previous report, instead of through
// OpenTelemetry's global error handler, which would print every failed
// batch.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// New builds a Tracer for cfg. It returns nil, nil when cfg.Endpoint is ""
// (tracing off). service_name defaults to instance (basic.name), then to
// "pingap". Nothing is dialed here: the exporter connects on first export.
func New(cfg config.Tracing, instance string, opts ...Option) (*Tracer, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Endpoint)
	path := u.Path
	if path == "" || path == "/" {
		path = "/v1/traces"
	}
	o := options{log: slog.Default()}
	for _, fn := range opts {
		fn(&o)
	}
	xopts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(u.Host),
		otlptracehttp.WithURLPath(path),
		otlptracehttp.WithTimeout(exportTimeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
			Enabled:         true,
			InitialInterval: time.Second,
			MaxInterval:     5 * time.Second,
			MaxElapsedTime:  retryMaxWait,
		}),
	}
	if u.Scheme == "http" {
		xopts = append(xopts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), xopts...)
	if err != nil {
		return nil, fmt.Errorf("tracing.endpoint: %w", err)
	}

	service := cfg.ServiceName
	if service == "" {
		service = instance
	}
	if service == "" {
		service = defaultService
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.instance.id", instance),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithBatcher(&quietExporter{SpanExporter: exp, log: o.log},
			sdktrace.WithMaxQueueSize(QueueSize),
			sdktrace.WithMaxExportBatchSize(exportBatch),
			sdktrace.WithBatchTimeout(batchTimeout),
			sdktrace.WithExportTimeout(exportTimeout),
		),
	)
	return &Tracer{tp: tp, tracer: tp.Tracer(tracerName)}, nil
}

// quietExporter reports export failures itself, rate-limited, and hides
// them from the batch processor (which would hand each one to the global
// OpenTelemetry error handler). The spans of a failed batch are lost
// either way.
type quietExporter struct {
	sdktrace.SpanExporter
	log *slog.Logger

	mu   sync.Mutex
	last time.Time
	lost int
}

func (e *quietExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	e.lost += len(spans)
	now := time.Now()
	if now.Sub(e.last) < errorEvery {
		e.mu.Unlock()
		return nil
	}
	lost := e.lost
	e.lost, e.last = 0, now
	e.mu.Unlock()
	if e.log != nil {
		e.log.Warn("tracing: span export failed", slog.String("error", err.Error()), slog.Int("lost_spans", lost))
	}
	return nil
}

// Validate checks the [tracing] section: endpoint an http(s) URL with a
// host (or ""), sample_ratio within [0, 1].
func Validate(cfg config.Tracing) error {
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 || cfg.SampleRatio != cfg.SampleRatio {
		return fmt.Errorf("tracing.sample_ratio: %v is not within [0, 1]", cfg.SampleRatio)
	}
	if cfg.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("tracing.endpoint: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("tracing.endpoint: %q is not an http:// or https:// URL with a host", cfg.Endpoint)
	}
	return nil
}

// Enabled reports whether spans are recorded.
func (t *Tracer) Enabled() bool { return t != nil }

// Shutdown flushes queued spans (bounded by ctx) and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// ForceFlush exports the queued spans now (tests, before a reload).
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// StartServer starts the server span of request c, continuing the
// client's traceparent/tracestate when valid. The returned context carries
// the span (store it in c.Context). With a nil Tracer it returns c.Context
// (or Background) and a no-op span.
func (t *Tracer) StartServer(c *httpx.Ctx) (context.Context, trace.Span) {
	parent := c.Context
	if parent == nil {
		parent = context.Background()
	}
	if t == nil {
		return parent, trace.SpanFromContext(parent)
	}
	ctx := t.prop.Extract(parent, (*HeaderCarrier)(&c.Req.Header))
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", c.Req.Method),
		attribute.String("url.path", c.Req.Path),
		attribute.String("url.scheme", c.Scheme),
		attribute.String("server.address", stripPort(c.Req.Host)),
		attribute.String("network.protocol.version", protoVersion(c.Req.Proto)),
		attribute.String("pingap.server", c.Conn.Server),
	}
	if c.ClientIP.IsValid() {
		attrs = append(attrs, attribute.String("client.address", c.ClientIP.String()))
	}
	if ua := c.Req.Header.Get("User-Agent"); ua != "" {
		attrs = append(attrs, attribute.String("user_agent.original", ua))
	}
	return t.tracer.Start(ctx, spanName(c.Req.Method),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrs...))
}

// EndServer sets what is known once the request is done (status, location
// as http.route, upstream and addr) and ends the span. 5xx marks the span
// as an error (OTel HTTP semantic conventions: 4xx is the client's fault).
func (t *Tracer) EndServer(span trace.Span, c *httpx.Ctx) {
	if t == nil || span == nil || !span.IsRecording() {
		if span != nil {
			span.End()
		}
		return
	}
	if c.Location != "" {
		span.SetName(spanName(c.Req.Method) + " " + c.Location)
	}
	span.SetAttributes(
		attribute.Int("http.response.status_code", c.Resp.Status),
		attribute.String("http.route", c.Location),
		attribute.String("pingap.location", c.Location),
		attribute.String("pingap.upstream", c.Upstream),
		attribute.String("pingap.upstream_addr", c.UpstreamAddr),
		attribute.Int64("http.request.body.size", c.BytesIn),
		attribute.Int64("http.response.body.size", c.BytesOut),
	)
	if c.RequestID != "" {
		span.SetAttributes(attribute.String("pingap.request_id", c.RequestID))
	}
	if c.Resp.Status >= 500 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// StartClient starts the client span of the round trip to c.UpstreamAddr
// and writes its traceparent (and tracestate) into out.Header, replacing
// the client's: the upstream sees the proxy's span as its parent. Even an
// unsampled span injects a valid traceparent (flags 00), so with tracing on
// a request without one gets one. With a nil Tracer it does nothing and
// out.Header keeps the client's traceparent.
func (t *Tracer) StartClient(ctx context.Context, c *httpx.Ctx, out *httpx.OutRequest) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	host, port := c.UpstreamAddr, ""
	if h, p, err := net.SplitHostPort(c.UpstreamAddr); err == nil {
		host, port = h, p
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", out.Method),
		attribute.String("server.address", host),
		attribute.String("pingap.upstream", c.Upstream),
		attribute.String("pingap.upstream_addr", c.UpstreamAddr),
	}
	if port != "" {
		attrs = append(attrs, attribute.String("server.port", port))
	}
	ctx, span := t.tracer.Start(ctx, spanName(out.Method),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrs...))
	if out.Header != nil {
		t.prop.Inject(ctx, (*HeaderCarrier)(out.Header))
	}
	return ctx, span
}

// EndClient ends a client span with the upstream's status (0 when the
// round trip failed) and the transport error, if any.
func (t *Tracer) EndClient(span trace.Span, status int, err error) {
	if span == nil {
		return
	}
	if t != nil && span.IsRecording() {
		if status > 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		if err != nil {
			span.RecordError(err)
			var te *httpx.TransportError
			if errors.As(err, &te) {
				span.SetAttributes(attribute.String("error.type", te.Op))
			}
			span.SetStatus(codes.Error, err.Error())
		} else if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
}

// TraceID returns span's trace id in hex, or "" when it has none.
func TraceID(span trace.Span) string {
	if span == nil {
		return ""
	}
	sc := span.SpanContext()
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// AccessTraceID is the trace id for the access log: the span's when
// tracing is on, else the one in the client's traceparent (so logs and the
// upstream's traces still line up), else "". With tracing off it allocates
// nothing (a substring of the header).
func (t *Tracer) AccessTraceID(c *httpx.Ctx, span trace.Span) string {
	if t != nil {
		if id := TraceID(span); id != "" {
			return id
		}
	}
	return HeaderTraceID(&c.Req.Header)
}

// HeaderTraceID returns the trace-id of a valid W3C traceparent in h
// (version 00 layout: 2 hex version, 32 hex trace-id not all zero, 16 hex
// parent-id, 2 hex flags, dash-separated), or "".
func HeaderTraceID(h *httpx.Header) string {
	v := h.Get("traceparent")
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return ""
	}
	if !isLowerHex(v[0:2]) || v[0:2] == "ff" || !isLowerHex(v[3:35]) || !isLowerHex(v[36:52]) || !isLowerHex(v[53:55]) {
		return ""
	}
	if len(v) > 55 && (v[0:2] == "00" || v[55] != '-') {
		return ""
	}
	id := v[3:35]
	if id == "00000000000000000000000000000000" || v[36:52] == "0000000000000000" {
		return ""
	}
	return id
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if (b < '0' || b > '9') && (b < 'a' || b > 'f') {
			return false
		}
	}
	return true
}

// spanName bounds span names to the standard methods ("HTTP" otherwise),
// like the metrics' method label.
func spanName(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return method
	}
	return "HTTP"
}

func protoVersion(p string) string {
	if v, ok := strings.CutPrefix(p, "HTTP/"); ok {
		switch v {
		case "2.0":
			return "2"
		case "3.0":
			return "3"
		}
		return v
	}
	return p
}

func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// HeaderCarrier adapts an *httpx.Header to propagation.TextMapCarrier:
// (*HeaderCarrier)(&c.Req.Header). Lookups are case-insensitive.
type HeaderCarrier httpx.Header

var _ propagation.TextMapCarrier = (*HeaderCarrier)(nil)

// Get returns the first value of key.
func (hc *HeaderCarrier) Get(key string) string { return (*httpx.Header)(hc).Get(key) }

// Set replaces every field named key with one field.
func (hc *HeaderCarrier) Set(key, value string) { (*httpx.Header)(hc).Set(key, value) }

// Keys lists the field names (with repeats, as sent).
func (hc *HeaderCarrier) Keys() []string {
	f := (*httpx.Header)(hc).Fields()
	keys := make([]string, len(f))
	for i := range f {
		keys[i] = f[i].Name
	}
	return keys
}
