package pid1

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The log that the console shows is also kept: the last logKeep lines in
// memory (for the dashboard and the log command) and in logFile, readable
// from the shell, rotated to logFile.1 past logFileMax bytes.
const (
	logKeep    = 500
	logFile    = "/run/relaybox/log"
	logFileMax = 1 << 20
)

// console writes init's and the relay's lines to every console the kernel
// was given (console=ttyS0 console=tty0 ...): /dev/console reaches only the
// last one, and an operator may be watching any of them.
type console struct {
	mu    sync.Mutex
	outs  []*os.File
	ring  []string // the last logKeep lines, oldest first
	file  *os.File
	size  int64
	quiet bool // the dashboard owns the screen: log lines go to the ring only
}

// openConsoles opens the devices named by console= parameters, falling back
// to /dev/console (init's stdout) when none opens.
func openConsoles(params []Param) *console {
	c := &console{}
	seen := map[string]bool{}
	for _, p := range params {
		if p.Key != "console" {
			continue
		}
		name, _, _ := strings.Cut(p.Value, ",") // ttyS0,115200n8
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		f, err := os.OpenFile("/dev/"+name, os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		c.outs = append(c.outs, f)
	}
	if len(c.outs) == 0 {
		c.outs = []*os.File{os.Stdout}
	}
	if err := os.MkdirAll("/run/relaybox", 0o755); err == nil {
		c.file, _ = os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	return c
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
	c.appendFile(line)
	if !c.quiet {
		c.write(line + "\n")
	}
}

// Logf logs one of init's own messages.
func (c *console) Logf(format string, args ...any) {
	c.Println("init: " + fmt.Sprintf(format, args...))
}

// Show writes text to the screen without logging it: answers to console
// commands and the dashboard.
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
