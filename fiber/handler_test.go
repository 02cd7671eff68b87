package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v3"
	"github.com/valyala/fasthttp"
)

func newTestApp(t testing.TB, model string, cfg ...Config) (*fiber.App, *Predictor) {
	t.Helper()
	p, err := LoadPredictor(modelsDir+"/"+model+"/model.txt", 2)
	if err != nil {
		t.Fatal(err)
	}
	return NewApp(p, cfg...), p
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t testing.TB, app *fiber.App, method, path, contentType string, body []byte) response {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := app.Test(req, fiber.TestConfig{Timeout: 0})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func row(n int, v string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(v+",", n), ",") + "]"
}

var serverTiming = regexp.MustCompile(`^inference;dur=\d+(\.\d{1,6})?, app;dur=\d+(\.\d{1,6})?$`)

// TestContractErrors: every error row of docs/contract.md, status and exact message.
func TestContractErrors(t *testing.T) {
	app, _ := newTestApp(t, "binary") // N = 20, K = 1
	const js = "application/json"
	batchOf := func(rows int) []byte {
		r := row(20, "0.5")
		return []byte(`{"data":[` + strings.TrimSuffix(strings.Repeat(r+",", rows), ",") + `]}`)
	}
	tests := []struct {
		name, method, path, ctype, body string
		raw                             []byte
		status                          int
		message                         string
	}{
		{"malformed", "POST", "/inference", js, `{"data": [1,`, nil, 400, "malformed JSON body"},
		{"empty body", "POST", "/inference", js, ``, nil, 400, "malformed JSON body"},
		{"NaN token", "POST", "/inference", js, `{"data": [NaN]}`, nil, 400, "malformed JSON body"},
		{"Infinity token", "POST", "/inference", js, `{"data": [Infinity]}`, nil, 400, "malformed JSON body"},
		{"trailing garbage", "POST", "/inference", js, `{"data": []} x`, nil, 400, "malformed JSON body"},
		{"syntax beats shape", "POST", "/inference", js, `{"data": "x", }`, nil, 400, "malformed JSON body"},
		{"no content type", "POST", "/inference", "", `{"data": []}`, nil, 400, "Content-Type must be application/json"},
		{"text/plain", "POST", "/inference", "text/plain", `{"data": []}`, nil, 400, "Content-Type must be application/json"},
		{"content type before JSON", "POST", "/inference/batch", "text/plain", `{`, nil, 400, "Content-Type must be application/json"},
		{"not an object", "POST", "/inference", js, `[1, 2]`, nil, 422, `body must be a JSON object with a "data" field`},
		{"scalar body", "POST", "/inference", js, `3`, nil, 422, `body must be a JSON object with a "data" field`},
		{"data missing", "POST", "/inference", js, `{"rows": []}`, nil, 422, "data: field required"},
		{"data not array", "POST", "/inference", js, `{"data": 5}`, nil, 422, "data: expected an array of 20 numbers"},
		{"data null", "POST", "/inference", js, `{"data": null}`, nil, 422, "data: expected an array of 20 numbers"},
		{"batch not arrays", "POST", "/inference/batch", js, `{"data": [1, 2]}`, nil, 422, "data: expected an array of rows (arrays of numbers)"},
		{"batch not array", "POST", "/inference/batch", js, `{"data": {}}`, nil, 422, "data: expected an array of rows (arrays of numbers)"},
		{"too few", "POST", "/inference", js, `{"data": ` + row(19, "1") + `}`, nil, 422, "data: expected 20 features, got 19"},
		{"too many", "POST", "/inference", js, `{"data": ` + row(21, "1") + `}`, nil, 422, "data: expected 20 features, got 21"},
		{"empty row", "POST", "/inference", js, `{"data": []}`, nil, 422, "data: expected 20 features, got 0"},
		{"batch row too long", "POST", "/inference/batch", js, `{"data": [` + row(20, "1") + `,` + row(20, "1") + `,` + row(20, "1") + `,` + row(21, "1") + `]}`, nil, 422, "data[3]: expected 20 features, got 21"},
		{"string", "POST", "/inference", js, `{"data": [1,2,3,4,"5"]}`, nil, 422, "data[4]: expected a number or null"},
		{"bool", "POST", "/inference", js, `{"data": [true]}`, nil, 422, "data[0]: expected a number or null"},
		{"object", "POST", "/inference", js, `{"data": [1, {"a": 1}]}`, nil, 422, "data[1]: expected a number or null"},
		{"nested array", "POST", "/inference", js, `{"data": [1, 2, [3]]}`, nil, 422, "data[2]: expected a number or null"},
		{"batch bad value", "POST", "/inference/batch", js, `{"data": [` + row(20, "1") + `, [1, 2, false]]}`, nil, 422, "data[1][2]: expected a number or null"},
		{"out of range", "POST", "/inference", js, `{"data": [0, 0, 0, 0, 1e400]}`, nil, 422, "data[4]: number out of range"},
		{"negative out of range", "POST", "/inference", js, `{"data": [-1e400]}`, nil, 422, "data[0]: number out of range"},
		{"batch out of range", "POST", "/inference/batch", js, `{"data": [[1e309]]}`, nil, 422, "data[0][0]: number out of range"},
		{"empty batch", "POST", "/inference/batch", js, `{"data": []}`, nil, 422, "data: batch must have at least 1 row"},
		{"batch too large", "POST", "/inference/batch", js, "", batchOf(10001), 422, "data: batch has 10001 rows, at most 10000 allowed"},
		{"unknown path", "GET", "/foo", "", "", nil, 404, "not found: /foo"},
		{"wrong method", "GET", "/inference", "", "", nil, 405, "method GET not allowed on /inference"},
		{"wrong method batch", "PUT", "/inference/batch", js, `{}`, nil, 405, "method PUT not allowed on /inference/batch"},
		{"wrong method health", "POST", "/health", js, `{}`, nil, 405, "method POST not allowed on /health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.raw
			if body == nil {
				body = []byte(tt.body)
			}
			r := do(t, app, tt.method, tt.path, tt.ctype, body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error != tt.message {
				t.Fatalf("body %s, want error %q", r.body, tt.message)
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			st := r.header.Get("Server-Timing")
			switch {
			case tt.status == 422:
				if !serverTiming.MatchString(st) || !strings.HasPrefix(st, "inference;dur=0.000000,") {
					t.Errorf("422 Server-Timing %q", st)
				}
			case st != "":
				t.Errorf("%d with Server-Timing %q", tt.status, st)
			}
		})
	}
}

// TestBodyLimit: over 1 MiB is 413 on a served route, but path and method are checked first,
// and the connection stays usable. Over a real loopback listener: app.Test returns fasthttp's
// error instead of the response when fasthttp itself refuses a body (over ReadLimit).
func TestBodyLimit(t *testing.T) {
	app, _ := newTestApp(t, "binary")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true}) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	base := "http://" + ln.Addr().String()
	big := []byte(`{"data":` + row(20, "1") + `,"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	exact := []byte(`{"data":` + row(20, "1") + `,"pad":"`)
	exact = append(exact, bytes.Repeat([]byte("x"), contractBodyLimit-len(exact)-2)...)
	exact = append(exact, `"}`...)
	tests := []struct {
		name, method, path string
		body               []byte
		status             int
		message            string
	}{
		{"body too large", "POST", "/inference", big, 413, "request body larger than 1048576 bytes"},
		{"batch body too large", "POST", "/inference/batch", big, 413, "request body larger than 1048576 bytes"},
		{"unknown path, big body", "POST", "/foo", big, 404, "not found: /foo"},
		{"wrong method, big body", "PUT", "/inference", big, 405, "method PUT not allowed on /inference"},
		{"exactly 1 MiB", "POST", "/inference", exact, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if tt.message != "" && string(b) != `{"error":"`+tt.message+`"}` {
				t.Fatalf("body %s", b)
			}
			if tt.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}
}

// TestOverReadLimit: a body announced over ReadLimit is refused by fasthttp from its headers,
// still as the contract's 413 JSON (through the one error handler).
func TestOverReadLimit(t *testing.T) {
	app, _ := newTestApp(t, "binary")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true}) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	for _, tt := range []struct{ method, path, want string }{
		{"POST", "/inference", `{"error":"request body larger than 1048576 bytes"}`},
		{"POST", "/elsewhere", `{"error":"not found: /elsewhere"}`},
	} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", tt.method, tt.path, 64<<20)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		if string(b) != tt.want {
			t.Errorf("%s %s: %d %s, want %s", tt.method, tt.path, resp.StatusCode, b, tt.want)
		}
	}
}

