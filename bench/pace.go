package bench

import (
	"time"
)

// pacer spreads Total packets evenly over a step at Rate packets per
// second: each thread of the socket generator asks its own how many are
// due, sends at most a batch, and sleeps while none are (the in-kernel
// generator is not paced: it sends as fast as the path takes frames). A
// thread that falls behind (descheduled, or slower than the rate) sends
// what is due back to back, so the offered rate is the target's or the
// generator's ceiling, whichever is lower.
type pacer struct {
	rate  float64
	total uint64
	start time.Time
	sent  uint64
}

func newPacer(rate float64, d time.Duration, start time.Time) *pacer {
	return &pacer{rate: rate, total: uint64(rate * d.Seconds()), start: start}
}

// due returns how many packets should have left by now and have not, at
// most limit.
func (p *pacer) due(now time.Time, limit int) int {
	want := min(uint64(p.rate*now.Sub(p.start).Seconds())+1, p.total)
	if want <= p.sent {
		return 0
	}
	return int(min(want-p.sent, uint64(limit)))
}

// done records n packets as sent.
func (p *pacer) done(n int) { p.sent += uint64(n) }

// finished reports whether every packet of the step has left.
func (p *pacer) finished() bool { return p.sent >= p.total }

// wait is how long to sleep when nothing is due: until the next packet is,
// at least 20µs (shorter sleeps cost more than they save).
func (p *pacer) wait(now time.Time) time.Duration {
	next := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	return max(next.Sub(now), 20*time.Microsecond)
}
