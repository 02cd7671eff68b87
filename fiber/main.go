// Command fiber-endpoint serves one LightGBM model over the project's HTTP contract
// (docs/contract.md) with Fiber v3 and leaves. main only reads flags and wires the pieces:
// the predictor (predictor.go), the app (handler.go) and tracing (tracing.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/gofiber/fiber/v3"
)

const modelEnv = "FIBER_ENDPOINTS_MODEL"

// exitUnsupportedModel tells whoever started us that this stack cannot compute the model exactly
// (not that it failed): the bench reports the stack as not eligible instead of timing it.
// The same code as EXIT_UNSUPPORTED_MODEL in src/fiber_endpoints/stacks/__init__.py.
const exitUnsupportedModel = 65 // EX_DATAERR (sysexits.h); uvicorn itself exits 3 when it cannot bind

func main() {
	// Before anything reads GOMAXPROCS (configDefault sizes Threads from it): Go's own value
	// never goes below 2 under a CPU quota, ours is the quota rounded up (cpus.go).
	if n, set := setMaxProcsFromQuota(); set {
		log.Printf("fiber-endpoint: GOMAXPROCS=%d (CPU affinity and cgroup quota; set GOMAXPROCS to override)", n)
	}
	if err := run(os.Args[1:]); err != nil {
		log.Printf("fiber-endpoint: %v", err)
		if errors.Is(err, ErrUnsupportedModel) {
			os.Exit(exitUnsupportedModel)
		}
		os.Exit(1)
	}
}

func parseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("fiber-endpoint", flag.ContinueOnError)
	cfg := Config{}
	fs.StringVar(&cfg.ModelPath, "model", os.Getenv(modelEnv), "LightGBM text model (required; env "+modelEnv+")")
	fs.StringVar(&cfg.Host, "host", ConfigDefault.Host, "address to listen on")
	fs.IntVar(&cfg.Port, "port", ConfigDefault.Port, "port to listen on")
	fs.StringVar(&cfg.StackName, "stack-name", ConfigDefault.StackName, "stack name reported by /health")
	fs.StringVar(&cfg.ModelName, "model-name", envOr(v2ModelNameEnv, ConfigDefault.ModelName),
		"the model's name in the V2 routes, /v2/models/NAME (env "+v2ModelNameEnv+")")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if cfg.ModelPath == "" {
		return cfg, errors.New("-model (or " + modelEnv + ") is required")
	}
	if !validModelName(cfg.ModelName) {
		return cfg, fmt.Errorf("-model-name %q: letters, digits, '_', '.' and '-', starting with a letter or digit", cfg.ModelName)
	}
	return configDefault(cfg), nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func run(args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	pred, err := LoadPredictor(cfg.ModelPath, cfg.Threads)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	tp, err := newTracerProvider(ctx)
	if err != nil {
		return err
	}
	if tp != nil {
		cfg.TracerProvider = tp
	}
	if metricsEnabled() {
		if cfg.Metrics, err = NewMetrics(cfg.StackName, cfg.ModelName, cfg.ModelPath); err != nil {
			return err
		}
	}
	app := NewApp(pred, cfg)

	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	served := make(chan error, 1)
	go func() {
		// listener.go: the connection limit, and a 413 sent while the client is still sending
		// reaches the client.
		limited := newLimitListener(ln, cfg.MaxConnections)
		served <- app.Listener(limited, fiber.ListenConfig{DisableStartupMessage: true})
	}()
	log.Printf("fiber-endpoint: serving %s (%d features, %d classes) on http://%s, tracing=%t",
		cfg.ModelPath, pred.NumFeatures(), pred.NumClass(), addr, tp != nil)

	select {
	case err := <-served: // could not listen, or stopped on its own
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		return nil
	case <-ctx.Done():
	}
	stop()
	err = app.ShutdownWithTimeout(cfg.ShutdownTimeout)
	if tp != nil {
		// Flush the BatchSpanProcessor: every span of a served request is exported.
		flushCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if ferr := tp.Shutdown(flushCtx); ferr != nil {
			// An unreachable collector must not turn a clean stop into a failure.
			log.Printf("fiber-endpoint: flushing traces: %v", ferr)
		}
	}
	<-served
	return err
}
