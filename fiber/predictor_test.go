package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmitryikh/leaves"
)

const modelsDir = "../models"

// The fixtures every run must have: a missing one is a failure, never a skip.
var requiredModels = []string{"regression", "binary", "multiclass"}

type golden struct {
	Model       string            `json:"model"`
	Objective   string            `json:"objective"`
	NumFeatures int               `json:"num_features"`
	NumClass    int               `json:"num_class"`
	Rows        [][]*float64      `json:"rows"`
	Predictions []json.RawMessage `json:"predictions"`
}

func (g *golden) flatRows() []float64 {
	vals := make([]float64, 0, len(g.Rows)*g.NumFeatures)
	for _, row := range g.Rows {
		for _, v := range row {
			if v == nil {
				vals = append(vals, math.NaN())
			} else {
				vals = append(vals, *v)
			}
		}
	}
	return vals
}

// want returns LightGBM's outputs row-major (K per row).
func (g *golden) want(t testing.TB) []float64 {
	t.Helper()
	out := make([]float64, 0, len(g.Predictions)*g.NumClass)
	for i, raw := range g.Predictions {
		if g.NumClass == 1 {
			var v float64
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatalf("prediction %d: %v", i, err)
			}
			out = append(out, v)
			continue
		}
		var vs []float64
		if err := json.Unmarshal(raw, &vs); err != nil || len(vs) != g.NumClass {
			t.Fatalf("prediction %d: %v (%d values)", i, err, len(vs))
		}
		out = append(out, vs...)
	}
	return out
}

func loadGolden(t testing.TB, name string) (modelPath string, g *golden) {
	t.Helper()
	modelPath = filepath.Join(modelsDir, name, "model.txt")
	raw, err := os.ReadFile(filepath.Join(modelsDir, name, "golden.json"))
	if err != nil {
		t.Fatalf("golden fixture missing (make it with `fiber-endpoints train`): %v", err)
	}
	if _, err := os.Stat(modelPath); err != nil {
		t.Fatalf("model missing beside its golden fixture: %v", err)
	}
	g = &golden{}
	if err := json.Unmarshal(raw, g); err != nil {
		t.Fatalf("%s golden.json: %v", name, err)
	}
	return modelPath, g
}

// goldenModels is every models/<name>/ holding a golden.json, plus the required ones.
func goldenModels(t *testing.T) []string {
	t.Helper()
	names := append([]string(nil), requiredModels...)
	found, _ := filepath.Glob(filepath.Join(modelsDir, "*", "golden.json"))
	for _, f := range found {
		name := filepath.Base(filepath.Dir(f))
		if !strings.Contains(strings.Join(names, "\x00")+"\x00", name+"\x00") {
			names = append(names, name)
		}
	}
	return names
}

func withinTolerance(got, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func checkParity(t *testing.T, got, want []float64, k int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d outputs, want %d", len(got), len(want))
	}
	bad, worst := 0, 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(got[i]-want[i]))
		if !withinTolerance(got[i], want[i]) {
			bad++
			if bad <= 5 {
				t.Errorf("row %d output %d: got %.17g, LightGBM says %.17g", i/k, i%k, got[i], want[i])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d outputs differ from LightGBM beyond 1e-9", bad, len(want))
	}
	t.Logf("%d outputs, largest absolute difference from LightGBM %.3g", len(want), worst)
}

