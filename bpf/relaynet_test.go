//go:build linux

package bpf

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// The relay network of the Program.Run tests: the namespace the program's
// FIB lookups run in, and the Go model of it that the reference uses. Both
// come from relayNetSpec, so they cannot drift apart.
//
//	r0  client side, MTU 1500: 198.18.0.1/24, 2001:2::1/64 (the relay's
//	    listen and relayed addresses); clients at .2 and ::2 resolved.
//	r1  peer side, MTU 1400: 198.19.0.1/24, 2001:2:0:1::1/64; peers at .2
//	    and ::2 resolved, .3 and ::3 not; 198.19.128.0/24 and
//	    2001:2:0:80::/64 via the peer at .2/::2.
//	r2  peer side without a redirect slot (not attached): 198.19.200.1/24,
//	    2001:2:0:2::1/64, neighbours .2 and ::2.
//	blackhole routes for 198.19.250.0/24 and 2001:2:0:fa::/64; nothing
//	else is routed.
//
// Every address lies in the benchmarking ranges 198.18.0.0/15 and
// 2001:2::/48.

var (
	r0MAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02} // relayMAC: clients send to it
	r1MAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}
	r2MAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x05}
	peerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x04}

	peer4        = netip.MustParseAddr("198.19.0.2")
	peer6        = netip.MustParseAddr("2001:2:0:1::2")
	relayPeer4   = netip.MustParseAddr("198.19.0.1") // the relay on r1
	unresolved4  = netip.MustParseAddr("198.19.0.3")
	unresolved6  = netip.MustParseAddr("2001:2:0:1::3")
	viaGateway4  = netip.MustParseAddr("198.19.128.5")
	viaGateway6  = netip.MustParseAddr("2001:2:0:80::5")
	behindR2v4   = netip.MustParseAddr("198.19.200.2")
	behindR2v6   = netip.MustParseAddr("2001:2:0:2::2")
	blackholed4  = netip.MustParseAddr("198.19.250.1")
	blackholed6  = netip.MustParseAddr("2001:2:0:fa::1")
	unrouted4    = netip.MustParseAddr("198.19.99.9")
	unrouted6    = netip.MustParseAddr("2001:2:0:99::9")
	relayOnR2v4  = netip.MustParseAddr("198.19.200.1")
	relayOnR2v6  = netip.MustParseAddr("2001:2:0:2::1")
	relayPeer6   = netip.MustParseAddr("2001:2:0:1::1")
	secondRelay4 = netip.MustParseAddr("198.18.0.10") // another address of the relay on r0
)

type netIface struct {
	name       string
	mac        net.HardwareAddr
	mtu        int
	attach     bool           // the relay program in native mode: a redirect target
	prefixes   []netip.Prefix // its addresses, with their on-link prefixes
	neighbours []netip.Addr   // resolved, to peerMAC or clientMAC
}

type netRoute struct {
	dst       netip.Prefix
	via       netip.Addr // zero for a blackhole
	dev       string
	blackhole bool
}

var relayNetSpec = struct {
	ifaces []netIface
	routes []netRoute
}{
	ifaces: []netIface{
		{name: "r0", mac: r0MAC, mtu: 1500, attach: true,
			prefixes:   []netip.Prefix{netip.PrefixFrom(relay4, 24), netip.PrefixFrom(secondRelay4, 24), netip.PrefixFrom(relay6, 64)},
			neighbours: []netip.Addr{client4, client6}},
		{name: "r1", mac: r1MAC, mtu: 1400, attach: true,
			prefixes:   []netip.Prefix{netip.PrefixFrom(relayPeer4, 24), netip.PrefixFrom(relayPeer6, 64)},
			neighbours: []netip.Addr{peer4, peer6}},
		{name: "r2", mac: r2MAC, mtu: 1500,
			prefixes:   []netip.Prefix{netip.PrefixFrom(relayOnR2v4, 24), netip.PrefixFrom(relayOnR2v6, 64)},
			neighbours: []netip.Addr{behindR2v4, behindR2v6}},
	},
	routes: []netRoute{
		{dst: netip.MustParsePrefix("198.19.128.0/24"), via: peer4, dev: "r1"},
		{dst: netip.MustParsePrefix("2001:2:0:80::/64"), via: peer6, dev: "r1"},
		{dst: netip.MustParsePrefix("198.19.250.0/24"), blackhole: true},
		{dst: netip.MustParsePrefix("2001:2:0:fa::/64"), blackhole: true},
	},
}

