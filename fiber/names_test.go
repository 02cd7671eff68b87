package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// parseNamed reads a body and resolves its names against names, as the handler does.
func parseNamed(body string, batch bool, names ...string) (*rowsRequest, error) {
	req := &rowsRequest{}
	f := newFeatureIndex(names)
	if _, err := parseRequest([]byte(body), batch, len(names), req, nil); err != nil {
		return req, err
	}
	if batch && req.rows == 0 {
		return req, errEmptyBatch
	}
	if batch && req.rows > 10000 {
		return req, batchTooLarge(req.rows, 10000)
	}
	if !req.named {
		return req, nil
	}
	return req, f.resolve(req, batch)
}

// TestNamedRefusals mirrors tests/unit/test_rows.py's CASES: the same bodies, the same
// messages, in the contract's order.
func TestNamedRefusals(t *testing.T) {
	many := `{"data": [` + strings.TrimSuffix(strings.Repeat(`{"q": 1}, `, 10001), ", ") + `]}`
	tests := []struct {
		name, body string
		batch      bool
		want       string
	}{
		{"unknown", `{"data": {"a": 1, "b": 2, "c": 3, "d": 4}}`, false, `data: unknown features: "d"`},
		{"missing", `{"data": {"c": 1}}`, false, `data: missing features: "a", "b"`},
		{"both", `{"data": {"z": 1, "c": 2, "y": 3}}`, false, `data: unknown features: "z", "y"; missing features: "a", "b"`},
		{"empty object", `{"data": {}}`, false, `data: missing features: "a", "b", "c"`},
		{"duplicate", `{"data": {"a": 1, "b": 2, "a": 1, "c": 3}}`, false, `data: duplicate feature "a"`},
		{"duplicate before unknown", `{"data": {"x": 1, "x": 2}}`, false, `data: duplicate feature "x"`},
		{"duplicate escaped", `{"data": {"a": 1, "\u0061": 2}}`, false, `data: duplicate feature "a"`},
		{"string", `{"data": {"a": "1", "b": 2, "c": 3}}`, false, `data["a"]: expected a number or null`},
		{"bool", `{"data": {"a": 1, "b": true, "c": 3}}`, false, `data["b"]: expected a number or null`},
		{"out of range", `{"data": {"a": 1, "b": 2, "c": 1e400}}`, false, `data["c"]: number out of range`},
		{"value before names", `{"data": {"zz": 1, "b": []}}`, false, `data["b"]: expected a number or null`},
		{"value of duplicate", `{"data": {"a": "x", "a": 1}}`, false, `data["a"]: expected a number or null`},
		{"NaN token", `{"data": {"a": NaN}}`, false, "malformed JSON body"},
		{"syntax after", `{"data": {"zz": 1}, }`, false, "malformed JSON body"},
		{"data string", `{"data": "a=1"}`, false, "data: expected an array of 3 numbers"},
		{"batch object", `{"data": {"a": 1}}`, true, "data: expected an array of rows (arrays of numbers)"},
		{"batch mixed", `{"data": [{"a": 1, "b": 2, "c": 3}, [1, 2, 3]]}`, true, "data[1]: rows must all be arrays or all be objects (data[0] is an object)"},
		{"batch mixed array first", `{"data": [[1, 2, 3], {"a": 1}]}`, true, "data[1]: rows must all be arrays or all be objects (data[0] is an array)"},
		{"batch value before mixed", `{"data": [["x"], {"a": 1}]}`, true, "data[0][0]: expected a number or null"},
		{"batch number row", `{"data": [{"a": 1}, 5]}`, true, "data: expected an array of rows (arrays of numbers)"},
		{"batch named value", `{"data": [{"a": 1, "b": 2, "c": 3}, {"a": null, "b": "x"}]}`, true, `data[1]["b"]: expected a number or null`},
		{"batch value before names", `{"data": [{"q": 1}, {"a": false}]}`, true, `data[1]["a"]: expected a number or null`},
		{"batch names", `{"data": [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}]}`, true, `data[1]: missing features: "c"`},
		{"batch empty object", `{"data": [{}]}`, true, `data[0]: missing features: "a", "b", "c"`},
		{"batch count before names", many, true, "data: batch has 10001 rows, at most 10000 allowed"},
		{"lone surrogate is U+FFFD", `{"data": {"\ud800x": 1, "\ud83d\ude00": 2}}`, false, "data: unknown features: \"\ufffdx\", \"\U0001f600\"; missing features: \"a\", \"b\", \"c\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseNamed(tt.body, tt.batch, "a", "b", "c")
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNamedRowsInModelOrder(t *testing.T) {
	req, err := parseNamed(`{"data": {"c": 3, "a": 1.5, "b": null}}`, false, "a", "b", "c")
	if err != nil || len(req.vals) != 3 || req.vals[0] != 1.5 || !math.IsNaN(req.vals[1]) || req.vals[2] != 3 {
		t.Fatalf("%v %v", req.vals, err)
	}
	req, err = parseNamed(`{"data": [{"b": 2, "c": 3, "a": 1}, {"a": -1, "c": 1e-300, "b": 0}]}`, true, "a", "b", "c")
	if err != nil || !equalFloats(req.vals, []float64{1, 2, 3, -1, 0, 1e-300}) {
		t.Fatalf("%v %v", req.vals, err)
	}
	// The pooled request is reused: a second body starts from nothing.
	if _, err := parseRequest([]byte(`{"data": [1, 2]}`), false, 3, req, nil); err != nil || req.named || len(req.vals) != 2 {
		t.Fatalf("reused request: %v named=%t vals=%v", err, req.named, req.vals)
	}
	// Escaped and unicode names compare as decoded, exactly.
	req, err = parseNamed(`{"data": {"temp\u00e9rature": 1, "Ω": 2, "tab\\t": 3}}`, false, "température", "Ω", `tab\t`)
	if err != nil || !equalFloats(req.vals, []float64{1, 2, 3}) {
		t.Fatalf("%v %v", req.vals, err)
	}
}

func TestNamedMessages(t *testing.T) {
	many := []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	if got := unknownOrMissing("data[2]", many, nil).Message; got != `data[2]: unknown features: "n0", "n1", "n2", "n3", "n4" and 3 more` {
		t.Fatal(got)
	}
}

// TestWideModelByName: 200 names, shuffled.
func TestWideModelByName(t *testing.T) {
	names := make([]string, 200)
	obj := map[string]float64{}
	for i := range names {
		names[i] = "f" + strconv.Itoa(i)
		obj[names[i]] = float64(i)
	}
	body, _ := json.Marshal(map[string]any{"data": obj}) // sorted keys: not the model's order
	req, err := parseNamed(string(body), false, names...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range req.vals {
		if v != float64(i) {
			t.Fatalf("vals[%d] = %v", i, v)
		}
	}
}

func TestFeatureNamesFromModels(t *testing.T) {
	for _, name := range requiredModels {
		p, err := LoadPredictor(filepath.Join(modelsDir, name, "model.txt"), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.features.names) != 20 || p.features.names[0] != "Column_0" || p.features.names[19] != "Column_19" {
			t.Fatalf("%s: %v", name, p.features.names)
		}
	}
	names, ok := featureNames([]byte("tree\nversion=v4\nfeature_names=températ  x.y Ω\\n\r\nfeature_infos=none\n"))
	if !ok || strings.Join(names, "|") != `températ|x.y|Ω\n` {
		t.Fatalf("%q %t", names, ok)
	}
	text, err := os.ReadFile(filepath.Join(modelsDir, "regression", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	noNames := strings.Replace(string(text), "feature_names=", "feature_namez=", 1)
	if _, err := NewPredictor([]byte(noNames), 1); err == nil {
		t.Fatal("a model without feature_names= loaded")
	}
}

// TestHTTPParityByName: the golden rows sent by name, keys shuffled, give LightGBM's numbers.
func TestHTTPParityByName(t *testing.T) {
	for _, name := range requiredModels {
		t.Run(name, func(t *testing.T) {
			_, g := loadGolden(t, name)
			app, p := newTestApp(t, name)
			rng := rand.New(rand.NewPCG(1, 2))
			objects := make([]string, len(g.Rows))
			for i, rw := range g.Rows {
				parts := make([]string, len(rw))
				for j, v := range rw {
					value := "null"
					if v != nil {
						value = strconv.FormatFloat(*v, 'g', -1, 64)
					}
					parts[j] = strconv.Quote(p.features.names[j]) + ":" + value
				}
				rng.Shuffle(len(parts), func(a, b int) { parts[a], parts[b] = parts[b], parts[a] })
				objects[i] = "{" + strings.Join(parts, ",") + "}"
			}
			r := do(t, app, "POST", "/inference/batch", "application/json", []byte(`{"data":[`+strings.Join(objects, ",")+`]}`))
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
			checkParity(t, g2.want(t), g.want(t), g.NumClass)
			for i := range 3 {
				r := do(t, app, "POST", "/inference", "application/json", []byte(`{"data":`+objects[i]+`}`))
				var one struct {
					Prediction json.RawMessage `json:"prediction"`
				}
				if r.status != 200 || json.Unmarshal(r.body, &one) != nil {
					t.Fatalf("row %d: %d %s", i, r.status, r.body)
				}
				g2.Predictions = []json.RawMessage{one.Prediction}
				checkParity(t, g2.want(t), g.want(t)[i*g.NumClass:(i+1)*g.NumClass], g.NumClass)
			}
		})
	}
}

func equalFloats(a, b []float64) bool {
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
