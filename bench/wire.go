package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// The wire's program is a few instructions, written with cilium/ebpf's asm
// so the benchmark needs no compiler, as are bpf.Generator's (the in-kernel
// generator) and bpf.MACSwapProgram (the floor bpf's BenchmarkPaths
// measures its paths against).

// Wire is the XDP program on rr, the router's end of the relay's link. It
// must be there: a frame the relay's XDP program sends back out r0
// (XDP_TX) is dropped by a veth whose peer has no XDP program. It also
// counts the IPv4 frames from the relay to one address (the peer, or for
// the MAC-swap floor the relay itself), and drops them when the in-kernel
// generator's traffic must not go on through the router.
type Wire struct {
	link    link.Link
	counter *ebpf.Map // per-CPU u64 at key 0
	// progs holds a program per mode, loaded when first needed. Only the
	// benchmark's own goroutine switches modes, so it needs no lock.
	progs map[wireMode]*ebpf.Program
}

// wireMode is what the wire program does: count frames to Match, and pass
// them on (a relay's output on its way to the sink) or drop them (the
// in-kernel generator's, counted here instead of at the sink).
type wireMode struct {
	Match netip.Addr
	Drop  bool
}

// attachWire puts the wire program on ifindex in ns, counting frames to the
// peer and passing them.
func attachWire(ns *nstest.NS, ifindex int) (*Wire, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bench_wire", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("wire counter map: %w", err)
	}
	w := &Wire{counter: m, progs: map[wireMode]*ebpf.Program{}}
	mode := wireMode{Match: PeerIP}
	p, err := w.program(mode)
	if err != nil {
		m.Close()
		return nil, err
	}
	err = ns.Do(func() error {
		var err error
		w.link, err = link.AttachXDP(link.XDPOptions{Program: p, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("attach the wire program to %s in %s (native XDP on veth): %w", wireIface, ns.Name, err)
	}
	return w, nil
}

// Set switches the wire program to count frames to match, dropping them if
// drop is set.
func (w *Wire) Set(match netip.Addr, drop bool) error {
	p, err := w.program(wireMode{Match: match, Drop: drop})
	if err != nil {
		return err
	}
	if err := w.link.Update(p); err != nil {
		return fmt.Errorf("switch the wire program to %v (drop %v): %w", match, drop, err)
	}
	return nil
}

// Count returns how many frames the wire program has counted so far.
func (w *Wire) Count() (uint64, error) {
	var per []uint64
	if err := w.counter.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("read the wire counter: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Close detaches the program and frees it.
func (w *Wire) Close() error {
	var errs []error
	if w.link != nil {
		errs = append(errs, w.link.Close())
	}
	for _, p := range w.progs {
		errs = append(errs, p.Close())
	}
	errs = append(errs, w.counter.Close())
	return errors.Join(errs...)
}

func (w *Wire) program(mode wireMode) (*ebpf.Program, error) {
	if p, ok := w.progs[mode]; ok {
		return p, nil
	}
	verdict := bpf.VerdictPass
	if mode.Drop {
		verdict = bpf.VerdictDrop
	}
	ip := mode.Match.As4()
	mapLoad := asm.LoadMapPtr(asm.R1, 0)
	if err := mapLoad.AssociateMap(w.counter); err != nil {
		return nil, err
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "bench_wire",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 34), // Ethernet and an IPv4 header without options
			asm.JGT.Reg(asm.R4, asm.R3, "pass"),
			asm.LoadMem(asm.R5, asm.R2, 12, asm.Half), // EtherType, network order
			asm.JNE.Imm32(asm.R5, int32(binary.NativeEndian.Uint16([]byte{0x08, 0x00})), "pass"),
			asm.LoadMem(asm.R5, asm.R2, 30, asm.Word), // IPv4 destination
			asm.JNE.Imm32(asm.R5, int32(binary.NativeEndian.Uint32(ip[:])), "pass"),
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			mapLoad,
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "verdict"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, int32(verdict)).WithSymbol("verdict"),
			asm.Return(),
			asm.Mov.Imm(asm.R0, int32(bpf.VerdictPass)).WithSymbol("pass"),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load the wire program: %w", err)
	}
	w.progs[mode] = p
	return p, nil
}
