package image

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/relaybox/relaybox/board"
)

// kernelTree is a Debian kernel package unpacked, with modules.dep made by
// depmod (the package does not ship it: its postinst generates it).
type kernelTree struct {
	Root    string // where the package was unpacked
	Release string // uname -r
}

func (k kernelTree) vmlinuz() string {
	return filepath.Join(k.Root, "boot", "vmlinuz-"+k.Release)
}

func (k kernelTree) modulesDir() string {
	return filepath.Join(k.Root, "lib", "modules", k.Release)
}

// fetchKernel downloads the board's kernel package into cacheDir (once),
// verifies its checksum, unpacks it and runs depmod over it.
func fetchKernel(kern board.Kernel, cacheDir string, logf func(string, ...any)) (kernelTree, error) {
	tree := kernelTree{Root: filepath.Join(cacheDir, kern.Package+"_"+kern.Version), Release: kern.Release()}
	if _, err := os.Stat(filepath.Join(tree.modulesDir(), "modules.dep")); err == nil {
		return tree, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return tree, err
	}
	deb := filepath.Join(cacheDir, kern.DebFile())
	if err := verifySHA256(deb, kern.SHA256); err != nil {
		logf("downloading %s=%s with apt-get", kern.Package, kern.Version)
		if err := run(cacheDir, "apt-get", "download", "-q", kern.Package+"="+kern.Version); err != nil {
			return tree, fmt.Errorf("download kernel %s=%s: %w\n"+
				"run `apt-get update` first; if Debian's archive no longer has this version, "+
				"pin a current one in board/ (apt-cache madison %s)", kern.Package, kern.Version, err, kern.Package)
		}
		if err := verifySHA256(deb, kern.SHA256); err != nil {
			return tree, fmt.Errorf("kernel package %s: %w: refusing to build from it", deb, err)
		}
	}
	logf("unpacking %s", filepath.Base(deb))
	tmp := tree.Root + ".tmp"
	os.RemoveAll(tmp)
	if err := run("", "dpkg-deb", "-x", deb, tmp); err != nil {
		return tree, fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := run("", "depmod", "-b", tmp, tree.Release); err != nil {
		return tree, fmt.Errorf("depmod for %s: %w (is the kmod package installed?)", tree.Release, err)
	}
	os.RemoveAll(tree.Root)
	return tree, os.Rename(tmp, tree.Root)
}

func verifySHA256(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 %s, want %s", got, want)
	}
	return nil
}

// moduleLoadOrder returns the modules' files (relative to the modules
// directory) in an order that loads every dependency before its user, as
// modprobe would, from the kernel's modules.dep.
func moduleLoadOrder(modulesDir string, names []string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for file := range deps {
		byName[moduleName(file)] = file
	}
	var order []string
	seen := map[string]bool{}
	var visit func(file string)
	visit = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		// modules.dep lists a module's dependencies with the deepest
		// last; loading recursively, each before its user, is order-proof.
		for _, d := range deps[file] {
			visit(d)
		}
		order = append(order, file)
	}
	for _, n := range names {
		file, ok := byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("module %q is not in this kernel's modules.dep: built in, or misspelt?", n)
		}
		visit(file)
	}
	return order, nil
}

// moduleName turns kernel/drivers/net/virtio_net.ko into virtio_net.
func moduleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

func readModulesDep(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
	}
	return deps, sc.Err()
}

func run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
