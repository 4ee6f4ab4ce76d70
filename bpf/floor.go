package bpf

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
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

// GeneratorProgram loads the in-kernel traffic generator's program for one
// frame whose first bytes are head: run with BPF_F_TEST_XDP_LIVE_FRAMES,
// it writes head back over the start of the frame and returns XDP_TX,
// which the live-frames test run turns into a send out the ingress NIC.
// The write-back matters because the pages come back to the run's pool as
// the program on the far side left them (a relay rewrites its frames in
// place): head must cover every byte that program may change.
func GeneratorProgram(head []byte) (*ebpf.Program, error) {
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(len(head))),
		asm.JGT.Reg(asm.R4, asm.R3, "send"),
	}
	i := 0
	for ; i+4 <= len(head); i += 4 {
		insns = append(insns, asm.StoreImm(asm.R2, int16(i), int64(int32(binary.NativeEndian.Uint32(head[i:]))), asm.Word))
	}
	for ; i < len(head); i++ {
		insns = append(insns, asm.StoreImm(asm.R2, int16(i), int64(head[i]), asm.Byte))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, int32(VerdictTX)).WithSymbol("send"), asm.Return())
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdp_generator", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		return nil, fmt.Errorf("load the generator program: %w", err)
	}
	return p, nil
}
