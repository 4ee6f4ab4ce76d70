package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/relay"
)

// buildRelay builds this command into a temporary directory.
func buildRelay(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "relay")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// relayProcess is a started relay binary.
type relayProcess struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	ready  *bufio.Reader // the read end of RELAYBOX_READY_FD
	done   chan error    // cmd.Wait's result
}

// start runs bin with args and env, its readiness pipe as fd 3, and kills it
// at the end of the test if it is still running.
func start(t *testing.T, bin string, env []string, args ...string) *relayProcess {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.SetReadDeadline(time.Now().Add(10 * time.Second))

	p := &relayProcess{cmd: exec.Command(bin, args...), ready: bufio.NewReader(r), done: make(chan error, 1)}
	p.cmd.ExtraFiles = []*os.File{w} // fd 3
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	w.Close() // the relay holds the only write end now: its exit means EOF
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the relay's exit error, failing the test if it takes more
// than 10 seconds.
func (p *relayProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("relay %q still running after 10s; stderr:\n%s", p.cmd.Args, p.stderr.String())
		return nil
	}
}

// binding sends a STUN Binding request to server from a new loopback socket
// and returns the XOR-MAPPED-ADDRESS of the answer and the socket's own address.
func binding(t *testing.T, server netip.AddrPort) (mapped, self string) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(server.Addr(), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := c.WriteToUDPAddrPort(req.Raw, server); err != nil {
		t.Fatalf("send to %v: %v", server, err)
	}
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("receive from %v: %v", server, err)
	}
	resp := new(stun.Message)
	if err := stun.Decode(buf[:n], resp); err != nil {
		t.Fatalf("stun.Decode(answer from %v) = %v", server, err)
	}
	if resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
		t.Errorf("answer from %v = %v id %x, want %v id %x", server, resp.Type, resp.TransactionID, stun.BindingSuccess, req.TransactionID)
	}
	var x stun.XORMappedAddress
	if err := x.GetFrom(resp); err != nil {
		t.Fatalf("XOR-MAPPED-ADDRESS from %v: %v", server, err)
	}
	return x.String(), c.LocalAddr().String()
}

