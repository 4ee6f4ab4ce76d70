package bench

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/netcfg"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// kernelRepeat is how many frames one BPF_PROG_TEST_RUN call sends. Each
// call sets up a page pool and, on this kernel, then waits ~25ms (asleep,
// not on the CPU) for its teardown; tens of thousands of frames per call
// keep that out of the way.
const kernelRepeat = 1 << 16

// restoreLen is how many bytes of its frame the generator program writes
// back before each send: Ethernet, IPv4 and UDP headers and the ChannelData
// header (46 bytes), rounded up to whole words.
const restoreLen = 48

// kernelGen is the in-kernel generator: an XDP program run with
// BPF_F_TEST_XDP_LIVE_FRAMES "on" rr, which sends each frame out rr into
// the relay's NIC, as if the router had forwarded it. The veth hands the
// frame's page to the relay's XDP program, which rewrites it in place, and
// the page comes back to the generator's pool rewritten: so each frame has
// a program of its own that writes the frame's headers back before
// returning XDP_TX.
//
// The NET_RX softirq that carries a frame through the relay's NIC and back
// to rr runs as the generator's syscall returns from each batch, on its
// CPU, and this kernel (no IRQ_TIME_ACCOUNTING) charges it to the
// generator's thread: the thread's CPU time is the whole path's.
type kernelGen struct {
	ns      *nstest.NS
	ifindex int
}

// saturate sends frames (round-robin, kernelRepeat per call) as fast as the
// path takes them, from one thread, until d has passed. It returns the
// frames sent and the thread's CPU time.
func (g *kernelGen) saturate(frames []*bpf.Generator, d time.Duration) (sent uint64, cpu time.Duration, err error) {
	// The interface index is looked up in the namespace of the calling
	// thread: run inside the router's.
	err = g.ns.Do(func() error {
		c0, err := nstest.ThreadCPU()
		if err != nil {
			return err
		}
		end := time.Now().Add(d)
		for i := 0; i == 0 || (time.Now().Before(end) && i < 10000); i++ {
			if err := frames[i%len(frames)].Send(g.ifindex, kernelRepeat); err != nil {
				return err
			}
			sent += kernelRepeat
		}
		c1, err := nstest.ThreadCPU()
		cpu = c1 - c0
		return err
	})
	return sent, cpu, err
}

// frameFlow is what a generated frame needs of a flow.
type frameFlow struct {
	Port, Channel uint16
}

// kernelFrames builds, for each flow, the Ethernet frame of its ChannelData
// as the router would hand it to the relay's NIC (from the client's
// address and port to the listen address, rr's MAC to r0's, checksums
// valid), and its generator program.
func kernelFrames(topo *Topology, flows []frameFlow, payload int) ([]*bpf.Generator, error) {
	var frames []*bpf.Generator
	for _, f := range flows {
		eth := &layers.Ethernet{SrcMAC: topo.WireMAC, DstMAC: topo.RelayMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4DontFragment,
			SrcIP: net.IP(ClientIP.AsSlice()), DstIP: net.IP(RelayIP.AsSlice())}
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.Port), DstPort: ListenPort}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		buf := gopacket.NewSerializeBuffer()
		err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip, udp, gopacket.Payload(channelData(f.Channel, payload)))
		if err == nil && len(buf.Bytes()) < restoreLen {
			err = fmt.Errorf("%d bytes, want at least %d", len(buf.Bytes()), restoreLen)
		}
		if err != nil {
			closeFrames(frames)
			return nil, fmt.Errorf("build ChannelData frame: %w", err)
		}
		gen, err := bpf.NewGenerator(buf.Bytes(), restoreLen)
		if err != nil {
			closeFrames(frames)
			return nil, err
		}
		frames = append(frames, gen)
	}
	return frames, nil
}

func closeFrames(frames []*bpf.Generator) {
	for _, f := range frames {
		f.Close()
	}
}

// kernelCases measures every case with the in-kernel generator: the most
// frames per CPU-second that come back out of the relay's NIC towards
// match (counted and dropped at rr), the loss, and the per-packet run time
// of the relay's program, read through progTime if not nil.
func (b *Bench) kernelCases(run int, subject string, match netip.Addr, flows []frameFlow, progTime func() (time.Duration, error)) error {
	if err := b.topo.Wire.Set(match, true); err != nil {
		return err
	}
	defer b.topo.Wire.Set(PeerIP, false)
	if err := b.topo.ThreadedNAPI(false); err != nil {
		return err
	}
	defer b.topo.ThreadedNAPI(true)
	for _, c := range b.cases() {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		frames, err := kernelFrames(b.topo, flows[:c.Flows], c.Payload)
		if err != nil {
			return err
		}
		err = b.kernelCase(run, subject, c, frames, progTime)
		closeFrames(frames)
		if err != nil {
			return fmt.Errorf("%s, %s, in-kernel generator: %w", subject, c, err)
		}
	}
	return nil
}

