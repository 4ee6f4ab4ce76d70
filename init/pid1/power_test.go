package pid1

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPowerCommand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		killErr  error
		want     int
		wantSig  unix.Signal // 0: init is not signalled
		wantOut  string
		wantErrs string
	}{
		{"poweroff", nil, nil, 0, unix.SIGUSR2, "the box will power off", ""},
		{"reboot", nil, nil, 0, unix.SIGINT, "the box will reboot", ""},
		{"poweroff", []string{"-h"}, nil, 0, 0, "usage: poweroff", ""},
		{"reboot", []string{"--help"}, nil, 0, 0, "usage: reboot", ""},
		{"poweroff", []string{"-f"}, nil, 2, 0, "", "poweroff: takes no arguments"},
		{"reboot", []string{"now", "please"}, nil, 2, 0, "", "reboot: takes no arguments"},
		{"halt", nil, nil, 2, 0, "", "not a power command"},
		{"poweroff", nil, unix.EPERM, 1, unix.SIGUSR2, "", "poweroff: signal init: operation not permitted"},
	} {
		var out, errs strings.Builder
		var pid int
		var sig unix.Signal
		kill := func(p int, s unix.Signal) error { pid, sig = p, s; return tc.killErr }
		got := powerCommand(tc.name, tc.args, &out, &errs, kill)
		what := tc.name + " " + strings.Join(tc.args, " ")
		if got != tc.want {
			t.Errorf("%s: exit status %d, want %d", what, got, tc.want)
		}
		if sig != tc.wantSig || (sig != 0 && pid != 1) {
			t.Errorf("%s: sent %v to pid %d, want %v to pid 1", what, sig, pid, tc.wantSig)
		}
		if !strings.Contains(out.String(), tc.wantOut) || (tc.wantOut == "") != (out.Len() == 0) {
			t.Errorf("%s: stdout %q, want %q", what, out.String(), tc.wantOut)
		}
		if !strings.Contains(errs.String(), tc.wantErrs) || (tc.wantErrs == "") != (errs.Len() == 0) {
			t.Errorf("%s: stderr %q, want %q", what, errs.String(), tc.wantErrs)
		}
	}
}
