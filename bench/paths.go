package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// PathSample is one result line of bpf's BenchmarkPaths.
type PathSample struct {
	Path       string  // "relay/v4_client_to_v4_peer", without the -GOMAXPROCS suffix
	Ns         float64 // the kernel's time per run
	XMACSwap   float64 // Ns over the MAC-swap program's, same run
	Iterations int
}

// runPaths runs bpf's BenchmarkPaths count times, each path for runs
// runs, in the module at root, and parses its output.
func runPaths(ctx context.Context, goBin, root string, count, runs int) ([]PathSample, error) {
	cmd := exec.CommandContext(ctx, goBin, "test", "-run", "^$", "-bench", "^BenchmarkPaths$",
		"-benchtime", fmt.Sprintf("%dx", runs), "-count", strconv.Itoa(count), "./bpf")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench BenchmarkPaths ./bpf: %w\n%s", err, tail(string(out), 15))
	}
	samples, err := parsePaths(string(out))
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("go test -bench BenchmarkPaths ./bpf printed no result\n%s", tail(string(out), 15))
	}
	return samples, nil
}

// benchLine matches "BenchmarkPaths/<path>-<procs> <iterations> <value unit>...".
var benchLine = regexp.MustCompile(`^BenchmarkPaths/(\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// parsePaths reads the result lines of go test -bench output; other lines
// (goos, PASS, logs) are skipped.
func parsePaths(out string) ([]PathSample, error) {
	var samples []PathSample
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		s := PathSample{Path: m[1]}
		s.Iterations, _ = strconv.Atoi(m[2])
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("parse benchmark line %q: %q: %w", sc.Text(), f[i], err)
			}
			switch f[i+1] {
			case "ns/op":
				s.Ns = v
			case "x-macswap":
				s.XMACSwap = v
			}
		}
		if s.Ns == 0 {
			return nil, fmt.Errorf("parse benchmark line %q: no ns/op", sc.Text())
		}
		samples = append(samples, s)
	}
	return samples, sc.Err()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
