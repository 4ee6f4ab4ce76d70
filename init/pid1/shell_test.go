package pid1

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the slave stands for the console,
// the master for the operator's keyboard. What the slave writes is drained.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	go io.Copy(io.Discard, m)
	return m, s
}

// A single key, no Enter, ends the wait; the terminal's settings are back
// afterwards, for the shell.
func TestKeyWaiterOneKey(t *testing.T) {
	master, slave := openPTY(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyWaiter(slave)
	done := make(chan error, 1)
	go func() { done <- keys.wait() }()
	// While it waits: non-canonical, one byte a read, no echo.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		raw, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if raw.Lflag&(unix.ICANON|unix.ECHO) == 0 && raw.Cc[unix.VMIN] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal while waiting for a key: lflag %#x VMIN %d, want non-canonical without echo, VMIN 1", raw.Lflag, raw.Cc[unix.VMIN])
		}
	}
	if _, err := master.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a key without Enter did not end the wait")
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Errorf("terminal settings after the wait:\n%+v\nwant those from before:\n%+v", *after, *before)
	}
	if after.Lflag&unix.ICANON == 0 || after.Lflag&unix.ECHO == 0 {
		t.Errorf("terminal after the wait is not canonical with echo: lflag %#x", after.Lflag)
	}
}

// testBox is a box whose console writes to a file the test reads.
func testBox(t *testing.T) (*box, func() string) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "screen"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	b := &box{console: &console{outs: []*os.File{out}}, launch: directLauncher{}, shellFiles: t.TempDir()}
	return b, func() string {
		text, _ := os.ReadFile(out.Name())
		return string(text)
	}
}

// The shell runs on the console as its controlling terminal, with the
// busybox's PATH and the status file written; when it exits the log
// lines are shown again, then how to open another.
func TestRunShell(t *testing.T) {
	_, slave := openPTY(t)
	b, screen := testBox(t)
	report := filepath.Join(t.TempDir(), "report")
	b.shell = filepath.Join(t.TempDir(), "shell")
	script := `#!/bin/sh
{
	echo "PATH=$PATH"
	[ -t 0 ] && echo "stdin is a terminal"
	set -- $(cat /proc/$$/stat)
	[ "$7" != 0 ] && echo "it is the controlling terminal"
	cat ` + b.shellFiles + `/status
} > ` + report + `
exit 3
`
	if err := os.WriteFile(b.shell, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b.runShell(slave)

	got, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("the shell did not run: %v", err)
	}
	for _, want := range []string{"PATH=/bbin:/bin\n", "stdin is a terminal\n", "it is the controlling terminal\n", "relay not started yet\n"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the shell saw:\n%s\nwant %q", got, want)
		}
	}
	s := screen()
	banner := strings.Index(s, "relaybox shell (gosh")
	exited := strings.Index(s, "init: console: shell exited (exit status 3)\n")
	hint := strings.LastIndex(s, keyHint)
	if banner < 0 || exited < banner || hint < exited {
		t.Errorf("console:\n%s\nwant the banner, the shell's exit logged, then %q", s, keyHint)
	}
	if !strings.Contains(s, "exit                       close the shell (a key opens another)") {
		t.Errorf("banner:\n%s\nwant exit explained for a box without the dashboard", s)
	}
	if b.console.quiet {
		t.Error("the log is still quiet after the shell")
	}
}

// A shell that cannot start is logged on the console, which carries on:
// the dashboard comes back.
func TestRunShellCannotStart(t *testing.T) {
	_, slave := openPTY(t)
	b, screen := testBox(t)
	b.shell = "/nonexistent/sh"
	b.wantDashboard(true)
	defer b.screenDown()
	b.runShell(slave)
	if !b.dashboardUp() {
		t.Error("the dashboard did not come back")
	}
	if got := b.console.last(1); len(got) != 1 || !strings.HasPrefix(got[0], "init: console: no shell: ") {
		t.Errorf("last log line %q, want why there is no shell", got)
	}
	if !strings.Contains(screen(), "exit                       back to the status screen") {
		t.Errorf("banner:\n%s\nwant exit explained for a box with the dashboard", screen())
	}
}

