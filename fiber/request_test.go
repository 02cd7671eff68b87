package main

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"unicode/utf8"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name, body string
		batch      bool
		vals       []float64 // NaN for null
		rowLens    []int
		err        string
	}{
		{"numbers and null", `{"data":[1, -2.5e3, 0, null, 1e-400, -0]}`, false, []float64{1, -2500, 0, math.NaN(), 0, 0}, []int{6}, ""},
		{"max float", `{"data":[1.7976931348623157e308]}`, false, []float64{math.MaxFloat64}, []int{1}, ""},
		{"batch", `{"data":[[1,2],[null],[]]}`, true, []float64{1, 2, math.NaN()}, []int{2, 1, 0}, ""},
		{"other keys first", `{"a":[{"b":null}],"data":[3]}`, false, []float64{3}, []int{1}, ""},
		{"last data wins", `{"data":[1,2],"data":[3]}`, false, []float64{3}, []int{1}, ""},
		{"first shape error wins", `{"data":["a", true]}`, false, nil, nil, "data[0]: expected a number or null"},
		{"syntax after shape error", `{"data":["a"], "x": tru}`, false, nil, nil, "malformed JSON body"},
		{"missing", `{}`, false, nil, nil, "data: field required"},
		{"batch row not array", `{"data":[[1],2]}`, true, nil, nil, "data: expected an array of rows (arrays of numbers)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req rowsRequest
			_, err := parseRequest([]byte(tt.body), tt.batch, 20, &req, nil)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(req.vals) != len(tt.vals) || len(req.rowLens) != len(tt.rowLens) {
				t.Fatalf("vals %v rowLens %v", req.vals, req.rowLens)
			}
			for i, v := range tt.vals {
				got := req.vals[i]
				if !(got == v || (math.IsNaN(v) && math.IsNaN(got))) {
					t.Errorf("vals[%d] = %v, want %v", i, got, v)
				}
			}
			for i, n := range tt.rowLens {
				if req.rowLens[i] != n {
					t.Errorf("rowLens[%d] = %d, want %d", i, req.rowLens[i], n)
				}
			}
		})
	}
}

// FuzzParseRequest: the hand-written reader agrees with encoding/json on what is valid JSON,
// and never panics.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"data":{"a":1,"\u0062":null,"a":2}}`, `{"data":[{"\ud800":-0},{}]}`, `{"data":[{"x":[]},[1]]}`, `{"data":[1,null]}`, `{"data":[[1],[2]]}`, `{"data":[1],"data":[2,3]}`, `{"d\u0061ta":[-0.0,1e-320,5e-324]}`, `[`, `{"a":"\u00e9"}`, `{"data":1e400}`, `{"x":{"y":[]}}`} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		var req rowsRequest
		_, err := parseRequest(body, batch, 3, &req, nil)
		malformed := err == errMalformedJSON
		if !utf8.Valid(body) {
			return // stricter on purpose: encoding/json accepts invalid UTF-8 in strings
		}
		if json.Valid(body) == malformed {
			t.Fatalf("json.Valid=%t but parser malformed=%t for %q", json.Valid(body), malformed, body)
		}
		if err != nil {
			return
		}
		if req.named {
			checkNamedReading(t, body, batch, &req)
			return
		}
		// Accepted: the values read must be encoding/json's, bit for bit (null as NaN), and the
		// rows the same lengths.
		vals, rowLens, ok := referenceRows(body, batch)
		if !ok {
			t.Fatalf("parser accepted %q but encoding/json cannot read its data", body)
		}
		if len(vals) != len(req.vals) || (batch && !equalInts(rowLens, req.rowLens)) {
			t.Fatalf("%q: parser read %v (rows %v), encoding/json %v (rows %v)", body, req.vals, req.rowLens, vals, rowLens)
		}
		for i, v := range vals {
			if math.Float64bits(v) != math.Float64bits(req.vals[i]) && !(math.IsNaN(v) && math.IsNaN(req.vals[i])) {
				t.Fatalf("%q: value %d: parser %v, encoding/json %v", body, i, req.vals[i], v)
			}
		}
	})
}

