package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v3"
	"github.com/valyala/fasthttp"
)

func v2Body(data string, shape string, datatype string, extra string) string {
	return `{"inputs":[{"name":"x","shape":` + shape + `,"datatype":"` + datatype + `","data":` + data + `}]` + extra + `}`
}

func TestV2Match(t *testing.T) {
	tests := []struct {
		path    string
		ok      bool
		kind    v2Kind
		model   string
		version string
	}{
		{"/v2", true, v2Server, "", ""},
		{"/v2/health/live", true, v2Live, "", ""},
		{"/v2/health/ready", true, v2Ready, "", ""},
		{"/v2/models/m", true, v2Model, "m", ""},
		{"/v2/models/m/ready", true, v2ModelReady, "m", ""},
		{"/v2/models/m/infer", true, v2Infer, "m", ""},
		{"/v2/models/m/versions/1", true, v2Model, "m", "1"},
		{"/v2/models/m/versions/7/infer", true, v2Infer, "m", "7"},
		{"/v2/models/versions/ready", true, v2ModelReady, "versions", ""},
		{"/v2/", false, 0, "", ""},
		{"/v2/models", false, 0, "", ""},
		{"/v2/models/", false, 0, "", ""},
		{"/v2/models//infer", false, 0, "", ""},
		{"/v2/models/m/versions", false, 0, "", ""},
		{"/v2/models/m/versions/1/stats", false, 0, "", ""},
		{"/v2/models/m/infer/", false, 0, "", ""},
	}
	for _, tt := range tests {
		r, ok := v2Match(tt.path)
		if ok != tt.ok || (ok && (r.kind != tt.kind || r.model != tt.model || r.version != tt.version)) {
			t.Errorf("%s: got %+v %t", tt.path, r, ok)
		}
	}
}

