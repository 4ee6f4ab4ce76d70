package pid1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

// A power request that comes while run() still boots the box (signals are
// handled on their own goroutine) powers off at once, and run() starts no
// relay after it: one would be left running, never stopped.
func TestShutdownDuringBoot(t *testing.T) {
	out, err := os.Create(filepath.Join(t.TempDir(), "console"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var cmds []int
	b := &box{console: &console{outs: []*os.File{out}}, launch: directLauncher{},
		reboot: func(cmd int) error { cmds = append(cmds, cmd); return nil }}

	b.shutdown(powerOff, "SIGTERM")
	b.startRelay()

	if b.relay != nil || b.stop != nil {
		t.Error("startRelay started the relay after the shutdown")
	}
	if diff := cmp.Diff([]int{unix.LINUX_REBOOT_CMD_POWER_OFF}, cmds); diff != "" {
		t.Errorf("reboot(2) commands (-want +got):\n%s", diff)
	}
}
