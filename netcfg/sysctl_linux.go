package netcfg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// setSysctl writes s in the Configurator's namespace and returns the value
// it had. With s.AtLeast a larger value is kept.
func (c *Configurator) setSysctl(s Sysctl) (old string, changed bool, err error) {
	path := "/proc/sys/" + s.Key
	err = c.run(func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		old = strings.Join(strings.Fields(string(b)), " ")
		if old == s.Value {
			return nil
		}
		if s.AtLeast {
			o, err1 := strconv.ParseInt(old, 10, 64)
			v, err2 := strconv.ParseInt(s.Value, 10, 64)
			if err1 == nil && err2 == nil && o >= v {
				return nil
			}
		}
		changed = true
		return os.WriteFile(path, []byte(s.Value), 0)
	})
	if err != nil {
		return old, false, fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(s.Key, "/", "."), s.Value, err)
	}
	return old, changed, nil
}

// applySysctls sets each of t, logging what changed, and returns the
// failures. The net/core keys belong to the initial network namespace: in
// another one they are missing (older kernels) or read-only (newer ones),
// which is logged and skipped. PID 1 runs in the initial namespace.
func (c *Configurator) applySysctls(t []Sysctl, logf func(string, ...any)) []error {
	var errs []error
	for _, s := range t {
		old, changed, err := c.setSysctl(s)
		switch {
		case strings.HasPrefix(s.Key, "net/core/") &&
			(errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)):
			logf("network: sysctl %s skipped: only the initial network namespace can set it", s.Key)
		case err != nil:
			errs = append(errs, err)
		case changed:
			logf("network: sysctl %s: %s -> %s", s.Key, old, s.Value)
		}
	}
	return errs
}
