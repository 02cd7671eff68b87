package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/dmitryikh/leaves"
)

// ErrUnsupportedModel is wrapped by every refusal of a model that leaves cannot compute exactly
// as LightGBM does. A refused model never serves: better no server than wrong numbers.
var ErrUnsupportedModel = errors.New("unsupported model")

// Predictor is a LightGBM model loaded with leaves, with the shape facts the contract needs.
// It is safe for concurrent use: leaves' ensemble is read-only after loading.
type Predictor struct {
	ensemble    *leaves.Ensemble
	numFeatures int          // N, from max_feature_idx
	numClass    int          // K, outputs per row (1 for regression and binary)
	features    featureIndex // the feature_names= line: what requests by name may use
	threads     int          // goroutines for a batch (leaves' PredictDense nThreads)
}

// NumFeatures is the model's feature count N.
func (p *Predictor) NumFeatures() int { return p.numFeatures }

// NumClass is the number of outputs per row K.
func (p *Predictor) NumClass() int { return p.numClass }

// LoadPredictor reads a LightGBM text model. threads sizes batch prediction; <1 means 1.
func LoadPredictor(path string, threads int) (*Predictor, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	p, err := NewPredictor(text, threads)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// NewPredictor loads a LightGBM text model from memory (see compatibleModel for what is refused).
func NewPredictor(text []byte, threads int) (*Predictor, error) {
	header, rest, err := compatibleModel(text)
	if err != nil {
		return nil, err
	}
	// loadTransformation=true: sigmoid for binary and softmax for multiclass, as LightGBM's
	// Booster.predict does by default.
	reader := bufio.NewReader(io.MultiReader(bytes.NewReader(header), bytes.NewReader(rest)))
	ensemble, err := leaves.LGEnsembleFromReader(reader, true)
	if err != nil {
		return nil, fmt.Errorf("leaves: %w", err)
	}
	if threads < 1 {
		threads = 1
	}
	names, found := featureNames(header)
	if !found || len(names) != ensemble.NFeatures() {
		return nil, fmt.Errorf("%w: feature_names= line has %d names for %d features", ErrUnsupportedModel, len(names), ensemble.NFeatures())
	}
	return &Predictor{
		ensemble:    ensemble,
		numFeatures: ensemble.NFeatures(),
		numClass:    ensemble.NOutputGroups(),
		features:    newFeatureIndex(names),
		threads:     threads,
	}, nil
}

// compatibleModel checks a LightGBM text model for everything leaves would get silently wrong
// and returns its header as leaves can read it, plus the untouched rest of the text.
//
// LightGBM >= 4 writes version=v4; leaves (2023) accepts only v2 and v3 and reads nothing that
// v3 or v4 added. What a v4 text file can hold that leaves would compute wrongly:
//   - linear trees (is_linear=1: leaf_const/leaf_coeff/leaf_features): leaves uses only
//     leaf_value, so each leaf's linear model would be ignored;
//   - categorical splits (num_cat>0): leaves casts a NaN value to int32 before checking for
//     NaN (LightGBM maps NaN to category 0), so missing categorical values can go the other way;
//   - objectives whose output transform leaves does not apply, or applies differently:
//     "regression sqrt" (LightGBM squares the output), sigmoid:k with k != 1, multiclassova,
//     cross_entropy, ranking, ... (leaves refuses most of these itself; sqrt it would not);
//   - random forest (average_output) with a non-identity objective: leaves skips the transform.
//
// Everything else in the text (split_gain, leaf_weight, leaf_count, internal_*, shrinkage,
// is_linear=0, feature_infos, the parameters block) does not change predictions: the leaf
// values already include shrinkage. So the only change is the version line that leaves
// reads, made in memory: the model file on disk is never rewritten.
func compatibleModel(text []byte) (header, rest []byte, err error) {
	text = bytes.TrimLeft(text, "\r\n")
	end := bytes.Index(text, []byte("\n\n"))
	if end < 0 {
		return nil, nil, fmt.Errorf("%w: no header/tree separator (not a LightGBM text model)", ErrUnsupportedModel)
	}
	header, rest = text[:end+1], text[end+1:]
	lines := strings.Split(strings.TrimRight(string(header), "\n"), "\n")
	if strings.TrimSpace(lines[0]) != "tree" {
		return nil, nil, fmt.Errorf("%w: first line %q, expected \"tree\" (a LightGBM text model)", ErrUnsupportedModel, lines[0])
	}
	params := map[string]string{}
	for _, line := range lines[1:] {
		key, value, _ := strings.Cut(strings.TrimSpace(line), "=")
		params[key] = value
	}
	version := params["version"]
	switch version {
	case "v2", "v3":
	case "v4":
		header = bytes.Replace(header, []byte("\nversion=v4\n"), []byte("\nversion=v3\n"), 1)
	default:
		return nil, nil, fmt.Errorf("%w: model format version %q (v2, v3 and v4 are supported)", ErrUnsupportedModel, version)
	}
	objective := params["objective"]
	if err := checkObjective(objective, params); err != nil {
		return nil, nil, err
	}
	if _, rf := params["average_output"]; rf && !strings.HasPrefix(objective, "regression") {
		return nil, nil, fmt.Errorf("%w: random forest with objective %q (leaves would skip its output transform)", ErrUnsupportedModel, objective)
	}
	// Trees end at "end of trees"; each is a block of key=value lines.
	trees := rest
	if i := bytes.Index(trees, []byte("\nend of trees")); i >= 0 {
		trees = trees[:i]
	}
	tree := -1
	for line := range strings.SplitSeq(string(trees), "\n") {
		key, value, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch key {
		case "Tree":
			tree, _ = strconv.Atoi(value)
		case "is_linear":
			if value != "0" {
				return nil, nil, fmt.Errorf("%w: tree %d is a linear tree (is_linear=%s); leaves ignores leaf linear models", ErrUnsupportedModel, tree, value)
			}
		case "num_cat":
			if value != "0" {
				return nil, nil, fmt.Errorf("%w: tree %d has categorical splits (num_cat=%s); leaves routes missing categorical values differently from LightGBM", ErrUnsupportedModel, tree, value)
			}
		}
	}
	return header, rest, nil
}

func checkObjective(objective string, params map[string]string) error {
	fields := strings.Fields(objective)
	if len(fields) == 0 {
		return fmt.Errorf("%w: no objective in the model header", ErrUnsupportedModel)
	}
	name := fields[0]
	switch {
	case name == "regression" || name == "regression_l1" || name == "regression_l2":
		for _, f := range fields[1:] {
			if f == "sqrt" {
				return fmt.Errorf("%w: objective %q (LightGBM squares the output, leaves would not)", ErrUnsupportedModel, objective)
			}
		}
	case name == "binary":
		if len(fields) != 2 || fields[1] != "sigmoid:1" {
			return fmt.Errorf("%w: objective %q (only binary sigmoid:1)", ErrUnsupportedModel, objective)
		}
	case name == "multiclass":
		if len(fields) != 2 || fields[1] != "num_class:"+params["num_class"] {
			return fmt.Errorf("%w: objective %q (expected multiclass num_class:%s)", ErrUnsupportedModel, objective, params["num_class"])
		}
	default:
		return fmt.Errorf("%w: objective %q (regression, binary and multiclass are supported)", ErrUnsupportedModel, objective)
	}
	return nil
}

// Predict fills out (len rows*K) from vals (rows*N values, row-major, NaN = missing).
// Callers validate every row's length first: leaves' PredictSingle silently returns 0 on a
// short row, so the contract forbids calling a predictor with one; this checks it again.
func (p *Predictor) Predict(vals []float64, rows int, out []float64) error {
	if rows < 1 || len(vals) != rows*p.numFeatures || len(out) != rows*p.numClass {
		return fmt.Errorf("predict: %d values and %d outputs for %d rows of %d features and %d classes",
			len(vals), len(out), rows, p.numFeatures, p.numClass)
	}
	if rows == 1 {
		// Predict (not PredictSingle) returns all K outputs, for multiclass too.
		return p.ensemble.Predict(vals, 0, out)
	}
	// leaves runs rows <= 16 on the calling goroutine and splits larger batches over
	// p.threads goroutines. threads defaults to runtime.GOMAXPROCS(0), which main sets from
	// the CPU affinity mask and the cgroup CPU quota (cpus.go): no more goroutines than CPUs
	// this process can really use.
	return p.ensemble.PredictDense(vals, rows, p.numFeatures, out, 0, p.threads)
}

// finite reports whether every value is a finite float (writable as a JSON number).
func finite(vals []float64) bool {
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}