// neighbourMAC is the MAC the fixture resolves a neighbour to.
func neighbourMAC(a netip.Addr) net.HardwareAddr {
	if a == client4 || a == client6 {
		return clientMAC
	}
	return peerMAC
}

// relayNet is a live relay network with the program loaded and attached.
type relayNet struct {
	ns      *nstest.NS
	side    *nstest.NS // the far ends of the veths: s0, s1, s2
	p       *Program
	ifindex map[string]int
}

// newRelayNet builds the relay network in a fresh namespace, loads the
// program with cfg (testConfig with an empty Config) and adds bindings bs.
func newRelayNet(t testing.TB, cfg Config, bs ...Binding) *relayNet {
	t.Helper()
	if cfg == (Config{}) {
		cfg = testConfig
	}
	ns, side := nstest.New(t), nstest.New(t)
	// Nothing may reach the program but the test's packets: no IPv6
	// autoconfiguration chatter from the far ends of the veths.
	side.Sysctl(t, "net/ipv6/conf/default/disable_ipv6", "1")
	side.Sysctl(t, "net/ipv6/conf/all/disable_ipv6", "1")

	n := &relayNet{ns: ns, side: side, ifindex: map[string]int{}}
	for i, iface := range relayNetSpec.ifaces {
		nstest.Veth(t, ns, iface.name, side, fmt.Sprintf("s%d", i))
		ns.MustRun(t, "ip", "link", "set", iface.name, "address", iface.mac.String(), "mtu", fmt.Sprint(iface.mtu))
		for _, p := range iface.prefixes {
			args := []string{"addr", "add", p.String(), "dev", iface.name}
			if p.Addr().Is6() {
				args = append([]string{"-6"}, append(args, "nodad")...)
			}
			ns.MustRun(t, "ip", args...)
		}
		for _, a := range iface.neighbours {
			ns.MustRun(t, "ip", "neigh", "replace", a.String(), "lladdr", neighbourMAC(a).String(), "dev", iface.name, "nud", "permanent")
		}
	}
	for _, r := range relayNetSpec.routes {
		if r.blackhole {
			ns.MustRun(t, "ip", "route", "add", "blackhole", r.dst.String())
		} else {
			ns.MustRun(t, "ip", "route", "add", r.dst.String(), "via", r.via.String(), "dev", r.dev)
		}
	}
	ns.Sysctl(t, "net/ipv4/ip_forward", "1")
	ns.Sysctl(t, "net/ipv6/conf/all/forwarding", "1")

	n.p = loadProgram(t, cfg)
	err := ns.Do(func() error {
		for _, iface := range relayNetSpec.ifaces {
			nif, err := net.InterfaceByName(iface.name)
			if err != nil {
				return err
			}
			n.ifindex[iface.name] = nif.Index
			if !iface.attach {
				continue
			}
			a, err := n.p.Attach(iface.name, ModeNative)
			if err != nil {
				return err
			}
			t.Cleanup(func() { a.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatalf("relay network: %v", err)
	}
	for _, b := range bs {
		if err := n.p.AddBinding(b); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// setForwarding turns IPv4 and IPv6 forwarding on or off for every NIC.
func (n *relayNet) setForwarding(t testing.TB, on bool) {
	v := map[bool]string{true: "1", false: "0"}[on]
	n.ns.Sysctl(t, "net/ipv4/ip_forward", v)
	n.ns.Sysctl(t, "net/ipv6/conf/all/forwarding", v)
}

// env is the reference's view of the network for packets arriving on
// ingress, with the given bindings installed.
func (n *relayNet) env(ingress string, bindings []Binding) *refEnv {
	m := n.model(true)
	return &refEnv{
		cfg:      testConfig,
		bindings: bindings,
		ingress:  n.ifindex[ingress],
		fib:      m.lookup,
		txPorts:  m.txPorts,
	}
}

// model is the Go model of the namespace's routing, as bpf_fib_lookup
// reports it from a NIC with forwarding as given.
func (n *relayNet) model(forwarding bool) *netModel {
	m := &netModel{forwarding: forwarding, txPorts: map[int]bool{}}
	for _, iface := range relayNetSpec.ifaces {
		idx := n.ifindex[iface.name]
		m.ifaces = append(m.ifaces, modelIface{netIface: iface, index: idx})
		if iface.attach {
			m.txPorts[idx] = true
		}
	}
	return m
}

type modelIface struct {
	netIface
	index int
}

type netModel struct {
	forwarding bool
	ifaces     []modelIface
	txPorts    map[int]bool
}

// lookup answers a FIB query as the kernel does for this network:
// forwarding, then the route (a local or broadcast destination is not
// forwarded), then the MTU, then the neighbour.
func (m *netModel) lookup(q fibQuery) fibResult {
	if !m.forwarding {
		return fibResult{rc: fibFwdDisabled}
	}
	for _, iface := range m.ifaces {
		for _, p := range iface.prefixes {
			if q.dst == p.Addr() || (p.Addr().Is4() && q.dst == broadcast(p)) {
				return fibResult{rc: fibNotFwded}
			}
		}
	}
	var dev *modelIface
	nexthop := q.dst
	for _, r := range relayNetSpec.routes {
		if r.dst.Contains(q.dst) {
			if r.blackhole {
				return fibResult{rc: fibBlackhole}
			}
			dev, nexthop = m.iface(r.dev), r.via
		}
	}
	for i, iface := range m.ifaces {
		for _, p := range iface.prefixes {
			if dev == nil && p.Masked().Contains(q.dst) {
				dev = &m.ifaces[i]
			}
		}
	}
	if dev == nil {
		return fibResult{rc: fibNotFwded}
	}
	if q.l3Len > dev.mtu {
		return fibResult{rc: fibFragNeeded}
	}
	for _, a := range dev.neighbours {
		if a == nexthop {
			return fibResult{rc: fibSuccess, ifindex: dev.index, smac: dev.mac, dmac: neighbourMAC(a)}
		}
	}
	return fibResult{rc: fibNoNeigh}
}

func (m *netModel) iface(name string) *modelIface {
	for i := range m.ifaces {
		if m.ifaces[i].name == name {
			return &m.ifaces[i]
		}
	}
	panic("no interface " + name)
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	for i := range b {
		b[i] |= byte(host >> (8 * (3 - i)))
	}
	return netip.AddrFrom4(b)
}

// progRunAttr is the BPF_PROG_TEST_RUN part of union bpf_attr.
type progRunAttr struct {
	progFd, retval, dataSizeIn, dataSizeOut uint32
	dataIn, dataOut                         uint64
	repeat, duration                        uint32
	ctxSizeIn, ctxSizeOut                   uint32
	ctxIn, ctxOut                           uint64
	flags, cpu, batchSize                   uint32
	_                                       uint32
}

// runXDP runs prog once on frame through BPF_PROG_TEST_RUN, as if it had
// arrived on the NIC with index ingress (0: the namespace's loopback), in
// the calling thread's namespace. It returns the verdict, the frame as the
// program left it, and the time the kernel measured for the run.
//
// It calls the syscall itself because cilium/ebpf's Run does not report
// the duration, and its Benchmark takes no context.
func runXDP(prog *ebpf.Program, frame []byte, ingress int) (Verdict, []byte, time.Duration, error) {
	out := make([]byte, len(frame)+256) // room for headers to grow
	ctx := xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ingress)}
	attr := progRunAttr{
		progFd:      uint32(prog.FD()),
		dataSizeIn:  uint32(len(frame)),
		dataSizeOut: uint32(len(out)),
		dataIn:      uint64(uintptr(unsafe.Pointer(unsafe.SliceData(frame)))),
		dataOut:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out)))),
		repeat:      1,
		ctxSizeIn:   uint32(unsafe.Sizeof(ctx)),
		ctxIn:       uint64(uintptr(unsafe.Pointer(&ctx))),
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(frame)
		runtime.KeepAlive(out)
		runtime.KeepAlive(&ctx)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, nil, 0, fmt.Errorf("BPF_PROG_TEST_RUN: %w", errno)
		}
		return Verdict(attr.retval), out[:attr.dataSizeOut], time.Duration(attr.duration), nil
	}
}

// run runs the program on frame as arriving on the named NIC, in the relay
// namespace.
func (n *relayNet) run(t testing.TB, frame []byte, ingress string) (Verdict, []byte) {
	t.Helper()
	var v Verdict
	var out []byte
	err := n.ns.Do(func() (err error) {
		v, out, _, err = runXDP(n.p.objs.RelayXdp, frame, n.ifindex[ingress])
		return err
	})
	if err != nil {
		t.Fatalf("run relay_xdp on %s: %v", ingress, err)
	}
	return v, out
}

func readReasons(t testing.TB, p *Program) map[Reason]Counter {
	t.Helper()
	r, err := p.Reasons()
	if err != nil {
		t.Fatalf("Reasons() = %v", err)
	}
	return r
}
