// Package nstest gives a test network namespaces of its own: named, so that
// `ip netns exec` and child processes such as QEMU can enter them too, and
// removed when the test ends. It is the one place tests make namespaces.
package nstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NS is a named network namespace owned by one test.
type NS struct {
	Name   string
	handle netns.NsHandle
}

var counter atomic.Int32

// RequireRoot skips t when the process cannot create namespaces. Everywhere the
// project is tested (this machine, CI) it runs as root, so the skip only
// concerns a developer running `go test` as an ordinary user.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces; run make test as root")
	}
}

// New creates an empty network namespace with loopback up, deleted at the end
// of the test.
func New(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("rbx-%d-%d", os.Getpid(), counter.Add(1))

	// netns.NewNamed moves the calling thread into the new namespace: do it on
	// a locked thread and move back before anything else runs there.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread is stuck in the wrong namespace; never reuse it.
		runtime.Goexit()
	}
	ns := &NS{Name: name, handle: h}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Do runs fn on an OS thread that is inside the namespace. Sockets and BPF
// links created by fn stay in the namespace after it returns.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: if switching back fails the thread must die
		// rather than run other goroutines in the wrong namespace.
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		err = fn()
		if serr := netns.Set(orig); serr != nil {
			errc <- fmt.Errorf("leave netns %s: %w", n.Name, serr)
			runtime.Goexit()
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Netlink returns a netlink handle bound to the namespace.
func (n *NS) Netlink(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(n.handle)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", n.Name, err)
	}
	t.Cleanup(h.Close)
	return h
}

// Command returns cmd prepared to run inside the namespace.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// MustRun runs a command inside the namespace and fails the test if it fails.
func (n *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Sysctl writes value to /proc/sys/<key> from inside the namespace, with key
// in path form so interface names with dots stay whole:
// ns.Sysctl(t, "net/ipv6/conf/eth0.100/accept_dad", "0"). Only keys under
// net/ are per namespace; tests must not set the others.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if !strings.HasPrefix(key, "net/") {
		t.Fatalf("sysctl %s: not a per-namespace key (want net/...)", key)
	}
	err := n.Do(func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0)
	})
	if err != nil {
		t.Fatalf("in %s: sysctl %s=%s: %v", n.Name, key, value, err)
	}
}

// Veth links namespace a (interface aName) with namespace b (bName), both up,
// with transmit checksum offload off: a veth otherwise hands partial checksums
// to XDP and to the receiver, and checksum tests would lie.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	a.MustRun(t, "ip", "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	for _, side := range []struct {
		ns   *NS
		name string
	}{{a, aName}, {b, bName}} {
		side.ns.MustRun(t, "ip", "link", "set", side.name, "up")
		side.ns.MustRun(t, "ethtool", "-K", side.name, "tx", "off")
	}
}

// AttachXDPPass attaches, in native mode, an XDP program that passes every
// frame to ifname until the test ends. A veth drops the frames that XDP on
// its peer sends (XDP_TX) or redirects to it unless it has an XDP program of
// its own: tests of a kernel path put this one on the far ends.
func (n *NS) AttachXDPPass(t testing.TB, ifname string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xdp_pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load xdp_pass: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	err = n.Do(func() error {
		iface, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Index, Flags: link.XDPDriverMode})
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatalf("attach xdp_pass to %s in %s: %v", ifname, n.Name, err)
	}
}
