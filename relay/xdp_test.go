package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/netcfg/nstest"
	"github.com/relaybox/relaybox/relay/proto"
)

// xdpTopology is newTopology made ready for the XDP data plane on the
// relay's r0 and r1: forwarding on for both (the program's FIB lookups
// refuse without it), and an xdp_pass program on the far ends c0 and p0,
// without which a veth drops the frames redirected to it.
func xdpTopology(t *testing.T) *topology {
	t.Helper()
	tp := newTopology(t)
	for _, l := range []string{"r0", "r1"} {
		tp.relay.Sysctl(t, "net/ipv4/conf/"+l+"/forwarding", "1")
		tp.relay.Sysctl(t, "net/ipv6/conf/"+l+"/forwarding", "1")
	}
	tp.client.AttachXDPPass(t, "c0")
	tp.peer.AttachXDPPass(t, "p0")
	return tp
}

// flowCount is what a relay has counted of relayed ChannelData flows: in
// user space, by direction, and in the kernel.
type flowCount struct {
	toPeer, toClient uint64 // user space: channel-to-peer, peer-to-channel
	kernel           uint64 // the XDP program's tx and redirect verdicts
}

func (r *running) flowCount() flowCount {
	st := r.Status(0)
	return flowCount{
		toPeer:   st.Relayed[proto.PathChannelToPeer.String()].Packets,
		toClient: st.Relayed[proto.PathPeerToChannel.String()].Packets,
		kernel:   st.DataPlane.Reasons[bpf.ReasonTX.String()].Packets + st.DataPlane.Reasons[bpf.ReasonRedirect.String()].Packets,
	}
}

// checkPath checks that n datagrams each way took the kernel path (or,
// without it, the user-space path) between before and after.
func checkPath(t *testing.T, kernel bool, n uint64, before, after flowCount) {
	t.Helper()
	got := flowCount{after.toPeer - before.toPeer, after.toClient - before.toClient, after.kernel - before.kernel}
	want := flowCount{kernel: 2 * n}
	if !kernel {
		want = flowCount{toPeer: n, toClient: n}
	}
	if got != want {
		t.Errorf("relayed %d datagrams each way: counted %+v, want %+v", n, got, want)
	}
}

// TestXDPDataPlane relays ChannelData through a relay with the XDP data
// plane natively on both its NICs: pion/turn's client over IPv4, the raw
// client over IPv6 and across families, and a client that sends a
// thousand datagrams the moment its ChannelBind succeeds. With XDP the
// counters show the kernel relayed every one and user space none; with
// xdp-mode off, the other way round. Either way the receivers' kernels
// accept every checksum, and the ChannelData that reaches a client is the
// same unpadded datagram.
//
// With wildcard listen addresses the relay learns the address each
// datagram came to from IP_PKTINFO, and that is the address the kernel
// must match the client's ChannelData on.
func TestXDPDataPlane(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		wildcard bool
	}{{"native", false}, {"native", true}, {"off", false}} {
		name := "xdp-mode " + tc.mode
		if tc.wildcard {
			name += ", wildcard listen"
		}
		t.Run(name, func(t *testing.T) { testXDPDataPlane(t, tc.mode, tc.wildcard) })
	}
}

