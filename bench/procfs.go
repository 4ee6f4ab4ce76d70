package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc's CPU times (USER_HZ, 100 on every Linux
// architecture relaybox runs on).
const userHZ = 100

// processCPU returns the CPU time pid has used, user and system, in
// seconds: utime+stime of /proc/<pid>/stat. The kernel scales them so that
// they add up to the scheduler's exact run time, in clock ticks.
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStat(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/<pid>/stat %q: no ')' after the command name", shorten(s, 60))
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/<pid>/stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks float64
	for _, x := range f[11:13] {
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/<pid>/stat: utime/stime %q: %w", x, err)
		}
		ticks += float64(v)
	}
	return ticks / userHZ, nil
}

// processRSS returns pid's resident set size in bytes (VmRSS).
func processRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("server RSS: %w", err)
	}
	return parseStatusField(string(b), "VmRSS")
}

// parseStatusField returns a "Name:   123 kB" field of /proc/<pid>/status
// in bytes.
func parseStatusField(s, name string) (float64, error) {
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse /proc/<pid>/status: %s is %q, want \"<n> kB\"", name, strings.TrimSpace(v))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/<pid>/status: %s: %w", name, err)
		}
		return float64(n) * 1024, nil
	}
	return 0, fmt.Errorf("parse /proc/<pid>/status: no %s line", name)
}
