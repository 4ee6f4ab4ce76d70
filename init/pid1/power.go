package pid1

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"

	"golang.org/x/sys/unix"
)

// powerAction is how the box ends: the reboot(2) command and its words.
type powerAction struct {
	cmd  int
	verb string
}

var (
	powerOff = powerAction{unix.LINUX_REBOOT_CMD_POWER_OFF, "power off"}
	reboot   = powerAction{unix.LINUX_REBOOT_CMD_RESTART, "reboot"}
)

// powerSignal is a signal PID 1 takes as a power request, and the console
// shell's command that sends it, if one does.
type powerSignal struct {
	sig     unix.Signal
	command string
	action  powerAction
}

// powerSignals: SIGTERM and SIGUSR2 power off (as busybox's and systemd's
// poweroff send), SIGINT reboots (the kernel sends it on Ctrl-Alt-Del once
// that is handed to init).
var powerSignals = []powerSignal{
	{unix.SIGTERM, "", powerOff},
	{unix.SIGUSR2, "poweroff", powerOff},
	{unix.SIGINT, "reboot", reboot},
}

// handleSignals turns the signals an init receives into power actions.
func (b *box) handleSignals() {
	// Ctrl-Alt-Del: signal init instead of rebooting on the spot.
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE)
	sigc := make(chan os.Signal, 4)
	for _, p := range powerSignals {
		signal.Notify(sigc, p.sig)
	}
	safeGo("signals", func() {
		for sig := range sigc {
			why := sig.String()
			if sig == unix.SIGINT {
				why = "SIGINT" // not "interrupt": it asks for a reboot, it is no Ctrl-C
			}
			for _, p := range powerSignals {
				if p.sig == sig {
					b.shutdown(p.action, why)
				}
			}
		}
	})
}

// shutdown stops the relay cleanly, flushes filesystems and asks the kernel
// to power off or reboot. It runs once; later requests wait for the first.
func (b *box) shutdown(a powerAction, why string) {
	b.shutdownOnce.Do(func() {
		// The log is shown again, over a shell if one is open: the
		// operator sees the relay stop and the box go.
		b.screenDown()
		b.console.Logf("%s requested (%s): stopping services", a.verb, why)
		b.stopServices()
		unix.Sync()
		b.console.Println("relaybox: " + a.verb)
		if err := b.reboot(a.cmd); err != nil {
			b.console.Logf("%s failed: %v; the box stays up", a.verb, err)
		}
	})
}

// PowerCommand is the console shell's poweroff and reboot (init/cmd/…):
// unlike u-root's, which call reboot(2) at once, they ask PID 1 by signal
// for its clean shutdown (the relay stopped, filesystems synced) and
// return; init logs what follows. It returns the exit status.
func PowerCommand(name string, args []string, stdout, stderr io.Writer) int {
	return powerCommand(name, args, stdout, stderr, unix.Kill)
}

func powerCommand(name string, args []string, stdout, stderr io.Writer, kill func(int, unix.Signal) error) int {
	// name != "": SIGTERM has no command.
	i := slices.IndexFunc(powerSignals, func(p powerSignal) bool { return name != "" && p.command == name })
	if i < 0 {
		fmt.Fprintf(stderr, "%s: not a power command; want poweroff or reboot\n", name)
		return 2
	}
	sig, verb := powerSignals[i].sig, powerSignals[i].action.verb
	usage := fmt.Sprintf("usage: %s\n  stop the relay cleanly, then %s (init does it; this asks)\n", name, verb)
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	case len(args) > 0:
		fmt.Fprintf(stderr, "%s: takes no arguments\n%s", name, usage)
		return 2
	}
	if err := kill(1, sig); err != nil {
		fmt.Fprintf(stderr, "%s: signal init: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: init stops the relay, then the box will %s\n", name, verb)
	return 0
}