func testXDPDataPlane(t *testing.T, mode string, wildcard bool) {
	tp := xdpTopology(t)
	keys := []string{"xdp", "r0,r1", "xdp-mode", mode}
	if wildcard {
		keys = append(keys, "listen", "0.0.0.0:3478,[::]:3478")
	}
	r := tp.startRelay(t, 3478, nil, keys...)
	kernel := mode != "off"
	wantMode := "xdp r0:native r1:native"
	if !kernel {
		wantMode = "off"
	}
	if got := r.Status(0).DataPlane; got.Mode != wantMode || got.Error != "" {
		t.Fatalf("data plane %q (error %q), want %q", got.Mode, got.Error, wantMode)
	}
	listen4, listen6 := netip.AddrPortFrom(listenIP4, 3478), netip.AddrPortFrom(listenIP6, 3478)
	peer4 := tp.echoPeer(t, netip.AddrPortFrom(peerIP4, 5000))
	peer6 := tp.echoPeer(t, netip.AddrPortFrom(peerIP6, 5000))
	csumBefore := tp.client.UDPChecksumErrors(t) + tp.peer.UDPChecksumErrors(t)
	const n = 50

	t.Run("pion client, IPv4", func(t *testing.T) {
		tc := newTURNClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, testUser, testPass)
		peer := peer4.LocalAddr()
		untilChannelData(t, r, tc, peer, "binding")
		before := r.flowCount()
		for i := range n {
			roundTrip(t, tc, peer, []byte("pion "+strconv.Itoa(i)))
		}
		checkPath(t, kernel, n, before, r.flowCount())
	})

	for _, tc := range []struct {
		name    string
		client  netip.Addr
		server  netip.AddrPort
		family  []stun.Setter // REQUESTED-ADDRESS-FAMILY, if any
		peer    *net.UDPConn
		channel uint16
	}{
		{"IPv6", clientIP6, listen6, []stun.Setter{familyIPv6}, peer6, 0x4001},
		{"IPv4 client, IPv6 peer", clientIP4, listen4, []stun.Setter{familyIPv6}, peer6, 0x4002},
		{"IPv6 client, IPv4 peer", clientIP6, listen6, nil, peer4, 0x7FFF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(tc.client, 0)), tc.server, testUser, testPass)
			rc.allocate(tc.family...)
			mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(tc.peer.LocalAddr().(*net.UDPAddr).AddrPort()), channelNumber(tc.channel)))
			echo := func(msg string) {
				t.Helper()
				rc.send(channelData(tc.channel, []byte(msg)))
				// Unpadded, byte for byte, whichever path relayed it.
				want := unpaddedChannelData(tc.channel, []byte(msg))
				if got, err := rc.read(5 * time.Second); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("echo of %q = % x, %v; want % x", msg, got, err, want)
				}
			}
			// The first may find a next hop not resolved yet: user space
			// relays it, and resolves it, and the kernel path asks again
			// once its failed lookup expires (a tick later at most).
			echo("warm up")
			time.Sleep(bpf.FailedNextHopTTL + 20*time.Millisecond)
			before := r.flowCount()
			for i := range n {
				echo(fmt.Sprintf("%s %d", tc.name, i))
			}
			checkPath(t, kernel, n, before, r.flowCount())
		})
	}

	const burst = 1000
	t.Run("no first-packet loss", func(t *testing.T) {
		rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, testUser, testPass)
		rc.allocate()
		before := r.flowCount()
		mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(peer4.LocalAddr().(*net.UDPAddr).AddrPort()), channelNumber(0x4abc)))
		// Straight after the success, no pause: the binding must be in
		// the kernel already. At most window datagrams are in flight, so
		// that no socket buffer on the way overflows.
		const window = 128
		sent, echoed := 0, 0
		seen := make([]bool, burst)
		send := func() {
			msg := binary.BigEndian.AppendUint32(nil, uint32(sent))
			rc.send(channelData(0x4abc, append(msg, "first packets"...)))
			sent++
		}
		for sent < window {
			send()
		}
		deadline := time.Now().Add(20 * time.Second)
		for echoed < burst {
			ch, data, err := rc.readChannelData(time.Until(deadline))
			if err != nil {
				t.Fatalf("%d of %d datagrams echoed, then %v", echoed, burst, err)
			}
			if ch != 0x4abc || len(data) < 4 || binary.BigEndian.Uint32(data) >= burst || seen[binary.BigEndian.Uint32(data)] {
				t.Fatalf("after %d echoes: ChannelData %#x % x, want a new one of ours", echoed, ch, data)
			}
			seen[binary.BigEndian.Uint32(data)] = true
			echoed++
			if sent < burst {
				send()
			}
		}
		checkPath(t, kernel, burst, before, r.flowCount())
	})

	if n := tp.client.UDPChecksumErrors(t) + tp.peer.UDPChecksumErrors(t); n != csumBefore {
		t.Errorf("the client and peer kernels counted %d UDP checksum errors, want none", n-csumBefore)
	}
	if !kernel {
		return
	}

	// Status: every binding is in the kernel, with its traffic.
	st := r.Status(100)
	if st.DataPlane.Installed != st.Bindings || len(st.DataPlane.Bindings) != len(st.BindingList) {
		t.Errorf("data plane holds %d bindings and reports %d, want the core's %d", st.DataPlane.Installed, len(st.DataPlane.Bindings), st.Bindings)
	}
	var first BindingTraffic
	for _, bt := range st.DataPlane.Bindings {
		if bt.Channel == 0x4abc {
			first = bt
		}
	}
	want := proto.Traffic{Packets: burst, Bytes: burst * uint64(4+len("first packets"))}
	if first.ToPeer != want || first.ToClient != want || time.Since(first.LastSeen) > time.Minute {
		t.Errorf("kernel traffic of the first-packets binding = %+v, want %+v each way, seen just now", first, want)
	}
	var text bytes.Buffer
	st.WriteText(&text, time.Now())
	for _, s := range []string{"data plane     xdp r0:native r1:native, 4 bindings installed (0 errors)", "  counters     stale_bindings_removed=0", "relayed (data plane)",
		"redirect redirect", "pass control", "1000/17000B"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("relay status:\n%s\nwant it to contain %q", text.String(), s)
		}
	}

	// Metrics: the kernel's relaying, which outlives the bindings.
	metrics := func() string {
		rec := httptest.NewRecorder()
		r.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	relayed := func(body string) (toPeer, toClient uint64) {
		t.Helper()
		return metricValue(t, body, `relaybox_data_plane_relayed_packets_total{path="channel-to-peer"}`),
			metricValue(t, body, `relaybox_data_plane_relayed_packets_total{path="peer-to-channel"}`)
	}
	body := metrics()
	for _, s := range []string{`relaybox_data_plane_info{mode="xdp r0:native r1:native"} 1`, "relaybox_data_plane_installed_bindings 4",
		`relaybox_data_plane_packets_total{reason="redirect",verdict="redirect"}`, `relaybox_data_plane_packets_total{reason="control",verdict="pass"}`,
		`relaybox_data_plane_class_packets_total{class="channel_data"}`} {
		if !strings.Contains(body, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	toPeer, toClient := relayed(body)
	if min(toPeer, toClient) < 4*n+burst {
		t.Errorf("metrics: the kernel relayed %d and %d datagrams, want at least %d each way", toPeer, toClient, 4*n+burst)
	}
	// Ending every allocation takes the bindings out of the kernel; the
	// totals stay.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if p, c := relayed(metrics()); p != toPeer || c != toClient {
		t.Errorf("after the bindings went: the kernel relayed %d and %d datagrams, want still %d and %d", p, c, toPeer, toClient)
	}
}

// metricValue is the value of the sample named (with its labels) series.
func metricValue(t *testing.T, body, series string) uint64 {
	t.Helper()
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s %s: %v", series, m[1], err)
	}
	return uint64(v)
}

