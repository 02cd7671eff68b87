package main

import (
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		args    []string
		want    Config
		wantErr bool
	}{
		{"defaults", "", []string{"-model", "m.txt"}, Config{ModelPath: "m.txt", Host: "127.0.0.1", Port: 8001, StackName: "fiber"}, false},
		{"env model", "e.txt", nil, Config{ModelPath: "e.txt", Host: "127.0.0.1", Port: 8001, StackName: "fiber"}, false},
		{"flag beats env", "e.txt", []string{"-model", "m.txt", "-host", "0.0.0.0", "-port", "9000", "-stack-name", "fiber-x"},
			Config{ModelPath: "m.txt", Host: "0.0.0.0", Port: 9000, StackName: "fiber-x"}, false},
		{"no model", "", nil, Config{}, true},
		{"bad port", "", []string{"-model", "m", "-port", "x"}, Config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(modelEnv, tt.env)
			got, err := parseFlags(tt.args)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ModelPath != tt.want.ModelPath || got.Host != tt.want.Host || got.Port != tt.want.Port || got.StackName != tt.want.StackName {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.BodyLimit != 1<<20 || got.MaxBatchRows != 10000 || got.Threads < 1 || got.ReadLimit < got.BodyLimit {
				t.Fatalf("defaults not applied: %+v", got)
			}
		})
	}
}

func TestRunRefusesMissingModel(t *testing.T) {
	if err := run([]string{"-model", "does/not/exist.txt"}); err == nil {
		t.Fatal("run started without a model")
	}
}
