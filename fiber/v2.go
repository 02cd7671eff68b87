package main

// Open Inference Protocol V2 (KServe / Triton REST) beside the contract: routes, tensors, the
// binary tensor data extension and messages, mirroring src/fiber_endpoints/v2.py (the same
// checks in the same order, the same messages: tests/integration/test_v2_contract.py holds the
// three stacks to it). docs/contract.md, section "V2", is the text.
//
// The request reader reuses request.go's hand-written decoder: one pass over the body that
// validates it as JSON (at most v2MaxDepth levels deep) and keeps the facts the checks need
// (raw strings, shape, data values as float64, the first non-number element), then the checks
// run in the protocol's fixed order. BenchmarkV2Parse (v2_test.go), a one-row 20-feature
// request, 2-core AMD EPYC VM (shared, noisy), Go 1.26: this reader 1.7-2.6 µs/op, 0 allocs;
// encoding/json into a struct with []*float64 data 8.9-9.1 µs/op, 1.5 kB, 43 allocs. The whole
// V2 handler (BenchmarkV2Inference) allocates nothing on the good path.

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

const (
	v2DefaultModelName  = "model"
	v2ModelNameEnv      = "FIBER_ENDPOINTS_MODEL_NAME"
	v2ModelVersion      = "1"
	v2Platform          = "lightgbm"
	v2InputName         = "input-0"
	v2OutputName        = "predict" // as MLServer's LightGBM runtime names its output
	v2HeaderLength      = "Inference-Header-Content-Length"
	v2BinaryContentType = "application/octet-stream"
	v2MaxDepth          = 64
	v2MaxInt            = 1<<31 - 1
	// projectVersion is pyproject.toml's version, reported by GET /v2 (checked in v2_test.go).
	projectVersion = "0.1.0"
)

var v2ModelNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// validModelName: safe in a URL path segment unescaped, and a static segment for Fiber's router.
func validModelName(name string) bool { return v2ModelNamePattern.MatchString(name) }

// v2Datatype is an accepted input datatype: its size in binary data and, for integers, the
// range compared as float64 (the model's input type), as the Python stacks compare it.
type v2Datatype struct {
	name   string
	size   int
	float  bool
	lo, hi float64
}

var v2Datatypes = []v2Datatype{
	{"FP64", 8, true, 0, 0}, {"FP32", 4, true, 0, 0},
	{"INT8", 1, false, math.MinInt8, math.MaxInt8}, {"INT16", 2, false, math.MinInt16, math.MaxInt16},
	{"INT32", 4, false, math.MinInt32, math.MaxInt32}, {"INT64", 8, false, math.MinInt64, math.MaxInt64},
	{"UINT8", 1, false, 0, math.MaxUint8}, {"UINT16", 2, false, 0, math.MaxUint16},
	{"UINT32", 4, false, 0, math.MaxUint32}, {"UINT64", 8, false, 0, math.MaxUint64},
}

func v2DatatypeNames() string {
	names := make([]string, len(v2Datatypes))
	for i, dt := range v2Datatypes {
		names[i] = dt.name
	}
	return strings.Join(names, ", ")
}