// kernelCase measures one case: the path's capacity in a first run, with
// BPF statistics off (they put two clock reads around every program run,
// which would be counted as the path's cost), then the program's own time
// in a second run with them on.
func (b *Bench) kernelCase(run int, subject string, c Case, frames []*bpf.Generator, progTime func() (time.Duration, error)) error {
	p, err := b.kernelPass(frames, b.opts.Step, nil)
	if err != nil {
		return err
	}
	if p.delivered == 0 || p.cpu <= 0 {
		return fmt.Errorf("%d frames sent, none came back: the program on %s relayed nothing", p.sent, relayIface)
	}
	k := c.String()
	perCore := float64(p.delivered) / p.cpu.Seconds()
	loss := max(0, 1-float64(p.delivered)/float64(p.sent))
	b.res.Set(Key{MetricKDelivered, subject, k}, run, perCore)
	b.res.Set(Key{MetricKLoss, subject, k}, run, 100*loss)

	progNs := math.NaN()
	if progTime != nil {
		if progNs, err = b.programTime(frames, progTime); err != nil {
			return err
		}
	}
	b.res.Set(Key{MetricKCPU, subject, k}, run, progNs)
	b.logf("%s, %s (in-kernel generator): %d frames sent, %d delivered (loss %.2f%%) in %v of CPU: %s pps per core, %.0f ns/packet; program %.0f ns/packet",
		subject, c, p.sent, p.delivered, 100*loss, p.cpu.Round(time.Millisecond), num(perCore), 1e9/perCore, progNs)
	return nil
}

// programTime runs frames with BPF run-time statistics on and returns the
// program's run time per frame that came back.
func (b *Bench) programTime(frames []*bpf.Generator, progTime func() (time.Duration, error)) (float64, error) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return 0, fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	defer stats.Close()
	p, err := b.kernelPass(frames, b.opts.Step/2, progTime)
	if err != nil {
		return 0, err
	}
	if p.delivered == 0 {
		return 0, fmt.Errorf("no frame came back while timing the program")
	}
	return float64(p.progTime) / float64(p.delivered), nil
}

// kernelPassCounts is what one pass of the in-kernel generator counted.
type kernelPassCounts struct {
	// sent is the frames sent, delivered those the wire counted coming
	// back.
	sent, delivered uint64
	// cpu is the generator thread's CPU time, progTime how much the
	// program's run time grew (if it was read).
	cpu, progTime time.Duration
}

// kernelPass is one pass of the in-kernel generator: a quiet gap, frames
// sent for d, a drain for the queues to empty, with the wire counted
// before and after. progTime, if not nil, is read right after each wire
// count, so that its growth covers the same frames.
func (b *Bench) kernelPass(frames []*bpf.Generator, d time.Duration, progTime func() (time.Duration, error)) (kernelPassCounts, error) {
	var p kernelPassCounts
	read := func() (wire uint64, rt time.Duration, err error) {
		if wire, err = b.topo.Wire.Count(); err != nil || progTime == nil {
			return wire, 0, err
		}
		rt, err = progTime()
		return wire, rt, err
	}
	time.Sleep(gap)
	w0, rt0, err := read()
	if err != nil {
		return p, err
	}
	if p.sent, p.cpu, err = b.kgen.saturate(frames, d); err != nil {
		return p, err
	}
	time.Sleep(drain)
	w1, rt1, err := read()
	if err != nil {
		return p, err
	}
	p.delivered, p.progTime = w1-w0, rt1-rt0
	return p, nil
}

// kernelServer measures the relay's XDP program with the in-kernel
// generator, on the flows the relay has bound.
func (b *Bench) kernelServer(run int, flows []*Flow, x *xdpProbe) error {
	ff := make([]frameFlow, len(flows))
	for i, f := range flows {
		ff[i] = frameFlow{Port: f.Local.Port(), Channel: f.Channel}
	}
	return b.kernelCases(run, XDP, PeerIP, ff, x.runtime)
}

// macSwapFloor measures the rig's ceiling: the same frames, with a bare
// MAC-swap XDP_TX program on the relay's NIC instead of relaybox's, counted
// as they come back to rr.
func (b *Bench) macSwapFloor(run int) error {
	prog, err := bpf.MACSwapProgram()
	if err != nil {
		return err
	}
	defer prog.Close()
	var l link.Link
	err = b.topo.Relay.Do(func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: b.topo.RelayIndex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return fmt.Errorf("attach the MAC-swap program to %s: %w", relayIface, err)
	}
	defer l.Close()
	ff := make([]frameFlow, b.opts.ManyFlows)
	for i := range ff {
		ff[i] = frameFlow{Port: uint16(50000 + i), Channel: uint16(0x4000 + i)}
	}
	return b.kernelCases(run, MACSwap, RelayIP, ff, programRuntime(prog))
}

