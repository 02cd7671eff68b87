package main

import (
	"runtime"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Config holds everything the Go stack can be told. Fields left at their zero value take the
// value documented beside them (see configDefault), in the style of Fiber's middleware configs.
type Config struct {
	// ModelPath is the LightGBM text model to serve (flag -model or env FIBER_ENDPOINTS_MODEL).
	// Required: there is no default.
	ModelPath string

	// Host to listen on. Default: "127.0.0.1".
	Host string

	// Port to listen on. Default: 8001.
	Port int

	// StackName is reported by GET /health and GET /v2. Default: "fiber".
	StackName string

	// ModelName is the model's name in the V2 routes, /v2/models/{name} (flag -model-name or
	// env FIBER_ENDPOINTS_MODEL_NAME; letters, digits, '_', '.', '-'). Default: "model".
	ModelName string

	// BodyLimit is the largest request body in bytes (contract: 1 MiB). Default: 1048576.
	BodyLimit int

	// ReadLimit is the largest body the server reads in full (Fiber's BodyLimit). A body over
	// BodyLimit but within ReadLimit is read to its end and answered 413 by the handler, so the
	// client sees the response and the connection stays usable; over ReadLimit fasthttp answers
	// 413 (through the same error handler) and closes the connection without reading the rest,
	// which a client still sending may see as a reset. Default: 4 MiB (at least BodyLimit).
	ReadLimit int

	// MaxBatchRows is the most rows one /inference/batch request may hold. Default: 10000.
	MaxBatchRows int

	// Threads is the number of goroutines leaves uses for one batch. Default:
	// runtime.GOMAXPROCS(0), which main sets to the CPUs this process can really use: the
	// affinity mask within the cgroup CPU quota rounded up (cpus.go, the rule of cpus.py;
	// Go's own value never goes below 2), unless GOMAXPROCS is set in the environment.
	Threads int

	// ShutdownTimeout bounds the graceful stop on SIGTERM/SIGINT. Default: 10s.
	ShutdownTimeout time.Duration

	// ReadTimeout bounds how long one request, head and body, may take to arrive; past it
	// fasthttp closes the connection (docs/contract.md, "Limits"; the Python stacks' value is
	// limits.READ_TIMEOUT_S). Default: 10s.
	ReadTimeout time.Duration

	// IdleTimeout closes a keep-alive connection that sends nothing for this long. Default: 5s.
	IdleTimeout time.Duration

	// MaxHeaderBytes bounds the request line and headers (fasthttp's ReadBufferSize); past it
	// the answer is 431 and the connection is closed. Default: 16384.
	MaxHeaderBytes int

	// MaxConnections bounds the open connections (fasthttp's Concurrency); a new one past it
	// gets 503 and is closed. One HTTP/1.1 connection has at most one request in work, so this
	// also bounds the queue (docs/contract.md, "Overload"). Default: 4096.
	MaxConnections int

	// TracerProvider traces /inference* requests when set. Default: nil, no tracing at all
	// (main sets it only when an OTLP endpoint is configured, see tracing.go).
	TracerProvider trace.TracerProvider

	// Metrics serves GET /metrics and records every request when set (metrics.go). Default:
	// nil, no metrics (main sets it unless FIBER_ENDPOINTS_METRICS=0).
	Metrics *Metrics
}

// Contract limits (docs/contract.md).
const (
	contractBodyLimit    = 1 << 20
	contractMaxBatchRows = 10_000
)

// ConfigDefault is the configuration used for every field left unset.
var ConfigDefault = Config{
	Host:            "127.0.0.1",
	Port:            8001,
	StackName:       "fiber",
	ModelName:       v2DefaultModelName,
	BodyLimit:       contractBodyLimit,
	ReadLimit:       4 << 20,
	MaxBatchRows:    contractMaxBatchRows,
	ShutdownTimeout: 10 * time.Second,
	ReadTimeout:     10 * time.Second,
	IdleTimeout:     5 * time.Second,
	MaxHeaderBytes:  16 << 10,
	MaxConnections:  4096,
}

// configDefault fills the unset fields of cfg from ConfigDefault.
func configDefault(config ...Config) Config {
	if len(config) < 1 {
		cfg := ConfigDefault
		cfg.Threads = runtime.GOMAXPROCS(0)
		return cfg
	}
	cfg := config[0]
	if cfg.Host == "" {
		cfg.Host = ConfigDefault.Host
	}
	if cfg.Port == 0 {
		cfg.Port = ConfigDefault.Port
	}
	if cfg.StackName == "" {
		cfg.StackName = ConfigDefault.StackName
	}
	if cfg.ModelName == "" {
		cfg.ModelName = ConfigDefault.ModelName
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = ConfigDefault.BodyLimit
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = ConfigDefault.ReadLimit
	}
	if cfg.ReadLimit < cfg.BodyLimit {
		cfg.ReadLimit = cfg.BodyLimit
	}
	if cfg.MaxBatchRows <= 0 {
		cfg.MaxBatchRows = ConfigDefault.MaxBatchRows
	}
	if cfg.Threads <= 0 {
		cfg.Threads = runtime.GOMAXPROCS(0)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = ConfigDefault.ShutdownTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = ConfigDefault.ReadTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = ConfigDefault.IdleTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = ConfigDefault.MaxHeaderBytes
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = ConfigDefault.MaxConnections
	}
	return cfg
}
