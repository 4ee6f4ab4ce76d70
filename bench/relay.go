package bench

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/relaybox/relaybox/netcfg"
)

// Case is a payload size and a number of flows.
type Case struct {
	Payload, Flows int
}

func (c Case) String() string {
	if c.Flows == 1 {
		return fmt.Sprintf("%d B, 1 flow", c.Payload)
	}
	return fmt.Sprintf("%d B, %d flows", c.Payload, c.Flows)
}

// threads is how many generator threads a case uses: one for one flow (a
// flow is one socket), one per core for many.
func (c Case) threads() int {
	if c.Flows == 1 {
		return 1
	}
	return runtime.NumCPU()
}

// drain is how long a step waits after sending, for queues to empty
// before the counts are read; gap is the quiet time before a step.
const (
	drain = 100 * time.Millisecond
	gap   = 150 * time.Millisecond
)

// socketStep offers rate through the relay from flows and counts what the
// sink gets, with the server's CPU time (pid) and where packets were lost.
func (b *Bench) socketStep(p *process, flows []*Flow, payload int, rate float64, threads int) (Step, error) {
	if err := b.ctx.Err(); err != nil {
		return Step{}, err
	}
	time.Sleep(gap)
	before, err := b.sample(p.Pid)
	if err != nil {
		return Step{}, err
	}
	sent, elapsed, err := offer(flows, b.topo.Listen(), payload, rate, b.opts.Step, threads)
	if err != nil {
		return Step{}, err
	}
	time.Sleep(drain)
	after, err := b.sample(p.Pid)
	if err != nil {
		return Step{}, err
	}
	if err := p.exited(); err != nil {
		return Step{}, err
	}
	st := Step{
		Target:     rate,
		Sent:       sent,
		Seconds:    elapsed.Seconds(),
		Offered:    float64(sent) / elapsed.Seconds(),
		Delivered:  after.sink - before.sink,
		CPUSeconds: after.cpu - before.cpu,
	}
	lost := int64(st.Sent) - int64(st.Delivered)
	relayDrops, sinkDrops := after.relayDrops-before.relayDrops, after.sinkDrops-before.sinkDrops
	st.Note = fmt.Sprintf("relay sent %d towards the peer; dropped at the server's sockets %d, at the sink's %d", after.wire-before.wire, relayDrops, sinkDrops)
	if lost > 0 && float64(sinkDrops) > 0.5*float64(lost) {
		st.RigLimited = true
		st.Note = "lost at the sink (rig-limited): " + st.Note
	}
	b.logf("  %s: target %s pps, offered %s, delivered %s, loss %.2f%%, cpu %.0f ns/pkt; %s",
		p.name, num(rate), num(st.Offered), num(st.DeliveredPPS()), 100*st.Loss(),
		st.CPUSeconds*1e9/math.Max(1, float64(st.Delivered)), st.Note)
	return st, nil
}

// counts is a snapshot of the counters a step compares.
type counts struct {
	sink, wire            uint64
	cpu                   float64
	relayDrops, sinkDrops uint64
}

func (b *Bench) sample(pid int) (counts, error) {
	var c counts
	var err error
	c.sink = b.sink.Count()
	if c.wire, err = b.topo.Wire.Count(); err != nil {
		return c, err
	}
	if pid > 0 {
		if c.cpu, err = processCPU(pid); err != nil {
			return c, err
		}
	}
	// RcvbufErrors: datagrams dropped because a socket's receive buffer
	// was full.
	if c.relayDrops, err = b.topo.Relay.UDPCounter("RcvbufErrors"); err != nil {
		return c, fmt.Errorf("UDP drops: %w", err)
	}
	if c.sinkDrops, err = b.topo.Peer.UDPCounter("RcvbufErrors"); err != nil {
		return c, fmt.Errorf("UDP drops: %w", err)
	}
	return c, nil
}

// socketSearch is the rate search of the socket generator: from 25k pps,
// doubling up to the generator's ceiling.
func (b *Bench) socketSearch() Search {
	s := Search{Start: 25e3, Min: 3e3, Max: 4e6, Refine: 3, MaxLoss: 0.01, MaxSteps: 10}
	if b.opts.Quick {
		s.Refine, s.MaxSteps = 1, 7
	}
	return s
}

// relayServer measures s's relayed ChannelData in every case, in run:
// start it, open the flows, search each case, stop it.
func (b *Bench) relayServer(run int, s Server) error {
	// A program left on the relay's NIC (by a relay --xdp that did not
	// detach it) would relay a user-space server's packets in the kernel.
	if mode, _, err := b.relayXDP(); err != nil {
		return err
	} else if mode != netcfg.XDPOff {
		return fmt.Errorf("%s has an XDP program (%s) before %s starts; a relay --xdp left it attached", relayIface, mode, s.Name)
	}
	dir, err := os.MkdirTemp(b.opts.Work, "server-")
	if err != nil {
		return err
	}
	p, err := startServer(b.topo, s, dir)
	if err != nil {
		return err
	}
	defer p.stop()
	var xdp *xdpProbe
	if s.XDP {
		if xdp, err = b.checkXDP(); err != nil {
			return err
		}
		defer xdp.Close()
	}
	flows, err := openFlows(b.topo.Client, b.topo.Listen(), b.topo.Sink(), b.opts.ManyFlows)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	defer closeFlows(flows)
	b.logf("%s: %d flows allocated, channels %#x..., run %d", s.Name, len(flows), flows[0].Channel, run+1)

	for _, c := range b.cases() {
		res, err := b.socketSearch().Run(func(rate float64) (Step, error) {
			return b.socketStep(p, flows[:c.Flows], c.Payload, rate, c.threads())
		})
		if err != nil {
			return fmt.Errorf("%s, %s: %w", s.Name, c, err)
		}
		b.record(run, s.Name, c, res)
		cpu := res.CPUPerPacket()
		if s.XDP {
			// The relay process does not touch the kernel path's
			// packets; its CPU figure is the program's, from the
			// in-kernel generator's run below.
			cpu = math.NaN()
		}
		b.res.Set(Key{MetricCPU, s.Name, c.String()}, run, cpu)
	}
	if s.XDP {
		if err := b.kernelServer(run, flows, xdp); err != nil {
			return err
		}
		note := xdp.reasonNote()
		b.logf("%s: %s", s.Name, note)
		if run == 0 {
			b.res.Note("%s, run 1: %s", s.Name, note)
		}
	}
	return nil
}

// record stores a search's lossless and delivered rates, marking them as
// lower bounds when the rig stopped the search: the generator's ceiling,
// or losses at the sink's socket rather than the server's.
func (b *Bench) record(run int, subject string, c Case, res Result) {
	capped := res.Capped
	for _, st := range res.Steps {
		if st.RigLimited && st.Loss() >= 0.01 {
			capped = true
		}
	}
	for _, f := range []struct {
		m Metric
		v float64
	}{{MetricLossless, res.Lossless()}, {MetricDelivered, res.Delivered()}} {
		k := Key{f.m, subject, c.String()}
		b.res.Set(k, run, f.v)
		if capped {
			b.res.SetCapped(k, run)
		}
	}
	limit := ""
	if capped {
		limit = " (rig-limited)"
	}
	b.logf("%s, %s: lossless %s pps, delivered %s pps, %d steps%s", subject, c, num(res.Lossless()), num(res.Delivered()), len(res.Steps), limit)
}