// TestXDPRestart kills a relay that has a binding in the kernel, and
// starts it again: the new relay removes the dead one's binding before it
// serves. Once as on the appliance (the test loads, attaches and pins the
// program as init does, and the relay is given xdp-maps), once on a host
// of its own (the relay attaches and pins the program itself, and its
// attachments die with it).
func TestXDPRestart(t *testing.T) {
	nstest.RequireRoot(t)
	bin := buildRelayBinary(t)
	for _, standalone := range []bool{false, true} {
		name := "maps pinned by init"
		if standalone {
			name = "relay attaches and pins"
		}
		t.Run(name, func(t *testing.T) {
			tp := xdpTopology(t)
			dir := testPinDir(t)
			args := []string{
				"--listen", netip.AddrPortFrom(listenIP4, 3478).String(), "--relay-address", relayIP4.String(),
				"--user", testUser + ":" + testPass, "--allow-peer", benchmarkingRanges[0], "--port-range", "40000-40999",
				"--unauth-amplification", "20", "--control=", "--xdp-maps", dir,
			}
			var maps *bpf.Maps
			if standalone {
				args = append(args, "--xdp", "r0,r1", "--xdp-mode", "native")
			} else {
				maps = attachLikeInit(t, tp.relay, dir)
			}
			peer := tp.echoPeer(t, netip.AddrPortFrom(peerIP4, 5000)).LocalAddr().(*net.UDPAddr).AddrPort()
			// bind makes a binding and relays through it.
			bind := func(what string) bpf.Binding {
				t.Helper()
				rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), netip.AddrPortFrom(listenIP4, 3478), testUser, testPass)
				relayed := rc.allocate()[0]
				mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(peer), channelNumber(0x4000)))
				for i := range 3 {
					rc.send(channelData(0x4000, []byte(what)))
					if _, data, err := rc.readChannelData(5 * time.Second); err != nil || string(data) != what {
						t.Fatalf("%s: echo %d = %q, %v", what, i, data, err)
					}
				}
				return bpf.Binding{Client: rc.c.LocalAddr().(*net.UDPAddr).AddrPort(), Server: netip.AddrPortFrom(listenIP4, 3478),
					Channel: 0x4000, Relay: relayed, Peer: peer}
			}
			kernelHas := func(when string, want ...bpf.Binding) {
				t.Helper()
				var got []bpf.Binding
				for _, s := range mustBindings(t, maps) {
					got = append(got, s.Binding)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: kernel bindings %v, want %v", when, got, want)
				}
			}

			first := startRelayProcess(t, tp.relay, bin, args...)
			if standalone {
				maps = openPinned(t, dir)
				checkXDPAttached(t, tp.relay, true)
			}
			b := bind("before the crash")
			kernelHas("with the first relay", b)
			first.kill(t)
			kernelHas("after the first relay was killed", b) // what a crash leaves
			if standalone {
				checkXDPAttached(t, tp.relay, false)
			}

			second := startRelayProcess(t, tp.relay, bin, args...)
			kernelHas("once the second relay serves")
			// Logged before READY, but copied from the pipe on its own time.
			removed := `msg="xdp: removed the bindings a previous relay left in the kernel" bindings=1`
			waitFor(t, 5*time.Second, "the second relay's log does not say it removed 1 stale binding", func() bool {
				return strings.Contains(second.stderr.String(), removed)
			})
			kernelHas("with the second relay's own binding", bind("after the restart"))
			second.stop(t)
			kernelHas("after the second relay stopped") // a clean stop removes its own
			if standalone {
				checkXDPAttached(t, tp.relay, false)
			}
		})
	}
}