func TestRelayBinary(t *testing.T) {
	bin := buildRelay(t)

	t.Run("serves until SIGTERM", func(t *testing.T) {
		p := start(t, bin, []string{"RELAYBOX_READY_FD=3"}, "--listen", "127.0.0.1:0", "--listen", "[::1]:0", "--control", controlPath(t))
		line, err := p.ready.ReadString('\n')
		if err != nil {
			t.Fatalf("read READY line: %v; stderr:\n%s", err, p.stderr.String())
		}
		fields := strings.Fields(line)
		if len(fields) != 3 || fields[0] != "READY" {
			t.Fatalf("READY line = %q, want READY and two addresses", line)
		}
		for i, want := range []string{"127.0.0.1", "::1"} {
			a, err := netip.ParseAddrPort(fields[i+1])
			if err != nil || a.Addr().String() != want || a.Port() == 0 {
				t.Fatalf("READY line = %q: address %d = %q, want %s with a port", line, i, fields[i+1], want)
			}
			mapped, self := binding(t, a)
			if diff := cmp.Diff(self, mapped); diff != "" {
				t.Errorf("Binding to %v: XOR-MAPPED-ADDRESS mismatch (-want +got):\n%s", a, diff)
			}
		}
		if rest, err := p.ready.ReadString('\n'); err != io.EOF {
			t.Errorf("read after READY line = %q, %v; want EOF (the relay closes the fd)", rest, err)
		}

		if err := p.cmd.Process.Signal(unix.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(t); err != nil {
			t.Errorf("relay after SIGTERM: %v, want exit 0; stderr:\n%s", err, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), `msg=stopped reason="terminated signal received"`) {
			t.Errorf("relay stderr = %q, want it to log the stop and its reason", p.stderr.String())
		}
	})

	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string // in stderr
	}{
		{"bad listen", nil, []string{"--listen", "1.2.3"}, `command line: listen "1.2.3": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"bad log level", nil, []string{"--log-level", "verbose"}, `log-level "verbose": want one of debug, info, warn, error`},
		{"unknown flag", nil, []string{"--port", "3478"}, "flag provided but not defined: -port"},
		{"argument", nil, []string{"127.0.0.1:0"}, `unexpected argument "127.0.0.1:0"`},
		{
			"overlapping listen", nil, []string{"--listen", "127.0.0.1:3478", "--listen", "127.0.0.1:3478"},
			"listen 127.0.0.1:3478: given twice",
		},
		{"ready fd not inherited", []string{"RELAYBOX_READY_FD=9"}, []string{"--listen", "127.0.0.1:0", "--control="}, "RELAYBOX_READY_FD=9: bad file descriptor"},
		{"ready fd not a number", []string{"RELAYBOX_READY_FD=stdout"}, []string{"--listen", "127.0.0.1:0", "--control="}, `RELAYBOX_READY_FD="stdout": want`},
		{"bad config file", nil, []string{"--config", "/nonexistent/relaybox.conf"}, "config: open /nonexistent/relaybox.conf: no such file or directory"},
		{
			"address in use", []string{"RELAYBOX_READY_FD=3"}, []string{"--listen", taken.LocalAddr().String(), "--control=", "--port-range=1000-2000"},
			"listen " + taken.LocalAddr().String() + ": address already in use: another TURN server is running? stop it or choose --listen",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, bin, tt.env, tt.args...)
			err := p.wait(t)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("relay %q exit = %v, want exit status 1", tt.args, err)
			}
			if !strings.Contains(p.stderr.String(), tt.want) {
				t.Errorf("relay %q stderr = %q, want it to contain %q", tt.args, p.stderr.String(), tt.want)
			}
			// A failed start closes the readiness fd without READY.
			if line, err := p.ready.ReadString('\n'); err != io.EOF {
				t.Errorf("readiness fd of failed relay %q: read %q, %v; want EOF", tt.args, line, err)
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		out, err := exec.Command(bin, "-h").Output()
		if err != nil {
			t.Errorf("relay -h: %v, want exit 0", err)
		}
		for _, key := range []string{"-listen", "-software", "-log-level", "-relay-address", "-auth-secret-file", "-metrics", "-control", "-config", "relay status"} {
			if !strings.Contains(string(out), key) {
				t.Errorf("relay -h output = %q, want it to list %s", out, key)
			}
		}
	})
}

// controlPath is a control socket path in a fresh short directory.
func controlPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rbx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "relay.sock")
}

// TestStatusCommand runs the relay from a config file, allocates with
// pion/turn's client, and reads `relay status` as text and JSON; then rolls
// the secrets file with SIGHUP.
func TestStatusCommand(t *testing.T) {
	bin := buildRelay(t)
	dir := t.TempDir()
	control := controlPath(t)
	secrets := filepath.Join(dir, "secrets")
	os.WriteFile(secrets, []byte("one\n"), 0o600)
	conf := filepath.Join(dir, "relaybox.conf")
	os.WriteFile(conf, []byte("listen = 127.0.0.1:0\nrelay-address = 127.0.0.1\nrealm = status.test\nuser = alice:pw\n"+
		"auth-secret-file = "+secrets+"\ncontrol = /nonexistent/overridden.sock\nunauth-amplification = 20\nport-range = 41000-41999\n"), 0o600)
	p := start(t, bin, []string{"RELAYBOX_READY_FD=3"}, "--config", conf, "--control", control)
	line, err := p.ready.ReadString('\n')
	if err != nil {
		t.Fatalf("read READY line: %v; stderr:\n%s", err, p.stderr.String())
	}
	server := strings.Fields(line)[1]

	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Username: "alice", Password: "pw", Conn: c, RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	alloc, err := tc.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v; stderr:\n%s", err, p.stderr.String())
	}
	defer alloc.Close()

	out, err := exec.Command(bin, "status", "--control", control).CombinedOutput()
	if err != nil {
		t.Fatalf("relay status: %v\n%s", err, out)
	}
	for _, want := range []string{"serving", "listen         " + server, "relay address  127.0.0.1, ports 41000-41999", "data plane     off",
		"allocations    1", "ALLOCATIONS (1 of 1)", c.LocalAddr().String(), alloc.LocalAddr().String(), "alice"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("relay status output:\n%s\nwant it to contain %q", out, want)
		}
	}
	out, err = exec.Command(bin, "status", "--control", control, "--json").Output()
	if err != nil {
		t.Fatalf("relay status --json: %v", err)
	}
	var st relay.Status
	if err := json.Unmarshal(out, &st); err != nil || st.Allocations != 1 || len(st.AllocationList) != 1 {
		t.Errorf("relay status --json = %s, %v; want one allocation", out, err)
	}
	if out, err := exec.Command(bin, "status", "--control", filepath.Join(dir, "none.sock")).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "is the relay running?") {
		t.Errorf("relay status without a relay: %v\n%s; want an error that says what to check", err, out)
	}

	// SIGHUP re-reads the secrets file.
	os.WriteFile(secrets, []byte("one\ntwo\n"), 0o600)
	p.cmd.Process.Signal(unix.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), "msg=\"secrets reloaded\"") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged after SIGHUP; stderr:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), "secrets=2") {
		t.Errorf("stderr %q: want the reload to count 2 secrets", p.stderr.String())
	}
	p.cmd.Process.Signal(unix.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Errorf("relay after SIGTERM: %v; stderr:\n%s", err, p.stderr.String())
	}
	if _, err := os.Stat(control); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after stop: %v, want it removed", err)
	}
}

// syncBuffer is a bytes.Buffer the relay's stderr copier and the test can
// use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
