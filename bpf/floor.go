package bpf

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// MACSwapProgram loads the benchmarks' floor: an XDP program that swaps the
// Ethernet addresses and sends the frame back out (XDP_TX), the least a
// program that forwards can do. The relay's paths are measured against it.
func MACSwapProgram() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xdp_mac_swap",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 12),
			asm.JGT.Reg(asm.R4, asm.R3, "pass"),
			asm.LoadMem(asm.R5, asm.R2, 0, asm.Word),
			asm.LoadMem(asm.R6, asm.R2, 4, asm.Half),
			asm.LoadMem(asm.R7, asm.R2, 6, asm.Word),
			asm.LoadMem(asm.R8, asm.R2, 10, asm.Half),
			asm.StoreMem(asm.R2, 0, asm.R7, asm.Word),
			asm.StoreMem(asm.R2, 4, asm.R8, asm.Half),
			asm.StoreMem(asm.R2, 6, asm.R5, asm.Word),
			asm.StoreMem(asm.R2, 10, asm.R6, asm.Half),
			asm.Mov.Imm(asm.R0, int32(VerdictTX)),
			asm.Return(),
			asm.Mov.Imm(asm.R0, int32(VerdictPass)).WithSymbol("pass"),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load the MAC-swap program: %w", err)
	}
	return p, nil
}

// Generator is the in-kernel traffic generator for one frame, as
// xdp-trafficgen is: a BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES of
// a program that writes the frame's first bytes back and returns XDP_TX,
// which the live-frames run turns into a send out the ingress NIC. The
// write-back matters because the pages come back to the run's pool as the
// program on the far side left them (a relay rewrites its frames in
// place).
type Generator struct {
	prog  *ebpf.Program
	frame []byte
}

// NewGenerator loads the generator of frame. It writes the first head
// bytes back before each send: they must cover every byte the program on
// the far side may change.
func NewGenerator(frame []byte, head int) (*Generator, error) {
	if head > len(frame) {
		return nil, fmt.Errorf("generator: %d bytes to write back of a %d-byte frame", head, len(frame))
	}
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(head)),
		asm.JGT.Reg(asm.R4, asm.R3, "send"),
	}
	i := 0
	for ; i+4 <= head; i += 4 {
		insns = append(insns, asm.StoreImm(asm.R2, int16(i), int64(int32(binary.NativeEndian.Uint32(frame[i:]))), asm.Word))
	}
	for ; i < head; i++ {
		insns = append(insns, asm.StoreImm(asm.R2, int16(i), int64(frame[i]), asm.Byte))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, int32(VerdictTX)).WithSymbol("send"), asm.Return())
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdp_generator", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		return nil, fmt.Errorf("load the generator program: %w", err)
	}
	return &Generator{prog: p, frame: frame}, nil
}

// generatorBatch is the most frames Send asks of one BPF_PROG_TEST_RUN:
// each call sets up and tears down a page pool, a cost its frames share.
const generatorBatch = 1 << 16

// Send sends count copies of the frame out the NIC with index ifindex in
// the calling thread's network namespace.
func (g *Generator) Send(ifindex, count int) error {
	for sent := 0; sent < count; {
		repeat := min(count-sent, generatorBatch)
		_, err := g.prog.Run(&ebpf.RunOptions{
			Data:    g.frame,
			Repeat:  uint32(repeat),
			Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
			Context: xdpMd{DataEnd: uint32(len(g.frame)), IngressIfindex: uint32(ifindex)},
		})
		if err != nil {
			return fmt.Errorf("in-kernel generator (BPF_PROG_TEST_RUN, live frames) out ifindex %d: %w", ifindex, err)
		}
		sent += repeat
	}
	return nil
}

// Close unloads the generator's program.
func (g *Generator) Close() error { return g.prog.Close() }

// xdpMd is struct xdp_md, the XDP context a test run starts from.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}