// testPinDir is a directory for one test's maps on a bpf filesystem of its
// own, unmounted (pins and all) when the test ends. Not /sys/fs/bpf: ip
// netns exec, which starts the relay, mounts a fresh /sys, without it.
func testPinDir(t *testing.T) string {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount -t bpf bpf %s: %v", mnt, err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	return filepath.Join(mnt, "relaybox")
}

// attachLikeInit does what the appliance's init does: it loads the
// program with its maps pinned in dir and attaches it natively to the
// relay's NICs, until the test ends.
func attachLikeInit(t *testing.T, ns *nstest.NS, dir string) *bpf.Maps {
	t.Helper()
	p, err := bpf.Load(bpf.Config{ListenPort: 3478, PortMin: 40000, PortMax: 40999, PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	for _, ifname := range []string{"r0", "r1"} {
		err := ns.Do(func() error {
			a, err := p.Attach(ifname, bpf.ModeNative)
			if err == nil {
				t.Cleanup(func() { a.Close() })
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return p.Maps()
}

func openPinned(t *testing.T, dir string) *bpf.Maps {
	t.Helper()
	m, err := bpf.OpenPinned(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// checkXDPAttached checks whether r0 and r1 in ns have an XDP program.
func checkXDPAttached(t *testing.T, ns *nstest.NS, want bool) {
	t.Helper()
	h := ns.Netlink(t)
	for _, name := range []string{"r0", "r1"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached; got != want {
			t.Errorf("%s has an XDP program: %v, want %v", name, got, want)
		}
	}
}

// buildRelayBinary builds cmd/relay into a temporary directory.
func buildRelayBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relay")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/relay").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/relay: %v\n%s", err, out)
	}
	return bin
}

// relayProcess is the relay binary running in a namespace.
type relayProcess struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error // cmd.Wait's result
}

// startRelayProcess runs bin in ns and waits for its READY line.
func startRelayProcess(t *testing.T, ns *nstest.NS, bin string, args ...string) *relayProcess {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// ip netns exec execs the relay in its place: same process, same fds.
	p := &relayProcess{cmd: ns.Command(bin, args...), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd.ExtraFiles = []*os.File{w} // fd 3
	p.cmd.Env = append(os.Environ(), "RELAYBOX_READY_FD=3")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the relay holds the only write end: its exit means EOF
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("relay %v stderr:\n%s", args, p.stderr.String())
		}
	})
	r.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY ") {
		t.Fatalf("relay %v: READY line %q, %v; stderr:\n%s", args, line, err, p.stderr.String())
	}
	return p
}

// kill kills the relay as a crash would, and waits for it to be gone.
func (p *relayProcess) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(unix.SIGKILL)
	p.wait(t)
}

