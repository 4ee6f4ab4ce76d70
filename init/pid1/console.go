package pid1

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The log that the console shows is also kept: the last logKeep lines in
// memory (for the dashboard) and in logFile, readable from the console's
// shell, rotated to logFile.1 past logFileMax bytes.
const (
	logKeep    = 500
	logFile    = runDir + "/log"
	logFileMax = 1 << 20
)

// console writes init's and the relay's lines to every console the kernel
// was given (console=ttyS0 console=tty0 ...): /dev/console reaches only the
// last one, and an operator may be watching any of them.
type console struct {
	mu   sync.Mutex
	outs []*os.File
	// names are the devices of outs, for reopen; none when outs is
	// init's stdout.
	names []string
	ring  []string // the last logKeep lines, oldest first
	file  *os.File
	size  int64
	// logged counts every line since boot, so a reader can ask what came
	// after a mark.
	logged int
	quiet  bool // the dashboard or a shell owns the screen: log lines are kept, not shown
}

// openConsoles opens the devices named by console= parameters, else the
// kernel's active consoles, falling back to /dev/console (init's stdout)
// when none opens.
func openConsoles(params []Param) *console {
	c := &console{}
	var names []string
	for _, p := range params {
		if p.Key == "console" {
			name, _, _ := strings.Cut(p.Value, ",") // ttyS0,115200n8
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		active, _ := os.ReadFile("/sys/class/tty/console/active")
		names = strings.Fields(string(active))
	}
	seen := map[string]bool{}
	for _, name := range names {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		f, err := openConsole(name)
		if err != nil {
			continue
		}
		c.outs = append(c.outs, f)
		c.names = append(c.names, name)
	}
	if len(c.outs) == 0 {
		c.outs = []*os.File{os.Stdout}
	}
	if err := os.MkdirAll(runDir, 0o755); err == nil {
		c.file, _ = os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	return c
}

func openConsole(name string) (*os.File, error) {
	return os.OpenFile("/dev/"+name, os.O_WRONLY|unix.O_NOCTTY, 0)
}

// inputs are the consoles a key may be pressed on: the devices the log
// goes to, by name. None when the log goes to init's stdout.
func (c *console) inputs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// reopen opens the console devices again. When a session leader whose
// controlling terminal is a console exits (the console's shell), the kernel
// hangs that tty up: descriptors opened on it by name fail from then on
// (/dev/console's own are spared), and a serial port stops until opened
// again. The hung-up descriptors are closed after the new ones open: closing
// one does not count as closing the port.
func (c *console) reopen() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, name := range c.names {
		f, err := openConsole(name)
		if err != nil {
			continue // the old descriptor is all there is
		}
		c.outs[i].Close()
		c.outs[i] = f
	}
}

// Println logs one line: kept, and shown unless the dashboard is up.
func (c *console) Println(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ring) == logKeep {
		copy(c.ring, c.ring[1:])
		c.ring = c.ring[:logKeep-1]
	}
	c.ring = append(c.ring, line)
	c.logged++
	c.appendFile(line)
	if !c.quiet {
		c.write(line + "\n")
	}
}

// Logf logs one of init's own messages.
func (c *console) Logf(format string, args ...any) {
	c.Println("init: " + fmt.Sprintf(format, args...))
}

// Show writes text to the screen without logging it: the dashboard and the
// shell's banner.
func (c *console) Show(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write(text)
}

// setQuiet turns the log's echo to the screen off (the dashboard is up) or
// on again.
func (c *console) setQuiet(q bool) {
	c.mu.Lock()
	c.quiet = q
	c.mu.Unlock()
}

// last returns the last n log lines.
func (c *console) last(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ring[max(0, len(c.ring)-n):]...)
}

// mark is a place in the log, for since.
func (c *console) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logged
}

// since returns how many lines were logged after mark, and the last n of
// them (fewer if the ring no longer holds them).
func (c *console) since(mark, n int) (count int, lines []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	count = c.logged - mark
	n = min(n, count, len(c.ring))
	return count, append([]string(nil), c.ring[len(c.ring)-n:]...)
}

func (c *console) write(s string) {
	for _, w := range c.outs {
		w.WriteString(s)
	}
}

func (c *console) appendFile(line string) {
	if c.file == nil {
		return
	}
	if c.size > logFileMax {
		c.file.Close()
		os.Rename(logFile, logFile+".1")
		c.file, _ = os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		c.size = 0
		if c.file == nil {
			return
		}
	}
	n, _ := c.file.WriteString(line + "\n")
	c.size += int64(n)
}
