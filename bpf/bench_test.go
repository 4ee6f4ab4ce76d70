//go:build linux

package bpf

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
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

// BenchmarkPaths measures the program per path in the kernel, beside a
// bare MAC-swap XDP_TX program measured in the same run: ns/op is the
// kernel's time per packet, x-macswap the ratio to the floor. The other
// floors: a program that only passes, and the least a relay path does
// (minimumRelay).
func BenchmarkPaths(b *testing.B) {
	n := newRelayNet(b, Config{}, tableBindings...)
	data := make([]byte, 100)
	macSwap := macSwapProgram(b)
	floorFrame := fromClient(b44, data).build(b)
	floor := kernelNsPerPacket(b, n, macSwap, floorFrame, "r0", VerdictTX, 200000)
	minimum := newMinimumRelay(b)
	if _, out := n.run(b, floorFrame, "r0"); n.ns.Do(func() error { minimum.bind(b, floorFrame, out, n.ifindex["r1"]); return nil }) != nil {
		b.Fatal("bind the minimum relay")
	}

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
			ns := kernelNsPerPacket(b, n, p.prog, p.frame, p.ingress, p.want.Verdict(), b.N)
			b.ReportMetric(ns, "ns/op")
			b.ReportMetric(ns/floor, "x-macswap")
		})
	}
}
