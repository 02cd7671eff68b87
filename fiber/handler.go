package main

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Routes of the contract: path -> the one method it allows.
const (
	inferencePath = "/inference"
	batchPath     = "/inference/batch"
	healthPath    = "/health"
)

var routes = map[string]string{inferencePath: fiber.MethodPost, batchPath: fiber.MethodPost, healthPath: fiber.MethodGet}

// contractError is an error that carries its HTTP status; errorHandler turns it into the
// contract's {"error": "..."} response.
type contractError struct {
	Status  int
	Message string
}

func (e *contractError) Error() string { return e.Message }

var (
	errMalformedJSON    = &contractError{400, "malformed JSON body"}
	errWrongContentType = &contractError{400, "Content-Type must be application/json"}
	errNotAnObject      = &contractError{422, `body must be a JSON object with a "data" field`}
	errMissingData      = &contractError{422, "data: field required"}
	errNotABatch        = &contractError{422, "data: expected an array of rows (arrays of numbers)"}
	errEmptyBatch       = &contractError{422, "data: batch must have at least 1 row"}
	errNotFinite        = &contractError{500, "the model produced a value that is not a finite number"}
)

func notAnArray(field string, numFeatures int) *contractError {
	return &contractError{422, field + ": expected an array of " + strconv.Itoa(numFeatures) + " numbers"}
}

func wrongFeatureCount(field string, want, got int) *contractError {
	return &contractError{422, field + ": expected " + strconv.Itoa(want) + " features, got " + strconv.Itoa(got)}
}

func batchTooLarge(rows, max int) *contractError {
	return &contractError{422, "data: batch has " + strconv.Itoa(rows) + " rows, at most " + strconv.Itoa(max) + " allowed"}
}

// server holds what the handlers share. Per-request buffers come from a pool, so the hot path
// of a single-row request allocates almost nothing.
type server struct {
	cfg     Config
	pred    *Predictor
	tracer  trace.Tracer      // nil when tracing is off
	metrics *Metrics          // nil when metrics are off
	health  []byte            // the /health body, built once
	v2Get   map[v2Kind][]byte // the V2 GET routes' bodies, built once
	pool    sync.Pool         // *scratch
}

type scratch struct {
	req   rowsRequest
	v2    v2Request
	stack []byte
	out   []float64
	buf   []byte
}

// NewApp builds the Fiber app serving the contract for one predictor.
func NewApp(pred *Predictor, config ...Config) *fiber.App {
	cfg := configDefault(config...)
	s := &server{cfg: cfg, pred: pred}
	s.pool.New = func() any { return &scratch{} }
	s.health, _ = json.Marshal(struct {
		Status      string `json:"status"`
		Stack       string `json:"stack"`
		NumFeatures int    `json:"num_features"`
		NumClass    int    `json:"num_class"`
		Predictor   string `json:"predictor"`
	}{"ok", cfg.StackName, pred.NumFeatures(), pred.NumClass(), "leaves"})
	app := fiber.New(fiber.Config{
		AppName:                 "fiber-endpoints",
		BodyLimit:               cfg.ReadLimit,
		ErrorHandler:            s.errorHandler,
		DisableHeadAutoRegister: true,
		// Paths are exact, as in the Python stacks: /inference/ and /INFERENCE are 404s.
		StrictRouting: true,
		CaseSensitive: true,
		// Connection limits (config.go; docs/contract.md, "Limits").
		ReadTimeout:    cfg.ReadTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		ReadBufferSize: cfg.MaxHeaderBytes,
		Concurrency:    cfg.MaxConnections + 64, // a backstop: listener.go refuses first
	})
	// Metrics first: every request, the scrape excepted, timed around everything else.
	if cfg.Metrics != nil {
		s.metrics = cfg.Metrics
		app.Use(cfg.Metrics.middleware(s.errorHandler))
		app.Get(metricsPath, cfg.Metrics.handler)
	}
	// Fiber runs a route's handlers in order: the span middleware goes first.
	inference, batch := []any{s.inference}, []any{s.batch}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
		spans := serverSpans(s.tracer, s.errorHandler)
		inference, batch = []any{spans, s.inference}, []any{spans, s.batch}
	}
	app.Post(inferencePath, inference[0], inference[1:]...)
	app.Post(batchPath, batch[0], batch[1:]...)
	app.Get(healthPath, s.healthHandler)

	// V2 (v2.go): the served model's two inference paths first (traced as the contract's are),
	// then every other /v2 path through one dispatcher, so that routing, 404 and 405 follow
	// v2Match exactly as the Python stacks do.
	s.v2Get = v2Bodies(cfg.StackName, cfg.ModelName, pred.NumFeatures(), pred.NumClass())
	v2Infer := []any{s.v2Infer}
	if s.tracer != nil {
		v2Infer = []any{serverSpans(s.tracer, s.errorHandler), s.v2Infer}
	}
	for _, path := range v2InferPaths(cfg.ModelName) {
		app.Post(path, v2Infer[0], v2Infer[1:]...)
	}
	app.All("/v2", s.v2Dispatch)
	app.All("/v2/*", s.v2Dispatch)
	return app
}

