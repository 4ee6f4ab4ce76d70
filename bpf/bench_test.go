//go:build linux

package bpf

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// macSwapProgram loads MACSwapProgram for the benchmark.
func macSwapProgram(t testing.TB) *ebpf.Program {
	t.Helper()
	p, err := MACSwapProgram()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// kernelNsPerPacket runs prog on frame n times, each a BPF_PROG_TEST_RUN
// with Repeat 1, and returns the mean time the kernel measured per run.
// Repeat > 1 would run the program again on the frame it rewrote (a
// different packet, most likely passed); one run per call measures the
// path asked for, plus the cost of reading the clock around it, which
// every program here pays alike.
func kernelNsPerPacket(tb testing.TB, n *relayNet, prog *ebpf.Program, frame []byte, ingress string, want Verdict, runs int) float64 {
	tb.Helper()
	var total time.Duration
	err := n.ns.Do(func() error {
		for range runs {
			v, _, d, err := runXDP(prog, frame, n.ifindex[ingress])
			if err != nil {
				return err
			}
			if v != want {
				tb.Errorf("verdict %s, want %s", v, want)
				return nil
			}
			total += d
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return float64(total.Nanoseconds()) / float64(runs)
}

// sideBySide measures a path and its floor in turns, block by block, for
// total packets each, and returns the mean ns per packet of both: a shared
// host that slows down or speeds up during the run moves both alike, and
// their ratio holds.
func sideBySide(total, block int, path, floor func(packets int) float64) (pathNs, floorNs float64) {
	for done := 0; done < total; {
		k := min(block, total-done)
		pathNs += path(k) * float64(k)
		floorNs += floor(k) * float64(k)
		done += k
	}
	return pathNs / float64(total), floorNs / float64(total)
}

// BenchmarkPaths measures the program per path in the kernel, in turns
// with a bare MAC-swap XDP_TX program (sideBySide): ns/op is the kernel's
// time per packet, x-macswap the ratio to MAC swap's. The other floors: a
// program that only passes, and the least a relay path does
// (minimumRelay).
func BenchmarkPaths(b *testing.B) {
	n := newRelayNet(b, Config{}, tableBindings...)
	data := make([]byte, 100)
	macSwap := macSwapProgram(b)
	floorFrame := fromClient(b44, data).build(b)
	minimum := newMinimumRelay(b)
	minimum.bindAs(b, n, floorFrame)

	type path struct {
		name    string
		prog    *ebpf.Program
		frame   []byte
		ingress string
		want    Reason
	}
	paths := []path{
		{"floor/mac_swap", macSwap, floorFrame, "r0", ReasonTX},
		{"floor/pass", xdpPassProgram(b), floorFrame, "r0", ReasonControl},
		{"floor/relay_minimum", minimum.prog, floorFrame, "r0", ReasonRedirect},
		{"relay/v4_client_to_v4_peer", n.p.objs.RelayXdp, floorFrame, "r0", ReasonRedirect},
		{"relay/v4_peer_to_v4_client", n.p.objs.RelayXdp, fromPeer(b44, data).build(b), "r1", ReasonRedirect},
		{"relay/v6_client_to_v6_peer", n.p.objs.RelayXdp, fromClient(b66, data).build(b), "r0", ReasonRedirect},
		{"relay/v6_peer_to_v6_client", n.p.objs.RelayXdp, fromPeer(b66, data).build(b), "r1", ReasonRedirect},
		{"relay/v4_client_to_v6_peer", n.p.objs.RelayXdp, fromClient(b46, data).build(b), "r0", ReasonRedirect},
		{"relay/v6_peer_to_v4_client", n.p.objs.RelayXdp, fromPeer(b46, data).build(b), "r1", ReasonRedirect},
		{"relay/v6_client_to_v4_peer", n.p.objs.RelayXdp, fromClient(b64, data).build(b), "r0", ReasonRedirect},
		{"relay/v4_peer_to_v6_client", n.p.objs.RelayXdp, fromPeer(b64, data).build(b), "r1", ReasonRedirect},
		{"relay/tx_v4_client_to_v4_peer", n.p.objs.RelayXdp, floorFrame, "r1", ReasonTX},
		{"relay/client_to_client", n.p.objs.RelayXdp, fromClient(bA, data).build(b), "r0", ReasonTX},
		{"pass/stun", n.p.objs.RelayXdp, packet{src: b44.Client, dst: b44.Server, payload: stunMessage(1, 0)}.build(b), "r0", ReasonControl},
		{"pass/other_port", n.p.objs.RelayXdp, packet{src: b44.Client, dst: ap(relay4, 53), payload: data}.build(b), "r0", ReasonOtherPort},
		{"pass/no_binding", n.p.objs.RelayXdp, fromClient(Binding{Client: b44.Client, Server: b44.Server, Channel: 0x4FFF}, data).build(b), "r0", ReasonNoBinding},
		{"pass/no_neigh", n.p.objs.RelayXdp, fromClient(bNoNeigh4, data).build(b), "r0", ReasonNoNeigh},
		{"drop/channel_length", n.p.objs.RelayXdp, func() []byte {
			f := fromClient(b44, data).build(b)
			put16(udp4Off+8+2, 200)(f)
			return f
		}(), "r0", ReasonChannelLength},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			ns, floor := sideBySide(b.N, 1000,
				func(k int) float64 { return kernelNsPerPacket(b, n, p.prog, p.frame, p.ingress, p.want.Verdict(), k) },
				func(k int) float64 { return kernelNsPerPacket(b, n, macSwap, floorFrame, "r0", VerdictTX, k) })
			b.ReportMetric(ns, "ns/op")
			b.ReportMetric(ns/floor, "x-macswap")
		})
	}

	// The same paths whole, as a NIC's batch meets them: each sub-benchmark
	// is wholePath's CPU per frame, its ratio to MAC swap's measured the
	// same way. Pass and drop paths are left out: what a passed frame costs
	// is the stack's.
	w := newWholePath(b, n)
	whole := []path{{"mac_swap", macSwap, floorFrame, "r2", numReasons}}
	for _, p := range paths {
		if name, ok := strings.CutPrefix(p.name, "relay/"); ok {
			p.name = name
			whole = append(whole, p)
		}
	}
	for _, p := range whole {
		b.Run("whole/"+p.name, func(b *testing.B) {
			ns, floor := sideBySide(max(b.N, wholeFrames), wholeFrames/4,
				func(k int) float64 { return w.nsPerPacket(b, p.frame, p.ingress, p.want, k) },
				func(k int) float64 { return w.nsPerPacket(b, floorFrame, "r2", numReasons, k) })
			b.ReportMetric(ns, "ns/op")
			b.ReportMetric(ns/floor, "x-macswap")
		})
	}
}

// TestWholePath runs BenchmarkPaths' whole-path machinery briefly, so that
// it keeps working between benchmark runs: the generator's frames from the
// far side of r0 and r1 reach the relay program in native mode and are
// relayed, every one it sees (a loaded host may lose some on the way: the
// benchmark, not this test, requires them all), and those into r2 meet
// MAC swap there, not the relay.
func TestWholePath(t *testing.T) {
	n := newRelayNet(t, Config{}, b44, b66)
	w := newWholePath(t, n)
	data := make([]byte, 100)
	for _, tc := range []struct {
		frame   []byte
		ingress string
		want    Reason // numReasons: the relay sees none
	}{
		{fromClient(b44, data).build(t), "r0", ReasonRedirect},
		{fromPeer(b66, data).build(t), "r1", ReasonRedirect},
		{fromClient(b44, data).build(t), "r2", numReasons},
	} {
		before := readReasons(t, n.p)
		if cpu := w.send(t, tc.frame, tc.ingress, 1000); cpu <= 0 {
			t.Errorf("into %s: the generator took no CPU time", tc.ingress)
		}
		// NAPI may be left to ksoftirqd on a loaded host: wait for it.
		var counted map[Reason]uint64
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			counted = map[Reason]uint64{}
			for r, c := range readReasons(t, n.p) {
				if d := c.Packets - before[r].Packets; d > 0 {
					counted[r] = d
				}
			}
			if tc.want == numReasons || counted[tc.want] > 0 || time.Now().After(deadline) {
				break
			}
		}
		if tc.want == numReasons {
			if len(counted) != 0 {
				t.Errorf("into %s: the relay counted %v, want nothing", tc.ingress, counted)
			}
		} else if len(counted) != 1 || counted[tc.want] == 0 || counted[tc.want] > 1000 {
			t.Errorf("into %s: the relay counted %v, want only %s (at most 1000)", tc.ingress, counted, tc.want)
		}
	}
}

// wholePath measures a path whole, in the kernel, as the relay meets it
// in production: the in-kernel generator (Generator, live frames)
// sends the frames from the far end of a veth into one of the relay
// network's NICs, where the relay program runs in native mode, and the
// NIC it sends to hands them to an XDP_DROP program at its far end. The
// NAPI polls that carry them run on the generator's thread, so its CPU
// time per frame is the whole path's: the generator, two veth hops, the
// program and the drop. The floor is the same with MAC swap on r2 (which
// the relay program is not attached to), the frame going back the way it
// came.
type wholePath struct {
	n    *relayNet
	side map[string]int // ifindex of s0, s1, s2 in n.side
}

func newWholePath(tb testing.TB, n *relayNet) *wholePath {
	tb.Helper()
	drop, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdp_drop", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(VerdictDrop)), asm.Return()}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { drop.Close() })
	w := &wholePath{n: n, side: map[string]int{}}
	attach := func(ns *nstest.NS, prog *ebpf.Program, iface string) int {
		var index int
		err := ns.Do(func() error {
			nif, err := net.InterfaceByName(iface)
			if err != nil {
				return err
			}
			l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: nif.Index, Flags: link.XDPDriverMode})
			if err != nil {
				return fmt.Errorf("attach %s natively to %s: %w", prog, iface, err)
			}
			tb.Cleanup(func() { l.Close() })
			index = nif.Index
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		return index
	}
	for i := range relayNetSpec.ifaces {
		name := fmt.Sprintf("s%d", i)
		w.side[name] = attach(n.side, drop, name)
	}
	attach(n.ns, macSwapProgram(tb), "r2")
	return w
}

// nsPerPacket sends count copies of frame into the relay network's NIC
// ingress and returns the generator thread's CPU time per frame. Unless
// want is numReasons (a program other than the relay's), the relay must
// have counted (nearly) every frame under want: a figure from fewer, the
// others lost on the way, would be too low.
func (w *wholePath) nsPerPacket(tb testing.TB, frame []byte, ingress string, want Reason, count int) float64 {
	tb.Helper()
	before := readReasons(tb, w.n.p)[want].Packets
	cpu := w.send(tb, frame, ingress, count)
	if want != numReasons {
		if got := readReasons(tb, w.n.p)[want].Packets - before; got < uint64(count)*99/100 {
			tb.Errorf("the relay counted %d of %d frames as %s", got, count, want)
		}
	}
	return float64(cpu.Nanoseconds()) / float64(count)
}

// send sends count copies of frame into the relay network's NIC ingress,
// from the far end of its veth, and returns the generator thread's CPU
// time.
func (w *wholePath) send(tb testing.TB, frame []byte, ingress string, count int) time.Duration {
	tb.Helper()
	gen, err := NewGenerator(frame, min(len(frame), wholeHeadLen))
	if err != nil {
		tb.Fatal(err)
	}
	defer gen.Close()
	from := w.side["s"+strings.TrimPrefix(ingress, "r")]
	var cpu time.Duration
	err = w.n.side.Do(func() error {
		c0, err := nstest.ThreadCPU()
		if err != nil {
			return err
		}
		if err := gen.Send(from, count); err != nil {
			return fmt.Errorf("into %s: %w", ingress, err)
		}
		c1, err := nstest.ThreadCPU()
		cpu = c1 - c0
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return cpu
}

// wholeFrames is the fewest frames a whole path is measured on, in four
// turns with MAC swap: each generator call sets up a page pool, a cost the
// frames of the call share.
const wholeFrames = 1 << 18

// wholeHeadLen is how much of a frame the generator writes back: more
// than any headers the relay program rewrites (IPv6 and ChannelData: 66
// bytes).
const wholeHeadLen = 68
