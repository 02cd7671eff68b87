package main

import (
	"strings"
	"testing"
	"time"
)

func newMetricsApp(t testing.TB) (*Metrics, func(method, path, body string) response) {
	t.Helper()
	m, err := NewMetrics("fiber", "model", modelsDir+"/regression/model.txt")
	if err != nil {
		t.Fatal(err)
	}
	app, _ := newTestApp(t, "regression", Config{Metrics: m})
	return m, func(method, path, body string) response {
		return do(t, app, method, path, "application/json", []byte(body))
	}
}

// The same paths and labels as test_route_label in tests/unit/test_metrics.py (which checks
// that every one of its cases appears here).
func TestRouteLabel(t *testing.T) {
	for _, tt := range [][2]string{
		{"/inference", "/inference"},
		{"/inference/batch", "/inference/batch"},
		{"/health", "/health"},
		{"/v2", "/v2"},
		{"/v2/health/ready", "/v2/health/ready"},
		{"/v2/models/model", "/v2/models/{model_name}"},
		{"/v2/models/model/ready", "/v2/models/{model_name}/ready"},
		{"/v2/models/model/infer", "/v2/models/{model_name}/infer"},
		{"/v2/models/model/versions/1/infer", "/v2/models/{model_name}/versions/{model_version}/infer"},
		{"/v2/models/other/infer", ""},
		{"/v2/models/model/versions/2/infer", ""},
		{"/v2/models/modelx/infer", ""},
		{"/inference/", ""},
		{"/anything", ""},
	} {
		if got := routeLabel(tt[0], "model"); got != tt[1] {
			t.Errorf("routeLabel(%q) = %q, want %q", tt[0], got, tt[1])
		}
	}
	if methodLabel("BREW") != "_OTHER" || methodLabel("POST") != "POST" {
		t.Error("methodLabel")
	}
}

func TestMetricsEndpoint(t *testing.T) {
	_, call := newMetricsApp(t)
	good := `{"data": ` + row(20, "0.5") + `}`
	for range 3 {
		if r := call("POST", "/inference", good); r.status != 200 {
			t.Fatalf("inference: %d %s", r.status, r.body)
		}
	}
	call("POST", "/inference", `{"data": [1]}`)
	call("GET", "/nope", "")
	r := call("GET", metricsPath, "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %q", r.status, r.header.Get("Content-Type"))
	}
	text := string(r.body)
	for _, want := range []string{
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="200",http_route="/inference"} 3`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="422",http_route="/inference"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route=""} 1`,
		`http_server_request_duration_seconds_bucket{http_request_method="POST",http_response_status_code="200",http_route="/inference",le="1e-05"}`,
		`model_inference_duration_seconds_count{http_route="/inference"} 3`,
		`http_server_active_requests 0`,
		`fiber_endpoints_build_info{model_name="model",model_sha256="`,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(text, `http_route="/metrics"`) {
		t.Error("the scrape is counted")
	}
}

// BenchmarkMetricsMiddleware: what a request pays for the metrics (label lookup, observe, the
// gauge), measured outside Fiber.
func BenchmarkMetricsMiddleware(b *testing.B) {
	m, err := NewMetrics("fiber", "model", modelsDir+"/regression/model.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		started := time.Now()
		m.active.Inc()
		m.active.Dec()
		m.requests.WithLabelValues(methodLabel("POST"), routeLabel("/inference", "model"), "200").
			Observe(time.Since(started).Seconds())
		m.observeInference("/inference", 20e-6)
	}
}
