//go:build linux

package bpf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGeneratedUpToDate regenerates the bpf2go outputs from the committed C
// in a scratch directory, with the flags of the //go:generate line in
// gen.go, and requires the committed relay_bpfel.{go,o} to match byte for
// byte. Working elsewhere than the checkout also proves that the output does
// not depend on where the checkout lives.
func TestGeneratedUpToDate(t *testing.T) {
	args := generateArgs(t)
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the bpf2go check needs clang and llvm (run make deps)", tool)
		}
	}

	tmp := t.TempDir()
	bpf2go := filepath.Join(tmp, "bpf2go")
	if out, err := exec.Command("go", "build", "-o", bpf2go, "github.com/cilium/ebpf/cmd/bpf2go").CombinedOutput(); err != nil {
		t.Fatalf("go build bpf2go: %v\n%s", err, out)
	}

	src := filepath.Join(tmp, "elsewhere", "bpf")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"*.c", "*.h"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// As go generate runs it: in the package directory, with GOPACKAGE and
	// GOFILE set.
	cmd := exec.Command(bpf2go, args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOPACKAGE=bpf", "GOFILE=gen.go")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	for _, f := range []string{"relay_bpfel.o", "relay_bpfel.go"} {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("regenerated %s differs from the committed one (%d bytes, want %d): run make generate and commit the result", f, len(got), len(want))
		}
	}
}

// generateArgs returns the arguments of the bpf2go //go:generate line in
// gen.go, split as go generate splits them: on spaces, with double-quoted
// strings as one Go string.
func generateArgs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "//go:generate go tool bpf2go "
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		var args []string
		rest = strings.TrimSpace(rest)
		for rest != "" {
			if rest[0] == '"' {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					t.Fatalf("gen.go: %v in %q", err, rest)
				}
				arg, _ := strconv.Unquote(q)
				args = append(args, arg)
				rest = rest[len(q):]
			} else {
				arg, _, _ := strings.Cut(rest, " ")
				args = append(args, arg)
				rest = rest[len(arg):]
			}
			rest = strings.TrimLeft(rest, " ")
		}
		return args
	}
	t.Fatalf("gen.go has no %q line", prefix)
	return nil
}
