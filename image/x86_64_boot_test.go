package image_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaybox/relaybox/image/qemu"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// TestX86BoardBoots boots the x86-64 board's image, the one for real
// servers, on the machine closest to one that QEMU has: q35's ICH9
// chipset with its TCO watchdog and an e1000e NIC, the Intel 1G of many
// servers. The board's modules must find both: the NIC comes up with
// generic XDP (e1000e has no native mode), init arms the TCO watchdog
// that lpc_ich instantiates and keeps it pinged past several timeouts
// (unpinged, QEMU resets the guest after two, which -no-reboot turns
// into QEMU exiting), and the relay answers STUN from the host side.
func TestX86BoardBoots(t *testing.T) {
	nstest.RequireRoot(t)
	// Only this test boots the x86-64 board: its image lives and dies
	// with it.
	art, err := buildBoardInto("x86-64", t.TempDir())
	if err != nil {
		t.Fatalf("build the x86-64 image: %v", err)
	}
	if fi, err := os.Stat(art.Initrd); err == nil {
		t.Logf("x86-64 initramfs: %d MiB", fi.Size()>>20)
	}
	const timeout = 3 * time.Second
	ns := tapNamespace(t)
	start := time.Now()
	sol := filepath.Join(t.TempDir(), "ttyS1")
	vm := bootArt(t, ns, art, qemu.Options{Machine: qemu.Q35, NIC: qemu.E1000E, SecondSerial: sol},
		"relaybox.dashboard=off", "relaybox.watchdog="+timeout.String())
	vm.waitFor(t, "watchdog iTCO_wdt armed: timeout 3s, pinged every 1s", bootTimeout)
	armed := time.Now()
	ready := vm.waitFor(t, "relaybox: ready", time.Minute)
	t.Logf("x86-64 board on q35 to the ready line: %s", time.Since(start).Round(time.Second))
	if !strings.Contains(ready, "xdp=eth0:generic") {
		t.Errorf("ready line %q: want xdp=eth0:generic (e1000e has no native XDP)", ready)
	}
	bindingFrom(t, ns)

	// Five timeouts after the watchdog was armed the guest still
	// answers: it was not reset.
	time.Sleep(time.Until(armed.Add(5 * timeout)))
	bindingFrom(t, ns)
	select {
	case err := <-vm.done:
		t.Fatalf("QEMU ended (%v): the watchdog reset the guest", err)
	default:
	}
	t.Logf("guest up %s after the watchdog was armed", time.Since(armed).Round(time.Second))

	// The board's consoles are the screen, ttyS1 and ttyS0: a key on
	// ttyS1, where most BMCs carry serial-over-LAN, opens a shell there.
	s1 := dialSerial(t, sol)
	s1.press(t, "x")
	s1.waitFor(t, "relaybox shell", time.Minute)
	s1.type_(t, "relay status")
	s1.waitFor(t, "data plane", time.Minute)
	s1.type_(t, "exit")
	vm.waitFor(t, "init: console: shell exited", time.Minute)
	// Each listed module loads or, its hardware absent, is skipped
	// quietly (sp5100_tco on this Intel chipset).
	if strings.Contains(vm.output(), "init: module ") {
		t.Error("a kernel module failed to load; see the console")
	}
}

// dialSerial connects to the guest serial port QEMU serves on the unix
// socket at path.
func dialSerial(t *testing.T, path string) *serial {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the guest's second serial port: %v", err)
	}
	s := readSerial("second serial port", conn, conn, nil)
	t.Cleanup(func() {
		conn.Close()
		if t.Failed() {
			t.Logf("second serial port:\n%s", s.output())
		}
	})
	return s
}
