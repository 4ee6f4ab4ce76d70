package bench

import (
	"errors"
	"math"
	"testing"
	"time"
)

// server is a model of a relay for the search: it relays up to capacity
// packets per second, losing the excess; the generator reaches at most
// ceiling.
type server struct {
	capacity, ceiling float64
	rates             []float64
}

func (s *server) measure(rate float64) (Step, error) {
	s.rates = append(s.rates, rate)
	offered := math.Min(rate, s.ceiling)
	delivered := math.Min(offered, s.capacity)
	return Step{Target: rate, Offered: offered, Sent: uint64(offered), Delivered: uint64(delivered), Seconds: 1}, nil
}

func TestSearchFindsCapacity(t *testing.T) {
	s := Search{Start: 25e3, Min: 3e3, Max: 4e6, Refine: 3, MaxLoss: 0.01, MaxSteps: 10}
	for _, capacity := range []float64{30e3, 100e3, 123e3, 399e3} {
		srv := &server{capacity: capacity, ceiling: 500e3}
		res, err := s.Run(srv.measure)
		if err != nil {
			t.Fatalf("capacity %g: %v", capacity, err)
		}
		// Three bisections of a doubling leave 2^(1/8) ≈ 9%; the 1% loss
		// allowance lets the result exceed the capacity by up to 1%.
		got := res.Lossless()
		if got > capacity*1.0101 || got < capacity/math.Pow(2, 1.0/8)*0.999 {
			t.Errorf("capacity %g: lossless %g, want within 9%% below it (steps %v)", capacity, got, srv.rates)
		}
		if res.Capped {
			t.Errorf("capacity %g: capped, want a search that found the server's limit", capacity)
		}
		if d := res.Delivered(); math.Abs(d-capacity) > 1 {
			t.Errorf("capacity %g: delivered %g, want the capacity (the most any step delivered)", capacity, d)
		}
		if len(res.Steps) > s.MaxSteps {
			t.Errorf("capacity %g: %d steps, want at most %d", capacity, len(res.Steps), s.MaxSteps)
		}
	}
}

func TestSearchStopsAtGeneratorCeiling(t *testing.T) {
	srv := &server{capacity: 10e6, ceiling: 450e3}
	res, err := Search{Start: 25e3, Min: 3e3, Max: 4e6, Refine: 3, MaxLoss: 0.01, MaxSteps: 10}.Run(srv.measure)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Capped {
		t.Errorf("not capped: the generator, not the server, stopped the search at %v", srv.rates)
	}
	if got := res.Lossless(); got != 450e3 {
		t.Errorf("lossless %g, want the generator's ceiling 450000 as a lower bound", got)
	}
	// 25k, 50k, ... 400k, then 800k which the generator could not offer,
	// twice.
	if len(res.Steps) != 7 || srv.rates[5] != srv.rates[6] {
		t.Errorf("%d steps %v, want 7: one retry, no step after the generator fell short again", len(res.Steps), srv.rates)
	}
}