// stop stops the relay with SIGTERM and checks it exits cleanly.
func (p *relayProcess) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(unix.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Errorf("relay after SIGTERM: %v, want exit 0; stderr:\n%s", err, p.stderr.String())
	}
}

func (p *relayProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("relay still running 10s after it was told to stop; stderr:\n%s", p.stderr.String())
		return nil
	}
}

// lockedBuffer is a bytes.Buffer that a process's output copier and the
// test can use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestXDPPlane drives the data plane on maps another process pinned, as
// on the appliance: a dead relay's bindings go at start, events come and
// go in the kernel, status reads them back; with a bandwidth cap,
// enforce charges what the kernel relayed and moves the bindings of an
// allocation over its cap out of the kernel and back.
func TestXDPPlane(t *testing.T) {
	nstest.RequireRoot(t)
	dir := testPinDir(t)
	p, err := bpf.Load(bpf.Config{ListenPort: 3478, PortMin: 40000, PortMax: 40999, PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	binding := func(port uint16, ch uint16) proto.Binding {
		return proto.Binding{Client: netip.AddrPortFrom(clientIP4, port), Server: netip.AddrPortFrom(listenIP4, 3478), Channel: ch,
			Relayed: netip.AddrPortFrom(relayIP6, 40000+port%1000), Peer: netip.AddrPortFrom(peerIP6, 5000)}
	}
	inKernel := func() []proto.Binding {
		t.Helper()
		var out []proto.Binding
		for _, s := range mustBindings(t, p.Maps()) {
			out = append(out, proto.Binding{Client: s.Client, Server: s.Server, Channel: s.Channel, Relayed: s.Relay, Peer: s.Peer})
		}
		return out
	}
	same := func(what string, got []proto.Binding, want ...proto.Binding) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	open := func(cfg Config) *xdpPlane {
		t.Helper()
		cfg.XDPMaps = dir
		x, err := openXDP(&cfg, 3478, func(f func() error) error { return f() }, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return x
	}
	cfg := testConfig(t, []netip.AddrPort{netip.AddrPortFrom(listenIP4, 3478)}, []netip.Addr{relayIP4, relayIP6})

	dead := binding(1000, 0x4000)
	if err := p.AddBinding(kernelBinding(dead)); err != nil {
		t.Fatal(err)
	}
	x := open(cfg)
	if st := x.DataPlaneStatus(nil); st.Counters["stale_bindings_removed"] != 1 || st.Installed != 0 || st.Mode != "xdp, attached by another process, maps in "+dir {
		t.Errorf("after start: %+v, want the dead relay's binding removed", st)
	}
	same("after start", inKernel())

	b := binding(1001, 0x4001)
	for _, k := range []proto.EventKind{proto.BindingCreated, proto.BindingRefreshed} {
		if err := x.Apply(proto.Event{Kind: k, Binding: b}); err != nil {
			t.Fatalf("Apply(%v %v) = %v", k, b, err)
		}
		same("after "+k.String(), inKernel(), b)
	}
	st := x.DataPlaneStatus([]proto.Binding{b, dead})
	if st.Installed != 1 || len(st.Bindings) != 1 || st.Bindings[0].Binding != b || !st.Bindings[0].LastSeen.IsZero() {
		t.Errorf("status %+v, want %v installed, never used", st, b)
	}
	if err := x.Apply(proto.Event{Kind: proto.BindingDeleted, Binding: b}); err != nil {
		t.Fatalf("Apply(deleted %v) = %v", b, err)
	}
	same("after binding-deleted", inKernel())
	x.Close()

	// A bandwidth cap: bindings go into the kernel, and enforce charges
	// the growth of their counters, moving them out while their
	// allocation is over its cap and back once it is not.
	cfg.Bandwidth = 1000
	x = open(cfg)
	if err := x.Apply(proto.Event{Kind: proto.BindingCreated, Binding: b}); err != nil {
		t.Fatal(err)
	}
	same("with a bandwidth cap", inKernel(), b)
	type charged struct {
		b proto.Binding
		n uint64
	}
	var got []charged
	enforce := func(used uint64, within bool) {
		t.Helper()
		x.enforce(map[bpf.Binding]uint64{kernelBinding(b): used}, func(b proto.Binding, n uint64) bool {
			got = append(got, charged{b, n})
			return within
		})
	}
	suspended := func() uint64 { return x.DataPlaneStatus(nil).Counters["bandwidth_suspended_bindings"] }
	enforce(300, true)
	enforce(1000, true)
	enforce(1000, false) // over the cap: out of the kernel, the rest charged (none relayed since)
	same("over the cap", inKernel())
	if suspended() != 1 {
		t.Errorf("suspended bindings = %d, want 1", suspended())
	}
	if err := x.Apply(proto.Event{Kind: proto.BindingRefreshed, Binding: b}); err != nil {
		t.Fatal(err)
	}
	same("refreshed over the cap", inKernel())
	enforce(5000, false) // out of the kernel, counters not read
	enforce(0, true)     // paid back: in again, fresh counters
	same("paid back", inKernel(), b)
	enforce(40, true)
	want := []charged{{b, 300}, {b, 700}, {b, 0}, {b, 0}, {b, 0}, {b, 0}, {b, 40}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("charged %v, want %v", got, want)
	}
	enforce(40, false)
	if err := x.Apply(proto.Event{Kind: proto.BindingDeleted, Binding: b}); err != nil {
		t.Fatal(err)
	}
	if suspended() != 0 || len(x.use) != 0 {
		t.Errorf("after deleting a suspended binding: %d suspended, %d tracked; want none", suspended(), len(x.use))
	}
	same("deleted while suspended", inKernel())
}

// mustBindings reads the bindings in m.
func mustBindings(t *testing.T, m *bpf.Maps) []bpf.BindingStats {
	t.Helper()
	stats, err := m.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

// TestXDPAttachFails: a data plane that cannot be set up leaves the relay
// serving in user space, with status saying why.
func TestXDPAttachFails(t *testing.T) {
	ns := nstest.New(t)
	lo := netip.MustParseAddr("127.0.0.1")
	cfg := testConfig(t, []netip.AddrPort{netip.AddrPortFrom(lo, 3478)}, []netip.Addr{lo})
	cfg.XDP = []string{"nope0"}
	r := startServer(t, cfg, Options{InNamespace: ns.Do})
	st := r.Status(0).DataPlane
	if st.Mode != "off" || !strings.Contains(st.Error, "attach xdp to nope0") {
		t.Errorf("data plane %q, error %q; want off, and the attach error", st.Mode, st.Error)
	}
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: lo.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bindingRequest(t, c, r.listen[0]) // it serves
}

// TestXDPBandwidth: with a bandwidth cap, a client that sends ten times
// its cap through a channel in the kernel gets about its cap through over
// time: the kernel relays until the relay charges it and finds the
// allocation over its cap, the user-space path drops the excess until the
// debt is paid, and once the client goes quiet its binding is back in the
// kernel. The bounds leave room for a poll interval's overshoot and a
// slow machine; without the cap's enforcement ten times as much arrives.
func TestXDPBandwidth(t *testing.T) {
	tp := xdpTopology(t)
	const capBps = 100_000 // bytes per second; the burst is as much again
	r := tp.startRelay(t, 3478, nil, "xdp", "r0,r1", "xdp-mode", "native", "bandwidth", strconv.Itoa(capBps))
	sink := udpConn(t, tp.peer.Do, netip.AddrPortFrom(peerIP4, 5001))
	var received atomic.Uint64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := sink.Read(buf)
			if err != nil {
				return
			}
			received.Add(uint64(n))
		}
	}()
	rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), netip.AddrPortFrom(listenIP4, 3478), testUser, testPass)
	rc.allocate()
	mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(sink.LocalAddr().(*net.UDPAddr).AddrPort()), channelNumber(0x4100)))
	msg := channelData(0x4100, make([]byte, 1000))

	// Ten times the cap for two seconds: 2 MB offered, paced.
	const (
		seconds = 2
		rate    = 10 * capBps / 1000 // datagrams per second
	)
	start := time.Now()
	for i := range seconds * rate {
		rc.send(msg)
		if ahead := time.Duration(i+1)*time.Second/rate - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	elapsed := time.Since(start)
	// The last in flight: until the peer has received nothing for 50 ms.
	var got uint64
	grew := time.Now()
	waitFor(t, 5*time.Second, "the peer still receiving after the client stopped", func() bool {
		if n := received.Load(); n != got {
			got, grew = n, time.Now()
		}
		return time.Since(grew) >= 50*time.Millisecond
	})
	allowed := capBps + uint64(elapsed.Seconds()*capBps) // burst + cap × time
	// What the kernel may relay before a poll sees it: one poll interval,
	// doubled for a late poll, at the offered rate.
	overshoot := uint64(2 * bandwidthPoll.Seconds() * 10 * capBps)
	st := r.Status(0)
	kernel := st.DataPlane.Reasons[bpf.ReasonTX.String()].Packets + st.DataPlane.Reasons[bpf.ReasonRedirect.String()].Packets
	t.Logf("offered %d B in %v: %d B reached the peer (cap allows %d), %d datagrams relayed in the kernel, %d dropped over the cap in user space",
		seconds*rate*1000, elapsed.Round(time.Millisecond), got, allowed, kernel, st.Dropped["bandwidth"])
	if got > allowed+overshoot || got < allowed/2 {
		t.Errorf("%d bytes reached the peer, want about the %d the cap allows (at most %d more)", got, allowed, overshoot)
	}
	if kernel == 0 || st.Dropped["bandwidth"] == 0 {
		t.Errorf("kernel relayed %d, user space dropped %d over the cap; want both", kernel, st.Dropped["bandwidth"])
	}

	// Quiet: the debt is paid within seconds and the binding goes back.
	waitFor(t, 10*time.Second, "the binding is still out of the kernel after the client went quiet", func() bool {
		return r.Status(0).DataPlane.Counters["bandwidth_suspended_bindings"] == 0
	})
	before := r.flowCount()
	for range 10 {
		rc.send(msg)
	}
	// Either path counts them, so that the check below says which.
	waitFor(t, 5*time.Second, "10 datagrams after the debt was paid not relayed", func() bool {
		after := r.flowCount()
		return after.kernel-before.kernel+after.toPeer-before.toPeer >= 10
	})
	if after := r.flowCount(); after.kernel-before.kernel != 10 || after.toPeer != before.toPeer {
		t.Errorf("10 datagrams after the debt was paid: %d relayed in the kernel, %d in user space; want all in the kernel",
			after.kernel-before.kernel, after.toPeer-before.toPeer)
	}
}

