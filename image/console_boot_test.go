package image_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaybox/relaybox/image"
	"github.com/relaybox/relaybox/image/qemu"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// tapNamespace makes a namespace holding tap0 (hostAddr/24), the host side
// of a guest's NIC.
func tapNamespace(t *testing.T) *nstest.NS {
	t.Helper()
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
	ns.MustRun(t, "ip", "addr", "add", hostAddr+"/24", "dev", "tap0")
	ns.MustRun(t, "ip", "link", "set", "tap0", "up")
	return ns
}

// boot starts the qemu image with the given NIC model on ns's tap0, with
// the board's command line, the guest's static address and extra
// parameters.
func boot(t *testing.T, ns *nstest.NS, nic string, extra ...string) *vm {
	t.Helper()
	return bootWith(t, ns, qemu.Options{NIC: nic}, extra...)
}

// bootWith is boot with more QEMU options (a watchdog, say); o's kernel,
// initrd, command line and tap are filled in.
func bootWith(t *testing.T, ns *nstest.NS, o qemu.Options, extra ...string) *vm {
	t.Helper()
	return bootArt(t, ns, buildImage(t), o, extra...)
}

// bootArt is bootWith for art, another board's image, say.
func bootArt(t *testing.T, ns *nstest.NS, art image.Artifacts, o qemu.Options, extra ...string) *vm {
	t.Helper()
	cmdline, err := os.ReadFile(art.Cmdline)
	if err != nil {
		t.Fatal(err)
	}
	params := append([]string{strings.TrimSpace(string(cmdline)), ipParam}, extra...)
	o.Kernel, o.Initrd, o.Tap = art.Kernel, art.Initrd, "tap0"
	o.Cmdline = strings.Join(params, " ")
	return startVM(t, ns, o)
}

// bootGuest boots the image with a virtio NIC in a namespace of its own.
func bootGuest(t *testing.T, extra ...string) (*nstest.NS, *vm) {
	t.Helper()
	ns := tapNamespace(t)
	return ns, boot(t, ns, qemu.VirtioNet, extra...)
}

// The console's words the tests wait for: the hint on the status screen (and
// in the plain log once the relay serves), and the shell's banner, first
// and last line.
const (
	keyHint     = "press any key for a shell"
	bannerFirst = "relaybox shell (gosh; the commands are in /bbin)"
	bannerLast  = "Log lines are kept, not shown, while the shell is open."
)

// press sends keys to the serial port as typed, without Enter.
func (s *serial) press(t *testing.T, keys string) {
	t.Helper()
	if _, err := io.WriteString(s.in, keys); err != nil {
		t.Fatalf("press %q on the %s: %v", keys, s.name, err)
	}
}

// openShell presses a key at the status screen (or the plain log) and
// waits for the shell's banner.
func (v *vm) openShell(t *testing.T) {
	t.Helper()
	v.press(t, " ")
	v.waitFor(t, bannerFirst, time.Minute)
	v.waitFor(t, bannerLast, time.Minute)
}

// shell types a command line into the console's shell, waits for a line
// containing each of want in turn and returns them, then waits for the
// command's end: a line typed while a command runs may be lost. The end is
// a marker only the shell's output holds, not the echo of the typed line.
func (v *vm) shell(t *testing.T, line string, want ...string) []string {
	t.Helper()
	v.type_(t, line+"; echo shell-done-$((41+1))")
	var got []string
	for _, w := range want {
		got = append(got, v.waitFor(t, w, time.Minute))
	}
	v.waitFor(t, "shell-done-42", time.Minute)
	return got
}

// shellPowerOff types poweroff into the open shell and waits for init's
// clean power off and QEMU's end.
func (v *vm) shellPowerOff(t *testing.T) {
	t.Helper()
	v.type_(t, "poweroff")
	v.waitFor(t, "init: power off requested (", time.Minute)
	v.waitFor(t, "relaybox: power off", time.Minute)
	v.waitFor(t, "reboot: Power down", time.Minute)
	if err := v.wait(time.Minute); err != nil {
		t.Fatalf("QEMU after power off: %v", err)
	}
}