func TestSearchRetriesAGeneratorHiccup(t *testing.T) {
	srv := &server{capacity: 100e3, ceiling: 1e9}
	calls := 0
	res, err := Search{Start: 25e3, Min: 3e3, Max: 4e6, Refine: 3, MaxLoss: 0.01, MaxSteps: 10}.Run(func(rate float64) (Step, error) {
		st, err := srv.measure(rate)
		if calls++; calls == 2 { // the second step lost the CPU for half its time
			st.Offered, st.Sent, st.Delivered = rate/2, uint64(rate/2), uint64(rate/2)
		}
		return st, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Capped || res.Lossless() < 90e3 {
		t.Errorf("rates %v: lossless %g, capped %v; want the search to go on after one short step and find 100k", srv.rates, res.Lossless(), res.Capped)
	}
}

func TestSearchStopsAtMax(t *testing.T) {
	srv := &server{capacity: 1e9, ceiling: 1e9}
	res, err := Search{Start: 1e3, Min: 1e3, Max: 5e3, MaxLoss: 0.01, MaxSteps: 10}.Run(srv.measure)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Capped || res.Lossless() != 5e3 || len(srv.rates) != 4 {
		t.Errorf("rates %v, lossless %g, capped %v; want 1k, 2k, 4k, 5k then stop, capped", srv.rates, res.Lossless(), res.Capped)
	}
}

func TestSearchGoesDownWhenFirstStepLoses(t *testing.T) {
	srv := &server{capacity: 5e3, ceiling: 1e9}
	res, err := Search{Start: 25e3, Min: 3e3, Max: 4e6, Refine: 2, MaxLoss: 0.01, MaxSteps: 10}.Run(srv.measure)
	if err != nil {
		t.Fatal(err)
	}
	// 25k bad, 12.5k bad, 6.25k bad, 3.125k good, then two bisections.
	if got := res.Lossless(); got > 5e3*1.0101 || got < 5e3/math.Sqrt(2) {
		t.Errorf("lossless %g after %v, want near 5000", got, srv.rates)
	}

	srv = &server{capacity: 1e3, ceiling: 1e9}
	res, err = Search{Start: 25e3, Min: 3e3, Max: 4e6, Refine: 2, MaxLoss: 0.01, MaxSteps: 10}.Run(srv.measure)
	if err != nil {
		t.Fatal(err)
	}
	if res.Best != -1 || !math.IsNaN(res.Lossless()) || len(srv.rates) != 4 {
		t.Errorf("rates %v, best %d: want no good step, and nothing offered below Min", srv.rates, res.Best)
	}
}

func TestSearchBoundedBySteps(t *testing.T) {
	srv := &server{capacity: 1e9, ceiling: 1e9}
	res, err := Search{Start: 1, Min: 1, Max: 1e12, Refine: 5, MaxLoss: 0.01, MaxSteps: 7}.Run(srv.measure)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 7 {
		t.Errorf("%d steps, want the bound of 7", len(res.Steps))
	}
}

func TestSearchErrors(t *testing.T) {
	boom := errors.New("server died")
	calls := 0
	res, err := Search{Start: 1e3, Min: 1e3, Max: 1e6, MaxLoss: 0.01, MaxSteps: 10}.Run(func(rate float64) (Step, error) {
		if calls++; calls == 3 {
			return Step{}, boom
		}
		return Step{Target: rate, Offered: rate, Sent: 100, Delivered: 100, Seconds: 1}, nil
	})
	if !errors.Is(err, boom) || len(res.Steps) != 2 {
		t.Errorf("Run = %d steps, %v; want the 2 steps before the error, and the error", len(res.Steps), err)
	}
	for _, bad := range []Search{
		{Start: 0, Min: 1, Max: 10, MaxSteps: 5},
		{Start: 5, Min: 10, Max: 20, MaxSteps: 5},
		{Start: 5, Min: 1, Max: 2, MaxSteps: 5},
		{Start: 5, Min: 1, Max: 20, MaxSteps: 0},
		{Start: 5, Min: 1, Max: 20, Factor: 1, MaxSteps: 5},
	} {
		if _, err := bad.Run(func(float64) (Step, error) { t.Fatal("measured"); return Step{}, nil }); !errors.Is(err, errSearch) {
			t.Errorf("%+v.Run = %v, want a configuration error", bad, err)
		}
	}
}

func TestResultPerPacket(t *testing.T) {
	res := Result{Best: 1, Steps: []Step{
		{Sent: 100, Delivered: 100, CPUSeconds: 1, Seconds: 1},
		{Sent: 1000, Delivered: 1000, CPUSeconds: 0.006, Seconds: 1},
	}}
	if got := res.CPUPerPacket(); math.Abs(got-6000) > 1e-6 {
		t.Errorf("CPUPerPacket = %g, want 6000 ns (the best step's)", got)
	}
	if got := (Result{Best: -1}).CPUPerPacket(); !math.IsNaN(got) {
		t.Errorf("CPUPerPacket without a good step = %g, want NaN", got)
	}
}

func TestStepLoss(t *testing.T) {
	for _, tc := range []struct {
		s    Step
		want float64
	}{
		{Step{Sent: 0}, 1},
		{Step{Sent: 100, Delivered: 99}, 0.01},
		{Step{Sent: 100, Delivered: 103}, 0}, // late packets of the step before
	} {
		if got := tc.s.Loss(); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%+v.Loss() = %g, want %g", tc.s, got, tc.want)
		}
	}
}

func TestPacer(t *testing.T) {
	start := time.Unix(1000, 0)
	p := newPacer(1000, time.Second, start) // 1000 packets over a second
	if n := p.due(start, 64); n != 1 {
		t.Errorf("due at start = %d, want 1", n)
	}
	p.done(1)
	if n := p.due(start.Add(500*time.Microsecond), 64); n != 0 {
		t.Errorf("due 0.5ms in = %d, want 0 (the next packet is at 1ms)", n)
	}
	if w := p.wait(start.Add(500 * time.Microsecond)); w != 500*time.Microsecond {
		t.Errorf("wait 0.5ms in = %v, want 500µs", w)
	}
	if n := p.due(start.Add(100*time.Millisecond), 64); n != 64 {
		t.Errorf("due 100ms in, behind by 100 = %d, want a batch of 64", n)
	}
	p.done(64)
	if n := p.due(start.Add(100*time.Millisecond), 64); n != 36 {
		t.Errorf("due after a batch = %d, want the other 36", n)
	}
	p.done(36)
	if n := p.due(start.Add(10*time.Second), 1000); n != 899 || p.finished() {
		t.Errorf("due long after the end = %d (finished %v), want the 899 left of 1000, not more", n, p.finished())
	}
	p.done(899)
	if !p.finished() || p.due(start.Add(11*time.Second), 64) != 0 {
		t.Errorf("after 1000 packets: want finished, nothing due")
	}
	behind := newPacer(1000, time.Second, start)
	if w := behind.wait(start.Add(time.Second)); w != 20*time.Microsecond {
		t.Errorf("wait when behind = %v, want the 20µs minimum", w)
	}
}
