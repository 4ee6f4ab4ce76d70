// Command init is relaybox's PID 1; everything it does lives in init/pid1.
package main

import "github.com/relaybox/relaybox/init/pid1"

func main() { pid1.Main() }
