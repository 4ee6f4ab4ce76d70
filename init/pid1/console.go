package pid1

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// console writes init's messages to every console the kernel was given
// (console=ttyS0 console=tty0 ...): /dev/console reaches only the last one,
// and an operator may be watching any of them.
type console struct {
	mu   sync.Mutex
	outs []*os.File
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
	return c
}

// Println writes one line to every console.
func (c *console) Println(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := []byte(line + "\n")
	for _, w := range c.outs {
		w.Write(b)
	}
}

// Logf writes one of init's own messages.
func (c *console) Logf(format string, args ...any) {
	c.Println("init: " + fmt.Sprintf(format, args...))
}