// Who has the screen: the dashboard waits for an open shell to close, and
// the log is quiet while either is up, shown again when the box goes down.
func TestScreen(t *testing.T) {
	b, _ := testBox(t)
	check := func(when string, wantUp, wantQuiet bool) {
		t.Helper()
		if up := b.dashboardUp(); up != wantUp {
			t.Errorf("%s: dashboard up %v, want %v", when, up, wantUp)
		}
		b.console.mu.Lock()
		quiet := b.console.quiet
		b.console.mu.Unlock()
		if quiet != wantQuiet {
			t.Errorf("%s: log quiet %v, want %v", when, quiet, wantQuiet)
		}
	}
	check("at boot", false, false)
	b.shellOpen(true)
	check("shell open before the relay serves", false, true)
	b.wantDashboard(true)
	check("relay serves while the shell is open", false, true)
	if !b.shellOpen(false) {
		t.Error("shellOpen(false) = false, want the dashboard wanted")
	}
	check("shell closed", true, true)
	b.shellOpen(true)
	check("another shell", false, true)
	b.screenDown()
	check("going down", false, false)
	b.shellOpen(false)
	check("shell closed while going down", false, false)
}

// since counts what was logged after a mark and returns its last lines.
func TestConsoleSince(t *testing.T) {
	c := &console{}
	c.Println("before")
	mark := c.mark()
	for i := range 5 {
		c.Println(fmt.Sprint("line ", i))
	}
	n, lines := c.since(mark, 3)
	if n != 5 || strings.Join(lines, ",") != "line 2,line 3,line 4" {
		t.Errorf("since = %d, %q; want 5, the last 3 lines", n, lines)
	}
	if n, lines := c.since(c.mark(), 3); n != 0 || len(lines) != 0 {
		t.Errorf("since now = %d, %q; want nothing", n, lines)
	}
}

// A key opens the shell on the console it was pressed on, whichever of the
// kernel's consoles that is, and again after the shell's end hung that
// console up.
func TestShellOnEveryConsole(t *testing.T) {
	type tty struct {
		master *os.File
		name   string // as in console=, under /dev
	}
	var ttys []tty
	b, _ := testBox(t)
	b.console = &console{}
	for range 2 {
		master, slave := openPTY(t)
		name := strings.TrimPrefix(slave.Name(), "/dev/")
		ttys = append(ttys, tty{master, name})
		b.console.outs = append(b.console.outs, slave)
		b.console.names = append(b.console.names, name)
	}
	report := filepath.Join(t.TempDir(), "report")
	b.shell = filepath.Join(t.TempDir(), "shell")
	script := "#!/bin/sh\nreadlink /proc/$$/fd/0 >> " + report + "\n"
	if err := os.WriteFile(b.shell, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b.serveConsoles()

	// waiting says whether init waits for a key on c: the terminal is
	// non-canonical then.
	waiting := func(c tty) bool {
		f, err := os.OpenFile("/dev/"+c.name, os.O_RDONLY|unix.O_NOCTTY, 0)
		if err != nil {
			return false
		}
		defer f.Close()
		tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&unix.ICANON == 0
	}
	// shellClosed says whether the last shell is over as init sees it: the
	// report is written as a shell starts, and a key pressed before init
	// has finished with it only says that a shell is open.
	shellClosed := func() bool {
		if !b.shellOn.TryLock() {
			return false
		}
		b.shellOn.Unlock()
		return true
	}
	var want []string
	for _, i := range []int{1, 0, 1} {
		want = append(want, "/dev/"+ttys[i].name)
		pressed := false
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			got, _ := os.ReadFile(report)
			if string(got) == strings.Join(want, "\n")+"\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shells opened on:\n%s\nwant %q", got, want)
			}
			if !pressed && waiting(ttys[i]) && shellClosed() {
				ttys[i].master.Write([]byte("x"))
				pressed = true
			}
		}
	}
}
