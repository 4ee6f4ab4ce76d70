package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Metric names what a figure measures.
type Metric string

// The figures the benchmark records, each per subject (a server, an XDP
// path) and case (payload and flows), once per run.
const (
	// Relayed ChannelData through the router, socket generator.
	MetricLossless  Metric = "lossless_pps"   // highest offered rate with <1% loss
	MetricDelivered Metric = "delivered_pps"  // most the sink counted per second
	MetricCPU       Metric = "cpu_ns_per_pkt" // server CPU per relayed packet
	// The kernel path, in-kernel generator on the relay's link, at
	// saturation.
	MetricKDelivered Metric = "kernel_pps_per_core" // delivered per CPU-second of the path
	MetricKLoss      Metric = "kernel_loss_percent"
	MetricKCPU       Metric = "kernel_program_ns_per_pkt" // the XDP program's own run time
	// Allocations.
	MetricAllocRate  Metric = "allocations_per_s"
	MetricAllocCPU   Metric = "cpu_us_per_allocation" // server CPU
	MetricAllocBytes Metric = "bytes_per_allocation"
	// Program.Run per XDP path.
	MetricPathNs    Metric = "path_ns"
	MetricPathRatio Metric = "path_x_macswap"
	// Kernel memory per binding.
	MetricBindingMemlock Metric = "binding_memlock_bytes"
	MetricBindingKV      Metric = "binding_key_value_bytes"
	// Boot.
	MetricBootReady Metric = "boot_ready_s"
	MetricBootInit  Metric = "boot_init_s"
)

// Subjects of the figures.
const (
	XDP       = "relaybox XDP"
	UserSpace = "relaybox user space"
	Relaybox  = "relaybox" // the relay process, whatever its data path
	Coturn    = "coturn"
	Pion      = "pion/turn"
	MACSwap   = "MAC swap (floor)"
	Appliance = "appliance (qemu board)"
	Bindings  = "XDP bindings map"
)

// Key names one figure.
type Key struct {
	Metric  Metric
	Subject string
	Case    string
}

// Results holds every figure of a benchmark, run by run.
type Results struct {
	Started  time.Time
	Elapsed  time.Duration
	Quick    bool
	Runs     int
	Host     string
	Versions []string // "coturn 4.6.1", ...
	// Cases are the payload and flow cases, in order.
	Cases []string
	// Paths are the XDP paths of BenchmarkPaths, in its order: those
	// measured one Program.Run call per packet, then those measured whole
	// (WholePrefix).
	Paths []string
	// Allocations is how many allocations the memory figure is taken at.
	Allocations int

	values  map[Key][]float64
	capped  map[Key][]bool
	missing map[string]string // subject (or section) → why it is not measured
	notes   []string
}

// NewResults returns empty results for runs runs.
func NewResults(runs int) *Results {
	return &Results{Runs: runs, values: map[Key][]float64{}, capped: map[Key][]bool{}, missing: map[string]string{}}
}

// Set records v as run's value of k. run may be past Runs: paths and
// boots have counts of their own (go test -count, Options.Boots).
func (r *Results) Set(k Key, run int, v float64) {
	vs := r.values[k]
	for len(vs) < max(r.Runs, run+1) {
		vs = append(vs, math.NaN())
	}
	if run >= 0 {
		vs[run] = v
	}
	r.values[k] = vs
}

// SetCapped marks run's value of k as a lower bound: the rig, not the
// subject, stopped the measurement.
func (r *Results) SetCapped(k Key, run int) {
	cs := r.capped[k]
	for len(cs) < r.Runs {
		cs = append(cs, false)
	}
	if run >= 0 && run < len(cs) {
		cs[run] = true
	}
	r.capped[k] = cs
}

// Values returns k's value per run (NaN where a run has none).
func (r *Results) Values(k Key) []float64 {
	vs := slices.Clone(r.values[k])
	for len(vs) < r.Runs {
		vs = append(vs, math.NaN())
	}
	return vs
}

// Summary summarizes k over the runs.
func (r *Results) Summary(k Key) Summary { return Summarize(r.values[k]) }

// Capped reports whether any run's value of k is a lower bound.
func (r *Results) Capped(k Key) bool { return slices.Contains(r.capped[k], true) }

// Missing records why subject (a server, or a part such as "boot") is not
// measured; the first reason given stays.
func (r *Results) Missing(subject, why string) {
	if _, ok := r.missing[subject]; !ok {
		r.missing[subject] = why
	}
}

// MissingReason says why subject is not measured, "" if it is.
func (r *Results) MissingReason(subject string) string { return r.missing[subject] }

// Note adds a line to the report's notes.
func (r *Results) Note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// throughputKey is the figure a server's delivered packets per second is
// compared by: for the XDP path the in-kernel generator's, if measured
// (the socket generator cannot reach its limit), else the socket
// generator's.
func (r *Results) throughputKey(subject, c string) Key {
	if subject == XDP {
		k := Key{MetricKDelivered, XDP, c}
		if r.Summary(k).Valid() {
			return k
		}
	}
	return Key{MetricDelivered, subject, c}
}

// Target is one of the goals the README states.
type Target struct {
	Name string
	// Short is Name for the plot's narrow labels.
	Short string
	Case  string
	// The figure is Num's value divided by Den's, run by run; or, with
	// Den's Metric empty, Num's value itself.
	Num, Den Key
	// AtLeast or AtMost (whichever is not 0) is the goal.
	AtLeast, AtMost float64
}

