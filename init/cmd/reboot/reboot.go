// Command reboot asks relaybox's init to stop the relay cleanly and reboot
// the box. It is the console shell's reboot; the work is PID 1's.
package main

import (
	"os"

	"github.com/relaybox/relaybox/init/pid1"
)

func main() { os.Exit(pid1.PowerCommand("reboot", os.Args[1:], os.Stdout, os.Stderr)) }
