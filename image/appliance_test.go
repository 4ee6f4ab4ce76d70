package image_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/relaybox/relaybox/board"
	"github.com/relaybox/relaybox/image"
	"github.com/relaybox/relaybox/image/qemu"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// The guest and its host side, in a namespace each test makes.
const (
	hostAddr  = "198.18.0.1"
	guestAddr = "198.18.0.2"
	ipParam   = "ip=" + guestAddr + "::" + hostAddr + ":255.255.255.0::eth0:off"
	// TCG on a shared 2-core machine: generous, the boot itself takes
	// well under a minute.
	bootTimeout = 4 * time.Minute
	// testSoftware is the relay's SOFTWARE in the disk image's
	// relaybox.conf: a STUN answer carrying it shows the config partition
	// was read.
	testSoftware = "relaybox-usb-test"
)

// testConfig is the relaybox.conf the tests' disk image carries.
var testConfig = []byte("# relaybox.conf of the image tests\nsoftware = " + testSoftware + "\n")

var (
	buildOnce sync.Once
	built     image.Artifacts
	buildErr  error
)

// buildImage builds the qemu board once for every test in the package, from
// the current source, keeping the downloaded packages in the repository's
// out/cache. The boot media get the static ip= the tests' namespaces use;
// the disk image's config partition gets testConfig.
func buildImage(t *testing.T) image.Artifacts {
	t.Helper()
	nstest.RequireRoot(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relaybox-test-image-")
		if err != nil {
			buildErr = err
			return
		}
		built, buildErr = buildInto(dir)
	})
	if buildErr != nil {
		t.Fatalf("build image: %v", buildErr)
	}
	return built
}

func buildInto(dir string) (image.Artifacts, error) {
	return buildBoardInto("qemu", dir)
}

// buildBoardInto builds the named board into dir as buildImage builds the
// qemu board: the shared package cache, testConfig, the static ip=.
func buildBoardInto(name, dir string) (image.Artifacts, error) {
	b, err := board.Lookup(name)
	if err != nil {
		return image.Artifacts{}, err
	}
	return image.Build(image.Options{
		Board:    b,
		OutDir:   dir,
		CacheDir: filepath.Join("..", "out", "cache"),
		Config:   testConfig,
		Append:   []string{ipParam},
	})
}

// TestBuildIsReproducible builds a second time into another directory and
// compares every output, the manifest included, byte for byte.
func TestBuildIsReproducible(t *testing.T) {
	first := buildImage(t)
	second, err := buildInto(t.TempDir())
	if err != nil {
		t.Fatalf("second build: %v", err)
	}
	firstDir, secondDir := filepath.Dir(first.Manifest), filepath.Dir(second.Manifest)
	for _, rel := range append(first.Outputs(), filepath.Base(first.Manifest)) {
		a, errA := os.ReadFile(filepath.Join(firstDir, rel))
		b, errB := os.ReadFile(filepath.Join(secondDir, rel))
		if errA != nil || errB != nil {
			t.Fatalf("read artifacts: %v, %v", errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds from the same inputs (%d and %d bytes)", rel, len(a), len(b))
		}
	}
}

// TestApplianceBoots boots the image with each NIC model, waits for the
// ready line, asks the relay for a STUN binding from the host side, reads
// the XDP counters at the console and powers the guest off.
func TestApplianceBoots(t *testing.T) {
	for _, tc := range []struct {
		nic      string
		wantXDP  string
		poweroff func(*testing.T, *vm)
	}{
		// The shell's poweroff, which asks init.
		{qemu.VirtioNet, "xdp=eth0:native", func(t *testing.T, v *vm) { v.type_(t, "poweroff") }},
		// SIGTERM to PID 1, from the console's shell.
		{qemu.E1000, "xdp=eth0:generic", func(t *testing.T, v *vm) {
			v.shell(t, "echo shell-$((6*7))", "shell-42") // the typed line shows shell-$((6*7))
			v.type_(t, "kill -SIGTERM 1")
		}},
	} {
		t.Run(tc.nic, func(t *testing.T) {
			ns := tapNamespace(t)
			// Lines rather than the dashboard: the test reads the console.
			vm := boot(t, ns, tc.nic, "relaybox.dashboard=off")
			ready := vm.waitFor(t, "relaybox: ready", bootTimeout)
			if !strings.Contains(ready, tc.wantXDP) || !strings.Contains(ready, "listen=0.0.0.0:3478") {
				t.Errorf("ready line %q: want listen=0.0.0.0:3478 and %s", ready, tc.wantXDP)
			}

			b := bindingFrom(t, ns)
			if !b.Mapped.IP.Equal(b.Local.IP) || b.Mapped.Port != b.Local.Port {
				t.Errorf("XOR-MAPPED-ADDRESS = %v, want the client's own %v", b.Mapped, b.Local)
			}

			// The guest's XDP program saw the request: its STUN counter moved.
			vm.openShell(t)
			line := vm.shell(t, "cat /run/relaybox/status", "xdp stun")[0]
			if strings.Contains(line, "packets 0 ") {
				t.Errorf("status line %q: want the STUN request counted by XDP", line)
			}

			tc.poweroff(t, vm)
			vm.waitFor(t, "init: relay stopped", time.Minute)
			vm.waitFor(t, "reboot: Power down", time.Minute)
			if err := vm.wait(time.Minute); err != nil {
				t.Fatalf("QEMU after power off: %v", err)
			}
			if n := countLinesWithPrefix(vm.output(), "relaybox: ready"); n != 1 {
				t.Errorf("%d ready lines, want exactly 1", n)
			}
		})
	}
}

// binding is what a STUN Binding exchange with the guest's relay told.
type binding struct {
	Local, Mapped *net.UDPAddr // the client socket, and the relay's view of it
	Software      string
}

// stunBinding sends a Binding request from a fresh socket on local, the
// host side of the tap, to server, and decodes the answer, retrying while
// the guest's neighbour discovery and the relay settle. Call it inside the
// test's namespace.
func stunBinding(local, server string) (binding, error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return binding{}, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)})
	if err != nil {
		return binding{}, err
	}
	defer conn.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	buf := make([]byte, 1500)
	for try := 0; try < 10; try++ {
		if _, err := conn.WriteToUDP(req.Raw, raddr); err != nil {
			return binding{}, err
		}
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		res := new(stun.Message)
		if err := stun.Decode(buf[:n], res); err != nil {
			return binding{}, err
		}
		if res.TransactionID != req.TransactionID || res.Type != stun.BindingSuccess {
			return binding{}, fmt.Errorf("answer %v, want a Binding success for our transaction", res)
		}
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(res); err != nil {
			return binding{}, err
		}
		var sw stun.Software
		sw.GetFrom(res) // absent is ""
		return binding{conn.LocalAddr().(*net.UDPAddr), &net.UDPAddr{IP: xor.IP, Port: xor.Port}, sw.String()}, nil
	}
	return binding{}, fmt.Errorf("no answer from %s after 10 tries", server)
}

