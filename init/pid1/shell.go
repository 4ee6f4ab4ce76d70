package pid1

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The serial console (IPMI serial-over-LAN, say) is the box's diagnostics
// door: a key pressed on it opens a shell; when the shell exits, the status
// screen comes back and the next key opens another. Everything an operator
// needs is there: `relay status`, init's files under runDir, poweroff and
// reboot (init/cmd), the u-root commands.

// shellPath is the console's shell: u-root's gosh, the initramfs's /bin/sh.
const shellPath = "/bin/sh"

// shellHelp is the banner's table: what the shell offers, one line each.
var shellHelp = [][2]string{
	{"relay status", "the relay: listeners, allocations, traffic"},
	{"cat " + statusFile, "links, XDP mode and counters, the relay"},
	{"cat " + configFile, "settings in force and sources (no secrets)"},
	{"cat " + logFile, "init's and the relay's log (older: log.1)"},
	{"poweroff, reboot", "stop the relay cleanly, then power off/reboot"},
}

// shellBanner is what the shell opens with: one screen saying what is there.
func shellBanner(dashboard bool) string {
	var s strings.Builder
	s.WriteString("relaybox shell (gosh; the commands are in /bbin)\n")
	help := shellHelp
	if dashboard {
		help = append(help, [2]string{"exit", "back to the status screen"})
	} else {
		help = append(help, [2]string{"exit", "close the shell (a key opens another)"})
	}
	for _, h := range help {
		fmt.Fprintf(&s, "  %-26s %s\n", h[0], h[1])
	}
	s.WriteString("Log lines are kept, not shown, while the shell is open.\n")
	return s.String()
}

// serveConsoles waits for a key on every console the kernel was given, as
// the log goes to all of them: the operator may be on any (serial-over-LAN
// is ttyS1 on most servers' BMCs, ttyS0 on others, or at the screen and
// keyboard). Without named consoles it waits on init's stdin, the kernel's
// /dev/console.
func (b *box) serveConsoles() {
	names := b.console.inputs()
	if len(names) == 0 {
		safeGo("console", func() {
			// Never reopened: there is no name to open it by.
			_, err := b.serveKeys(os.Stdin, false)
			b.console.Logf("console stdin: %v; no shell on it", err)
		})
		return
	}
	for _, name := range names {
		safeGo("console "+name, func() { b.serveConsole(name) })
	}
}

// consoleRetries bounds how often a console whose input fails is opened
// again before init gives up on it.
const consoleRetries = 5

// serveConsole serves keys on /dev/name for as long as the box runs,
// opening it again after each shell and after an input error. A console
// that cannot be opened, or fails consoleRetries times without a key in
// between, is logged and left; the box runs on.
func (b *box) serveConsole(name string) {
	for failures := 0; ; {
		in, err := os.OpenFile("/dev/"+name, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			b.console.Logf("console %s: %v; no shell on it", name, err)
			return
		}
		// One shell: its session ending hung the terminal up for every
		// descriptor opened on it by name.
		pressed, err := b.serveKeys(in, true)
		in.Close()
		if pressed {
			failures = 0
		}
		if err == nil {
			continue
		}
		failures++
		if failures >= consoleRetries {
			b.console.Logf("console %s: %v; no shell on it", name, err)
			return
		}
		time.Sleep(time.Second)
	}
}

// serveKeys opens a shell on in each time a key is pressed there, one shell
// at a time: a key pressed while a shell is open on another console says
// so. It returns after the first shell when oneShell is set, otherwise
// only when reading in fails, with the error; pressed says whether a key
// came first.
func (b *box) serveKeys(in *os.File, oneShell bool) (pressed bool, err error) {
	keys := newKeyWaiter(in)
	for {
		if err := keys.wait(); err != nil {
			return pressed, err
		}
		pressed = true
		if !b.shellOn.TryLock() {
			fmt.Fprintf(in, "\r\na shell is open on another console: exit it there first\r\n")
			continue
		}
		b.runShell(in)
		b.shellOn.Unlock()
		if oneShell {
			return pressed, nil
		}
	}
}

// runShell takes the dashboard down, runs the shell on the console as its
// controlling terminal, and puts the screen back when the shell exits. A
// shell that cannot start is logged; the console carries on.
func (b *box) runShell(in *os.File) {
	mark := b.console.mark()
	cleared := b.dashboardUp()
	dashboard := b.shellOpen(true)
	// Fresh before the banner, so the first cat shows the present.
	stop := make(chan struct{})
	if err := b.writeRunFiles(time.Now()); err != nil {
		b.console.Logf("%v", err)
	} else {
		safeGo("run files", func() { b.keepRunFiles(stop) })
	}
	banner := "\n" + shellBanner(dashboard)
	if cleared {
		banner = clearScreen + shellBanner(dashboard)
	}
	b.console.Show(banner)

	cmd := exec.Command(b.shell)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, in, in
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "PATH=/bbin:/bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	var ended string
	if exited, err := b.launch.start(cmd); err != nil {
		ended = fmt.Sprintf("console: no shell: %v", err)
	} else {
		ended = fmt.Sprintf("console: shell exited (%s)", describeExit(<-exited))
	}
	close(stop)
	b.console.Logf("%s", ended)
	// The shell's session ending hung up the console's tty for every
	// descriptor opened on it by name, init's too.
	b.console.reopen()
	if b.shellOpen(false) {
		return // the dashboard is back, with the lines logged meanwhile
	}
	// The plain log: what scrolled by unseen, then how to get back in.
	n, lines := b.console.since(mark, dashboardLogLines)
	var s strings.Builder
	if n > len(lines) {
		fmt.Fprintf(&s, "(%d more lines while the shell was open: %s)\n", n-len(lines), logFile)
	}
	for _, l := range lines {
		s.WriteString(l + "\n")
	}
	s.WriteString(keyHint + "\n")
	b.console.Show(s.String())
}

// keyWaiter waits for single key presses on the console.
type keyWaiter struct {
	f *os.File
	// sane is the terminal's settings at boot, restored for every shell
	// (one may leave the terminal raw); nil when the console is not a
	// terminal.
	sane *unix.Termios
}

func newKeyWaiter(f *os.File) *keyWaiter {
	k := &keyWaiter{f: f}
	if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		k.sane = t
	}
	return k
}

// wait returns once a key is pressed. While it waits the terminal is
// non-canonical with VMIN=1, so one key is enough (no Enter); without echo,
// so the key does not land on the status screen; and without signal keys,
// so Ctrl-C is a key like any other. The boot-time settings are back when
// it returns, for the shell.
func (k *keyWaiter) wait() error {
	fd := int(k.f.Fd())
	if k.sane != nil {
		raw := *k.sane
		raw.Lflag &^= unix.ICANON | unix.ECHO | unix.ECHONL | unix.ISIG | unix.IEXTEN
		raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
		// Should it fail, Enter still completes a read.
		unix.IoctlSetTermios(fd, unix.TCSETS, &raw)
		// TCSETS, not TCSETSF: what is typed after the key goes to the shell.
		defer unix.IoctlSetTermios(fd, unix.TCSETS, k.sane)
	}
	// Room for a whole escape sequence (an arrow key), read as one key.
	buf := make([]byte, 16)
	n, err := k.f.Read(buf)
	switch {
	case n > 0:
		return nil
	case err == nil, errors.Is(err, io.EOF):
		return errors.New("console input closed")
	default:
		return fmt.Errorf("console input: %w", err)
	}
}