// TestGoldenParity: every golden row (with nulls, zeros, ±1e6) within 1e-9 of LightGBM's own
// Booster.predict, one row at a time and as one batch (several goroutines), for the
// regression, binary and multiclass models LightGBM 4 wrote as version=v4.
func TestGoldenParity(t *testing.T) {
	for _, name := range goldenModels(t) {
		t.Run(name, func(t *testing.T) {
			path, g := loadGolden(t, name)
			p, err := LoadPredictor(path, 2)
			if err != nil {
				t.Fatal(err)
			}
			if p.NumFeatures() != g.NumFeatures || p.NumClass() != g.NumClass {
				t.Fatalf("shape: N=%d K=%d, golden says N=%d K=%d", p.NumFeatures(), p.NumClass(), g.NumFeatures, g.NumClass)
			}
			vals, want := g.flatRows(), g.want(t)
			nulls := 0
			for _, v := range vals {
				if math.IsNaN(v) {
					nulls++
				}
			}
			if nulls == 0 {
				t.Fatal("golden rows have no nulls: missing-value routing is untested")
			}
			n, k, rows := g.NumFeatures, g.NumClass, len(g.Rows)

			single := make([]float64, rows*k)
			for r := range rows {
				if err := p.Predict(vals[r*n:(r+1)*n], 1, single[r*k:(r+1)*k]); err != nil {
					t.Fatal(err)
				}
			}
			checkParity(t, single, want, k)

			batch := make([]float64, rows*k)
			if err := p.Predict(vals, rows, batch); err != nil {
				t.Fatal(err)
			}
			checkParity(t, batch, want, k)
		})
	}
}

// TestLeavesRefusesV4 shows why the in-memory header is needed at all.
func TestLeavesRefusesV4(t *testing.T) {
	path, _ := loadGolden(t, "binary")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(text, []byte("\nversion=v4\n")) {
		t.Fatal("fixture is not a v4 model: this test must see what LightGBM >= 4 writes")
	}
	if _, err := leaves.LGEnsembleFromFile(path, true); err == nil {
		t.Fatal("leaves read a v4 model directly: the header shim may be unnecessary now")
	}
	if _, err := LoadPredictor(path, 1); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(text, after) {
		t.Fatal("loading changed the model file")
	}
}

// TestRefusedModels: what leaves would compute wrongly is refused with a clear error.
func TestRefusedModels(t *testing.T) {
	path, _ := loadGolden(t, "binary")
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(base)
	tests := []struct {
		name, old, new, want string
	}{
		{"linear tree", "\nis_linear=0\n", "\nis_linear=1\n", "linear tree"},
		{"categorical split", "\nnum_cat=0\n", "\nnum_cat=1\n", "categorical"},
		{"unknown version", "\nversion=v4\n", "\nversion=v5\n", `"v5"`},
		{"no version", "\nversion=v4\n", "\n", `""`},
		{"sigmoid not 1", "objective=binary sigmoid:1", "objective=binary sigmoid:2", "binary sigmoid:2"},
		{"sqrt regression", "objective=binary sigmoid:1", "objective=regression sqrt", "squares"},
		{"multiclassova", "objective=binary sigmoid:1", "objective=multiclassova num_class:1 sigmoid:1", "multiclassova"},
		{"cross entropy", "objective=binary sigmoid:1", "objective=cross_entropy", "cross_entropy"},
		{"random forest binary", "\nobjective=binary sigmoid:1\n", "\nobjective=binary sigmoid:1\naverage_output\n", "random forest"},
		{"not a model", "tree\n", "booster\n", "tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(text, tt.old) {
				t.Fatalf("fixture lacks %q", tt.old)
			}
			_, err := NewPredictor([]byte(strings.Replace(text, tt.old, tt.new, 1)), 1)
			if !errors.Is(err, ErrUnsupportedModel) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrUnsupportedModel mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := NewPredictor([]byte("no header here"), 1); err == nil {
		t.Fatal("garbage loaded")
	}
}

// TestPredictRejectsWrongLength: the predictor itself refuses rows leaves would score as 0.
func TestPredictRejectsWrongLength(t *testing.T) {
	path, g := loadGolden(t, "binary")
	p, err := LoadPredictor(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, 1)
	for _, n := range []int{0, g.NumFeatures - 1, g.NumFeatures + 1} {
		if err := p.Predict(make([]float64, n), 1, out); err == nil {
			t.Errorf("%d values for %d features: no error", n, g.NumFeatures)
		}
	}
}
