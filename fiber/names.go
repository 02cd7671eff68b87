package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Requests by feature name (docs/contract.md, "By feature name"): {"data": {"name": value, ...}}
// and a batch of such objects. The reader (request.go, decoder.object) keeps each row's keys and
// values in document order; resolve then checks the names, after the row count, and writes
// the values in the model's order. The Python stacks' reading is src/fiber_endpoints/rows.py:
// the same checks, order and messages.

// maxNamesListed: at most this many names in a message, the rest counted.
const maxNamesListed = 5

// nameKey is one key of a row given by name: its raw bytes in the body, or, when it had
// escapes, the string encoding/json decodes (a lone surrogate becomes U+FFFD, as in rows.py).
type nameKey struct {
	raw     []byte
	decoded string
	escaped bool
}

func newNameKey(raw []byte, escaped bool) nameKey {
	if !escaped {
		return nameKey{raw: raw}
	}
	var s string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	_ = json.Unmarshal(quoted, &s) // the reader has checked the string already
	return nameKey{decoded: s, escaped: true}
}

func (k nameKey) name() string {
	if k.escaped {
		return k.decoded
	}
	return string(k.raw)
}

// featureIndex is the model's feature names in order and each name's position.
type featureIndex struct {
	names []string
	index map[string]int
}

func newFeatureIndex(names []string) featureIndex {
	index := make(map[string]int, len(names))
	for i, name := range names {
		index[name] = i
	}
	return featureIndex{names: names, index: index}
}

func (f *featureIndex) lookup(k nameKey) (int, bool) {
	if k.escaped {
		j, ok := f.index[k.decoded]
		return j, ok
	}
	j, ok := f.index[string(k.raw)] // no allocation: the compiler's map[string(bytes)] form
	return j, ok
}

// featureNames reads the feature_names= line of a LightGBM model header, split as LightGBM
// splits it (single spaces, empty parts dropped): what Booster.feature_name() returns.
func featureNames(header []byte) ([]string, bool) {
	for line := range bytes.SplitSeq(header, []byte("\n")) {
		line = bytes.Trim(line, " \f\n\r\t\v")
		if value, ok := bytes.CutPrefix(line, []byte("feature_names=")); ok {
			var names []string
			for name := range strings.SplitSeq(string(value), " ") {
				if name != "" {
					names = append(names, name)
				}
			}
			return names, true
		}
	}
	return nil, false
}

// resolve checks each named row's names (first duplicate in document order; then unknown
// names in document order and missing ones in the model's, in one message) and writes the
// values into req.vals in the model's order. Called once the row count is known good.
func (f *featureIndex) resolve(req *rowsRequest, batch bool) error {
	n := len(f.names)
	if cap(req.vals) < req.rows*n {
		req.vals = make([]float64, req.rows*n)
	}
	req.vals = req.vals[:req.rows*n]
	if cap(req.seen) < n {
		req.seen = make([]int32, n)
	}
	seen := req.seen[:n]
	clear(seen)
	off := 0
	for r := range req.rows {
		cnt := req.rowLens[r]
		keys, vals := req.keys[off:off+cnt], req.keyVals[off:off+cnt]
		off += cnt
		row, stamp := req.vals[r*n:(r+1)*n], int32(r+1)
		field := "data"
		if batch {
			field = "data[" + strconv.Itoa(r) + "]"
		}
		var unknown []string
		var unknownSeen map[string]struct{}
		for i, key := range keys {
			if j, ok := f.lookup(key); ok {
				if seen[j] == stamp {
					return duplicateFeature(field, key.name())
				}
				seen[j], row[j] = stamp, vals[i]
				continue
			}
			name := key.name()
			if _, dup := unknownSeen[name]; dup {
				return duplicateFeature(field, name)
			}
			if unknownSeen == nil {
				unknownSeen = map[string]struct{}{}
			}
			unknownSeen[name] = struct{}{}
			unknown = append(unknown, name)
		}
		if len(unknown) > 0 || cnt != n {
			var missing []string
			for j, name := range f.names {
				if seen[j] != stamp {
					missing = append(missing, name)
				}
			}
			return unknownOrMissing(field, unknown, missing)
		}
	}
	return nil
}

// namedField names a value given by name: data["x"], data[2]["x"] (the name as decoded).
func namedField(r int, name string) string {
	if r < 0 {
		return `data["` + name + `"]`
	}
	return "data[" + strconv.Itoa(r) + `]["` + name + `"]`
}

func duplicateFeature(field, name string) *contractError {
	return &contractError{422, field + `: duplicate feature "` + name + `"`}
}

func listed(names []string) string {
	var b strings.Builder
	for i, name := range names[:min(len(names), maxNamesListed)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + name + `"`)
	}
	if rest := len(names) - maxNamesListed; rest > 0 {
		b.WriteString(" and " + strconv.Itoa(rest) + " more")
	}
	return b.String()
}

func unknownOrMissing(field string, unknown, missing []string) *contractError {
	var parts []string
	if len(unknown) > 0 {
		parts = append(parts, "unknown features: "+listed(unknown))
	}
	if len(missing) > 0 {
		parts = append(parts, "missing features: "+listed(missing))
	}
	return &contractError{422, field + ": " + strings.Join(parts, "; ")}
}

func mixedRows(r int, firstIsObject bool) *contractError {
	first := "an array"
	if firstIsObject {
		first = "an object"
	}
	return &contractError{422, "data[" + strconv.Itoa(r) + "]: rows must all be arrays or all be objects (data[0] is " + first + ")"}
}