// bindingFrom asks the guest's relay for a STUN binding from inside ns.
func bindingFrom(t *testing.T, ns *nstest.NS) binding {
	t.Helper()
	return bindingBetween(t, ns, hostAddr, net.JoinHostPort(guestAddr, "3478"))
}

// bindingBetween is bindingFrom with the addresses given, IPv6 ones too.
func bindingBetween(t *testing.T, ns *nstest.NS, local, server string) binding {
	t.Helper()
	var b binding
	if err := ns.Do(func() error {
		var err error
		b, err = stunBinding(local, server)
		return err
	}); err != nil {
		t.Fatalf("STUN binding %s → %s: %v", local, server, err)
	}
	return b
}

// vm is a QEMU guest whose serial console the test reads and types on.
type vm struct {
	*serial
	cmd  *exec.Cmd
	done chan error
}

func startVM(t *testing.T, ns *nstest.NS, o qemu.Options) *vm {
	t.Helper()
	cmd := ns.Command("qemu-system-x86_64", o.Args()...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start QEMU: %v", err)
	}
	v := &vm{cmd: cmd, done: make(chan error, 1)}
	// Wait only once stdout is read to its end, as StdoutPipe asks.
	v.serial = readSerial("serial console", stdout, stdin, func() { v.done <- cmd.Wait() })
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("serial console:\n%s", v.output())
		}
	})
	return v
}

func (v *vm) wait(timeout time.Duration) error {
	select {
	case err := <-v.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("still running %s after power off", timeout)
	}
}

// serial is the host's end of a guest serial port: what the guest wrote,
// line by line, and the keyboard.
type serial struct {
	name  string // for failures: "serial console", say
	in    io.Writer
	lines chan string

	mu  sync.Mutex
	out strings.Builder
}

// readSerial reads the guest's lines from out until it ends, then calls
// ended (if not nil); in is where keys go.
func readSerial(name string, out io.Reader, in io.Writer, ended func()) *serial {
	s := &serial{name: name, in: in, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			s.mu.Lock()
			s.out.WriteString(line + "\n")
			s.mu.Unlock()
			select {
			case s.lines <- line:
			default: // nobody is waiting for output this old
			}
		}
		close(s.lines)
		if ended != nil {
			ended()
		}
	}()
	return s
}

func (s *serial) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// waitFor returns the first line from now on that contains want.
func (s *serial) waitFor(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("QEMU exited while waiting for %q on the %s", want, s.name)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("no %q on the %s within %s", want, s.name, timeout)
		}
	}
}

func (s *serial) type_(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		t.Fatalf("type %q on the %s: %v", line, s.name, err)
	}
}

func countLinesWithPrefix(text, prefix string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}
