package relay

import (
	"context"
	"time"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/relay/proto"
)

// The bandwidth cap on the kernel path.
//
// The TURN core enforces the bandwidth key on what it relays, but the XDP
// program relays a bound channel's ChannelData without the core seeing it.
// So, while a cap is set, the relay reads the kernel's per-binding byte
// counters every bandwidthPoll and charges what they grew by to the
// bindings' allocations (proto.Server.ChargeRelayed). An allocation that
// went over its cap has its bindings taken out of the kernel: its traffic
// takes the user-space path, where the cap drops what does not fit, until
// the debt is paid back at the cap's rate and the bindings go back in.
//
// The kernel path can therefore overshoot by what a client sends in one
// poll interval; the debt makes up for it, so over time the cap holds
// exactly (the user-space path alone never overshoots).

const (
	// bandwidthPoll is how often the kernel's counters are charged.
	bandwidthPoll = 100 * time.Millisecond
	// bandwidthPollShare bounds the share of a core the polling takes: a
	// poll that took d waits at least d*bandwidthPollShare for the next.
	bandwidthPollShare = 20
)

// kernelUse is what the relay knows of one capped binding's kernel path.
type kernelUse struct {
	charged   uint64 // bytes of its kernel counters (both directions) already charged
	suspended bool   // taken out of the kernel: its allocation is over its cap
}

// runBandwidth charges the kernel's relaying to the allocations until ctx
// ends; it returns at once when there is no cap or no kernel path.
func (s *Server) runBandwidth(ctx context.Context) {
	x, ok := s.plane.(*xdpPlane)
	if !ok || !x.capped() {
		return
	}
	t := time.NewTimer(bandwidthPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if err := s.chargeKernel(x); err != nil {
			s.log.Warn("xdp: cannot read the kernel's per-binding counters; the bandwidth cap holds on the user-space path only until this clears", "err", err)
		}
		t.Reset(max(bandwidthPoll, time.Since(start)*bandwidthPollShare))
	}
}

// chargeKernel charges one poll's worth of kernel relaying. The counters
// are read without the relay's state locked (at many bindings the read
// takes a while); what they say is applied under it.
func (s *Server) chargeKernel(x *xdpPlane) error {
	used, err := x.kernelBytes()
	if err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	x.enforce(used, func(b proto.Binding, n uint64) bool { return s.core.ChargeRelayed(b, n, now) })
	return nil
}

// kernelBytes reads the bytes the kernel relayed for each binding it holds,
// both directions together.
func (x *xdpPlane) kernelBytes() (map[bpf.Binding]uint64, error) {
	all, err := x.maps.Bindings()
	if err != nil {
		return nil, err
	}
	used := make(map[bpf.Binding]uint64, len(all))
	for _, s := range all {
		used[s.Binding] = trafficBytes(s)
	}
	return used, nil
}

func trafficBytes(s bpf.BindingStats) uint64 {
	var n uint64
	for _, t := range []*bpf.Traffic{s.ToPeer, s.ToClient} {
		if t != nil {
			n += t.Bytes
		}
	}
	return n
}

// enforce charges the growth of each capped binding's counters in used
// through charge, which says whether its allocation is within its cap,
// and moves the binding out of the kernel or back in accordingly. Called
// with the relay's state locked, as Apply is.
func (x *xdpPlane) enforce(used map[bpf.Binding]uint64, charge func(proto.Binding, uint64) bool) {
	for b, u := range x.use {
		var grew uint64
		if n, ok := used[kernelBinding(b)]; ok && !u.suspended {
			// Smaller: the entries were rewritten (new counters) since
			// the last read.
			if n >= u.charged {
				grew = n - u.charged
			} else {
				grew = n
			}
			u.charged = n
		}
		within := charge(b, grew)
		switch {
		case !u.suspended && !within:
			st, err := x.remove(b)
			if err != nil {
				x.errs.Add(1)
				continue
			}
			// What it relayed since the read above is charged too.
			charge(b, trafficBytes(st)-min(u.charged, trafficBytes(st)))
			u.suspended, u.charged = true, 0
			x.suspended.Add(1)
		case u.suspended && within:
			if err := x.maps.AddBinding(kernelBinding(b)); err != nil {
				x.errs.Add(1)
				continue
			}
			u.suspended = false
			x.suspended.Add(-1)
		}
	}
}
