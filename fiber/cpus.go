package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// The CPUs this process may really use, from its CPU affinity and its cgroups' CPU quotas.
//
// Go >= 1.25 sizes GOMAXPROCS from the quota too, but never below 2 (golang/go#74283, by design),
// so under `docker run --cpus 1` on a 2-core host it gives 2, and the predictor's Threads
// (config.go) with it: two goroutines taking turns in one CPU's time slice. This mirrors
// src/fiber_endpoints/cpus.py (usable_cpus, cpus_within) rule for rule: cgroup v2 `cpu.max`, else
// v1 `cpu.cfs_quota_us / cpu.cfs_period_us`, of the cgroup root and of the process's own cgroup
// (/proc/self/cgroup), each rounded up to whole CPUs, at least 1, within the affinity.
// fiber/testdata/cgroup_cpus.json pins both: fiber/cpus_test.go and tests/unit/test_cpus.py
// read the same cases.

const (
	cgroupRoot     = "/sys/fs/cgroup"
	procSelfCgroup = "/proc/self/cgroup"
)

// cgroupCPULimit is the quota in CPUs, or ok=false for none: v2's cpuMax when it is readable
// ("max" is no quota, and then v1 is not read), else v1's quota/period (-1 is no quota).
func cgroupCPULimit(cpuMax, v1Quota, v1Period string) (limit float64, ok bool) {
	if data, err := os.ReadFile(cpuMax); err == nil {
		fields := strings.Fields(string(data))
		if len(fields) >= 2 {
			if fields[0] == "max" {
				return 0, false
			}
			quota, qerr := strconv.ParseInt(fields[0], 10, 64)
			period, perr := strconv.ParseInt(fields[1], 10, 64)
			if qerr == nil && perr == nil && period > 0 {
				return float64(quota) / float64(period), true
			}
		}
	}
	quota, err := readInt(v1Quota)
	if err != nil || quota <= 0 {
		return 0, false
	}
	period, err := readInt(v1Period)
	if err != nil || period <= 0 {
		return 0, false
	}
	return float64(quota) / float64(period), true
}

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// rootCgroupLimit is the quota of the cgroup mounted at root: a container's own, under its
// cgroup namespace.
func rootCgroupLimit(root string) (float64, bool) {
	v1 := filepath.Join(root, "cpu")
	return cgroupCPULimit(filepath.Join(root, "cpu.max"),
		filepath.Join(v1, "cpu.cfs_quota_us"), filepath.Join(v1, "cpu.cfs_period_us"))
}

// ownCgroupLimit is the quota of the process's own cgroup (procCgroup lists it) when it is not
// the root one: a group made on a host without a cgroup namespace (a systemd slice, a test's
// CPU cap), where the root's files say nothing.
func ownCgroupLimit(root, procCgroup string) (float64, bool) {
	data, err := os.ReadFile(procCgroup)
	if err != nil {
		return 0, false
	}
	const none = "/nonexistent"
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		controllers, path := parts[1], strings.Trim(parts[2], "/")
		if path == "" {
			continue
		}
		var limit float64
		var ok bool
		switch {
		case controllers == "": // v2
			limit, ok = cgroupCPULimit(filepath.Join(root, path, "cpu.max"), none, none)
		case hasController(controllers, "cpu"): // v1
			base := filepath.Join(root, "cpu", path)
			limit, ok = cgroupCPULimit(none, filepath.Join(base, "cpu.cfs_quota_us"),
				filepath.Join(base, "cpu.cfs_period_us"))
		default:
			continue
		}
		if ok {
			return limit, true
		}
	}
	return 0, false
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// usableCPUs is min(affinity, max(1, ceil(quota))) over the root's and the own cgroup's
// quotas, at least 1: cpus.py's cpus_within.
func usableCPUs(root, procCgroup string, affinity int) int {
	n := affinity
	for _, limit := range []func() (float64, bool){
		func() (float64, bool) { return rootCgroupLimit(root) },
		func() (float64, bool) { return ownCgroupLimit(root, procCgroup) },
	} {
		if q, ok := limit(); ok {
			n = min(n, max(1, int(math.Ceil(q))))
		}
	}
	return max(1, n)
}

// maxProcsEnv set by the user wins: the runtime has already applied it.
const maxProcsEnv = "GOMAXPROCS"

// setMaxProcsFromQuota sets GOMAXPROCS to the usable CPUs (runtime.NumCPU is the affinity at
// start) unless GOMAXPROCS is set in the environment; Threads then defaults to it (config.go).
// Returns the value in force and whether it was set here.
func setMaxProcsFromQuota() (int, bool) {
	if os.Getenv(maxProcsEnv) != "" {
		return runtime.GOMAXPROCS(0), false
	}
	n := usableCPUs(cgroupRoot, procSelfCgroup, runtime.NumCPU())
	runtime.GOMAXPROCS(n)
	return n, true
}