// TestParseV2Errors: one row per check, in the order of docs/contract.md (the integration suite
// holds the three stacks to the same messages).
func TestParseV2Errors(t *testing.T) {
	row := row(20, "0.5")
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name, body, header string
		want               string
	}{
		{"malformed", `{"inputs": [`, "", "malformed JSON body"},
		{"NaN token", v2Body(`[NaN]`, `[1,20]`, "FP64", ""), "", "malformed JSON body"},
		// body(1) parameters(2) deep(3..): 62 brackets reach 64 levels, 63 reach 65.
		{"65 levels", v2Body(row, `[1,20]`, "FP64", `,"parameters":{"d":`+deep(63)+`}`), "", "malformed JSON body"},
		{"65 levels in data", v2Body(deep(62), `[1,20]`, "FP64", ""), "", "malformed JSON body"},
		{"65 levels in an object in data", v2Body(`[[`+strings.Repeat(`{"a":`, 60)+`1`+strings.Repeat("}", 60)+`]]`, `[1,20]`, "FP64", ""), "", "malformed JSON body"},
		{"not an object", `[1]`, "", `body must be a JSON object with an "inputs" field`},
		{"id", v2Body(row, `[1,20]`, "FP64", `,"id":5`), "", "id: expected a string"},
		{"parameters", v2Body(row, `[1,20]`, "FP64", `,"parameters":[]`), "", "parameters: expected an object"},
		{"binary_data_output", v2Body(row, `[1,20]`, "FP64", `,"parameters":{"binary_data_output":1}`), "", "parameters.binary_data_output: expected true or false"},
		{"no inputs", `{}`, "", "inputs: field required"},
		{"inputs object", `{"inputs":{}}`, "", "inputs: expected an array of 1 tensor"},
		{"two inputs", `{"inputs":[{},{}]}`, "", "inputs: expected 1 tensor, got 2"},
		{"input not object", `{"inputs":[1]}`, "", "inputs[0]: expected an object"},
		{"no name", `{"inputs":[{}]}`, "", "inputs[0].name: field required"},
		{"name not string", `{"inputs":[{"name":1}]}`, "", "inputs[0].name: expected a string"},
		{"no datatype", `{"inputs":[{"name":"x"}]}`, "", `input "x": datatype: field required`},
		{"escaped name", `{"inputs":[{"n\u0061me":"\u00e9"}]}`, "", `input "é": datatype: field required`},
		{"BYTES", v2Body(`["a"]`, `[1,20]`, "BYTES", ""), "", `input "x": datatype "BYTES" is not supported (FP64, FP32, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64)`},
		{"no shape", `{"inputs":[{"name":"x","datatype":"FP64"}]}`, "", `input "x": shape: field required`},
		{"shape float", v2Body(row, `[1.0,20]`, "FP64", ""), "", `input "x": shape: expected an array of integers from 0 to 2147483647`},
		{"shape huge", v2Body(row, `[99999999999,20]`, "FP64", ""), "", `input "x": shape: expected an array of integers from 0 to 2147483647`},
		{"shape 19", v2Body(row, `[1,19]`, "FP64", ""), "", `input "x": expected shape [rows, 20], got [1, 19]`},
		{"shape 1d", v2Body(row, `[20]`, "FP64", ""), "", `input "x": expected shape [rows, 20], got [20]`},
		{"0 rows", v2Body(`[]`, `[0,20]`, "FP64", ""), "", `input "x": expected at least 1 row, got 0`},
		{"10001 rows", v2Body(`[]`, `[10001,20]`, "FP64", ""), "", `input "x": 10001 rows, at most 10000 allowed`},
		{"shm", `{"inputs":[{"name":"x","shape":[1,20],"datatype":"FP64","parameters":{"shared_memory_region":"r"}}]}`, "", `input "x": parameter "shared_memory_region" is not supported`},
		{"both", `{"inputs":[{"name":"x","shape":[1,20],"datatype":"FP64","data":[],"parameters":{"binary_data_size":160}}]}`, "", `input "x": give either data or parameters.binary_data_size, not both`},
		{"no data", `{"inputs":[{"name":"x","shape":[1,20],"datatype":"FP64"}]}`, "", `input "x": data: field required`},
		{"no header", `{"inputs":[{"name":"x","shape":[1,20],"datatype":"FP64","parameters":{"binary_data_size":160}}]}`, "", `input "x": parameters.binary_data_size needs the Inference-Header-Content-Length header`},
		{"data string", v2Body(`"1"`, `[1,20]`, "FP64", ""), "", `input "x": data: expected an array`},
		{"count", v2Body(row, `[2,20]`, "FP64", ""), "", `input "x": data has 20 values, shape [2, 20] needs 40`},
		{"string", v2Body(`[1,2,"3"`+strings.Repeat(",1", 17)+`]`, `[1,20]`, "FP64", ""), "", `input "x": row 0, feature 2: expected a number or null`},
		{"range before later string", v2Body(`[1e400,"3"`+strings.Repeat(",1", 18)+`]`, `[1,20]`, "FP64", ""), "", `input "x": row 0, feature 0: number out of range for FP64`},
		{"nested count", v2Body(`[[1,[2]],[]]`, `[1,20]`, "FP64", ""), "", `input "x": data has 2 values, shape [1, 20] needs 20`},
		{"FP32 range", v2Body(`[`+strings.Repeat("1,", 19)+`1e39]`, `[1,20]`, "FP32", ""), "", `input "x": row 0, feature 19: number out of range for FP32`},
		{"INT null", v2Body(`[null`+strings.Repeat(",1", 19)+`]`, `[1,20]`, "INT32", ""), "", `input "x": row 0, feature 0: expected an integer`},
		{"INT fraction", v2Body(`[`+strings.Repeat("1,", 20)+`300.5]`, `[1,21]`, "INT8", ""), "", `input "x": expected shape [rows, 20], got [1, 21]`},
		{"INT8 fraction over range", v2Body(`[300.5`+strings.Repeat(",1", 19)+`]`, `[1,20]`, "INT8", ""), "", `input "x": row 0, feature 0: expected an integer`},
		{"UINT8 negative", v2Body(`[1,-1`+strings.Repeat(",1", 18)+`]`, `[1,20]`, "UINT8", ""), "", `input "x": row 0, feature 1: number out of range for UINT8`},
		{"outputs", v2Body(row, `[1,20]`, "FP64", `,"outputs":{}`), "", "outputs: expected an array"},
		{"unknown output", v2Body(row, `[1,20]`, "FP64", `,"outputs":[{"name":"proba"}]`), "", `outputs[0]: unknown output "proba" (the model's output is "predict")`},
		{"second output", v2Body(row, `[1,20]`, "FP64", `,"outputs":[{"name":"predict"},3]`), "", `outputs[1]: expected an object`},
		{"binary_data", v2Body(row, `[1,20]`, "FP64", `,"outputs":[{"name":"predict","parameters":{"binary_data":"yes"}}]`), "", `output "predict": parameters.binary_data: expected true or false`},
		{"classification", v2Body(row, `[1,20]`, "FP64", `,"outputs":[{"name":"predict","parameters":{"classification":2}}]`), "", `output "predict": parameter "classification" is not supported`},
		{"header", v2Body(row, `[1,20]`, "FP64", ""), "+1", "Inference-Header-Content-Length: expected an integer from 0 to %d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r v2Request
			body := []byte(tt.body)
			var header []byte
			if tt.header != "" {
				header = []byte(tt.header)
			}
			err := parseV2(body, header, header != nil, 20, 10000, &r)
			if strings.Contains(tt.want, "%d") {
				tt.want = fmt.Sprintf(tt.want, len(body))
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if ce := err.(*contractError); ce.Status != 400 {
				t.Fatalf("status %d", ce.Status)
			}
		})
	}
}

