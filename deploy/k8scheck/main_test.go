package main

import (
	"strings"
	"testing"
)

const service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n"

func TestStrict(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		fail string
	}{
		"ok":            {service, ""},
		"unknown field": {service + "  bogus: 1\n", "unknown field"},
		"mistyped":      {strings.Replace(service, "port: 80", "port: eighty", 1), "port"},
		"unknown kind":  {"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "not a kind"},
		"empty":         {"# nothing\n", "no objects"},
	} {
		var out strings.Builder
		err := run(strings.NewReader(tc.doc), &out)
		if tc.fail == "" && err != nil || tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.fail)
		}
	}
}
