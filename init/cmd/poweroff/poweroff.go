// Command poweroff asks relaybox's init to stop the relay cleanly and power
// the box off. It is the console shell's poweroff; the work is PID 1's.
package main

import (
	"os"

	"github.com/relaybox/relaybox/init/pid1"
)

func main() { os.Exit(pid1.PowerCommand("poweroff", os.Args[1:], os.Stdout, os.Stderr)) }
