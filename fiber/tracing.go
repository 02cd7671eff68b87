package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/gofiber/fiber/v3"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const (
	tracerName         = "fiber-endpoints"
	defaultServiceName = "fiber"
)

// tracingEnabled applies the contract's rule: tracing is on only when an OTLP endpoint is set
// and OTEL_SDK_DISABLED is not "true"; otherwise no tracer provider is created at all.
func tracingEnabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// newTracerProvider builds the SDK provider from the standard OTEL_* variables, or returns nil
// when tracing is off. The OTLP/HTTP exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT,
// _HEADERS, _TIMEOUT, ... itself; the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// itself (sdk/trace/sampler_env.go: always_on, always_off, traceidratio, parentbased_*; default
// parentbased_always_on) since no sampler is passed here; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override the default service name "fiber". Spans go through a
// BatchSpanProcessor; the caller flushes it with Shutdown on a graceful stop.
func newTracerProvider(ctx context.Context) (*sdktrace.TracerProvider, error) {
	if !tracingEnabled(os.Getenv) {
		return nil, nil
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := newResource(ctx)
	if err != nil {
		return nil, err
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)), nil
}

// newResource: service.name "fiber" unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say
// otherwise (later detectors win in resource.New).
func newResource(ctx context.Context) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", defaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("OTel resource: %w", err)
	}
	return res, nil
}

// propagator honours W3C traceparent/tracestate.
var propagator = propagation.TraceContext{}

// serverSpans is the per-route middleware (only the /inference* routes get it, so /health and
// unknown paths are never traced): one SERVER span per request, child of an incoming
// traceparent. Errors are turned into responses here, through the app's one error handler,
// so the span records the final status code.
func serverSpans(tracer trace.Tracer, errorHandler fiber.ErrorHandler) fiber.Handler {
	return func(c fiber.Ctx) error {
		ctx := propagator.Extract(context.Background(), requestHeaderCarrier{&c.Request().Header})
		route := c.Path()
		method := c.Method()
		ctx, span := tracer.Start(ctx, method+" "+route,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", method),
				attribute.String("http.route", route),
				attribute.String("url.path", route),
				attribute.String("url.scheme", "http"),
			))
		defer span.End()
		c.SetContext(ctx)
		if err := c.Next(); err != nil {
			if herr := errorHandler(c, err); herr != nil {
				span.SetStatus(codes.Error, herr.Error())
				return herr
			}
		}
		status := c.Response().StatusCode()
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
		return nil
	}
}

// requestHeaderCarrier reads propagation headers straight from fasthttp's request header.
type requestHeaderCarrier struct{ h *fasthttp.RequestHeader }

func (r requestHeaderCarrier) Get(key string) string { return string(r.h.Peek(key)) }

func (r requestHeaderCarrier) Set(key, value string) { r.h.Set(key, value) }

func (r requestHeaderCarrier) Keys() []string {
	keys := make([]string, 0, 8)
	for k := range r.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}