// powerOff opens a shell and powers off from it.
func (v *vm) powerOff(t *testing.T) {
	t.Helper()
	v.openShell(t)
	v.shellPowerOff(t)
}

// The dashboard comes up once the relay serves and redraws when a counter
// moves. One key, no Enter, opens a shell that has what the operator needs;
// exit brings the dashboard back, the next key another shell, and poweroff
// in it powers the box off cleanly.
func TestConsoleDashboard(t *testing.T) {
	ns, vm := bootGuest(t)
	vm.waitFor(t, "relaybox: ready", bootTimeout)
	vm.waitFor(t, keyHint, time.Minute)
	bindingFrom(t, ns)
	// Redrawn within dashboardEvery (5s) because the STUN counter moved.
	vm.waitFor(t, "xdp stun         packets 1 ", time.Minute)

	// A key that is not Enter: the console waits for single keys.
	vm.press(t, "x")
	vm.waitFor(t, bannerFirst, time.Minute)
	for _, w := range []string{"relay status", "cat /run/relaybox/status", "cat /run/relaybox/config",
		"cat /run/relaybox/log", "poweroff, reboot", "back to the status screen", bannerLast} {
		vm.waitFor(t, w, time.Minute)
	}
	vm.shell(t, "relay status", "serving, up", "bindings installed")
	vm.shell(t, "cat /run/relaybox/status", "xdp=eth0:native", "xdp stun         packets 1 ", "relay pid ")
	vm.shell(t, "cat /run/relaybox/config", "ip = "+guestAddr)
	vm.shell(t, "cat /run/relaybox/log", "init: xdp: attached to eth0 in native mode; clock: jiffies, HZ=", "relaybox: ready")

	vm.type_(t, "exit")
	vm.waitFor(t, "init: console: shell exited (", time.Minute) // in the dashboard's log
	vm.waitFor(t, keyHint, time.Minute)
	vm.press(t, "\r") // Enter is a key too
	vm.waitFor(t, bannerLast, time.Minute)
	vm.shellPowerOff(t)

	// Modules for hardware QEMU lacks (CPU-specific crypto) are skipped
	// quietly; any other module failure would be reported.
	if strings.Contains(vm.output(), "init: module ") {
		t.Error("a kernel module failed to load; see the console")
	}
	if !strings.Contains(vm.output(), "for hardware this box lacks)") {
		t.Error("no module summary on the console")
	}
}

// A bad key keeps the relay down, says which key and why on the console,
// and leaves the box diagnosable and able to power off.
func TestBadConfigKeepsConsole(t *testing.T) {
	_, vm := bootGuest(t, "relaybox.xdp=fast", "relaybox.colour=blue")
	vm.waitFor(t, `kernel command line: relaybox.xdp: unknown xdp mode "fast"`, bootTimeout)
	vm.waitFor(t, "kernel command line: relaybox.colour: unknown key", time.Minute)
	vm.waitFor(t, "not starting the relay", time.Minute)
	vm.waitFor(t, keyHint, time.Minute)
	vm.openShell(t)
	vm.shell(t, "cat /run/relaybox/status", "relay not started: the configuration has errors")
	vm.shell(t, "cat /run/relaybox/config", "colour = blue")
	vm.shellPowerOff(t)
	if strings.Contains(vm.output(), "relaybox: ready") {
		t.Error("the relay served despite a bad configuration")
	}
}

