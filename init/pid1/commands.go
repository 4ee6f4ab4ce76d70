package pid1

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
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
	"status":    {"links, XDP mode and counters, the relay", func(b *box, _ *os.File) { b.showLines(b.statusLines()) }},
	"dashboard": {"the status screen, redrawn as things change (Enter leaves it)", func(b *box, _ *os.File) { b.startDashboard() }},
	"log":       {"the last log lines (all of them: cat /run/relaybox/log in the shell)", func(b *box, _ *os.File) { b.showLines(b.console.last(logKeep)) }},
	"config":    {"the settings in force and where each came from (secrets hidden)", (*box).showConfig},
	"shell":     {"a shell on this console (exit to come back)", (*box).runShell},
	"poweroff":  {"stop the relay and power off", func(b *box, _ *os.File) { b.shutdown(powerOff, "console") }},
	"reboot":    {"stop the relay and reboot", func(b *box, _ *os.File) { b.shutdown(reboot, "console") }},
}

// serveConsole reads commands typed at the console, one per line, for as
// long as the box runs. A line typed while the dashboard is up takes it
// down first. Without a readable console it just returns.
func (b *box) serveConsole(in *os.File) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		b.stopDashboard()
		word := strings.TrimSpace(sc.Text())
		if word == "" {
			b.console.Show("relaybox> type help for commands\n")
			continue
		}
		if word == "help" {
			b.printHelp()
			continue
		}
		cmd, ok := consoleCommands[word]
		if !ok {
			b.console.Show(fmt.Sprintf("unknown command %q; type help\n", word))
			continue
		}
		cmd.run(b, in)
	}
}

func (b *box) showLines(lines []string) {
	b.console.Show(strings.Join(lines, "\n") + "\n")
}

func (b *box) printHelp() {
	lines := []string{fmt.Sprintf("  %-9s %s", "help", "list these commands")}
	var names []string
	for n := range consoleCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		lines = append(lines, fmt.Sprintf("  %-9s %s", n, consoleCommands[n].help))
	}
	b.showLines(lines)
}

func (b *box) showConfig(_ *os.File) {
	var lines []string
	for _, s := range b.cfg.Settings {
		lines = append(lines, fmt.Sprintf("  %-40s (%s)", s.Redacted(), s.Source))
	}
	if len(lines) == 0 {
		lines = []string{"  no settings: every key has its default"}
	}
	b.showLines(lines)
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
