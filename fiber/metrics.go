package main

// Prometheus metrics, the same names, labels and buckets as the Python stacks
// (src/fiber_endpoints/metrics.py; docs/contract.md, "Metrics"): the OpenTelemetry HTTP
// semantic conventions as exported to Prometheus. GET /metrics is neither traced nor counted.
//
// client_golang is used as is on the request path: one WithLabelValues + Observe is ~100-200 ns
// and the in-flight gauge an atomic add (BenchmarkMetricsMiddleware in metrics_test.go), far
// under the 3 µs goal, so nothing here is hand-written.

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// metricsEnv set to "0" turns metrics off (the route then answers 404), as in Python.
const (
	metricsEnv  = "FIBER_ENDPOINTS_METRICS"
	metricsPath = "/metrics"
)

// durationBuckets is the one definition of the duration buckets (seconds) in Go; it must equal
// BUCKETS in src/fiber_endpoints/metrics.py (tests/unit/test_metrics.py compares them). Tens of
// µs (one row on a fast stack) to seconds (a 10,000-row batch on the control).
var durationBuckets = []float64{
	0.00001,
	0.000025,
	0.00005,
	0.000075,
	0.0001,
	0.00025,
	0.0005,
	0.00075,
	0.001,
	0.0025,
	0.005,
	0.0075,
	0.01,
	0.025,
	0.05,
	0.075,
	0.1,
	0.25,
	0.5,
	0.75,
	1,
	2.5,
	5,
	7.5,
	10,
}

// Metrics is one stack's registry and the metrics the handlers record.
type Metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.HistogramVec
	inference *prometheus.HistogramVec
	active    prometheus.Gauge
	modelName string
}

// NewMetrics registers every metric, with build_info describing this stack and model.
func NewMetrics(stack, modelName, modelPath string) (*Metrics, error) {
	digest, err := fileSHA256(modelPath)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_server_request_duration_seconds",
			Help:    "Duration of HTTP server requests.",
			Buckets: durationBuckets,
		}, []string{"http_request_method", "http_route", "http_response_status_code"}),
		inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_inference_duration_seconds",
			Help:    "Duration of the model's predict call alone.",
			Buckets: durationBuckets,
		}, []string{"http_route"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_server_active_requests",
			Help: "Number of active HTTP server requests.",
		}),
		modelName: modelName,
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fiber_endpoints_build_info",
		Help: "Build and model of this stack.",
	}, []string{"stack", "version", "predictor", "model_name", "model_sha256"})
	info.WithLabelValues(stack, projectVersion, "leaves", modelName, digest).Set(1)
	reg.MustRegister(m.requests, m.inference, m.active, info,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, nil
}

// metricsEnabled reads metricsEnv: on unless "0".
func metricsEnabled() bool { return os.Getenv(metricsEnv) != "0" }

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// routeLabel is http_route: the matched route's template, "" for a path that matched none (the
// same rule as route_label in metrics.py). It returns constants only: Fiber's c.Path() points
// into a buffer the next request reuses, and a label value is kept for good.
func routeLabel(path, modelName string) string {
	switch path {
	case inferencePath:
		return inferencePath
	case batchPath:
		return batchPath
	case healthPath:
		return healthPath
	case "/v2":
		return "/v2"
	case "/v2/health/live":
		return "/v2/health/live"
	case "/v2/health/ready":
		return "/v2/health/ready"
	}
	rest, ok := strings.CutPrefix(path, "/v2/models/"+modelName)
	if !ok {
		return ""
	}
	template := "/v2/models/{model_name}"
	if tail, ok := strings.CutPrefix(rest, "/versions/"+v2ModelVersion); ok {
		rest, template = tail, template+"/versions/{model_version}"
	}
	switch rest {
	case "", "/ready", "/infer":
		return template + rest // a new string
	}
	return ""
}

// methodLabel is http_request_method: a known method, else "_OTHER" (the conventions' rule,
// which also bounds the label's values); a constant, as routeLabel's.
func methodLabel(method string) string {
	for _, known := range knownMethods {
		if method == known {
			return known
		}
	}
	return "_OTHER"
}

var knownMethods = []string{fiber.MethodGet, fiber.MethodPost, fiber.MethodHead, fiber.MethodPut,
	fiber.MethodDelete, fiber.MethodConnect, fiber.MethodOptions, fiber.MethodTrace, fiber.MethodPatch}

// middleware times every request but the scrape; the error handler runs inside it, so the
// status is the one the client gets.
func (m *Metrics) middleware(errorHandler fiber.ErrorHandler) fiber.Handler {
	return func(c fiber.Ctx) error {
		if c.Path() == metricsPath {
			return c.Next()
		}
		started := time.Now()
		m.active.Inc()
		err := c.Next()
		if err != nil {
			if herr := errorHandler(c, err); herr != nil {
				m.active.Dec()
				return herr
			}
		}
		m.active.Dec()
		route := routeLabel(c.Path(), m.modelName)
		m.requests.WithLabelValues(methodLabel(c.Method()), route, strconv.Itoa(c.Response().StatusCode())).
			Observe(time.Since(started).Seconds())
		return nil
	}
}

// observeInference records the predictor call of a request on path.
func (m *Metrics) observeInference(path string, seconds float64) {
	m.inference.WithLabelValues(routeLabel(path, m.modelName)).Observe(seconds)
}

// handler answers GET /metrics in Prometheus' text format.
func (m *Metrics) handler(c fiber.Ctx) error {
	families, err := m.registry.Gather()
	if err != nil {
		return err
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	c.Set(fiber.HeaderContentType, string(format))
	enc := expfmt.NewEncoder(c.Response().BodyWriter(), format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
