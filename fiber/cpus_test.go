package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// cgroupCase is one case of testdata/cgroup_cpus.json, the cases tests/unit/test_cpus.py runs
// against src/fiber_endpoints/cpus.py: both languages must give the same CPUs.
type cgroupCase struct {
	Name       string            `json:"name"`
	Files      map[string]string `json:"files"`
	ProcCgroup *string           `json:"proc_cgroup"`
	Affinity   int               `json:"affinity"`
	Want       int               `json:"want"`
}

func TestUsableCPUsSharedCases(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "cgroup_cpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []cgroupCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, tc := range doc.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "cgroup") // a fake /sys/fs/cgroup: the real files' layout
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			for rel, content := range tc.Files {
				path := filepath.Join(root, rel)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			proc := filepath.Join(dir, "proc-self-cgroup")
			if tc.ProcCgroup != nil {
				if err := os.WriteFile(proc, []byte(*tc.ProcCgroup), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := usableCPUs(root, proc, tc.Affinity); got != tc.Want {
				t.Errorf("usableCPUs = %d, want %d", got, tc.Want)
			}
		})
	}
}

func TestSetMaxProcsFromQuotaLeavesAnExplicitGOMAXPROCS(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	t.Setenv(maxProcsEnv, "3")
	runtime.GOMAXPROCS(3) // what the runtime did at start with GOMAXPROCS=3
	if n, set := setMaxProcsFromQuota(); set || n != 3 {
		t.Fatalf("setMaxProcsFromQuota() = %d, %t; want 3, false", n, set)
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS = %d, want 3", got)
	}
}

func TestSetMaxProcsFromQuotaOnThisMachine(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	t.Setenv(maxProcsEnv, "")
	n, set := setMaxProcsFromQuota()
	want := usableCPUs(cgroupRoot, procSelfCgroup, runtime.NumCPU())
	if !set || n != want || runtime.GOMAXPROCS(0) != want {
		t.Fatalf("setMaxProcsFromQuota() = %d, %t, GOMAXPROCS %d; want %d, true", n, set, runtime.GOMAXPROCS(0), want)
	}
	if cfg := configDefault(Config{ModelPath: "m"}); cfg.Threads != want {
		t.Fatalf("Threads = %d, want %d (GOMAXPROCS)", cfg.Threads, want)
	}
}