// decode reads element i of little-endian binary data as float64.
func (dt *v2Datatype) decode(b []byte, i int) float64 {
	switch dt.name {
	case "FP64":
		return math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	case "FP32":
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	case "INT8":
		return float64(int8(b[i]))
	case "INT16":
		return float64(int16(binary.LittleEndian.Uint16(b[2*i:])))
	case "INT32":
		return float64(int32(binary.LittleEndian.Uint32(b[4*i:])))
	case "INT64":
		return float64(int64(binary.LittleEndian.Uint64(b[8*i:])))
	case "UINT8":
		return float64(b[i])
	case "UINT16":
		return float64(binary.LittleEndian.Uint16(b[2*i:]))
	case "UINT32":
		return float64(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return float64(binary.LittleEndian.Uint64(b[8*i:]))
}

// -- messages (src/fiber_endpoints/v2.py has the same) ------------------------------------------

func bad(message string) *contractError { return &contractError{400, message} }

func notFound(path string) *contractError { return &contractError{404, "not found: " + path} }

func methodNotAllowed(method, path string) *contractError {
	return &contractError{405, "method " + method + " not allowed on " + path}
}

func v2UnknownModel(name, served string) *contractError {
	return &contractError{404, `model "` + name + `" not found (this server serves "` + served + `")`}
}

func v2UnknownVersion(model, version string) *contractError {
	return &contractError{404, `model "` + model + `" has no version "` + version + `" (its only version is "` + v2ModelVersion + `")`}
}

func v2BadHeaderLength(size int) *contractError {
	return bad(v2HeaderLength + ": expected an integer from 0 to " + strconv.Itoa(size))
}

var errV2NotAnObject = bad(`body must be a JSON object with an "inputs" field`)

func v2FieldRequired(field string) *contractError { return bad(field + ": field required") }

func v2Expected(field, what string) *contractError { return bad(field + ": expected " + what) }

func v2Input(name string) string { return `input "` + name + `"` }

func v2Dims(shape []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	b.WriteByte(']')
	return b.String()
}

func v2Element(name string, index, n int) string {
	return v2Input(name) + ": row " + strconv.Itoa(index/n) + ", feature " + strconv.Itoa(index%n)
}

func v2NotAValue(name string, index, n int, dt *v2Datatype) *contractError {
	what := "an integer"
	if dt.float {
		what = "a number or null"
	}
	return bad(v2Element(name, index, n) + ": expected " + what)
}

func v2OutOfRange(name string, index, n int, dt *v2Datatype) *contractError {
	return bad(v2Element(name, index, n) + ": number out of range for " + dt.name)
}

func v2NotSupported(where, parameter string) *contractError {
	return bad(where + `: parameter "` + parameter + `" is not supported`)
}

// -- routes ---------------------------------------------------------------------------------------

type v2Kind int

const (
	v2Server v2Kind = iota
	v2Live
	v2Ready
	v2Model
	v2ModelReady
	v2Infer
)

type v2Route struct {
	kind           v2Kind
	method         string // the one method the route allows
	model, version string
	hasVersion     bool
}

func isV2Path(path string) bool { return path == "/v2" || strings.HasPrefix(path, "/v2/") }

// v2Match is the V2 route a path names (model and version not checked yet).
func v2Match(path string) (v2Route, bool) {
	switch path {
	case "/v2":
		return v2Route{kind: v2Server, method: fiber.MethodGet}, true
	case "/v2/health/live":
		return v2Route{kind: v2Live, method: fiber.MethodGet}, true
	case "/v2/health/ready":
		return v2Route{kind: v2Ready, method: fiber.MethodGet}, true
	}
	rest, ok := strings.CutPrefix(path, "/v2/models/")
	if !ok {
		return v2Route{}, false
	}
	parts := strings.Split(rest, "/")
	for _, p := range parts {
		if p == "" {
			return v2Route{}, false
		}
	}
	r := v2Route{model: parts[0]}
	tail := parts[1:]
	if len(tail) >= 2 && tail[0] == "versions" {
		r.version, r.hasVersion, tail = tail[1], true, tail[2:]
	}
	switch {
	case len(tail) == 0:
		r.kind, r.method = v2Model, fiber.MethodGet
	case len(tail) == 1 && tail[0] == "ready":
		r.kind, r.method = v2ModelReady, fiber.MethodGet
	case len(tail) == 1 && tail[0] == "infer":
		r.kind, r.method = v2Infer, fiber.MethodPost
	default:
		return v2Route{}, false
	}
	return r, true
}

// v2Resolve checks in the contract's order: path (404), method (405, Allow set), then the model
// (404) and its version (404).
func (s *server) v2Resolve(c fiber.Ctx) (v2Route, error) {
	path, method := c.Path(), c.Method()
	r, ok := v2Match(path)
	if !ok {
		return r, notFound(path)
	}
	if method != r.method {
		c.Set(fiber.HeaderAllow, r.method)
		return r, methodNotAllowed(method, path)
	}
	if r.kind >= v2Model && r.model != s.cfg.ModelName {
		return r, v2UnknownModel(r.model, s.cfg.ModelName)
	}
	if r.hasVersion && r.version != v2ModelVersion {
		return r, v2UnknownVersion(s.cfg.ModelName, r.version)
	}
	return r, nil
}

func v2InferPaths(model string) []string {
	base := "/v2/models/" + model
	return []string{base + "/infer", base + "/versions/" + v2ModelVersion + "/infer"}
}

// v2Bodies builds the GET routes' bodies once.
func v2Bodies(stack, model string, n, k int) map[v2Kind][]byte {
	type tensor struct {
		Name     string `json:"name"`
		Datatype string `json:"datatype"`
		Shape    []int  `json:"shape"`
	}
	outShape := []int{-1}
	if k > 1 {
		outShape = append(outShape, k)
	}
	docs := map[v2Kind]any{
		v2Server: struct {
			Name       string   `json:"name"`
			Version    string   `json:"version"`
			Extensions []string `json:"extensions"`
		}{stack, projectVersion, []string{"binary_tensor_data"}},
		v2Live:  map[string]bool{"live": true},
		v2Ready: map[string]bool{"ready": true},
		v2Model: struct {
			Name     string   `json:"name"`
			Versions []string `json:"versions"`
			Platform string   `json:"platform"`
			Inputs   []tensor `json:"inputs"`
			Outputs  []tensor `json:"outputs"`
		}{model, []string{v2ModelVersion}, v2Platform,
			[]tensor{{v2InputName, "FP64", []int{-1, n}}}, []tensor{{v2OutputName, "FP64", outShape}}},
		v2ModelReady: struct {
			Name  string `json:"name"`
			Ready bool   `json:"ready"`
		}{model, true},
	}
	bodies := make(map[v2Kind][]byte, len(docs))
	for kind, doc := range docs {
		bodies[kind], _ = json.Marshal(doc)
	}
	return bodies
}

// v2Dispatch serves every /v2 path but the served model's inference routes (registered first).
func (s *server) v2Dispatch(c fiber.Ctx) error {
	r, err := s.v2Resolve(c)
	if err != nil {
		return err
	}
	if r.kind == v2Infer {
		return s.v2Infer(c)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(s.v2Get[r.kind])
	return nil
}

// v2Infer: POST /v2/models/{name}[/versions/1]/infer. No content type is required (tritonclient
// sends none); the body limit is the contract's.
func (s *server) v2Infer(c fiber.Ctx) error {
	started := time.Now()
	body := c.BodyRaw()
	if len(body) > s.cfg.BodyLimit {
		return s.bodyTooLarge()
	}
	header := c.Request().Header.Peek(v2HeaderLength)
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)
	req := &sc.v2
	if err := parseV2(body, header, header != nil, s.pred.NumFeatures(), s.cfg.MaxBatchRows, req); err != nil {
		return err
	}
	rows, k := req.rows, s.pred.NumClass()
	if cap(sc.out) < rows*k {
		sc.out = make([]float64, rows*k)
	}
	out := sc.out[:rows*k]
	// Server-Timing's inference is the predictor call alone, timed inside the span.
	var err error
	var inferDur time.Duration
	if s.tracer != nil {
		_, span := s.tracer.Start(c.Context(), "model-inference", trace.WithAttributes(
			attribute.Int("inference.rows", rows),
			attribute.Int("inference.features", s.pred.NumFeatures()),
		))
		inferStart := time.Now()
		err = s.pred.Predict(req.vals, rows, out)
		inferDur = time.Since(inferStart)
		span.End()
	} else {
		inferStart := time.Now()
		err = s.pred.Predict(req.vals, rows, out)
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
	buf := appendV2Response(sc.buf[:0], s.cfg.ModelName, req, k, out)
	if req.binary {
		c.Set(fiber.HeaderContentType, v2BinaryContentType)
		c.Set(v2HeaderLength, strconv.Itoa(len(buf)))
		for _, v := range out {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		}
	} else {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	}
	sc.buf = buf
	c.Response().SetBody(buf) // copies: buf goes back to the pool
	setServerTiming(c, sc, inferDur, time.Since(started))
	return nil
}

// appendV2Response writes the response's JSON part (with the data unless req.binary).
func appendV2Response(buf []byte, model string, req *v2Request, k int, out []float64) []byte {
	buf = append(buf, `{"model_name":"`...)
	buf = append(buf, model...) // validModelName: nothing to escape
	buf = append(buf, `","model_version":"`+v2ModelVersion+`",`...)
	if req.idState == v2String {
		// A JSON string's raw text, escapes included, is valid JSON string text: echoed as sent.
		buf = append(append(append(buf, `"id":"`...), req.id...), `",`...)
	}
	buf = append(buf, `"outputs":[{"name":"`+v2OutputName+`","datatype":"FP64","shape":[`...)
	buf = strconv.AppendInt(buf, int64(req.rows), 10)
	if k > 1 {
		buf = strconv.AppendInt(append(buf, ','), int64(k), 10)
	}
	buf = append(buf, "],"...)
	if req.binary {
		buf = append(buf, `"parameters":{"binary_data_size":`...)
		buf = strconv.AppendInt(buf, int64(8*len(out)), 10)
		return append(buf, "}}]}"...)
	}
	buf = append(buf, `"data":[`...)
	for i, v := range out {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
	}
	return append(buf, "]}]}"...)
}

// -- the request reader ---------------------------------------------------------------------------

// States of a field: missing, a value of the expected type, or a value of another type.
const (
	v2Missing = iota
	v2String  // also: an object, an array, a valid integer, true (by field)
	v2Wrong
	v2False // booleans only: v2String stands for true
)

// v2Output is what the checks need of one requested output.
type v2Output struct {
	isObject                   bool
	name                       []byte
	nameEsc                    bool
	nameState, params, binData int
	classification, shm        bool
}

// v2Request is a parsed inference request; every slice is reused from one request to the next.
type v2Request struct {
	// the body
	isObject                        bool
	id                              []byte // raw JSON string text
	idState, params, binOut, inputs int
	nInputs                         int
	outputs                         int
	outErr                          *contractError // first bad output, in document order
	outBinary                       int            // v2Missing, v2String (true), v2False
	outIndex                        int
	// inputs[0]
	tObject                           bool
	name, dtype                       []byte
	nameEsc, dtypeEsc                 bool
	nameState, dtypeState, shapeState int
	shape                             []int
	tParams, bds, data                int
	bdsValue                          int
	shm                               bool
	count, firstBad                   int
	vals                              []float64
	// results
	rows   int
	binary bool
}

type v2Parser struct {
	decoder
	r *v2Request
}

// parseV2 reads an inference request into r and checks it, in the order of docs/contract.md.
func parseV2(body, header []byte, hasHeader bool, n, maxRows int, r *v2Request) error {
	jsonEnd := len(body)
	if hasHeader {
		v, ok := parseHeaderLength(header)
		if !ok || v > len(body) {
			return v2BadHeaderLength(len(body))
		}
		jsonEnd = v
	}
	vals, shape := r.vals[:0], r.shape[:0]
	*r = v2Request{vals: vals, shape: shape, firstBad: -1}
	p := v2Parser{decoder: decoder{b: body[:jsonEnd], maxDepth: v2MaxDepth}, r: r}
	p.top()
	if !p.synt {
		p.ws()
		if p.i != len(p.b) {
			p.fail()
		}
	}
	if p.synt {
		return errMalformedJSON
	}
	return r.check(body, jsonEnd, hasHeader, n, maxRows)
}

// parseHeaderLength: ASCII digits only (as Python's bytes.isdigit), no sign or spaces.
func parseHeaderLength(h []byte) (int, bool) {
	if len(h) == 0 {
		return 0, false
	}
	v := 0
	for _, c := range h {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > math.MaxInt32 { // already past any body: stay past it without overflowing
			continue
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func decodeString(raw []byte, escaped bool) string {
	if !escaped {
		return string(raw)
	}
	var s string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	_ = json.Unmarshal(quoted, &s) // validated by the decoder
	return s
}

func keyIs(key []byte, escaped bool, want string) bool {
	if !escaped {
		return string(key) == want
	}
	return decodeString(key, true) == want
}

// object walks an object at p.b[p.i] == '{' (at nesting depth: containers around it), calling
// field for each key with the value at p.i; field returns false on a syntax error.
func (p *v2Parser) object(field func(key []byte, escaped bool) bool) bool {
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.ws()
		key, escaped, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			p.fail()
			return false
		}
		p.i++
		p.ws()
		if p.i >= len(p.b) {
			p.fail()
			return false
		}
		if !field(key, escaped) {
			return false
		}
		p.ws()
		if p.i >= len(p.b) {
			p.fail()
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			p.fail()
			return false
		}
	}
}

// array walks an array at p.b[p.i] == '[', calling item for each element at p.i.
func (p *v2Parser) array(item func(index int) bool) bool {
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return true
	}
	for index := 0; ; index++ {
		p.ws()
		if p.i >= len(p.b) {
			p.fail()
			return false
		}
		if !item(index) {
			return false
		}
		p.ws()
		if p.i >= len(p.b) {
			p.fail()
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return true
		default:
			p.fail()
			return false
		}
	}
}

// skip validates any value nested in depth containers.
func (p *v2Parser) skip(depth int) bool {
	p.depth = depth
	return p.skipValue()
}

// str reads a string value into raw/escaped and state, or skips another value (state v2Wrong).
func (p *v2Parser) strField(raw *[]byte, escaped *bool, state *int, depth int) bool {
	if p.b[p.i] != '"' {
		*state = v2Wrong
		return p.skip(depth)
	}
	s, esc, ok := p.str()
	*raw, *escaped, *state = s, esc, v2String
	return ok
}

func (p *v2Parser) boolField(state *int, depth int) bool {
	switch {
	case p.b[p.i] == 't' && p.literal("true"):
		*state = v2String
		return true
	case p.b[p.i] == 'f' && p.literal("false"):
		*state = v2False
		return true
	}
	if p.synt {
		return false
	}
	*state = v2Wrong
	return p.skip(depth)
}

// intValue reads an integer from 0 to v2MaxInt (no fraction or exponent); ok=false for any
// other valid value, which is skipped.
func (p *v2Parser) intValue(depth int) (v int, isInt, ok bool) {
	c := p.b[p.i]
	if c != '-' && (c < '0' || c > '9') {
		return 0, false, p.skip(depth)
	}
	start := p.i
	if !p.number() {
		return 0, false, false
	}
	tok := p.b[start:p.i]
	for _, ch := range tok {
		if ch == '.' || ch == 'e' || ch == 'E' {
			return 0, false, true
		}
	}
	n, err := strconv.ParseInt(unsafe.String(&tok[0], len(tok)), 10, 64)
	if err != nil || n < 0 || n > v2MaxInt {
		return 0, false, true
	}
	return int(n), true, true
}

// top reads the body: an object with id, parameters, inputs and outputs (others skipped).
func (p *v2Parser) top() {
	p.ws()
	if p.i >= len(p.b) {
		p.fail()
		return
	}
	r := p.r
	if p.b[p.i] != '{' {
		p.skip(0)
		return
	}
	r.isObject = true
	p.object(func(key []byte, esc bool) bool {
		switch {
		case keyIs(key, esc, "id"):
			var e bool
			return p.strField(&r.id, &e, &r.idState, 1)
		case keyIs(key, esc, "parameters"):
			r.binOut = v2Missing
			return p.params(&r.params, 1, func(k []byte, kesc bool) (bool, bool) {
				if keyIs(k, kesc, "binary_data_output") {
					return true, p.boolField(&r.binOut, 2)
				}
				return false, true
			})
		case keyIs(key, esc, "inputs"):
			return p.inputs()
		case keyIs(key, esc, "outputs"):
			return p.outputs()
		}
		return p.skip(1)
	})
}

// params reads a parameters object at depth; known returns (handled, ok) for a key.
func (p *v2Parser) params(state *int, depth int, known func(key []byte, esc bool) (bool, bool)) bool {
	if p.b[p.i] != '{' {
		*state = v2Wrong
		return p.skip(depth)
	}
	*state = v2String
	return p.object(func(key []byte, esc bool) bool {
		if handled, ok := known(key, esc); handled {
			return ok
		}
		return p.skip(depth + 1)
	})
}

func (p *v2Parser) inputs() bool {
	r := p.r
	// A repeated key: the last one wins, as in Python's json and encoding/json.
	r.nInputs, r.tObject, r.nameState, r.dtypeState, r.shapeState = 0, false, v2Missing, v2Missing, v2Missing
	r.tParams, r.bds, r.data, r.shm, r.count, r.firstBad = v2Missing, v2Missing, v2Missing, false, 0, -1
	r.vals, r.shape = r.vals[:0], r.shape[:0]
	if p.b[p.i] != '[' {
		r.inputs = v2Wrong
		return p.skip(1)
	}
	r.inputs = v2String
	return p.array(func(index int) bool {
		r.nInputs++
		if index > 0 || p.b[p.i] != '{' {
			return p.skip(2)
		}
		r.tObject = true
		return p.object(func(key []byte, esc bool) bool {
			switch {
			case keyIs(key, esc, "name"):
				return p.strField(&r.name, &r.nameEsc, &r.nameState, 3)
			case keyIs(key, esc, "datatype"):
				return p.strField(&r.dtype, &r.dtypeEsc, &r.dtypeState, 3)
			case keyIs(key, esc, "shape"):
				return p.shape()
			case keyIs(key, esc, "parameters"):
				r.bds, r.shm = v2Missing, false
				return p.params(&r.tParams, 3, func(k []byte, kesc bool) (bool, bool) {
					switch {
					case keyIs(k, kesc, "binary_data_size"):
						v, isInt, ok := p.intValue(4)
						r.bds, r.bdsValue = v2Wrong, v
						if isInt {
							r.bds = v2String
						}
						return true, ok
					case keyIs(k, kesc, "shared_memory_region"):
						r.shm = true
					}
					return false, true
				})
			case keyIs(key, esc, "data"):
				return p.data()
			}
			return p.skip(3)
		})
	})
}

func (p *v2Parser) shape() bool {
	r := p.r
	r.shape = r.shape[:0]
	if p.b[p.i] != '[' {
		r.shapeState = v2Wrong
		return p.skip(3)
	}
	r.shapeState = v2String
	return p.array(func(int) bool {
		v, isInt, ok := p.intValue(4)
		if !isInt {
			r.shapeState = v2Wrong
		}
		r.shape = append(r.shape, v)
		return ok
	})
}

// data reads the data array at depth 4 and below: arrays only group (any nesting, as in
// Triton), numbers and nulls (NaN) are elements, anything else is an element too, the first of
// them kept in firstBad.
func (p *v2Parser) data() bool {
	r := p.r
	r.vals, r.count, r.firstBad = r.vals[:0], 0, -1
	if p.b[p.i] != '[' {
		r.data = v2Wrong
		return p.skip(3)
	}
	r.data = v2String
	level := 0 // arrays open inside data
	for {
		// A value starts here.
		p.ws()
		if p.i >= len(p.b) {
			p.fail()
			return false
		}
		c := p.b[p.i]
		closed := false
		switch {
		case c == '[':
			level++
			if 3+level > v2MaxDepth {
				p.fail()
				return false
			}
			p.i++
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				level--
				closed = true
				break
			}
			continue
		case c == '-' || (c >= '0' && c <= '9'):
			start := p.i
			if !p.number() {
				return false
			}
			// Overflow gives ±Inf (a range error later); underflow rounds to 0, as in Python.
			v, _ := strconv.ParseFloat(unsafe.String(&p.b[start], p.i-start), 64)
			r.vals = append(r.vals, v)
		case c == 'n':
			if !p.literal("null") {
				return false
			}
			r.vals = append(r.vals, math.NaN())
		default:
			if !p.skip(3 + level) {
				return false
			}
			if r.firstBad < 0 {
				r.firstBad = r.count
			}
			r.vals = append(r.vals, 0)
		}
		if !closed {
			r.count++
		}
		// A value ended: close arrays until one expects another value.
		for {
			if level == 0 {
				return true
			}
			p.ws()
			if p.i >= len(p.b) {
				p.fail()
				return false
			}
			c := p.b[p.i]
			p.i++
			if c == ',' {
				break
			}
			if c == ']' {
				level--
				continue
			}
			p.fail()
			return false
		}
	}
}

func (p *v2Parser) outputs() bool {
	r := p.r
	r.outErr, r.outBinary, r.outIndex = nil, v2Missing, 0
	if p.b[p.i] != '[' {
		r.outputs = v2Wrong
		return p.skip(1)
	}
	r.outputs = v2String
	return p.array(func(index int) bool {
		var o v2Output
		ok := true
		if p.b[p.i] != '{' {
			ok = p.skip(2)
		} else {
			o.isObject = true
			ok = p.object(func(key []byte, esc bool) bool {
				switch {
				case keyIs(key, esc, "name"):
					return p.strField(&o.name, &o.nameEsc, &o.nameState, 3)
				case keyIs(key, esc, "parameters"):
					o.binData, o.classification, o.shm = v2Missing, false, false
					return p.params(&o.params, 3, func(k []byte, kesc bool) (bool, bool) {
						switch {
						case keyIs(k, kesc, "binary_data"):
							return true, p.boolField(&o.binData, 4)
						case keyIs(k, kesc, "classification"):
							o.classification = true
						case keyIs(k, kesc, "shared_memory_region"):
							o.shm = true
						}
						return false, true
					})
				}
				return p.skip(3)
			})
		}
		if ok && r.outErr == nil {
			r.outErr = o.check(index)
			if r.outErr == nil && o.binData != v2Missing {
				r.outBinary = o.binData
			}
		}
		return ok
	})
}

func (o *v2Output) check(index int) *contractError {
	field := "outputs[" + strconv.Itoa(index) + "]"
	switch {
	case !o.isObject:
		return v2Expected(field, "an object")
	case o.nameState == v2Missing:
		return v2FieldRequired(field + ".name")
	case o.nameState == v2Wrong:
		return v2Expected(field+".name", "a string")
	}
	if name := decodeString(o.name, o.nameEsc); name != v2OutputName {
		return bad(field + `: unknown output "` + name + `" (the model's output is "` + v2OutputName + `")`)
	}
	where := `output "` + v2OutputName + `"`
	switch {
	case o.params == v2Wrong:
		return v2Expected(where+": parameters", "an object")
	case o.binData == v2Wrong:
		return v2Expected(where+": parameters.binary_data", "true or false")
	case o.classification:
		return v2NotSupported(where, "classification")
	case o.shm:
		return v2NotSupported(where, "shared_memory_region")
	}
	return nil
}

// check applies the protocol's checks to what the reader kept, in src/fiber_endpoints/v2.py's
// order, and fills r.vals (rows x n float64) from the JSON data or the binary part.
func (r *v2Request) check(body []byte, jsonEnd int, hasHeader bool, n, maxRows int) error {
	switch {
	case !r.isObject:
		return errV2NotAnObject
	case r.idState == v2Wrong:
		return v2Expected("id", "a string")
	case r.params == v2Wrong:
		return v2Expected("parameters", "an object")
	case r.binOut == v2Wrong:
		return v2Expected("parameters.binary_data_output", "true or false")
	case r.inputs == v2Missing:
		return v2FieldRequired("inputs")
	case r.inputs == v2Wrong:
		return v2Expected("inputs", "an array of 1 tensor")
	case r.nInputs != 1:
		return bad("inputs: expected 1 tensor, got " + strconv.Itoa(r.nInputs))
	case !r.tObject:
		return v2Expected("inputs[0]", "an object")
	case r.nameState == v2Missing:
		return v2FieldRequired("inputs[0].name")
	case r.nameState == v2Wrong:
		return v2Expected("inputs[0].name", "a string")
	}
	// Name and datatype are decoded only for a message: a good request allocates nothing here.
	name := func() string { return decodeString(r.name, r.nameEsc) }
	where := func() string { return v2Input(name()) }
	switch r.dtypeState {
	case v2Missing:
		return v2FieldRequired(where() + ": datatype")
	case v2Wrong:
		return v2Expected(where()+": datatype", "a string")
	}
	dt := r.datatype()
	if dt == nil {
		return bad(where() + `: datatype "` + decodeString(r.dtype, r.dtypeEsc) + `" is not supported (` + v2DatatypeNames() + ")")
	}
	switch {
	case r.shapeState == v2Missing:
		return v2FieldRequired(where() + ": shape")
	case r.shapeState == v2Wrong:
		return v2Expected(where()+": shape", "an array of integers from 0 to "+strconv.Itoa(v2MaxInt))
	case len(r.shape) != 2 || r.shape[1] != n:
		return bad(where() + ": expected shape [rows, " + strconv.Itoa(n) + "], got " + v2Dims(r.shape))
	case r.shape[0] == 0:
		return bad(where() + ": expected at least 1 row, got 0")
	case r.shape[0] > maxRows:
		return bad(where() + ": " + strconv.Itoa(r.shape[0]) + " rows, at most " + strconv.Itoa(maxRows) + " allowed")
	case r.tParams == v2Wrong:
		return v2Expected(where()+": parameters", "an object")
	case r.bds == v2Wrong:
		return v2Expected(where()+": parameters.binary_data_size", "an integer from 0 to "+strconv.Itoa(v2MaxInt))
	case r.shm:
		return v2NotSupported(where(), "shared_memory_region")
	case r.bds != v2Missing && r.data != v2Missing:
		return bad(where() + ": give either data or parameters.binary_data_size, not both")
	case r.bds == v2Missing && r.data == v2Missing:
		return v2FieldRequired(where() + ": data")
	case r.bds != v2Missing && !hasHeader:
		return bad(where() + ": parameters.binary_data_size needs the " + v2HeaderLength + " header")
	}
	r.rows = r.shape[0]
	count, binaryLength := r.rows*n, len(body)-jsonEnd
	if r.bds != v2Missing {
		if need := count * dt.size; r.bdsValue != need {
			return bad(where() + ": binary_data_size is " + strconv.Itoa(r.bdsValue) + " bytes, shape " +
				v2Dims(r.shape) + " of " + dt.name + " needs " + strconv.Itoa(need))
		}
		if binaryLength != r.bdsValue {
			return v2WrongBinaryLength(binaryLength, r.bdsValue)
		}
		raw := body[jsonEnd:]
		r.vals = r.vals[:0]
		for i := range count {
			v := dt.decode(raw, i)
			if math.IsInf(v, 0) {
				return v2OutOfRange(name(), i, n, dt)
			}
			r.vals = append(r.vals, v)
		}
	} else {
		switch {
		case r.data == v2Wrong:
			return v2Expected(where()+": data", "an array")
		case r.count != count:
			return bad(where() + ": data has " + strconv.Itoa(r.count) + " values, shape " + v2Dims(r.shape) +
				" needs " + strconv.Itoa(count))
		case binaryLength != 0:
			return v2WrongBinaryLength(binaryLength, 0)
		}
		if err := r.checkValues(name, n, dt); err != nil {
			return err
		}
	}
	switch {
	case r.outputs == v2Wrong:
		return v2Expected("outputs", "an array")
	case r.outErr != nil:
		return r.outErr
	}
	r.binary = r.binOut == v2String
	if r.outBinary != v2Missing {
		r.binary = r.outBinary == v2String
	}
	return nil
}

// datatype is the request's accepted datatype, or nil.
func (r *v2Request) datatype() *v2Datatype {
	for i := range v2Datatypes {
		if r.dtypeEsc && v2Datatypes[i].name == decodeString(r.dtype, true) || string(r.dtype) == v2Datatypes[i].name {
			return &v2Datatypes[i]
		}
	}
	return nil
}

func v2WrongBinaryLength(got, declared int) *contractError {
	return bad("binary data after the JSON header is " + strconv.Itoa(got) + " bytes, binary_data_size says " + strconv.Itoa(declared))
}

// checkValues: the first bad element in row-major order (null is NaN in vals).
func (r *v2Request) checkValues(name func() string, n int, dt *v2Datatype) error {
	limit := r.count
	if r.firstBad >= 0 {
		limit = r.firstBad
	}
	for i, v := range r.vals[:limit] {
		if dt.float {
			if dt.name == "FP32" {
				v = float64(float32(v)) // overflow rounds to ±Inf
				r.vals[i] = v
			}
			if math.IsInf(v, 0) {
				return v2OutOfRange(name(), i, n, dt)
			}
			continue
		}
		switch {
		case math.IsInf(v, 0):
			return v2OutOfRange(name(), i, n, dt)
		case math.IsNaN(v) || v != math.Trunc(v):
			return v2NotAValue(name(), i, n, dt)
		case v < dt.lo || v > dt.hi:
			return v2OutOfRange(name(), i, n, dt)
		}
	}
	if r.firstBad >= 0 {
		return v2NotAValue(name(), r.firstBad, n, dt)
	}
	return nil
}