// checkNamedReading: rows given by name must be read as encoding/json reads them, key by key
// in document order (duplicates kept): each name as it decodes (escapes, lone surrogates),
// each value bit for bit (null as NaN), each row's key count.
func checkNamedReading(t *testing.T, body []byte, batch bool, req *rowsRequest) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("parser accepted %q: %v", body, err)
	}
	var objects []json.RawMessage
	if !batch {
		objects = []json.RawMessage{top["data"]}
	} else if err := json.Unmarshal(top["data"], &objects); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	var keys []string
	var vals []float64
	var lens []int
	for _, raw := range objects {
		dec := json.NewDecoder(bytes.NewReader(raw))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("%q: row %s is not an object", body, raw)
		}
		n := 0
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			var v *float64
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%q: key %v: %v", body, tok, err)
			}
			keys = append(keys, tok.(string))
			if v == nil {
				vals = append(vals, math.NaN())
			} else {
				vals = append(vals, *v)
			}
			n++
		}
		lens = append(lens, n)
	}
	if len(keys) != len(req.keys) || !equalInts(lens, req.rowLens) {
		t.Fatalf("%q: parser read %d keys (rows %v), encoding/json %d (rows %v)", body, len(req.keys), req.rowLens, len(keys), lens)
	}
	for i, key := range keys {
		got := req.keyVals[i]
		if req.keys[i].name() != key || (math.Float64bits(vals[i]) != math.Float64bits(got) && !(math.IsNaN(vals[i]) && math.IsNaN(got))) {
			t.Fatalf("%q: key %d: parser %q=%v, encoding/json %q=%v", body, i, req.keys[i].name(), got, key, vals[i])
		}
	}
}

// referenceRows reads a body's "data" with encoding/json (the last of duplicate keys, as
// encoding/json and Python's json keep): values row after row, NaN for null, and row lengths.
func referenceRows(body []byte, batch bool) ([]float64, []int, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, nil, false
	}
	raw, found := top["data"]
	if !found {
		return nil, nil, false
	}
	var rows [][]*float64
	if batch {
		if err := json.Unmarshal(raw, &rows); err != nil {
			return nil, nil, false
		}
	} else {
		var row []*float64
		if err := json.Unmarshal(raw, &row); err != nil {
			return nil, nil, false
		}
		rows = [][]*float64{row}
	}
	var vals []float64
	var lens []int
	for _, row := range rows {
		lens = append(lens, len(row))
		for _, v := range row {
			if v == nil {
				vals = append(vals, math.NaN())
			} else {
				vals = append(vals, *v)
			}
		}
	}
	return vals, lens, true
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var benchBody = []byte(`{"data": [0.4967141530112327, -0.13826430117118466, 0.6476885381006925, 1.5230298564080254, -0.23415337472333597, -0.23413695694918055, 1.5792128155073915, 0.7674347291529088, -0.4694743859349521, 0.5425600435859647, -0.46341769281246226, -0.46572975357025687, 0.24196227156603412, -1.913280244657798, -1.7249178325130328, -0.5622875292409727, -1.0128311203344238, 0.3142473325952739, -0.9080240755212109, null]}`)

// BenchmarkParse compares the hand-written reader with encoding/json (the usual way: a struct
// with []*float64, so null is told apart from numbers) on a 20-feature body.
func BenchmarkParse(b *testing.B) {
	b.Run("handwritten", func(b *testing.B) {
		var req rowsRequest
		var stack []byte
		b.ReportAllocs()
		for b.Loop() {
			var err error
			stack, err = parseRequest(benchBody, false, 20, &req, stack)
			if err != nil || len(req.vals) != 20 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		vals := make([]float64, 0, 20)
		for b.Loop() {
			var req struct {
				Data []*float64 `json:"data"`
			}
			if err := json.Unmarshal(benchBody, &req); err != nil || len(req.Data) != 20 {
				b.Fatal(err)
			}
			vals = vals[:0]
			for _, v := range req.Data {
				if v == nil {
					vals = append(vals, math.NaN())
				} else {
					vals = append(vals, *v)
				}
			}
		}
	})
}
