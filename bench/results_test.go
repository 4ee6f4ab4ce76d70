package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// exampleResults are two runs of a benchmark without XDP.
func exampleResults() *Results {
	r := NewResults(2)
	c := "100 B, 1 flow"
	r.Cases = []string{c}
	r.Allocations = 100
	r.Missing(XDP, "relay has no --xdp flag yet")
	for run, v := range [][3]float64{{250e3, 100e3, 50e3}, {350e3, 100e3, 200e3}} {
		r.Set(Key{MetricDelivered, UserSpace, c}, run, v[0])
		r.Set(Key{MetricLossless, UserSpace, c}, run, v[0])
		r.Set(Key{MetricDelivered, Coturn, c}, run, v[1])
		r.Set(Key{MetricDelivered, Pion, c}, run, v[2])
	}
	r.SetCapped(Key{MetricLossless, UserSpace, c}, 1)
	r.Set(Key{MetricAllocRate, Relaybox, ""}, 0, 4000)
	r.Set(Key{MetricAllocRate, Relaybox, ""}, 1, 6000)
	r.Set(Key{MetricAllocBytes, Relaybox, ""}, 0, 2000)
	r.Set(Key{MetricAllocBytes, Relaybox, ""}, 1, 2000)
	r.Set(Key{MetricAllocRate, Coturn, ""}, 0, 1000)
	r.Paths = []string{"floor/mac_swap", "relay/v4_client_to_v4_peer", "pass/stun", "whole/mac_swap", "whole/v4_client_to_v4_peer"}
	for run, v := range [][3]float64{{1.5, 1.2, 3}, {1.7, 1.1, 2.5}} {
		r.Set(Key{MetricPathRatio, "floor/mac_swap", ""}, run, 1)
		r.Set(Key{MetricPathRatio, "relay/v4_client_to_v4_peer", ""}, run, v[0])
		r.Set(Key{MetricPathRatio, "pass/stun", ""}, run, v[1])
		r.Set(Key{MetricPathRatio, "whole/mac_swap", ""}, run, 1)
		// Whole paths do not count towards the Program.Run target.
		r.Set(Key{MetricPathRatio, "whole/v4_client_to_v4_peer", ""}, run, v[2])
	}
	return r
}

func TestTargets(t *testing.T) {
	r := exampleResults()
	got := map[string]TargetResult{}
	for _, tr := range r.Targets() {
		got[tr.Name] = tr
	}
	for _, tc := range []struct {
		name, status string
		median       float64
		why          string
	}{
		// 250k/100k and 350k/100k, pair by pair.
		{"relaybox user space ≥ 2× coturn, delivered pps", "met", 3, ""},
		// 250k/50k = 5 and 350k/200k = 1.75: the median of the ratios,
		// not 300k/125k.
		{"relaybox user space ≥ 5× pion/turn, delivered pps", "missed", 3.375, ""},
		{"relaybox XDP ≥ 20× coturn, delivered pps", "not measured", 0, "relaybox XDP: relay has no --xdp flag yet"},
		// Only run 0 has coturn's allocations.
		{"relaybox ≥ 5× coturn, allocations/s", "missed", 4, ""},
		{"every XDP path ≤ 2× MAC swap, Program.Run ns", "met", 1.6, ""},
	} {
		tr, ok := got[tc.name]
		if !ok {
			t.Errorf("no target %q", tc.name)
			continue
		}
		if tr.Status != tc.status || (tc.median != 0 && tr.Measured.Median != tc.median) || !strings.Contains(tr.Why, tc.why) {
			t.Errorf("%s: %s, median %g, why %q; want %s, %g, %q", tc.name, tr.Status, tr.Measured.Median, tr.Why, tc.status, tc.median, tc.why)
		}
	}
	if tr := got["every XDP path ≤ 2× MAC swap, Program.Run ns"]; tr.Case != "worst: relay/v4_client_to_v4_peer" {
		t.Errorf("path target names %q, want the worst path", tr.Case)
	}
}

func TestPathsSplit(t *testing.T) {
	r := exampleResults()
	if diff := cmp.Diff([]string{"floor/mac_swap", "relay/v4_client_to_v4_peer", "pass/stun"}, r.CallPaths()); diff != "" {
		t.Errorf("CallPaths: -want +got\n%s", diff)
	}
	if diff := cmp.Diff([]string{"whole/mac_swap", "whole/v4_client_to_v4_peer"}, r.WholePaths()); diff != "" {
		t.Errorf("WholePaths: -want +got\n%s", diff)
	}
}

func TestTargetsUseKernelThroughputForXDP(t *testing.T) {
	r := NewResults(1)
	c := "100 B, 16 flows"
	r.Cases = []string{c}
	r.Set(Key{MetricDelivered, XDP, c}, 0, 450e3) // the socket generator's ceiling
	r.SetCapped(Key{MetricDelivered, XDP, c}, 0)
	r.Set(Key{MetricKDelivered, XDP, c}, 0, 5e6)
	r.Set(Key{MetricDelivered, UserSpace, c}, 0, 400e3)
	r.Set(Key{MetricDelivered, Coturn, c}, 0, 100e3)
	for _, tr := range r.Targets() {
		switch tr.Name {
		case "relaybox XDP ≥ 10× relaybox user space, delivered pps":
			if tr.Measured.Median != 12.5 || tr.Status != "met" || !strings.Contains(tr.Why, "in-kernel generator") {
				t.Errorf("%s = %g %s %q, want 12.5 (in-kernel generator's 5M / 400k), met, saying which figure", tr.Name, tr.Measured.Median, tr.Status, tr.Why)
			}
		case "relaybox XDP ≥ 20× coturn, delivered pps":
			if tr.Measured.Median != 50 {
				t.Errorf("%s = %g, want 50", tr.Name, tr.Measured.Median)
			}
		}
	}
	// Without the in-kernel figure, the socket generator's, flagged.
	r.values[Key{MetricKDelivered, XDP, c}] = []float64{nan}
	for _, tr := range r.Targets() {
		if tr.Name == "relaybox XDP ≥ 10× relaybox user space, delivered pps" {
			if tr.Measured.Median != 1.125 || tr.Status != "missed" || !strings.Contains(tr.Why, "at least") {
				t.Errorf("%s = %g %s %q, want 1.125, missed, at least that", tr.Name, tr.Measured.Median, tr.Status, tr.Why)
			}
		}
	}
}