// TestMayRunGeneric: the XDP states, as netlink reports them, that leave
// UDP GRO off.
func TestMayRunGeneric(t *testing.T) {
	for _, tc := range []struct {
		name string
		xdp  *netlink.LinkXdp
		want bool
	}{
		{"no XDP attribute", nil, false},
		{"none", &netlink.LinkXdp{AttachMode: nl.XDP_ATTACHED_NONE}, false},
		{"native", &netlink.LinkXdp{Attached: true, AttachMode: nl.XDP_ATTACHED_DRV}, false},
		{"generic", &netlink.LinkXdp{Attached: true, AttachMode: nl.XDP_ATTACHED_SKB}, true},
		{"offloaded", &netlink.LinkXdp{Attached: true, AttachMode: nl.XDP_ATTACHED_HW}, false},
		{"multi: offloaded, and generic or native", &netlink.LinkXdp{Attached: true, AttachMode: xdpAttachedMulti}, true},
	} {
		if got := mayRunGeneric(tc.xdp); got != tc.want {
			t.Errorf("%s: mayRunGeneric = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestXDPGenericGROOff: a program in generic mode runs after GRO, which
// would join a flow's ChannelData before the program sees it; so with
// generic XDP the relay's listen and allocation sockets leave UDP GRO
// off, and with native XDP (which runs before GRO) they keep it.
func TestXDPGenericGROOff(t *testing.T) {
	for _, tc := range []struct {
		mode string
		gro  bool
	}{{"native", true}, {"generic", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			tp := xdpTopology(t)
			r := tp.startRelay(t, 3478, nil, "xdp", "r0,r1", "xdp-mode", tc.mode)
			if got := r.Status(0).DataPlane.Mode; got != "xdp r0:"+tc.mode+" r1:"+tc.mode {
				t.Fatalf("data plane %q, want both NICs in %s mode", got, tc.mode)
			}
			rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), netip.AddrPortFrom(listenIP4, 3478), testUser, testPass)
			relayed := rc.allocate()
			if got := r.Status(0).Offload.GRO; got != tc.gro {
				t.Errorf("listen sockets' GRO = %v, want %v", got, tc.gro)
			}
			r.mu.Lock()
			sk := r.relayed[relayed[0]]
			r.mu.Unlock()
			if sk == nil {
				t.Fatalf("no allocation socket for %s", relayed[0])
			}
			on, err := unix.GetsockoptInt(sk.fd, unix.SOL_UDP, unix.UDP_GRO)
			if err != nil {
				t.Fatal(err)
			}
			if (on != 0) != tc.gro {
				t.Errorf("allocation socket's UDP_GRO = %d, want it %v", on, tc.gro)
			}
		})
	}
}
