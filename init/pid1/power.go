package pid1

import (
	"os"
	"os/signal"

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

// handleSignals turns the signals an init receives into power actions:
// SIGTERM and SIGUSR2 power off (as busybox's and systemd's poweroff send),
// SIGINT reboots (the kernel sends it on Ctrl-Alt-Del once that is handed to
// init).
func (b *box) handleSignals() {
	// Ctrl-Alt-Del: signal init instead of rebooting on the spot.
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE)
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGUSR2, unix.SIGINT)
	safeGo("signals", func() {
		for sig := range sigc {
			if sig == unix.SIGINT {
				b.shutdown(reboot, "SIGINT")
			} else {
				b.shutdown(powerOff, sig.String())
			}
		}
	})
}

// shutdown stops the relay cleanly, flushes filesystems and asks the kernel
// to power off or reboot. It runs once; later requests wait for the first.
func (b *box) shutdown(a powerAction, why string) {
	b.shutdownOnce.Do(func() {
		b.stopDashboard()
		b.console.Logf("%s requested (%s): stopping services", a.verb, why)
		b.stopServices()
		b.watchdog.disarm()
		unix.Sync()
		b.console.Println("relaybox: " + a.verb)
		if err := b.reboot(a.cmd); err != nil {
			b.console.Logf("%s failed: %v; the box stays up", a.verb, err)
		}
	})
}
