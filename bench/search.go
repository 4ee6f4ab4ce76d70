package bench

import (
	"errors"
	"fmt"
	"math"
)

// Step is one paced offer at a target rate and what came of it.
type Step struct {
	// Target is the rate asked for, Offered the rate the generator
	// reached (packets sent over the step's time), in packets per second.
	Target, Offered float64
	// Sent and Delivered are packets sent and counted at the sink.
	Sent, Delivered uint64
	// Seconds is how long the generator sent.
	Seconds float64
	// CPUSeconds is the server process's CPU time over the step.
	CPUSeconds float64
	// RigLimited says most of the step's losses were the rig's (the
	// sink's socket overflowed), not the server's.
	RigLimited bool
	// Note says what else was seen (where packets were lost, ...).
	Note string
}

// Loss is the share of sent packets the sink did not count, 0 to 1.
func (s Step) Loss() float64 {
	if s.Sent == 0 {
		return 1
	}
	return max(0, 1-float64(s.Delivered)/float64(s.Sent))
}

// DeliveredPPS is the rate the sink counted.
func (s Step) DeliveredPPS() float64 {
	if s.Seconds <= 0 {
		return 0
	}
	return float64(s.Delivered) / s.Seconds
}

// GeneratorLimited reports whether the generator fell short of the target
// by more than 5%: the step then says nothing about rates above Offered.
func (s Step) GeneratorLimited() bool { return s.Offered < 0.95*s.Target }

// Search finds the highest offered rate a server relays with a loss below
// MaxLoss: it doubles the rate from Start until a step loses too much (or
// the generator cannot keep up, or Max is passed), then bisects between the
// last good and the first bad rate Refine times, in log space. If the first
// step already loses, it halves down to Min. A generator that falls short
// once gets a second try at the same rate (on a shared machine a step can
// lose the CPU for a while). Every search takes at most MaxSteps steps.
type Search struct {
	Start, Min, Max float64
	Factor          float64 // growth per step before the first loss; 2 if 0
	Refine          int
	MaxLoss         float64
	MaxSteps        int
}

// Result is the outcome of a Search.
type Result struct {
	Steps []Step
	// Best is the index in Steps of the good step with the highest
	// offered rate, -1 if none was good.
	Best int
	// Capped says the search never lost: the generator's ceiling (or Max)
	// stopped it, so the server's own limit is higher than Best's rate.
	Capped bool
}

// Lossless is the offered rate of the best good step, NaN if none.
func (r Result) Lossless() float64 {
	if r.Best < 0 {
		return math.NaN()
	}
	return r.Steps[r.Best].Offered
}

// Delivered is the highest rate the sink counted in any step: the
// throughput at saturation.
func (r Result) Delivered() float64 {
	best := math.NaN()
	for _, s := range r.Steps {
		if d := s.DeliveredPPS(); math.IsNaN(best) || d > best {
			best = d
		}
	}
	return best
}

// CPUPerPacket is the server's CPU time per delivered packet in the best
// good step, in nanoseconds; NaN if not measured.
func (r Result) CPUPerPacket() float64 {
	if r.Best < 0 {
		return math.NaN()
	}
	s := r.Steps[r.Best]
	if s.Delivered == 0 {
		return math.NaN()
	}
	return s.CPUSeconds * 1e9 / float64(s.Delivered)
}

// errSearch marks a search that was configured so it could not run.
var errSearch = errors.New("rate search")

// Run searches with measure, which offers a rate and reports the step. An
// error from measure ends the search and is returned with the steps so far.
func (s Search) Run(measure func(rate float64) (Step, error)) (Result, error) {
	factor := s.Factor
	if factor == 0 {
		factor = 2
	}
	if s.Start <= 0 || s.Min <= 0 || s.Max < s.Start || s.Min > s.Start || factor <= 1 || s.MaxSteps <= 0 {
		return Result{Best: -1}, fmt.Errorf("%w: start %g, min %g, max %g, factor %g, steps %d: want 0 < min <= start <= max, factor > 1, steps > 0",
			errSearch, s.Start, s.Min, s.Max, factor, s.MaxSteps)
	}
	res := Result{Best: -1}
	good := math.NaN() // highest good target
	bad := math.NaN()  // lowest bad target
	// step measures rate and moves good or bad to it: every rate tried
	// lies between them, so the last good one is the highest and the last
	// bad one the lowest.
	step := func(rate float64) (bool, error) {
		st, err := measure(rate)
		if err != nil {
			return false, err
		}
		res.Steps = append(res.Steps, st)
		ok := st.Loss() < s.MaxLoss
		if ok && (res.Best < 0 || st.Offered > res.Steps[res.Best].Offered) {
			res.Best = len(res.Steps) - 1
		}
		if ok {
			good = rate
		} else {
			bad = rate
		}
		return ok, nil
	}

	// Up: double until a loss, the generator's ceiling or Max.
	rate := s.Start
	retried := false
	for len(res.Steps) < s.MaxSteps {
		ok, err := step(rate)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		last := res.Steps[len(res.Steps)-1]
		if last.GeneratorLimited() && !retried && len(res.Steps) < s.MaxSteps {
			retried = true
			continue
		}
		if last.GeneratorLimited() || rate >= s.Max {
			res.Capped = true
			return res, nil
		}
		rate = min(rate*factor, s.Max)
	}
	// Down: the first step lost; halve until one does not.
	for math.IsNaN(good) && len(res.Steps) < s.MaxSteps {
		rate = bad / factor
		if rate < s.Min {
			return res, nil
		}
		if _, err := step(rate); err != nil {
			return res, err
		}
	}
	// Refine between good and bad.
	for i := 0; i < s.Refine && !math.IsNaN(good) && !math.IsNaN(bad) && len(res.Steps) < s.MaxSteps; i++ {
		if _, err := step(math.Sqrt(good * bad)); err != nil {
			return res, err
		}
	}
	return res, nil
}
