package pid1

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// modulesList names the board's modules, dependencies first, one file per
// line relative to /lib/modules/<release>. image/ writes it from depmod's
// modules.dep, so init needs no dependency resolution of its own.
const modulesList = "/etc/relaybox/modules"

// loadModules loads each listed module. A module whose hardware is absent
// (ENODEV: a NIC driver on a box without that NIC, a CPU-specific crypto
// module on another CPU) is skipped quietly; any other failure is reported
// and skipped: the others, and the console, still come up.
func loadModules(list, modulesDir string, logf func(string, ...any)) (loaded, absent int) {
	f, err := os.Open(list)
	if err != nil {
		logf("modules: %v", err)
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || strings.HasPrefix(rel, "#") {
			continue
		}
		err := loadModule(filepath.Join(modulesDir, rel))
		switch {
		case errors.Is(err, unix.ENODEV):
			absent++
		case err != nil:
			logf("module %s: %v", rel, err)
		default:
			loaded++
		}
	}
	return loaded, absent
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil // built in, or loaded already
	}
	if err != nil {
		return fmt.Errorf("finit_module: %w", err)
	}
	return nil
}

// modulesDir is /lib/modules/<running kernel's release>.
func modulesDir() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "/lib/modules"
	}
	return filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
}
