package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// manifest is out/<board>/manifest.txt: what a build was made from and
// what it made, each with its SHA-256. The outputs are in sha256sum's
// format, so a copied bundle checks with
//
//	grep -v '^[#i]' manifest.txt | sha256sum -c
//
// run in the bundle's directory.
type manifest struct {
	board       string
	cmdline     string // the board's
	bootCmdline string // the PXE scripts' and the unified kernel image's
	inputs      [][3]string
}

// input records one input: its kind, its SHA-256 (or a version for
// things that have no file), and what it is.
func (m *manifest) input(kind, sum, what string) {
	m.inputs = append(m.inputs, [3]string{kind, sum, what})
}

// sources records what the Go programs in the initramfs were built from:
// the module's go.mod and go.sum (which pin every dependency), the git
// commit when the source is a git checkout, and the Go toolchain.
func (m *manifest) sources(root string) error {
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		m.input(f, sha256Hex(b), f)
	}
	m.input("source", gitCommit(root), "git HEAD of the relaybox repository")
	goVersion := "unknown"
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	m.input("go", goVersion, "Go toolchain (GOAMD64=v1, CGO_ENABLED=0, -trimpath)")
	return nil
}

// gitCommit is HEAD's commit, "+modified" when tracked files differ from
// it, or "none" outside a git checkout. It only reads: GIT_OPTIONAL_LOCKS=0
// keeps git from refreshing the index, which another git process may hold.
func gitCommit(root string) string {
	git := func(args ...string) *exec.Cmd {
		cmd := exec.Command("git", append([]string{"-C", root}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		return cmd
	}
	out, err := git("rev-parse", "--verify", "HEAD").Output()
	if err != nil {
		return "none"
	}
	commit := strings.TrimSpace(string(out))
	// diff-index compares with the index's file stats as they are,
	// without refreshing them: a file touched but unchanged counts as
	// modified, which errs on the safe side.
	if git("diff-index", "--quiet", "HEAD", "--").Run() != nil {
		commit += "+modified"
	}
	return commit
}

// write hashes the outputs and writes the manifest, last of all.
func (m *manifest) write(art Artifacts, dir string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# relaybox image manifest, board %s\n", m.board)
	fmt.Fprintf(&b, "# cmdline: %s\n", m.cmdline)
	fmt.Fprintf(&b, "# boot media cmdline: %s\n", m.bootCmdline)
	b.WriteString("# inputs: kind, sha256 or version, what\n")
	for _, in := range m.inputs {
		fmt.Fprintf(&b, "input %-8s %s  %s\n", in[0], in[1], in[2])
	}
	b.WriteString("# outputs, as sha256sum writes them\n")
	for _, rel := range art.Outputs() {
		sum, err := fileSHA256(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, rel)
	}
	return os.WriteFile(art.Manifest, []byte(b.String()), 0o644)
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
