package image

import (
	"bufio"
	"errors"
	"fmt"
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
	deb, err := fetchDeb(kern.Deb(), "kernel", cacheDir, logf)
	if err != nil {
		return tree, err
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

// fetchDeb returns the path of the package's .deb in cacheDir, downloading
// it with apt-get when it is not there yet, and refuses a file whose
// checksum is not the pinned one. what says what the package is for, in
// messages: "kernel", "firmware", "UEFI stub".
func fetchDeb(p board.Package, what, cacheDir string, logf func(string, ...any)) (string, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	deb := filepath.Join(cacheDir, p.DebFile())
	if verifySHA256(deb, p.SHA256) == nil {
		return deb, nil
	}
	logf("downloading %s %s=%s with apt-get", what, p.Name, p.Version)
	if err := run(cacheDir, "apt-get", "download", "-q", p.Name+"="+p.Version); err != nil {
		hint, pin := "", "board/"
		if strings.HasPrefix(p.Name, "firmware-") {
			hint = "; firmware is in Debian's non-free-firmware component, which make deps adds to apt's sources"
		}
		if p.Name == Stub.Name {
			pin = "image/uki.go"
		}
		return "", fmt.Errorf("download %s package %s=%s: %w\n"+
			"run `apt-get update` first%s; if Debian's archive no longer has this version, "+
			"pin a current one in %s (apt-cache madison %s) with its sha256", what, p.Name, p.Version, err, hint, pin, p.Name)
	}
	if err := verifySHA256(deb, p.SHA256); err != nil {
		return "", fmt.Errorf("%s package %s: %w: refusing to build from it", what, deb, err)
	}
	return deb, nil
}

// unpackDeb unpacks a .deb into cacheDir/<name>_<version> once and returns
// that directory.
func unpackDeb(p board.Package, deb, cacheDir string, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(cacheDir, p.Name+"_"+p.Version)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	logf("unpacking %s", filepath.Base(deb))
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := run("", "dpkg-deb", "-x", deb, tmp); err != nil {
		return "", fmt.Errorf("unpack %s: %w", deb, err)
	}
	return dir, os.Rename(tmp, dir)
}

func verifySHA256(path, want string) error {
	got, err := fileSHA256(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("sha256 %s, want %s", got, want)
	}
	return nil
}

// moduleLoadOrder returns the modules' files (relative to the modules
// directory) in an order that loads every dependency before its user, as
// modprobe would, from the kernel's modules.dep, and with the soft
// dependencies of modules.softdep: libcrc32c, for one, needs a crc32c
// implementation loaded first ("pre: crc32c"), which it asks the crypto
// API for rather than linking to, and without it fails with ENOENT.
func moduleLoadOrder(modulesDir string, names []string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	soft, err := readModulesSoftdep(filepath.Join(modulesDir, "modules.softdep"))
	if err != nil {
		return nil, err
	}
	aliases, err := readModulesAlias(filepath.Join(modulesDir, "modules.alias"))
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for file := range deps {
		byName[moduleName(file)] = file
	}
	// resolve finds the files a soft dependency names: a module, or an
	// alias of one or more (crc32c: crc32c_intel and crc32c_generic, as
	// modprobe loads them all). None is fine: built in, or not built.
	resolve := func(name string) []string {
		name = strings.ReplaceAll(name, "-", "_")
		if file, ok := byName[name]; ok {
			return []string{file}
		}
		var files []string
		for _, m := range aliases[name] {
			if file, ok := byName[m]; ok {
				files = append(files, file)
			}
		}
		return files
	}
	var order []string
	seen := map[string]bool{}
	var visit func(file string)
	visit = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		sd := soft[moduleName(file)]
		for _, p := range sd.pre {
			for _, f := range resolve(p) {
				visit(f)
			}
		}
		// modules.dep lists a module's dependencies with the deepest
		// last; loading recursively, each before its user, is order-proof.
		for _, d := range deps[file] {
			visit(d)
		}
		order = append(order, file)
		for _, p := range sd.post {
			for _, f := range resolve(p) {
				visit(f)
			}
		}
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

// softdeps are a module's soft dependencies, loaded before (pre) and after
// (post) it.
type softdeps struct{ pre, post []string }

// readModulesSoftdep reads depmod's modules.softdep ("softdep <module>
// pre: <name>... post: <name>..."); a missing file is no soft dependencies.
func readModulesSoftdep(path string) (map[string]softdeps, error) {
	soft := map[string]softdeps{}
	err := eachLine(path, func(fields []string) {
		if len(fields) < 3 || fields[0] != "softdep" {
			return
		}
		mod := strings.ReplaceAll(fields[1], "-", "_")
		sd := soft[mod]
		list := &sd.pre // a name before any pre: or post: is a pre, as modprobe takes it
		for _, f := range fields[2:] {
			switch f {
			case "pre:":
				list = &sd.pre
			case "post:":
				list = &sd.post
			default:
				*list = append(*list, f)
			}
		}
		soft[mod] = sd
	})
	return soft, err
}

// readModulesAlias reads depmod's modules.alias ("alias <alias>
// <module>") into alias → modules, in the file's order; a missing file is
// no aliases.
func readModulesAlias(path string) (map[string][]string, error) {
	aliases := map[string][]string{}
	err := eachLine(path, func(fields []string) {
		if len(fields) == 3 && fields[0] == "alias" {
			a := strings.ReplaceAll(fields[1], "-", "_")
			aliases[a] = append(aliases[a], strings.ReplaceAll(fields[2], "-", "_"))
		}
	})
	return aliases, err
}

// eachLine calls fn with the fields of each line of path that is not a
// comment; a missing file has no lines.
func eachLine(path string, fn func(fields []string)) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			fn(strings.Fields(line))
		}
	}
	return sc.Err()
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