// programRuntime reads prog's accumulated run time (BPF statistics must be
// enabled).
func programRuntime(prog *ebpf.Program) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		s, err := prog.Stats()
		if err != nil {
			return 0, fmt.Errorf("BPF program statistics: %w", err)
		}
		return s.Runtime, nil
	}
}

// errNotNative is returned by checkXDP when the relay's program is not in
// native mode (or not attached at all): generic XDP is never benchmarked as
// the fast path.
var errNotNative = errors.New("relaybox's XDP program is not attached in native mode")

// xdpProbe watches the XDP program `relay --xdp` attached: its run time
// (while BPF statistics are on) and its reasons counters, which prove the
// packets took the kernel path.
type xdpProbe struct {
	prog    *ebpf.Program
	reasons *ebpf.Map
	start   map[bpf.Reason]uint64
}

// relayXDP returns the XDP mode of the relay's NIC and the ID of the
// program attached to it (0 if none).
func (b *Bench) relayXDP() (mode string, progID uint32, err error) {
	h := b.topo.RelayNetlink
	if mode, err = netcfg.New(h).XDPMode(relayIface); err != nil {
		return "", 0, fmt.Errorf("XDP mode of %s: %w", relayIface, err)
	}
	l, err := h.LinkByName(relayIface)
	if err != nil {
		return "", 0, fmt.Errorf("XDP program of %s: %w", relayIface, err)
	}
	if l.Attrs().Xdp != nil {
		progID = l.Attrs().Xdp.ProgId
	}
	return mode, progID, nil
}

// checkXDP finds the program on the relay's NIC and checks its mode.
func (b *Bench) checkXDP() (x *xdpProbe, err error) {
	mode, progID, err := b.relayXDP()
	if err != nil {
		return nil, err
	}
	if mode != netcfg.XDPNative || progID == 0 {
		return nil, fmt.Errorf("%w: %s reports %q", errNotNative, relayIface, mode)
	}
	x = &xdpProbe{}
	if x.prog, err = ebpf.NewProgramFromID(ebpf.ProgramID(progID)); err != nil {
		return nil, fmt.Errorf("open the relay's XDP program (id %d): %w", progID, err)
	}
	info, err := x.prog.Info()
	if err == nil {
		ids, _ := info.MapIDs()
		for _, id := range ids {
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				continue
			}
			if mi, err := m.Info(); err == nil && mi.Name == "reasons" {
				x.reasons = m
				break
			}
			m.Close()
		}
	}
	x.start = x.readReasons()
	return x, nil
}

func (x *xdpProbe) runtime() (time.Duration, error) { return programRuntime(x.prog)() }

// readReasons sums the reasons counters over CPUs; nil if unreadable.
func (x *xdpProbe) readReasons() map[bpf.Reason]uint64 {
	if x.reasons == nil {
		return nil
	}
	out := map[bpf.Reason]uint64{}
	for _, r := range []bpf.Reason{bpf.ReasonTX, bpf.ReasonRedirect, bpf.ReasonNoBinding, bpf.ReasonControl, bpf.ReasonNoNeigh, bpf.ReasonFwdDisabled} {
		var per []bpf.Counter
		if err := x.reasons.Lookup(uint32(r), &per); err != nil {
			return nil
		}
		for _, c := range per {
			out[r] += c.Packets
		}
	}
	return out
}

// reasonNote says how many packets the program relayed and passed since
// the probe opened: the proof that they took the kernel path.
func (x *xdpProbe) reasonNote() string {
	now := x.readReasons()
	if now == nil || x.start == nil {
		return "the XDP program's reasons counters could not be read"
	}
	d := func(r bpf.Reason) uint64 { return now[r] - x.start[r] }
	return fmt.Sprintf("XDP program relayed %d packets in the kernel (tx %d, redirect %d) and passed %d without a binding, %d without a neighbour, %d with forwarding off, %d control",
		d(bpf.ReasonTX)+d(bpf.ReasonRedirect), d(bpf.ReasonTX), d(bpf.ReasonRedirect), d(bpf.ReasonNoBinding), d(bpf.ReasonNoNeigh), d(bpf.ReasonFwdDisabled), d(bpf.ReasonControl))
}

func (x *xdpProbe) Close() {
	if x.reasons != nil {
		x.reasons.Close()
	}
	if x.prog != nil {
		x.prog.Close()
	}
}
