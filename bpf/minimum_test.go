//go:build linux

package bpf

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
)

// minimumRelay is the least any XDP relay path does, for BenchmarkPaths to
// measure beside the relay's own paths: IPv4 ChannelData from a client,
// relayed to its peer (the relay's v4_client_to_v4_peer path) by one hash
// lookup on the smallest key that can name a binding (16 bytes: addresses,
// ports, channel), one bpf_xdp_adjust_head, headers copied from a template
// the binding holds with the checksums updated incrementally, and one
// redirect through an array devmap, the cheapest. It checks nothing it is
// not forced to, counts nothing, keeps no time and has no next hop cache,
// so it is the floor of a relay path in Program.Run, as MAC swap is the
// floor of any forwarding program. It handles only the frame layout of
// that path (Ethernet, option-less IPv4, UDP, unpadded ChannelData, no
// Ethernet trailer) and passes anything shorter.
type minimumRelay struct {
	prog     *ebpf.Program
	bindings *ebpf.Map // 16-byte key → a value laid out as minVal* says
	txPorts  *ebpf.Map // devmap slot → ifindex
}

// The input frame's offsets the program reads, and the output's it writes.
const (
	minInSaddr   = 26 // IPv4 saddr, then daddr
	minInPorts   = 34 // UDP source and destination ports
	minInUDPLen  = 38
	minInCheck   = 40
	minInChannel = 42 // ChannelData channel number, then its length
	minInHdrLen  = 46 // Ethernet + IPv4 + UDP + ChannelData

	minOutTotLen  = 16
	minOutIPCheck = 24
	minOutUDPLen  = 38
	minOutCheck   = 40
	minOutHdrLen  = 42 // Ethernet + IPv4 + UDP

	// The value's layout: the output headers' first 40 bytes (from
	// the UDP length on the program writes them itself), the sum of the
	// IPv4 header's 16-bit words without its length and checksum, what
	// the binding's addresses and ports change in the UDP checksum, and
	// the egress NIC's devmap slot.
	minValIPSum    = 40
	minValUDPDelta = 44
	minValSlot     = 48
	minValueSize   = 56
)

func newMinimumRelay(tb testing.TB) *minimumRelay {
	tb.Helper()
	m := &minimumRelay{}
	var err error
	m.bindings, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 16, ValueSize: minValueSize, MaxEntries: 1024})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.bindings.Close() })
	m.txPorts, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.DevMap, KeySize: 4, ValueSize: 4, MaxEntries: 8})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.txPorts.Close() })

	// foldInto folds a 32-bit one's-complement sum in r to 16 bits.
	foldInto := func(r, tmp asm.Register) asm.Instructions {
		var ins asm.Instructions
		for range 2 {
			ins = append(ins,
				asm.Mov.Reg(tmp, r), asm.RSh.Imm(tmp, 16),
				asm.And.Imm(r, 0xFFFF), asm.Add.Reg(r, tmp))
		}
		return ins
	}
	// complementAdd adds ~(the 16-bit word at off in the frame r2) to r8.
	complementAdd := func(off int16) asm.Instructions {
		return asm.Instructions{
			asm.LoadMem(asm.R3, asm.R2, off, asm.Half),
			asm.Xor.Imm(asm.R3, 0xFFFF),
			asm.Add.Reg(asm.R8, asm.R3),
		}
	}

	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // ctx
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, minInHdrLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),

		// The key, on the stack: saddr, daddr, ports, channel, 0.
		asm.LoadMem(asm.R3, asm.R2, minInSaddr, asm.DWord),
		asm.StoreMem(asm.RFP, -16, asm.R3, asm.DWord),
		asm.LoadMem(asm.R3, asm.R2, minInPorts, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R3, asm.Word),
		asm.LoadMem(asm.R3, asm.R2, minInChannel, asm.Half),
		asm.StoreMem(asm.RFP, -4, asm.R3, asm.Word),

		// r9: the UDP length, host order; r8: what leaves the UDP
		// checksum, complemented: the checksum itself, the length twice
		// (header and pseudo-header), the ChannelData header.
		asm.LoadMem(asm.R9, asm.R2, minInUDPLen, asm.Half),
		asm.HostTo(asm.BE, asm.R9, asm.Half),
		asm.Mov.Imm(asm.R8, 0),
	}
	for _, off := range []int16{minInCheck, minInUDPLen, minInUDPLen, minInChannel, minInChannel + 2} {
		ins = append(ins, complementAdd(off)...)
	}
	ins = append(ins,
		asm.LoadMapPtr(asm.R1, m.bindings.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Mov.Reg(asm.R7, asm.R0), // the binding's value

		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, minInHdrLen-minOutHdrLen),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, minOutHdrLen),
		asm.JGT.Reg(asm.R4, asm.R3, "aborted"),
	)
	for off := int16(0); off < minValIPSum; off += 8 {
		ins = append(ins,
			asm.LoadMem(asm.R3, asm.R7, off, asm.DWord),
			asm.StoreMem(asm.R2, off, asm.R3, asm.DWord))
	}
	ins = append(ins,
		// UDP length: 4 bytes less, in the header and, twice, the sum.
		asm.Add.Imm(asm.R9, -4),
		asm.Mov.Reg(asm.R4, asm.R9),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.StoreMem(asm.R2, minOutUDPLen, asm.R4, asm.Half),
		asm.Add.Reg(asm.R8, asm.R4),
		asm.Add.Reg(asm.R8, asm.R4),
		asm.LoadMem(asm.R3, asm.R7, minValUDPDelta, asm.Word),
		asm.Add.Reg(asm.R8, asm.R3),
	)
	ins = append(ins, foldInto(asm.R8, asm.R3)...)
	ins = append(ins,
		asm.Xor.Imm(asm.R8, 0xFFFF),
		asm.JNE.Imm(asm.R8, 0, "udp_check"),
		asm.Mov.Imm(asm.R8, 0xFFFF),
		asm.StoreMem(asm.R2, minOutCheck, asm.R8, asm.Half).WithSymbol("udp_check"),

		// IPv4 total length and header checksum.
		asm.Add.Imm(asm.R9, 20),
		asm.HostTo(asm.BE, asm.R9, asm.Half),
		asm.StoreMem(asm.R2, minOutTotLen, asm.R9, asm.Half),
		asm.LoadMem(asm.R3, asm.R7, minValIPSum, asm.Word),
		asm.Add.Reg(asm.R9, asm.R3),
	)
	ins = append(ins, foldInto(asm.R9, asm.R3)...)
	ins = append(ins,
		asm.Xor.Imm(asm.R9, 0xFFFF),
		asm.StoreMem(asm.R2, minOutIPCheck, asm.R9, asm.Half),

		asm.LoadMapPtr(asm.R1, m.txPorts.FD()),
		asm.LoadMem(asm.R2, asm.R7, minValSlot, asm.Word),
		asm.Mov.Imm(asm.R3, int32(VerdictPass)), // the verdict if the slot is empty
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, int32(VerdictPass)).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, int32(VerdictAborted)).WithSymbol("aborted"),
		asm.Return(),
	)
	m.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdp_min_relay", Type: ebpf.XDP, License: "GPL", Instructions: ins})
	if err != nil {
		tb.Fatalf("load the minimum relay program: %v", err)
	}
	tb.Cleanup(func() { m.prog.Close() })
	return m
}

