package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
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
	stderr bytes.Buffer
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
		p := start(t, bin, []string{"RELAYBOX_READY_FD=3"}, "--listen", "127.0.0.1:0", "--listen", "[::1]:0")
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
		{"bad listen", nil, []string{"--listen", "1.2.3"}, `-listen: listen "1.2.3": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"bad log level", nil, []string{"--log-level", "verbose"}, `log-level "verbose": want one of debug, info, warn, error`},
		{"unknown flag", nil, []string{"--port", "3478"}, "flag provided but not defined: -port"},
		{"argument", nil, []string{"127.0.0.1:0"}, `unexpected argument "127.0.0.1:0"`},
		{
			"overlapping listen", nil, []string{"--listen", "127.0.0.1:3478", "--listen", "127.0.0.1:3478"},
			"listen 127.0.0.1:3478: given twice",
		},
		{"ready fd not inherited", []string{"RELAYBOX_READY_FD=9"}, []string{"--listen", "127.0.0.1:0"}, "RELAYBOX_READY_FD=9: bad file descriptor"},
		{"ready fd not a number", []string{"RELAYBOX_READY_FD=stdout"}, []string{"--listen", "127.0.0.1:0"}, `RELAYBOX_READY_FD="stdout": want`},
		{
			"address in use", []string{"RELAYBOX_READY_FD=3"}, []string{"--listen", taken.LocalAddr().String()},
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
		for _, key := range []string{"-listen", "-software", "-log-level"} {
			if !strings.Contains(string(out), key) {
				t.Errorf("relay -h output = %q, want it to list %s", out, key)
			}
		}
	})
}