func (s *server) healthHandler(c fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(s.health)
	return nil
}

func (s *server) inference(c fiber.Ctx) error { return s.predict(c, false) }

func (s *server) batch(c fiber.Ctx) error { return s.predict(c, true) }

// predict serves both inference routes: parse, validate, predict, serialise.
func (s *server) predict(c fiber.Ctx, batch bool) error {
	started := time.Now()
	// BodyRaw: the bytes as sent (Body() would decode a Content-Encoding).
	body := c.BodyRaw()
	if len(body) > s.cfg.BodyLimit {
		return s.bodyTooLarge()
	}
	if !isJSONContentType(c.Get(fiber.HeaderContentType)) {
		return errWrongContentType
	}
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)

	var err error
	sc.stack, err = parseRequest(body, batch, s.pred.NumFeatures(), &sc.req, sc.stack)
	if err == nil {
		err = s.validate(&sc.req, batch)
	}
	if err != nil {
		var ce *contractError
		if errors.As(err, &ce) && ce.Status == fiber.StatusUnprocessableEntity {
			setServerTiming(c, sc, 0, time.Since(started))
		}
		return err
	}

	rows, k := sc.req.rows, s.pred.NumClass()
	if cap(sc.out) < rows*k {
		sc.out = make([]float64, rows*k)
	}
	out := sc.out[:rows*k]
	// Server-Timing's inference is the predictor call alone, timed inside the span.
	var inferDur time.Duration
	if s.tracer != nil {
		_, span := s.tracer.Start(c.Context(), "model-inference", trace.WithAttributes(
			attribute.Int("inference.rows", rows),
			attribute.Int("inference.features", s.pred.NumFeatures()),
		))
		inferStart := time.Now()
		err = s.pred.Predict(sc.req.vals, rows, out)
		inferDur = time.Since(inferStart)
		span.End()
	} else {
		inferStart := time.Now()
		err = s.pred.Predict(sc.req.vals, rows, out)
		inferDur = time.Since(inferStart)
	}
	if err != nil {
		return err
	}
	if !finite(out) {
		return errNotFinite
	}
	if s.metrics != nil {
		s.metrics.observeInference(c.Path(), inferDur.Seconds())
	}

	buf := sc.buf[:0]
	if batch {
		buf = append(buf, `{"predictions":[`...)
		for r := range rows {
			if r > 0 {
				buf = append(buf, ',')
			}
			buf = appendPrediction(buf, out[r*k:(r+1)*k])
		}
		buf = append(buf, "]}"...)
	} else {
		buf = append(buf, `{"prediction":`...)
		buf = appendPrediction(buf, out)
		buf = append(buf, '}')
	}
	sc.buf = buf
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(buf) // copies: buf goes back to the pool
	setServerTiming(c, sc, inferDur, time.Since(started))
	return nil
}