func TestParseV2Values(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	nested := `[[1,null,` + strings.Repeat("0.5,", 17) + `-2],[` + strings.Repeat("[3],", 19) + `[4]]]`
	tests := []struct {
		name, body string
		rows       int
		first      []float64 // leading values (NaN for missing)
		binary     bool
	}{
		{"flat", v2Body(`[1,null,`+strings.Repeat("0.5,", 17)+`-2]`, `[1,20]`, "FP64", ""), 1, []float64{1, math.NaN(), 0.5}, false},
		{"nested any way", v2Body(nested, `[2,20]`, "FP64", `,"id":"a\"b"`), 2, []float64{1, math.NaN()}, false},
		{"FP32 rounds", v2Body(`[0.1`+strings.Repeat(",1", 19)+`]`, `[1,20]`, "FP32", ""), 1, []float64{float64(float32(0.1))}, false},
		{"INT64", v2Body(`[-3`+strings.Repeat(",1e2", 19)+`]`, `[1,20]`, "INT64", ""), 1, []float64{-3, 100}, false},
		{"64 levels", v2Body(`[1`+strings.Repeat(",1", 19)+`]`, `[1,20]`, "FP64", `,"parameters":{"d":`+deep(62)+`}`), 1, []float64{1}, false},
		{"binary output, escaped keys, last key wins", `{"p\u0061rameters":{"binary_data_output":false},"parameters":{"binary_data_output":true},` +
			`"inputs":[{"name":"x","shape":[1,20],"datatype":"FP64","data":[` + strings.Repeat("2,", 19) + `2]}]}`, 1, []float64{2}, true},
		{"output's binary_data wins", v2Body(`[`+strings.Repeat("2,", 19)+`2]`, `[1,20]`, "FP64", `,"parameters":{"binary_data_output":true},"outputs":[{"name":"predict","parameters":{"binary_data":false}}]`), 1, []float64{2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r v2Request
			if err := parseV2([]byte(tt.body), nil, false, 20, 10000, &r); err != nil {
				t.Fatal(err)
			}
			if r.rows != tt.rows || len(r.vals) != tt.rows*20 || r.binary != tt.binary {
				t.Fatalf("rows %d vals %d binary %t", r.rows, len(r.vals), r.binary)
			}
			for i, want := range tt.first {
				if got := r.vals[i]; !(got == want || math.IsNaN(got) && math.IsNaN(want)) {
					t.Errorf("vals[%d] = %v, want %v", i, got, want)
				}
			}
		})
	}
}

