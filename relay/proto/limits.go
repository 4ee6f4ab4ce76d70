package proto

import (
	"net/netip"
	"time"
)

// bucket is a token bucket of bytes, refilled from the times it is given.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b for the time since it was last used and takes n tokens
// if it has them.
func (b *bucket) take(n float64, now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// charge refills b and takes n tokens whether it has them or not: what was
// already relayed cannot be refused, only paid back. The debt has no
// floor, so a cap holds over time however fast the overdraft came.
func (b *bucket) charge(n float64, now time.Time, rate, burst float64) {
	b.refill(now, rate, burst)
	b.tokens -= n
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+dt.Seconds()*rate)
		b.last = now
	}
}

// bandwidthBurst is the bytes an allocation may relay at once: one
// second's worth, and at least one datagram of any size.
func (s *Server) bandwidthBurst() float64 {
	return float64(max(s.cfg.Bandwidth*defaultBandwidthBurstSec, 0xFFFF))
}

// takeBandwidth charges n relayed bytes to a, reporting whether they fit
// in its bandwidth (always, without a cap).
func (s *Server) takeBandwidth(a *allocation, n int, now time.Time) bool {
	if s.cfg.Bandwidth == 0 {
		return true
	}
	if !a.bucket.take(float64(n), now, float64(s.cfg.Bandwidth), s.bandwidthBurst()) {
		s.stats.drop(dropBandwidth)
		return false
	}
	return true
}

// ChargeRelayed charges n bytes that a data plane relayed for b (the XDP
// program, out of the core's sight) to the bandwidth of b's allocation, in
// debt if need be, and reports whether that allocation is within its cap
// at now. False means its bindings should leave that data plane until the
// debt is paid back at the cap's rate: its traffic then takes the
// user-space path, where the cap drops what does not fit. True without a
// cap, and for an allocation that is gone.
func (s *Server) ChargeRelayed(b Binding, n uint64, now time.Time) bool {
	if s.cfg.Bandwidth == 0 {
		return true
	}
	a := s.byRelayed[unmapAddrPort(b.Relayed)]
	if a == nil {
		return true
	}
	a.bucket.charge(float64(n), now, float64(s.cfg.Bandwidth), s.bandwidthBurst())
	return a.bucket.tokens > 0
}

// source is what the relay remembers about a source address that sends
// requests: its answer rate and its byte budget for unauthenticated answers.
type source struct {
	answers bucket
	credit  int64 // bytes it may still be sent, already times Amplification
	seen    time.Time
}

// sources tracks source addresses, bounded in number.
type sources struct {
	m         map[netip.Addr]source
	rate      float64
	burst     float64
	amp       int64
	maxCredit int64
	max       int
	nextSweep time.Time
}

const (
	sourceIdle       = time.Minute      // forgotten after this long without a request
	sourceSweepEvery = 10 * time.Second // how often forgotten ones are dropped
)

func newSources(c Config) sources {
	return sources{
		m:     make(map[netip.Addr]source),
		rate:  float64(c.UnauthRate),
		burst: float64(c.UnauthBurst),
		amp:   int64(c.Amplification),
		// Enough for the answers to a burst of retransmissions; a source
		// cannot bank more by sending a lot first.
		maxCredit: int64(c.Amplification) * 8 << 10,
		max:       c.MaxSources,
	}
}

// received notes n bytes of STUN request from ip.
func (ss *sources) received(ip netip.Addr, n int, now time.Time) {
	src, ok := ss.m[ip]
	if !ok {
		if len(ss.m) >= ss.max {
			return
		}
		src.answers = bucket{tokens: ss.burst, last: now}
		if ss.nextSweep.IsZero() {
			ss.nextSweep = now.Add(sourceSweepEvery)
		}
	}
	src.credit = min(src.credit+int64(n)*ss.amp, ss.maxCredit)
	src.seen = now
	ss.m[ip] = src
}

// answer decides whether ip may be sent an unauthenticated answer of n
// bytes, charging it if so. Binding answers are charged to the rate only.
func (ss *sources) answer(ip netip.Addr, n int, now time.Time, binding bool) dropReason {
	src, ok := ss.m[ip]
	if !ok {
		return dropSources
	}
	if !binding && src.credit < int64(n) {
		return dropAmplification
	}
	if !src.answers.take(1, now, ss.rate, ss.burst) {
		ss.m[ip] = src // keep the refill time
		return dropRateLimited
	}
	if !binding {
		src.credit -= int64(n)
	}
	ss.m[ip] = src
	return dropNone
}

func (ss *sources) deadline() time.Time {
	if len(ss.m) == 0 {
		return time.Time{}
	}
	return ss.nextSweep
}

// sweep forgets sources idle for sourceIdle.
func (ss *sources) sweep(now time.Time) {
	if len(ss.m) == 0 {
		ss.nextSweep = time.Time{}
		return
	}
	if now.Before(ss.nextSweep) {
		return
	}
	for ip, src := range ss.m {
		if now.Sub(src.seen) >= sourceIdle {
			delete(ss.m, ip)
		}
	}
	ss.nextSweep = now.Add(sourceSweepEvery)
}