// validate checks row counts and lengths, or names (names.go): no row of the wrong length ever
// reaches the predictor.
func (s *server) validate(req *rowsRequest, batch bool) error {
	n := s.pred.NumFeatures()
	if !batch {
		if req.named {
			return s.pred.features.resolve(req, false)
		}
		if got := req.rowLens[0]; got != n {
			return wrongFeatureCount("data", n, got)
		}
		return nil
	}
	if req.rows == 0 {
		return errEmptyBatch
	}
	if req.rows > s.cfg.MaxBatchRows {
		return batchTooLarge(req.rows, s.cfg.MaxBatchRows)
	}
	if req.named {
		return s.pred.features.resolve(req, true)
	}
	for i, got := range req.rowLens {
		if got != n {
			return wrongFeatureCount("data["+strconv.Itoa(i)+"]", n, got)
		}
	}
	return nil
}

// appendPrediction writes one row's output: a number, or an array of K numbers (multiclass).
// 'g' with precision -1 is the shortest text that parses back to the same float64.
func appendPrediction(buf []byte, row []float64) []byte {
	if len(row) == 1 {
		return strconv.AppendFloat(buf, row[0], 'g', -1, 64)
	}
	buf = append(buf, '[')
	for j, v := range row {
		if j > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
	}
	return append(buf, ']')
}

// setServerTiming writes `Server-Timing: inference;dur=<ms>, app;dur=<ms>` (6 decimals).
func setServerTiming(c fiber.Ctx, sc *scratch, inference, app time.Duration) {
	b := sc.buf[:0]
	b = append(b, "inference;dur="...)
	b = strconv.AppendFloat(b, float64(inference.Nanoseconds())/1e6, 'f', 6, 64)
	b = append(b, ", app;dur="...)
	b = strconv.AppendFloat(b, float64(app.Nanoseconds())/1e6, 'f', 6, 64)
	c.Response().Header.SetBytesV("Server-Timing", b) // copies
	sc.buf = b[:0]
}

// isJSONContentType accepts application/json with any parameters, case-insensitively.
func isJSONContentType(v string) bool {
	mediaType, _, _ := strings.Cut(v, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), fiber.MIMEApplicationJSON)
}

// errorHandler is the one place where errors become responses: {"error": "<message>"}.
func (s *server) errorHandler(c fiber.Ctx, err error) error {
	status, message := fiber.StatusInternalServerError, "internal server error"
	var ce *contractError
	var fe *fiber.Error
	switch {
	case errors.As(err, &ce):
		status, message = ce.Status, ce.Message
	case errors.As(err, &fe):
		status, message = fe.Code, fe.Message
		if fe.Code == fiber.StatusRequestEntityTooLarge && isV2Path(c.Path()) {
			// As below, for V2: path, method, model and version first.
			status, message = fe.Code, s.bodyTooLarge().Message
			if _, rerr := s.v2Resolve(c); rerr != nil {
				ce := rerr.(*contractError)
				status, message = ce.Status, ce.Message
			}
			break
		}
		if fe.Code == fiber.StatusRequestEntityTooLarge && len(c.Request().Header.RawHeaders()) == 0 {
			// A chunked body past ReadLimit: fasthttp has reset the request (path and method are
			// gone), so there is nothing to route; the answer is the body limit's.
			status, message = fe.Code, s.bodyTooLarge().Message
			break
		}
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			// fasthttp refuses an oversized body before routing; the contract checks path and
			// method first, so an unknown path or a wrong method still answers 404/405.
			status = s.routeStatus(c)
			if status == fiber.StatusRequestEntityTooLarge {
				message = s.bodyTooLarge().Message
			}
		}
		switch status {
		case fiber.StatusNotFound:
			message = "not found: " + c.Path()
		case fiber.StatusMethodNotAllowed:
			message = "method " + c.Method() + " not allowed on " + c.Path()
		}
	}
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{message})
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(body)
	return nil
}

func (s *server) bodyTooLarge() *contractError {
	return &contractError{413, "request body larger than " + strconv.Itoa(s.cfg.BodyLimit) + " bytes"}
}

// routeStatus is 404 or 405 (setting Allow) when the request's path or method is not served,
// else 413: used only for bodies fasthttp refused as too large.
func (s *server) routeStatus(c fiber.Ctx) int {
	method, ok := routes[c.Path()]
	switch {
	case !ok:
		return fiber.StatusNotFound
	case method != c.Method():
		c.Set(fiber.HeaderAllow, method)
		return fiber.StatusMethodNotAllowed
	}
	return fiber.StatusRequestEntityTooLarge
}