// TestHappyPaths: response shapes, content types, Server-Timing, parameters in Content-Type.
func TestHappyPaths(t *testing.T) {
	tests := []struct {
		model, path, ctype, body, want string
	}{
		{"binary", "/inference", "application/json", `{"data": ` + row(20, "0") + `}`, `^\{"prediction":[0-9.e-]+\}$`},
		{"binary", "/inference", "Application/JSON; charset=utf-8", `{"extra": {"x": [1]}, "data": ` + row(20, "null") + `}`, `^\{"prediction":[0-9.e-]+\}$`},
		{"binary", "/inference/batch", "application/json", `{"data": [` + row(20, "1") + `,` + row(20, "-1") + `]}`, `^\{"predictions":\[[0-9.e-]+,[0-9.e-]+\]\}$`},
		{"multiclass", "/inference", "application/json", `{"data": ` + row(20, "0.5") + `}`, `^\{"prediction":\[[0-9.e-]+,[0-9.e-]+,[0-9.e-]+\]\}$`},
		{"multiclass", "/inference/batch", "application/json", `{"data": [` + row(20, "0.5") + `]}`, `^\{"predictions":\[\[[0-9.e-]+,[0-9.e-]+,[0-9.e-]+\]\]\}$`},
		{"regression", "/inference", "application/json", `{"data": ` + row(20, "1e-400") + `}`, `^\{"prediction":-?[0-9.e+-]+\}$`},
	}
	apps := map[string]*fiber.App{}
	for _, tt := range tests {
		t.Run(tt.model+tt.path, func(t *testing.T) {
			app := apps[tt.model]
			if app == nil {
				app, _ = newTestApp(t, tt.model)
				apps[tt.model] = app
			}
			r := do(t, app, "POST", tt.path, tt.ctype, []byte(tt.body))
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if !regexp.MustCompile(tt.want).Match(r.body) {
				t.Fatalf("body %s does not match %s", r.body, tt.want)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			if st := r.header.Get("Server-Timing"); !serverTiming.MatchString(st) {
				t.Errorf("Server-Timing %q", st)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	app, _ := newTestApp(t, "multiclass", Config{StackName: "fiber-test"})
	r := do(t, app, "GET", "/health", "", nil)
	if r.status != 200 || string(r.body) != `{"status":"ok","stack":"fiber-test","num_features":20,"num_class":3,"predictor":"leaves"}` {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r.header.Get("Server-Timing") != "" {
		t.Error("health has Server-Timing")
	}
}

// TestHTTPParity: the golden rows through /inference and /inference/batch, parsed back from
// the JSON the server wrote, match LightGBM within 1e-9 (round-trip formatting included).
func TestHTTPParity(t *testing.T) {
	for _, name := range requiredModels {
		t.Run(name, func(t *testing.T) {
			_, g := loadGolden(t, name)
			app, _ := newTestApp(t, name)
			want := g.want(t)
			rowsJSON, _ := json.Marshal(g.Rows) // nil -> null
			r := do(t, app, "POST", "/inference/batch", "application/json", []byte(`{"data":`+string(rowsJSON)+`}`))
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var batch struct {
				Predictions []json.RawMessage `json:"predictions"`
			}
			if err := json.Unmarshal(r.body, &batch); err != nil {
				t.Fatal(err)
			}
			g2 := *g
			g2.Predictions = batch.Predictions
			checkParity(t, g2.want(t), want, g.NumClass)

			single := make([]json.RawMessage, len(g.Rows))
			for i, rw := range g.Rows {
				b, _ := json.Marshal(rw)
				r := do(t, app, "POST", "/inference", "application/json", []byte(`{"data":`+string(b)+`}`))
				var one struct {
					Prediction json.RawMessage `json:"prediction"`
				}
				if r.status != 200 || json.Unmarshal(r.body, &one) != nil {
					t.Fatalf("row %d: %d %s", i, r.status, r.body)
				}
				single[i] = one.Prediction
			}
			g2.Predictions = single
			checkParity(t, g2.want(t), want, g.NumClass)
		})
	}
}

// TestNastyBodies: hostile or broken bodies never give 200, never panic, always JSON errors.
func TestNastyBodies(t *testing.T) {
	app, _ := newTestApp(t, "binary")
	deep := func(n int, open, close string) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	bodies := map[string]string{
		"deep arrays in data":      `{"data": ` + deep(100000, "[", "]") + `}`,
		"deep objects elsewhere":   `{"x": ` + strings.Repeat(`{"a":`, 50000) + `1` + strings.Repeat("}", 50000) + `, "data": 1}`,
		"deep unclosed":            `{"data": ` + strings.Repeat("[", 200000),
		"deep in batch":            `{"data": [` + deep(50000, "[", "]") + `]}`,
		"huge integer":             `{"data": [` + strings.Repeat("9", 5000) + `]}`,
		"huge exponent":            `{"data": [1e99999999999999999999]}`,
		"minus only":               `{"data": [-]}`,
		"leading zero":             `{"data": [01]}`,
		"dot only":                 `{"data": [1.]}`,
		"plus sign":                `{"data": [+1]}`,
		"hex":                      `{"data": [0x10]}`,
		"trailing comma":           `{"data": [1,]}`,
		"trailing comma object":    `{"data": [1],}`,
		"single quotes":            `{'data': [1]}`,
		"unquoted key":             `{data: [1]}`,
		"truncated":                `{"data": [1, 2`,
		"truncated string":         `{"data": [1], "x": "abc`,
		"bad escape":               `{"data": [1], "x": "\q"}`,
		"bad unicode escape":       `{"data": [1], "x": "\u12G4"}`,
		"control char in string":   "{\"data\": [1], \"x\": \"a\x01b\"}",
		"invalid utf8":             "{\"data\": [1], \"x\": \"\xff\xfe\"}",
		"nul":                      "\x00",
		"only whitespace":          "   \n\t ",
		"true":                     "true",
		"null body":                "null",
		"string body":              `"data"`,
		"two objects":              `{"data": []}{"data": []}`,
		"row of 20 strings":        `{"data": ` + row(20, `"1"`) + `}`,
		"row of 20 bools":          `{"data": ` + row(20, `true`) + `}`,
		"row of 20 objects":        `{"data": ` + row(20, `{}`) + `}`,
		"20 nested arrays":         `{"data": ` + row(20, `[1]`) + `}`,
		"batch of 20 strings rows": `{"data": [` + row(20, `"x"`) + `]}`,
		"20 out of range":          `{"data": ` + row(20, `1e400`) + `}`,
		"NaN string":               `{"data": ` + row(20, `"NaN"`) + `}`,
		"negative infinity":        `{"data": ` + row(20, `-Infinity`) + `}`,
		"escaped data key, bad":    `{"d\u0061ta": 1}`,
		"duplicate key, last bad":  `{"data": ` + row(20, "1") + `, "data": ` + row(20, `"x"`) + `}`,
	}
	for name, body := range bodies {
		for _, path := range []string{"/inference", "/inference/batch"} {
			t.Run(name+path, func(t *testing.T) {
				r := do(t, app, "POST", path, "application/json", []byte(body))
				if r.status == 200 || r.status >= 500 {
					t.Fatalf("status %d: %.200s", r.status, r.body)
				}
				var e struct {
					Error string `json:"error"`
				}
				if json.Unmarshal(r.body, &e) != nil || e.Error == "" {
					t.Fatalf("not a JSON error: %.200s", r.body)
				}
			})
		}
	}
	// Valid JSON with an escaped key and a repeated key: the last "data" wins.
	for name, body := range map[string]string{
		"escaped data key":       `{"d\u0061ta": ` + row(20, "1") + `}`,
		"duplicate key last ok":  `{"data": "x", "data": ` + row(20, "1") + `}`,
		"whitespace everywhere":  " \r\n\t{ \"data\" :\n" + row(20, " -0.5e-3 ") + " } \n",
		"unicode in other field": `{"note": "h\u00e9llo ✓", "data": ` + row(20, "0") + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			if r := do(t, app, "POST", "/inference", "application/json", []byte(body)); r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
}

// BenchmarkInference: the whole single-row handler in process (routing, parse, predict,
// serialise) on the project's regression model, rotating through the golden rows.
func BenchmarkInference(b *testing.B) {
	for _, model := range []string{"regression", "binary"} {
		b.Run(model, func(b *testing.B) {
			app, _ := newTestApp(b, model)
			handler := app.Handler()
			_, g := loadGolden(b, model)
			bodies := make([][]byte, len(g.Rows))
			for i, rw := range g.Rows {
				j, _ := json.Marshal(rw)
				bodies[i] = []byte(`{"data":` + string(j) + `}`)
			}
			ctxs := newRequestCtxs(bodies)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				c := ctxs[i%len(ctxs)]
				c.Response.Reset()
				handler(c)
				if c.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", c.Response.StatusCode(), c.Response.Body())
				}
			}
		})
	}
}

func newRequestCtxs(bodies [][]byte) []*fasthttp.RequestCtx {
	ctxs := make([]*fasthttp.RequestCtx, len(bodies))
	for i, body := range bodies {
		c := &fasthttp.RequestCtx{}
		c.Request.Header.SetMethod(fiber.MethodPost)
		c.Request.SetRequestURI("/inference")
		c.Request.Header.SetContentType("application/json")
		c.Request.SetBody(body)
		ctxs[i] = c
	}
	return ctxs
}
