package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pion/stun/v3"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// Server is one of the TURN servers compared: how to start it in the relay
// namespace, listening on the topology's address.
type Server struct {
	// Name is the subject of its figures (XDP, UserSpace, Coturn, Pion).
	Name string
	// Command returns the command line, given a scratch directory of its
	// own.
	Command func(dir string) (path string, args []string, err error)
	// XDP says the server's data path is the kernel's: it must attach
	// relaybox's XDP program to the relay NIC in native mode.
	XDP bool
	// Missing, if not empty, says why the server cannot be measured.
	Missing string
}

// relayboxServer is relay/cmd/relay, in user space or with --xdp on the
// relay NIC. Every server is told the same: the one listen address, the
// relay address on the same NIC, the allocation ports, the REST secret,
// and that peers in the benchmarking range are allowed.
func relayboxServer(bin string, xdp bool) Server {
	name := UserSpace
	if xdp {
		name = XDP
	}
	return Server{Name: name, XDP: xdp, Command: func(string) (string, []string, error) {
		args := []string{
			"--listen", netip.AddrPortFrom(RelayIP, ListenPort).String(),
			"--relay-address", RelayIP.String(),
			"--port-range", fmt.Sprintf("%d-%d", PortMin, PortMax),
			"--realm", Realm,
			"--auth-secret", Secret,
			"--allow-peer", benchRange.String(),
			"--control", "",
			"--log-level", "warn",
			// Every benchmark client shares one source address: the
			// per-source limits on unauthenticated requests would
			// otherwise throttle the allocation benchmark (and pion's
			// first Allocate is smaller than the 401 that answers it).
			"--unauth-rate", "1000000",
			"--unauth-burst", "1000000",
			"--unauth-amplification", "20",
		}
		if xdp {
			args = append(args, "--xdp", relayIface)
		}
		return bin, args, nil
	}}
}

// coturnServer is Debian's coturn with a config file in its scratch
// directory: REST secret, one relay thread per core, UDP only, no CLI,
// logs to a file there.
func coturnServer(bin string, threads int) Server {
	return Server{Name: Coturn, Command: func(dir string) (string, []string, error) {
		conf := strings.Join([]string{
			"listening-ip=" + RelayIP.String(),
			"relay-ip=" + RelayIP.String(),
			"listening-port=" + strconv.Itoa(ListenPort),
			fmt.Sprintf("min-port=%d", PortMin),
			fmt.Sprintf("max-port=%d", PortMax),
			fmt.Sprintf("relay-threads=%d", threads),
			"use-auth-secret",
			"static-auth-secret=" + Secret,
			"realm=" + Realm,
			"fingerprint",
			"no-tcp", "no-tls", "no-dtls", "no-tcp-relay", "no-cli",
			"no-multicast-peers",
			"allowed-peer-ip=198.18.0.0-198.19.255.255",
			"pidfile=" + filepath.Join(dir, "turnserver.pid"),
			"userdb=" + filepath.Join(dir, "turndb"),
			"log-file=" + filepath.Join(dir, "turnserver.log"),
			"simple-log",
			"no-stdout-log",
		}, "\n") + "\n"
		path := filepath.Join(dir, "turnserver.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return "", nil, err
		}
		return bin, []string{"-c", path}, nil
	}}
}

// pionServer is bench/cmd/pionturn: pion/turn's server API with REST
// credentials and one SO_REUSEPORT socket per core.
func pionServer(bin string, threads int) Server {
	return Server{Name: Pion, Command: func(string) (string, []string, error) {
		return bin, []string{
			"--listen", netip.AddrPortFrom(RelayIP, ListenPort).String(),
			"--relay-ip", RelayIP.String(),
			"--port-range", fmt.Sprintf("%d-%d", PortMin, PortMax),
			"--realm", Realm,
			"--auth-secret", Secret,
			"--sockets", strconv.Itoa(threads),
		}, nil
	}}
}

// process is a running server.
type process struct {
	name string
	cmd  *exec.Cmd
	Pid  int
	done chan struct{}
	err  error // after done
	out  *tailBuffer
}

// startServer starts s in topo's relay namespace and waits until it
// answers a STUN Binding request on the listen address.
//
// The process is forked from a thread inside the namespace rather than
// through `ip netns exec`, which would remount /sys and hide the bpffs a
// relay with XDP pins its maps on.
func startServer(topo *Topology, s Server, dir string) (*process, error) {
	path, args, err := s.Command(dir)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &process{name: s.Name, done: make(chan struct{}), out: &tailBuffer{max: 16 << 10}}
	p.cmd = exec.Command(path, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// If the benchmark dies, so does the server.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := topo.Relay.Do(p.cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", s.Name, path, err)
	}
	p.Pid = p.cmd.Process.Pid
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := waitSTUN(topo.Client, topo.Listen(), 15*time.Second, p.done); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s did not come up: %w\n%s", s.Name, err, p.out.tail(10))
	}
	return p, nil
}

// alive reports whether the process is still running.
func (p *process) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after 5 seconds, and waits.
func (p *process) stop() {
	if !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// exited describes how the process ended, for an error message.
func (p *process) exited() error {
	if p.alive() {
		return nil
	}
	return fmt.Errorf("%s exited (%v)\n%s", p.name, p.err, p.out.tail(10))
}

// waitSTUN sends STUN Binding requests to server from client's namespace
// until one is answered, timeout passes or done is closed.
func waitSTUN(client *nstest.NS, server netip.AddrPort, timeout time.Duration, done <-chan struct{}) error {
	var conn *net.UDPConn
	err := client.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ClientIP, 0)))
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	to := net.UDPAddrFromAddrPort(server)
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		select {
		case <-done:
			return errors.New("the server exited")
		default:
		}
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		if _, err := conn.WriteToUDP(req.Raw, to); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		var res stun.Message
		if stun.Decode(buf[:n], &res) == nil && res.TransactionID == req.TransactionID {
			return nil
		}
	}
	return fmt.Errorf("no STUN Binding answer from %v within %s", server, timeout)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) tail(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tail(string(bytes.TrimSpace(t.b)), n)
}
