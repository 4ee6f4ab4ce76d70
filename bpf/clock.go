//go:build linux

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// jiffyClock converts the kernel's jiffies to CLOCK_MONOTONIC nanoseconds
// for the program (clock.h): the time is originNs plus tickNs for every
// jiffy since originJiffies. The zero jiffyClock makes the program read
// the clock through a helper instead.
type jiffyClock struct {
	tickNs        uint64
	originJiffies uint64
	originNs      uint64
}

// tickLengths are the kernel's TICK_NSEC, (1e9 + HZ/2) / HZ, for the HZ
// values Linux offers on x86-64 and arm64.
var tickLengths = []uint64{1_000_000, 3_333_333, 4_000_000, 10_000_000}

// clockSample is one reading of the program's two clocks at once.
type clockSample struct {
	jiffies, ns uint64
}

// Calibration bounds: long enough for a few ticks at HZ=100.
const (
	calibrationTicks    = 3
	calibrationInterval = 2 * time.Millisecond
	calibrationTimeout  = 500 * time.Millisecond
)

// calibrateClock measures the tick length and takes an origin, reading
// jiffies and the coarse monotonic clock together in the kernel a few
// ticks apart.
func calibrateClock() (jiffyClock, error) {
	prog, err := clockSampler()
	if err != nil {
		return jiffyClock{}, err
	}
	defer prog.Close()

	var samples []clockSample
	fitErr := fmt.Errorf("calibrate the jiffies clock: jiffies did not advance by %d in %s", calibrationTicks, calibrationTimeout)
	deadline := time.Now().Add(calibrationTimeout)
	for {
		s, ok, err := sampleClock(prog)
		if err != nil {
			return jiffyClock{}, err
		}
		if ok {
			samples = append(samples, s)
		}
		// A late tick (a busy or emulated host) skews a short span: on
		// a misfit, more ticks.
		if len(samples) > 1 && samples[len(samples)-1].jiffies-samples[0].jiffies >= calibrationTicks {
			clock, err := fitClock(samples)
			if err == nil {
				return clock, nil
			}
			fitErr = err
		}
		if time.Now().After(deadline) {
			return jiffyClock{}, fitErr
		}
		time.Sleep(calibrationInterval)
	}
}

// fitClock finds the tick length and origin that samples, in order, fit.
//
// The coarse clock is the time of the last timekeeping update, which
// follows each jiffies update within microseconds: so ns - jiffies*tick is
// the same for every sample up to that lag, except for a sample taken
// between the two updates, which reads a tick low. The origin is the
// sample where it is highest. The timekeeper also steps by whole ticks and
// at times takes its step a tick late or early against jiffies (on this
// host ns - jiffies*tick reads one tick higher for about a sixth of the
// time, in stretches), so the clock the program computes is the coarse
// clock to a tick either way, as the coarse clock is the time to a tick.
func fitClock(samples []clockSample) (jiffyClock, error) {
	first, last := samples[0], samples[len(samples)-1]
	ticks := last.jiffies - first.jiffies
	if ticks == 0 || last.ns <= first.ns {
		return jiffyClock{}, fmt.Errorf("calibrate the jiffies clock: %d jiffies in %d ns; the kernel's clocks did not advance", ticks, last.ns-first.ns)
	}
	measured := float64(last.ns-first.ns) / float64(ticks)
	var tick uint64
	for _, t := range tickLengths {
		if d := measured - float64(t); d < float64(t)/20 && -d < float64(t)/20 {
			tick = t
		}
	}
	if tick == 0 {
		return jiffyClock{}, fmt.Errorf("calibrate the jiffies clock: a jiffy lasts %.0f ns, no HZ this program knows (100, 250, 300, 1000)", measured)
	}
	best, bestOffset := first, int64(0)
	for _, s := range samples[1:] {
		offset := int64(s.ns-first.ns) - int64(s.jiffies-first.jiffies)*int64(tick)
		if offset > bestOffset {
			best, bestOffset = s, offset
		}
	}
	return jiffyClock{tickNs: tick, originJiffies: best.jiffies, originNs: best.ns}, nil
}

// Offsets of the sampler's output in its frame.
const (
	sampleJiffiesOff = 0
	sampleNsOff      = 8
	sampleAgainOff   = 16
	sampleLen        = 64 // a minimal Ethernet frame: BPF_PROG_TEST_RUN wants one
)

// clockSampler loads an XDP program that writes jiffies, the coarse
// monotonic clock and jiffies again into the frame it is run on.
func clockSampler() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "clock_sample",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.FnJiffies64.Call(),
			asm.Mov.Reg(asm.R7, asm.R0),
			asm.FnKtimeGetCoarseNs.Call(),
			asm.Mov.Reg(asm.R8, asm.R0),
			asm.FnJiffies64.Call(),
			asm.Mov.Reg(asm.R9, asm.R0),
			asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, sampleAgainOff+8),
			asm.JGT.Reg(asm.R4, asm.R3, "out"),
			asm.StoreMem(asm.R2, sampleJiffiesOff, asm.R7, asm.DWord),
			asm.StoreMem(asm.R2, sampleNsOff, asm.R8, asm.DWord),
			asm.StoreMem(asm.R2, sampleAgainOff, asm.R9, asm.DWord),
			asm.Mov.Imm(asm.R0, int32(VerdictPass)).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load the clock sampler: %w", err)
	}
	return p, nil
}

// sampleClock runs the sampler once. ok is false when a tick fell between
// its two reads of jiffies.
func sampleClock(prog *ebpf.Program) (s clockSample, ok bool, err error) {
	in := make([]byte, sampleLen)
	out := make([]byte, sampleLen)
	if _, err := prog.Run(&ebpf.RunOptions{Data: in, DataOut: out}); err != nil {
		return s, false, fmt.Errorf("run the clock sampler: %w", err)
	}
	le := binary.NativeEndian
	s = clockSample{jiffies: le.Uint64(out[sampleJiffiesOff:]), ns: le.Uint64(out[sampleNsOff:])}
	if s.ns == 0 {
		return s, false, errors.New("run the clock sampler: it wrote nothing")
	}
	return s, le.Uint64(out[sampleAgainOff:]) == s.jiffies, nil
}
