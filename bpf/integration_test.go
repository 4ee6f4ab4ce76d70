//go:build linux

package bpf

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// kernelPath is the namespace topology of the integration test:
//
//	clients (a0) ---- (r0) relay (r1) ---- (c0) peer
//
// The relay namespace runs the program natively on r0 and r1 and has no
// sockets at all: a datagram gets through only if the kernel path relays
// it. a0 and c0 carry an xdp_pass program, without which a veth drops the
// frames redirected or sent back to it. Transmit checksum offload is off
// on every veth (nstest.Veth), so each checksum the receivers check was
// computed for real.
type kernelPath struct {
	clients, relay, peer *nstest.NS
	p                    *Program
}

func newKernelPath(t *testing.T) *kernelPath {
	k := &kernelPath{clients: nstest.New(t), relay: nstest.New(t), peer: nstest.New(t)}
	nstest.Veth(t, k.clients, "a0", k.relay, "r0")
	nstest.Veth(t, k.peer, "c0", k.relay, "r1")
	for _, a := range []struct {
		ns       *nstest.NS
		ifname   string
		addrs    []netip.Prefix
		gateways []netip.Addr
	}{
		{k.clients, "a0", []netip.Prefix{netip.PrefixFrom(client4, 24), netip.PrefixFrom(client6, 64)}, []netip.Addr{relay4, relay6}},
		{k.relay, "r0", []netip.Prefix{netip.PrefixFrom(relay4, 24), netip.PrefixFrom(relay6, 64)}, nil},
		{k.relay, "r1", []netip.Prefix{netip.PrefixFrom(relayPeer4, 24), netip.PrefixFrom(relayPeer6, 64)}, nil},
		{k.peer, "c0", []netip.Prefix{netip.PrefixFrom(peer4, 24), netip.PrefixFrom(peer6, 64)}, []netip.Addr{relayPeer4, relayPeer6}},
	} {
		for _, p := range a.addrs {
			if p.Addr().Is4() {
				a.ns.MustRun(t, "ip", "addr", "add", p.String(), "dev", a.ifname)
			} else {
				a.ns.MustRun(t, "ip", "-6", "addr", "add", p.String(), "dev", a.ifname, "nodad")
			}
		}
		for _, gw := range a.gateways {
			a.ns.MustRun(t, "ip", "route", "add", "default", "via", gw.String())
		}
	}
	// The relay's FIB lookups need forwarding, and its neighbours known:
	// the kernel path passes what has no resolved next hop.
	k.relay.Sysctl(t, "net/ipv4/ip_forward", "1")
	k.relay.Sysctl(t, "net/ipv6/conf/all/forwarding", "1")
	for _, n := range []struct {
		ns     *nstest.NS
		ifname string
		relay  string
		addrs  []netip.Addr
	}{{k.clients, "a0", "r0", []netip.Addr{client4, client6}}, {k.peer, "c0", "r1", []netip.Addr{peer4, peer6}}} {
		l, err := n.ns.Netlink(t).LinkByName(n.ifname)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range n.addrs {
			k.relay.MustRun(t, "ip", "neigh", "replace", a.String(), "lladdr", l.Attrs().HardwareAddr.String(), "dev", n.relay, "nud", "permanent")
		}
	}

	k.p = loadProgram(t, testConfig)
	for _, ifname := range []string{"r0", "r1"} {
		err := k.relay.Do(func() error {
			a, err := k.p.Attach(ifname, ModeNative)
			if err == nil {
				t.Cleanup(func() { a.Close() })
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	k.clients.AttachXDPPass(t, "a0")
	k.peer.AttachXDPPass(t, "c0")
	return k
}

// xdpPassProgram is an XDP program that passes every frame.
func xdpPassProgram(t testing.TB) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xdp_pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(VerdictPass)), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load xdp_pass: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// udpSocket opens a UDP socket bound to addr (port 0: any) in ns.
func udpSocket(t *testing.T, ns *nstest.NS, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("listen udp %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive reads one datagram within a few seconds.
func receive(t *testing.T, c *net.UDPConn, what string) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

// TestKernelPath relays ChannelData between a client socket and a UDP echo
// peer through the program attached natively in a relay namespace that
// has no sockets: IPv4, IPv6 and both cross-family combinations, then two
// clients of the relay talking to each other. The receivers' kernels
// accept every checksum, and the counters show the kernel did the work.
func TestKernelPath(t *testing.T) {
	k := newKernelPath(t)

	echo := udpSocket(t, k.peer, netip.AddrPortFrom(netip.IPv6Unspecified(), 7))
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed at cleanup
			}
			reply := append([]byte("echo "), buf[:n]...)
			echo.WriteToUDPAddrPort(reply, from)
		}
	}()

	reasonsBefore := readReasons(t, k.p)
	redirects := 0
	for _, tc := range []struct {
		name          string
		client        netip.Addr
		server, relay netip.AddrPort
		peer          netip.AddrPort
	}{
		{"v4 to v4", client4, ap(relay4, 3478), ap(relay4, 50000), ap(peer4, 7)},
		{"v6 to v6", client6, ap(relay6, 3478), ap(relay6, 50001), ap(peer6, 7)},
		{"v4 to v6", client4, ap(relay4, 3478), ap(relay6, 50002), ap(peer6, 7)},
		{"v6 to v4", client6, ap(relay6, 3478), ap(relay4, 50003), ap(peer4, 7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := udpSocket(t, k.clients, netip.AddrPortFrom(tc.client, 0))
			b := Binding{
				Client:  c.LocalAddr().(*net.UDPAddr).AddrPort(),
				Server:  tc.server,
				Channel: 0x4000 + uint16(redirects),
				Relay:   tc.relay,
				Peer:    tc.peer,
			}
			if err := k.p.AddBinding(b); err != nil {
				t.Fatal(err)
			}
			defer k.p.RemoveBinding(b)

			for i := range 3 {
				data := []byte(fmt.Sprintf("%s #%d", tc.name, i))
				if _, err := c.WriteToUDPAddrPort(channelData(b.Channel, data), b.Server); err != nil {
					t.Fatal(err)
				}
				got, from := receive(t, c, "client waiting for the echo")
				want := channelData(b.Channel, append([]byte("echo "), data...))
				if !bytes.Equal(got, want) || from != b.Server {
					t.Errorf("client got % x from %s, want % x from %s", got, from, want, b.Server)
				}
				redirects += 2
			}
			stats, err := k.p.Bindings()
			if err != nil {
				t.Fatal(err)
			}
			want := []Traffic{{Packets: 3, Bytes: uint64(3 * len(tc.name+" #0"))}, {Packets: 3, Bytes: uint64(3 * len("echo "+tc.name+" #0"))}}
			if len(stats) != 1 || stats[0].ToPeer == nil || stats[0].ToClient == nil {
				t.Fatalf("Bindings() = %+v, want just %s", stats, b)
			}
			for i, got := range []*Traffic{stats[0].ToPeer, stats[0].ToClient} {
				if got.Packets != want[i].Packets || got.Bytes != want[i].Bytes {
					t.Errorf("binding traffic %d = %d packets %d bytes, want %d, %d", i, got.Packets, got.Bytes, want[i].Packets, want[i].Bytes)
				}
			}
		})
	}

	t.Run("client to client", func(t *testing.T) {
		a := udpSocket(t, k.clients, netip.AddrPortFrom(client4, 0))
		b := udpSocket(t, k.clients, netip.AddrPortFrom(client6, 0))
		ba := Binding{Client: a.LocalAddr().(*net.UDPAddr).AddrPort(), Server: ap(relay4, 3478), Channel: 0x4100, Relay: ap(relay4, 50010), Peer: ap(relay4, 50011)}
		bb := Binding{Client: b.LocalAddr().(*net.UDPAddr).AddrPort(), Server: ap(relay6, 3478), Channel: 0x7FFF, Relay: ap(relay4, 50011), Peer: ap(relay4, 50010)}
		for _, x := range []Binding{ba, bb} {
			if err := k.p.AddBinding(x); err != nil {
				t.Fatal(err)
			}
			defer k.p.RemoveBinding(x)
		}
		before := readReasons(t, k.p)
		for _, dir := range []struct {
			from, to   *net.UDPConn
			bFrom, bTo Binding
		}{{a, b, ba, bb}, {b, a, bb, ba}} {
			data := []byte("from " + dir.bFrom.Client.String())
			if _, err := dir.from.WriteToUDPAddrPort(channelData(dir.bFrom.Channel, data), dir.bFrom.Server); err != nil {
				t.Fatal(err)
			}
			got, from := receive(t, dir.to, "client waiting for the other client")
			if want := channelData(dir.bTo.Channel, data); !bytes.Equal(got, want) || from != dir.bTo.Server {
				t.Errorf("got % x from %s, want % x from %s", got, from, want, dir.bTo.Server)
			}
		}
		if got := delta(before, readReasons(t, k.p))[ReasonTX].Packets; got != 2 {
			t.Errorf("XDP_TX count = %d, want 2 (out the NIC they came in by)", got)
		}
	})

	// Every relayed datagram was redirected by the program; none of the
	// relay candidates went to the (socketless) stack.
	got := delta(reasonsBefore, readReasons(t, k.p))
	if got[ReasonRedirect].Packets != uint64(redirects) {
		t.Errorf("redirects = %d, want %d", got[ReasonRedirect].Packets, redirects)
	}
	for _, r := range []Reason{ReasonNoBinding, ReasonNoNeigh, ReasonMTU, ReasonUnroutable, ReasonCsumZero, ReasonMalformed, ReasonNoTXPort, ReasonFwdDisabled} {
		if got[r].Packets != 0 {
			t.Errorf("%d packets passed for %s", got[r].Packets, r)
		}
	}
	for _, ns := range []*nstest.NS{k.clients, k.peer} {
		if n := ns.UDPChecksumErrors(t); n != 0 {
			t.Errorf("%s counted %d UDP checksum errors", ns.Name, n)
		}
	}
	if t.Failed() {
		t.Logf("reasons: %v", got)
	}
}