func binaryV2(t testing.TB, datatype string, values []float64, extra string) ([]byte, []byte) {
	t.Helper()
	var raw bytes.Buffer
	for _, v := range values {
		var err error
		switch datatype {
		case "FP64":
			err = binary.Write(&raw, binary.LittleEndian, v)
		case "FP32":
			err = binary.Write(&raw, binary.LittleEndian, float32(v))
		case "INT8":
			err = binary.Write(&raw, binary.LittleEndian, int8(v))
		case "UINT16":
			err = binary.Write(&raw, binary.LittleEndian, uint16(v))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	head := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[%d,20],"datatype":"%s","parameters":{"binary_data_size":%d}}]%s}`,
		len(values)/20, datatype, raw.Len(), extra)
	return append([]byte(head), raw.Bytes()...), []byte(fmt.Sprint(len(head)))
}

func TestParseV2Binary(t *testing.T) {
	values := make([]float64, 40)
	for i := range values {
		values[i] = float64(i%7) - 3
	}
	values[3] = math.NaN()
	for _, datatype := range []string{"FP64", "FP32", "INT8", "UINT16"} {
		t.Run(datatype, func(t *testing.T) {
			want := append([]float64(nil), values...)
			if datatype == "INT8" || datatype == "UINT16" {
				want[3] = 0
				for i := range want {
					want[i] = math.Abs(want[i])
				}
			}
			body, header := binaryV2(t, datatype, want, "")
			var r v2Request
			if err := parseV2(body, header, true, 20, 10000, &r); err != nil {
				t.Fatal(err)
			}
			for i, w := range want {
				if got := r.vals[i]; !(got == w || math.IsNaN(got) && math.IsNaN(w)) {
					t.Fatalf("vals[%d] = %v, want %v", i, got, w)
				}
			}
		})
	}
	inf := append([]float64(nil), values...)
	inf[25] = math.Inf(-1)
	body, header := binaryV2(t, "FP64", inf, "")
	var r v2Request
	if err := parseV2(body, header, true, 20, 10000, &r); err == nil || err.Error() != `input "x": row 1, feature 5: number out of range for FP64` {
		t.Fatalf("err %v", err)
	}
	if err := parseV2(body[:len(body)-8], header, true, 20, 10000, &r); err == nil || err.Error() != "binary data after the JSON header is 312 bytes, binary_data_size says 320" {
		t.Fatalf("err %v", err)
	}
}

// FuzzParseV2: never panics; every refusal is a 400 contractError.
func FuzzParseV2(f *testing.F) {
	f.Add([]byte(v2Body(row(3, "1"), `[1,3]`, "FP64", "")), false)
	f.Add([]byte(v2Body(`[[1],[null,[2]]]`, `[1,3]`, "FP32", `,"outputs":[{"name":"predict"}]`)), false)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT8","parameters":{"binary_data_size":3}}]}abc`), true)
	f.Fuzz(func(t *testing.T, body []byte, withHeader bool) {
		var r v2Request
		var header []byte
		if withHeader {
			header = []byte(fmt.Sprint(bytes.LastIndexByte(body, '}') + 1))
		}
		err := parseV2(body, header, withHeader, 3, 10, &r)
		if err != nil {
			if ce, ok := err.(*contractError); !ok || ce.Status != 400 {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(r.vals) != r.rows*3 || r.rows < 1 {
			t.Fatalf("rows %d vals %d", r.rows, len(r.vals))
		}
	})
}

func TestProjectVersion(t *testing.T) {
	raw, err := os.ReadFile("../pyproject.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^version = "([^"]+)"`).FindSubmatch(raw)
	if m == nil || string(m[1]) != projectVersion {
		t.Fatalf("pyproject.toml version %q, GET /v2 says %q", m, projectVersion)
	}
}

func TestV2HTTP(t *testing.T) {
	app, _ := newTestApp(t, "multiclass", Config{ModelName: "iris.v1"})
	get := func(path string) response { return do(t, app, "GET", path, "", nil) }
	for path, want := range map[string]string{
		"/v2":                            `{"name":"fiber","version":"` + projectVersion + `","extensions":["binary_tensor_data"]}`,
		"/v2/health/live":                `{"live":true}`,
		"/v2/health/ready":               `{"ready":true}`,
		"/v2/models/iris.v1":             `{"name":"iris.v1","versions":["1"],"platform":"lightgbm","inputs":[{"name":"input-0","datatype":"FP64","shape":[-1,20]}],"outputs":[{"name":"predict","datatype":"FP64","shape":[-1,3]}]}`,
		"/v2/models/iris.v1/versions/1":  `{"name":"iris.v1","versions":["1"],"platform":"lightgbm","inputs":[{"name":"input-0","datatype":"FP64","shape":[-1,20]}],"outputs":[{"name":"predict","datatype":"FP64","shape":[-1,3]}]}`,
		"/v2/models/iris.v1/ready":       `{"name":"iris.v1","ready":true}`,
		"/v2/models/model/ready":         `{"error":"model \"model\" not found (this server serves \"iris.v1\")"}`,
		"/v2/models/iris.v1/versions/2":  `{"error":"model \"iris.v1\" has no version \"2\" (its only version is \"1\")"}`,
		"/v2/models/iris.v1/infer":       `{"error":"method GET not allowed on /v2/models/iris.v1/infer"}`,
		"/v2/models/iris.v1/explanation": `{"error":"not found: /v2/models/iris.v1/explanation"}`,
	} {
		if r := get(path); string(r.body) != want {
			t.Errorf("GET %s: %d %s, want %s", path, r.status, r.body, want)
		} else if r.status == 405 && r.header.Get("Allow") != "POST" {
			t.Errorf("GET %s: Allow %q", path, r.header.Get("Allow"))
		}
	}
	r := do(t, app, "POST", "/v2/health/live", "", nil)
	if r.status != 405 || r.header.Get("Allow") != "GET" {
		t.Errorf("POST live: %d %s", r.status, r.header.Get("Allow"))
	}
}

// TestV2Parity: the golden rows as JSON (null = missing) and as binary data, to both inference
// paths, match LightGBM within 1e-9, for every objective.
func TestV2Parity(t *testing.T) {
	for _, name := range requiredModels {
		t.Run(name, func(t *testing.T) {
			_, g := loadGolden(t, name)
			app, _ := newTestApp(t, name)
			want := g.want(t)
			rows, _ := json.Marshal(g.Rows)
			shape := fmt.Sprintf("[%d,20]", len(g.Rows))
			jsonBody := v2Body(string(rows), shape, "FP64", `,"id":"golden"`)
			var out struct {
				ID      string `json:"id"`
				Outputs []struct {
					Name       string    `json:"name"`
					Shape      []int     `json:"shape"`
					Data       []float64 `json:"data"`
					Parameters struct {
						Size int `json:"binary_data_size"`
					} `json:"parameters"`
				} `json:"outputs"`
			}
			r := do(t, app, "POST", "/v2/models/model/infer", "", []byte(jsonBody))
			if r.status != 200 || json.Unmarshal(r.body, &out) != nil || out.ID != "golden" || len(out.Outputs) != 1 {
				t.Fatalf("%d %.300s", r.status, r.body)
			}
			if !serverTiming.MatchString(r.header.Get("Server-Timing")) {
				t.Errorf("Server-Timing %q", r.header.Get("Server-Timing"))
			}
			wantShape := []int{len(g.Rows)}
			if g.NumClass > 1 {
				wantShape = append(wantShape, g.NumClass)
			}
			if fmt.Sprint(out.Outputs[0].Shape) != fmt.Sprint(wantShape) || out.Outputs[0].Name != "predict" {
				t.Fatalf("output %+v", out.Outputs[0])
			}
			checkParity(t, out.Outputs[0].Data, want, g.NumClass)

			body, header := binaryV2(t, "FP64", g.flatRows(), `,"parameters":{"binary_data_output":true}`)
			req := httptest.NewRequest("POST", "/v2/models/model/versions/1/infer", bytes.NewReader(body))
			req.Header.Set(v2HeaderLength, string(header))
			resp, err := app.Test(req, fiber.TestConfig{Timeout: 0})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var raw bytes.Buffer
			_, _ = raw.ReadFrom(resp.Body)
			var n int
			if _, err := fmt.Sscan(resp.Header.Get(v2HeaderLength), &n); err != nil || resp.StatusCode != 200 ||
				resp.Header.Get("Content-Type") != v2BinaryContentType || json.Unmarshal(raw.Bytes()[:n], &out) != nil {
				t.Fatalf("%d %q %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), raw.Bytes())
			}
			data := raw.Bytes()[n:]
			if out.Outputs[0].Parameters.Size != len(data) || len(data) != 8*len(want) {
				t.Fatalf("binary_data_size %d, %d bytes", out.Outputs[0].Parameters.Size, len(data))
			}
			got := make([]float64, len(want))
			for i := range got {
				got[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
			}
			checkParity(t, got, want, g.NumClass)
		})
	}
}

var v2BenchBody = []byte(`{"id":"1","inputs":[{"name":"input-0","shape":[1,20],"datatype":"FP64","data":[0.4967141530112327, -0.13826430117118466, 0.6476885381006925, 1.5230298564080254, -0.23415337472333597, -0.23413695694918055, 1.5792128155073915, 0.7674347291529088, -0.4694743859349521, 0.5425600435859647, -0.46341769281246226, -0.46572975357025687, 0.24196227156603412, -1.913280244657798, -1.7249178325130328, -0.5622875292409727, -1.0128311203344238, 0.3142473325952739, -0.9080240755212109, null]}],"parameters":{"binary_data_output":false}}`)

// BenchmarkV2Parse compares the hand-written V2 reader with encoding/json (a struct with
// []*float64 data, so null is told apart) on a one-row, 20-feature request.
func BenchmarkV2Parse(b *testing.B) {
	b.Run("handwritten", func(b *testing.B) {
		var r v2Request
		b.ReportAllocs()
		for b.Loop() {
			if err := parseV2(v2BenchBody, nil, false, 20, 10000, &r); err != nil || len(r.vals) != 20 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		vals := make([]float64, 0, 20)
		for b.Loop() {
			var req struct {
				ID         string `json:"id"`
				Parameters map[string]any
				Inputs     []struct {
					Name     string     `json:"name"`
					Shape    []int      `json:"shape"`
					Datatype string     `json:"datatype"`
					Data     []*float64 `json:"data"`
				} `json:"inputs"`
			}
			if err := json.Unmarshal(v2BenchBody, &req); err != nil || len(req.Inputs[0].Data) != 20 {
				b.Fatal(err)
			}
			vals = vals[:0]
			for _, v := range req.Inputs[0].Data {
				if v == nil {
					vals = append(vals, math.NaN())
				} else {
					vals = append(vals, *v)
				}
			}
		}
	})
}

// BenchmarkV2Inference: the whole V2 handler in process (routing, parse, predict, serialise),
// beside BenchmarkInference's contract handler.
func BenchmarkV2Inference(b *testing.B) {
	app, _ := newTestApp(b, "regression")
	handler := app.Handler()
	c := &fasthttp.RequestCtx{}
	c.Request.Header.SetMethod(fiber.MethodPost)
	c.Request.SetRequestURI("/v2/models/model/infer")
	c.Request.SetBody(v2BenchBody)
	b.ReportAllocs()
	for b.Loop() {
		c.Response.Reset()
		handler(c)
		if c.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", c.Response.StatusCode(), c.Response.Body())
		}
	}
}

func TestModelNameFlag(t *testing.T) {
	t.Setenv(modelEnv, "m.txt")
	t.Setenv(v2ModelNameEnv, "")
	if cfg, err := parseFlags(nil); err != nil || cfg.ModelName != "model" {
		t.Fatalf("default: %+v %v", cfg.ModelName, err)
	}
	t.Setenv(v2ModelNameEnv, "from-env")
	if cfg, err := parseFlags(nil); err != nil || cfg.ModelName != "from-env" {
		t.Fatalf("env: %q %v", cfg.ModelName, err)
	}
	if cfg, err := parseFlags([]string{"-model-name", "iris.v1"}); err != nil || cfg.ModelName != "iris.v1" {
		t.Fatalf("flag: %q %v", cfg.ModelName, err)
	}
	for _, bad := range []string{"a/b", "-a", "a b", "é"} {
		if _, err := parseFlags([]string{"-model-name", bad}); err == nil {
			t.Errorf("-model-name %q accepted", bad)
		}
	}
}