// bindAs installs in m the binding that the relay program of n relays
// the ChannelData frame in (arriving on r0) with: its output is m's
// template, and it leaves by r1.
func (m *minimumRelay) bindAs(tb testing.TB, n *relayNet, in []byte) {
	tb.Helper()
	verdict, out := n.run(tb, in, "r0")
	if verdict != VerdictRedirect {
		tb.Fatalf("relay program: verdict %s, want redirect", verdict)
	}
	// A devmap takes only a NIC of the caller's namespace.
	if err := n.ns.Do(func() error { return m.bind(in, out, n.ifindex["r1"]) }); err != nil {
		tb.Fatalf("bind the minimum relay: %v", err)
	}
}

// bind installs the binding whose ChannelData frame is in and whose
// relayed datagram is out, leaving by ifindex.
func (m *minimumRelay) bind(in, out []byte, ifindex int) error {
	key := make([]byte, 16)
	copy(key[0:8], in[minInSaddr:minInSaddr+8])
	copy(key[8:12], in[minInPorts:minInPorts+4])
	copy(key[12:14], in[minInChannel:minInChannel+2])

	val := make([]byte, minValueSize)
	copy(val, out[:minValIPSum])
	var ipSum uint32
	for off := 14; off < 34; off += 2 {
		if off != minOutTotLen && off != minOutIPCheck {
			ipSum += uint32(binary.NativeEndian.Uint16(out[off:]))
		}
	}
	// Addresses and ports enter; the input's leave (complemented).
	var delta uint32
	for off := minInSaddr; off < minInPorts+4; off += 2 {
		delta += uint32(binary.NativeEndian.Uint16(out[off:])) + uint32(^binary.NativeEndian.Uint16(in[off:]))
	}
	binary.NativeEndian.PutUint32(val[minValIPSum:], ipSum)
	binary.NativeEndian.PutUint32(val[minValUDPDelta:], delta)
	binary.NativeEndian.PutUint32(val[minValSlot:], 0)
	if err := m.bindings.Put(key, val); err != nil {
		return err
	}
	return m.txPorts.Put(uint32(0), uint32(ifindex))
}

// TestMinimumRelay checks that the benchmark's floor of a relay path does
// the work of one: the relay program's v4 client-to-peer rewrite, byte for
// byte, for datagrams of several sizes (its template comes from a 100-byte
// one), down to the smallest frame without an Ethernet trailer.
func TestMinimumRelay(t *testing.T) {
	n := newRelayNet(t, Config{}, b44)
	m := newMinimumRelay(t)
	m.bindAs(t, n, fromClient(b44, make([]byte, 100)).build(t))
	for _, size := range []int{100, 14, 37, 1200} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(j*13 + size)
			}
			in := fromClient(b44, data).build(t)
			verdict, want := n.run(t, in, "r0")
			if verdict != VerdictRedirect {
				t.Fatalf("relay program: verdict %s, want redirect", verdict)
			}
			var got []byte
			err := n.ns.Do(func() error {
				var err error
				verdict, got, _, err = runXDP(m.prog, in, n.ifindex["r0"])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if verdict != VerdictRedirect {
				t.Errorf("minimum relay: verdict %s, want redirect", verdict)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("minimum relay's frame differs from the relay program's (-relay +minimum):\n%s", diff)
			}
		})
	}
}
