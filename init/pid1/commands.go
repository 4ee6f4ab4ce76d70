package pid1

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// consoleCommand is something an operator can type at the serial console.
type consoleCommand struct {
	help string
	run  func(b *box, in *os.File)
}

var consoleCommands = map[string]consoleCommand{
	"status":   {"links, XDP, relay and kernel counters", func(b *box, _ *os.File) { b.printStatus() }},
	"shell":    {"a shell on this console (exit to come back)", (*box).runShell},
	"poweroff": {"stop the relay and power off", func(b *box, _ *os.File) { b.shutdown(powerOff, "console") }},
	"reboot":   {"stop the relay and reboot", func(b *box, _ *os.File) { b.shutdown(reboot, "console") }},
}

// serveConsole reads commands typed at the console, one per line, for as
// long as the box runs. Without a readable console it just returns.
func (b *box) serveConsole(in *os.File) {
	b.console.Println("relaybox: console ready; type help for commands")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		word := strings.TrimSpace(sc.Text())
		if word == "" {
			continue
		}
		if word == "help" {
			b.printHelp()
			continue
		}
		cmd, ok := consoleCommands[word]
		if !ok {
			b.console.Println(fmt.Sprintf("unknown command %q; type help", word))
			continue
		}
		cmd.run(b, in)
	}
}

func (b *box) printHelp() {
	b.console.Println(fmt.Sprintf("  %-9s %s", "help", "list these commands"))
	var names []string
	for n := range consoleCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b.console.Println(fmt.Sprintf("  %-9s %s", n, consoleCommands[n].help))
	}
}

func (b *box) printStatus() {
	p := b.console.Println
	if b.net != nil {
		links, err := b.net.Links()
		if err != nil {
			p("links: " + err.Error())
		}
		for _, l := range links {
			p("link " + l.String())
		}
	}
	p(b.xdpReport())
	if b.xdp != nil {
		counters, err := b.xdp.Counters()
		if err != nil {
			p("xdp counters: " + err.Error())
		}
		for _, class := range slices.Sorted(maps.Keys(counters)) {
			c := counters[class]
			p(fmt.Sprintf("xdp %-12s packets %d bytes %d", class, c.Packets, c.Bytes))
		}
	}
	if b.relay != nil {
		s := b.relay.Status()
		p(fmt.Sprintf("relay pid %d restarts %d", s.PID, s.Restarts))
	} else {
		p("relay not started")
	}
}

// runShell runs the default shell on the console as its controlling
// terminal, and comes back when it exits.
func (b *box) runShell(in *os.File) {
	cmd := exec.Command("/bin/sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, in, in
	cmd.Env = append(os.Environ(), "PATH=/bbin:/bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	exited, err := b.launch.start(cmd)
	if err != nil {
		b.console.Logf("shell: %v", err)
		return
	}
	ws := <-exited
	b.console.Logf("shell exited (%s)", describeExit(ws))
}
