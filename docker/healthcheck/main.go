// Command healthcheck is the HEALTHCHECK of images that have no shell, curl or wget (distroless).
//
//	healthcheck http://127.0.0.1:8001/health
//
// It exits 0 when the URL answers 200 with a JSON body whose "status" is "ok" (docs/contract.md,
// GET /health), and 1 otherwise, printing why. Standard library only, built with CGO_ENABLED=0
// so it runs on a static base image.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const timeout = 2 * time.Second

// check returns nil when url is healthy.
func check(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var health struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &health); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if health.Status != "ok" {
		return errors.New(`"status" is not "ok": ` + string(body))
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck URL")
		os.Exit(2)
	}
	if err := check(&http.Client{Timeout: timeout}, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		os.Exit(1)
	}
}