// TargetResult is a target with what was measured.
type TargetResult struct {
	Target
	Measured Summary
	// Status is "met", "missed" or "not measured".
	Status string
	// Why explains a missed or unmeasured target, or qualifies a met one.
	Why string
}

// Targets returns the README's targets for these results: delivered
// packets per second ratios in every case, XDP paths against MAC swap,
// allocations per second.
func (r *Results) Targets() []TargetResult {
	var ts []Target
	for _, c := range r.Cases {
		for _, p := range []struct {
			a, b   string
			min    float64
			aS, bS string
		}{{XDP, UserSpace, 10, "XDP", "user space"}, {XDP, Coturn, 20, "XDP", Coturn}, {UserSpace, Coturn, 2, "user space", Coturn}, {UserSpace, Pion, 5, "user space", Pion}} {
			ts = append(ts, Target{
				Name:    fmt.Sprintf("%s ≥ %g× %s, delivered pps", p.a, p.min, p.b),
				Short:   fmt.Sprintf("%s ≥ %g× %s", p.aS, p.min, p.bS),
				Case:    c,
				Num:     r.throughputKey(p.a, c),
				Den:     r.throughputKey(p.b, c),
				AtLeast: p.min,
			})
		}
	}
	ts = append(ts, Target{
		Name:    fmt.Sprintf("%s ≥ 5× %s, allocations/s", Relaybox, Coturn),
		Short:   "allocations/s ≥ 5× coturn",
		Num:     Key{MetricAllocRate, Relaybox, ""},
		Den:     Key{MetricAllocRate, Coturn, ""},
		AtLeast: 5,
	})
	out := make([]TargetResult, 0, len(ts)+1)
	for _, t := range ts {
		out = append(out, r.evaluate(t))
	}
	return append(out, r.pathTarget())
}

func (r *Results) evaluate(t Target) TargetResult {
	tr := TargetResult{Target: t}
	vals := r.Values(t.Num)
	if t.Den.Metric != "" {
		vals = Ratios(vals, r.Values(t.Den))
	}
	tr.Measured = Summarize(vals)
	if !tr.Measured.Valid() {
		tr.Status = "not measured"
		var why []string
		for _, k := range []Key{t.Num, t.Den} {
			if k.Metric == "" || r.Summary(k).Valid() {
				continue
			}
			reason := r.MissingReason(k.Subject)
			if reason == "" {
				reason = "no run gave a value"
			}
			why = append(why, k.Subject+": "+reason)
		}
		tr.Why = strings.Join(why, "; ")
		return tr
	}
	met := (t.AtLeast == 0 || tr.Measured.Median >= t.AtLeast) && (t.AtMost == 0 || tr.Measured.Median <= t.AtMost)
	tr.Status = "missed"
	if met {
		tr.Status = "met"
	}
	var why []string
	if t.Num.Metric == MetricKDelivered {
		why = append(why, fmt.Sprintf("%s: packets per core-second with the in-kernel generator", t.Num.Subject))
	}
	if r.Capped(t.Num) {
		why = append(why, fmt.Sprintf("%s's figure is the rig's ceiling, not its own, so the ratio is at least this", t.Num.Subject))
	}
	if t.Den.Metric != "" && r.Capped(t.Den) {
		why = append(why, fmt.Sprintf("%s's figure is the rig's ceiling, not its own, so the ratio is at most this", t.Den.Subject))
	}
	tr.Why = strings.Join(why, "; ")
	return tr
}

// WholePrefix marks the paths BenchmarkPaths measures whole, from a
// generator through the relay's NIC and out (live frames), apart from
// those it measures one Program.Run call per packet.
const WholePrefix = "whole/"

// CallPaths are the paths measured one Program.Run call per packet.
func (r *Results) CallPaths() []string {
	return slices.DeleteFunc(slices.Clone(r.Paths), isWhole)
}

// WholePaths are the paths measured whole.
func (r *Results) WholePaths() []string {
	return slices.DeleteFunc(slices.Clone(r.Paths), func(p string) bool { return !isWhole(p) })
}

func isWhole(p string) bool { return strings.HasPrefix(p, WholePrefix) }

// pathTarget is "every XDP path within 2× of MAC swap", per Program.Run
// call: met when the worst path's median ratio is.
func (r *Results) pathTarget() TargetResult {
	t := Target{Name: "every XDP path ≤ 2× MAC swap, Program.Run ns", Short: "XDP paths ≤ 2× MAC swap", AtMost: 2}
	worst, worstPath := Summary{}, ""
	for _, p := range r.CallPaths() {
		if strings.HasPrefix(p, "floor/") {
			continue
		}
		s := r.Summary(Key{MetricPathRatio, p, ""})
		if s.Valid() && (!worst.Valid() || s.Median > worst.Median) {
			worst, worstPath = s, p
		}
	}
	tr := TargetResult{Target: t, Measured: worst}
	switch {
	case !worst.Valid():
		tr.Status = "not measured"
		tr.Why = r.MissingReason("paths")
	case worst.Median <= 2:
		tr.Status, tr.Case = "met", "worst: "+worstPath
	default:
		tr.Status, tr.Case = "missed", "worst: "+worstPath
	}
	return tr
}