// relaybox.config names a URL; the box retries until it answers and the
// relay runs with what it holds.
func TestConfigFromURL(t *testing.T) {
	var calls atomic.Int32
	serve := func(ns *nstest.NS) string {
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp4", hostAddr+":0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				http.Error(w, "warming up", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "# served to the test guest\nsoftware = relaybox-from-url\n")
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return fmt.Sprintf("http://%s/relaybox.conf", ln.Addr())
	}

	// The server listens in the namespace before the guest, whose command
	// line carries its URL, boots.
	ns := tapNamespace(t)
	url := serve(ns)
	vm := boot(t, ns, qemu.VirtioNet, "relaybox.dashboard=off", "relaybox.config="+url)
	vm.waitFor(t, "503", bootTimeout)
	vm.waitFor(t, "config: 1 settings from "+url, time.Minute)
	vm.waitFor(t, "relaybox: ready", time.Minute)
	// The relay got the URL's setting. (Its STUN answers are kept as small
	// as the request, so SOFTWARE does not show there.)
	vm.openShell(t)
	vm.shell(t, "cat /run/relaybox/config", "software = relaybox-from-url")
	bindingFrom(t, ns)
	vm.shellPowerOff(t)
}

// init arms the hardware watchdog and keeps pinging it: the guest outlives
// several timeouts. Unpinged, QEMU's i6300esb resets the guest after two
// timeouts, which -no-reboot turns into QEMU exiting.
func TestWatchdogPinged(t *testing.T) {
	ns := tapNamespace(t)
	vm := bootWith(t, ns, qemu.Options{NIC: qemu.VirtioNet, Watchdog: true}, "relaybox.dashboard=off", "relaybox.watchdog=3s")
	vm.waitFor(t, "armed: timeout 3s, pinged every 1s", bootTimeout)
	vm.waitFor(t, "relaybox: ready", time.Minute)
	time.Sleep(15 * time.Second) // five timeouts
	vm.openShell(t)
	vm.shell(t, "cat /run/relaybox/status", "relay pid")
	vm.shellPowerOff(t)
}

// Without an ip= of its own the box asks DHCP on every link (ip=off
// forgets the static entry the tests' boot adds).
func TestBootsWithDHCP(t *testing.T) {
	ns := tapNamespace(t)
	serveDHCP(t, ns, "")
	vm := boot(t, ns, qemu.VirtioNet, "relaybox.dashboard=off", "ip=off", "ip=dhcp")
	vm.waitFor(t, "relaybox: ready", bootTimeout)
	if b := bindingFrom(t, ns); b.Mapped.String() != b.Local.String() {
		t.Errorf("XOR-MAPPED-ADDRESS = %v, want %v", b.Mapped, b.Local)
	}
	vm.openShell(t)
	vm.shell(t, "cat /run/relaybox/status", guestAddr+"/24") // the leased address on the link
	vm.shellPowerOff(t)
	if !strings.Contains(vm.output(), "dhcp") {
		t.Error("the console never mentions DHCP")
	}
}

// A static IPv6 address next to the IPv4 one: the relay answers on both.
func TestBootsWithIPv6(t *testing.T) {
	const host6, guest6 = "2001:2::1", "2001:2::2"
	ns := tapNamespace(t)
	ns.MustRun(t, "ip", "-6", "addr", "add", host6+"/64", "dev", "tap0", "nodad")
	vm := boot(t, ns, qemu.VirtioNet, "relaybox.dashboard=off",
		"ip=["+guest6+"]::["+host6+"]:64::eth0:off",
		"relaybox.listen=0.0.0.0:3478", "relaybox.listen=[::]:3478")
	ready := vm.waitFor(t, "relaybox: ready", bootTimeout)
	if !strings.Contains(ready, "[::]:3478") {
		t.Errorf("ready line %q: want the IPv6 listener", ready)
	}
	b := bindingBetween(t, ns, host6, net.JoinHostPort(guest6, "3478"))
	if b.Mapped.String() != b.Local.String() {
		t.Errorf("XOR-MAPPED-ADDRESS over IPv6 = %v, want %v", b.Mapped, b.Local)
	}
	bindingFrom(t, ns) // and IPv4 still
	vm.powerOff(t)
}

// TestMain removes the image the tests shared.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.Kernel != "" {
		os.RemoveAll(filepath.Dir(built.Kernel))
	}
	os.Exit(code)
}
