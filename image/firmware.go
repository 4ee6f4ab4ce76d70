package image

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/relaybox/relaybox/board"
)

// firmwareFile is one file the initramfs carries under /lib/firmware.
type firmwareFile struct {
	Name string // as the driver requests it, e.g. intel/ice/ddp/ice.pkg
	Src  string // the file (symbolic links resolved) in an unpacked package
}

// fetchFirmware downloads and unpacks the board's firmware packages and
// returns their roots (each with a lib/firmware inside) and the .debs.
func fetchFirmware(pkgs []board.Package, cacheDir string, logf func(string, ...any)) (roots, debs []string, err error) {
	for _, p := range pkgs {
		deb, err := fetchDeb(p, "firmware", cacheDir, logf)
		if err != nil {
			return nil, nil, err
		}
		root, err := unpackDeb(p, deb, cacheDir, logf)
		if err != nil {
			return nil, nil, err
		}
		roots, debs = append(roots, root), append(debs, deb)
	}
	return roots, debs, nil
}

// moduleFirmware returns the firmware files the modules declare
// (MODULE_FIRMWARE, the firmware= entries of their .modinfo section), in
// module order, each once.
func moduleFirmware(modulesDir string, modules []string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, m := range modules {
		fw, err := modinfo(filepath.Join(modulesDir, m), "firmware")
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", m, err)
		}
		for _, n := range fw {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names, nil
}

// modinfo returns the values of key in a module's .modinfo section, which
// holds NUL-separated key=value strings, as modinfo(8) reads them.
func modinfo(ko, key string) ([]string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	var vals []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(key+"=")); ok {
			vals = append(vals, string(v))
		}
	}
	return vals, nil
}

// findFirmware looks each name up in the unpacked packages' lib/firmware,
// also as .xz and .zst (the kernel loads those too). Names no package
// carries are returned as missing: a driver may list firmware for
// hardware revisions Debian does not ship, and loads without it.
func findFirmware(roots, names []string) (found []firmwareFile, missing []string, err error) {
	for _, n := range names {
		src := ""
		for _, root := range roots {
			for _, ext := range []string{"", ".xz", ".zst"} {
				p, err := resolveIn(filepath.Join(root, "lib", "firmware"), n+ext)
				if err != nil {
					return nil, nil, err
				}
				if p != "" {
					src, n = p, n+ext
					break
				}
			}
			if src != "" {
				break
			}
		}
		if src == "" {
			missing = append(missing, n)
			continue
		}
		found = append(found, firmwareFile{Name: n, Src: src})
	}
	return found, missing, nil
}

// resolveIn returns the regular file that name, relative to dir, leads to,
// following symbolic links inside dir (an absolute target such as
// /lib/firmware/x is taken relative to the package, never the build host);
// "" if there is none.
func resolveIn(dir, name string) (string, error) {
	firmwareRoot := dir
	for range 16 {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode().IsRegular() {
			return p, nil
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return "", nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			rel, ok := strings.CutPrefix(target, "/lib/firmware/")
			if !ok {
				return "", fmt.Errorf("firmware %s links outside /lib/firmware, to %s", name, target)
			}
			dir, name = firmwareRoot, rel
			continue
		}
		dir, name = filepath.Dir(p), target
	}
	return "", fmt.Errorf("firmware %s: too many levels of symbolic links", name)
}
