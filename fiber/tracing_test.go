package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v3"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTracingEnabled(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{"disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, false},
		{"disabled, other case", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "TRUE"}, false},
		{"disabled false", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "false"}, true},
		{"only service name", map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tracingEnabled(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Fatalf("got %t, want %t", got, tt.want)
			}
		})
	}
}

// TestNoTracerWithoutEndpoint: with no endpoint, no provider exists at all.
func TestNoTracerWithoutEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tp, err := newTracerProvider(context.Background())
	if err != nil || tp != nil {
		t.Fatalf("got %v, %v; want no provider", tp, err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if tp, _ := newTracerProvider(context.Background()); tp != nil {
		t.Fatal("provider created although OTEL_SDK_DISABLED=true")
	}
}

// TestResourceServiceName: "fiber" by default, OTEL_SERVICE_NAME wins.
func TestResourceServiceName(t *testing.T) {
	for _, tt := range []struct{ env, want string }{{"", "fiber"}, {"fiber-b", "fiber-b"}} {
		t.Setenv("OTEL_SERVICE_NAME", tt.env)
		res, err := newResource(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := res.Set().Value("service.name")
		if got.AsString() != tt.want {
			t.Errorf("OTEL_SERVICE_NAME=%q: service.name %q, want %q", tt.env, got.AsString(), tt.want)
		}
	}
}

func tracedApp(t *testing.T, opts ...sdktrace.TracerProviderOption) (*fiber.App, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSyncer(exp)}, opts...)...)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	app, _ := newTestApp(t, "multiclass", Config{TracerProvider: tp})
	return app, exp
}

func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTracingSpans(t *testing.T) {
	app, exp := tracedApp(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentID = "00f067aa0ba902b7"
	batch := `{"data": [` + row(20, "1") + `,` + row(20, "null") + `,` + row(20, "2") + `]}`
	req := httptest.NewRequest("POST", "/inference/batch", strings.NewReader(batch))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := app.Test(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2: %v", len(spans), spans)
	}
	var server, inner tracetest.SpanStub
	for _, s := range spans {
		switch s.Name {
		case "model-inference":
			inner = s
		case "POST /inference/batch":
			server = s
		default:
			t.Fatalf("unexpected span %q", s.Name)
		}
	}
	if server.SpanKind != trace.SpanKindServer {
		t.Errorf("server span kind %v", server.SpanKind)
	}
	if server.SpanContext.TraceID().String() != traceID || server.Parent.SpanID().String() != parentID || !server.Parent.IsRemote() {
		t.Errorf("traceparent not honoured: trace %s parent %s", server.SpanContext.TraceID(), server.Parent.SpanID())
	}
	if inner.Parent.SpanID() != server.SpanContext.SpanID() || inner.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Errorf("model-inference is not a child of the server span")
	}
	a := attrs(inner.Attributes)
	if a["inference.rows"].Type() != attribute.INT64 || a["inference.rows"].AsInt64() != 3 || a["inference.features"].AsInt64() != 20 {
		t.Errorf("model-inference attributes %v", inner.Attributes)
	}
	if attrs(server.Attributes)["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("server attributes %v", server.Attributes)
	}
}

func TestTracingScope(t *testing.T) {
	app, exp := tracedApp(t)
	for _, tt := range []struct {
		method, path, body string
		spans              []string
		status             int64
	}{
		{"GET", "/health", "", nil, 0},
		{"GET", "/nope", "", nil, 0},
		{"GET", "/inference", "", nil, 0},
		{"POST", "/inference", `{"data": [1]}`, []string{"POST /inference"}, 422},
		{"POST", "/inference", `{"data": ` + row(20, "0") + `}`, []string{"model-inference", "POST /inference"}, 200},
	} {
		exp.Reset()
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		req.Header.Set("Content-Type", "application/json")
		if _, err := app.Test(req); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range exp.GetSpans() {
			names = append(names, s.Name)
			if s.SpanKind == trace.SpanKindServer {
				if got := attrs(s.Attributes)["http.response.status_code"].AsInt64(); got != tt.status {
					t.Errorf("%s %s: status attribute %d, want %d", tt.method, tt.path, got, tt.status)
				}
				if s.Parent.IsValid() {
					t.Errorf("%s %s: root span has a parent without traceparent", tt.method, tt.path)
				}
			}
		}
		if strings.Join(names, ",") != strings.Join(tt.spans, ",") {
			t.Errorf("%s %s: spans %v, want %v", tt.method, tt.path, names, tt.spans)
		}
	}
}

// TestSamplerFromEnv: the SDK itself reads OTEL_TRACES_SAMPLER (sdk/trace/sampler_env.go), so a
// provider built without WithSampler follows it; a sampled-out request still gets its response.
func TestSamplerFromEnv(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	app, exp := tracedApp(t)
	req := httptest.NewRequest("POST", "/inference", strings.NewReader(`{"data": `+row(20, "0")+`}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := app.Test(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("always_off exported %d spans", n)
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0")
	app, exp = tracedApp(t)
	resp, _ = app.Test(httptest.NewRequest("POST", "/inference", strings.NewReader(`{}`)))
	if resp.StatusCode != 400 || len(exp.GetSpans()) != 0 {
		t.Fatalf("traceidratio 0: status %d, %d spans", resp.StatusCode, len(exp.GetSpans()))
	}
}
