package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		ok     bool
	}{
		{"healthy", 200, `{"status":"ok","stack":"fiber","num_features":20,"num_class":1}`, true},
		{"not ok", 200, `{"status":"loading"}`, false},
		{"not json", 200, `ok`, false},
		{"server error", 503, `{"status":"ok"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			err := check(srv.Client(), srv.URL+"/health")
			if (err == nil) != tt.ok {
				t.Fatalf("check() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCheckRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if err := check(http.DefaultClient, url+"/health"); err == nil {
		t.Fatal("check() on a closed port = nil, want an error")
	}
}
