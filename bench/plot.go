package bench

import (
	"fmt"
	"io"
	"strings"
)

// WriteSVG draws the results as bench/results.svg: the targets, then the
// figures behind them.
func (r *Results) WriteSVG(w io.Writer) error { return WriteSVG(w, r.Charts()) }

// Charts returns the panels of the plot.
func (r *Results) Charts() []Chart {
	var cs []Chart

	targets := Chart{Title: "Targets: measured ratio (delivered pps unless named), goal as a black tick", Unit: "ratio", Log: true}
	for _, t := range r.Targets() {
		goal := t.AtLeast
		if goal == 0 {
			goal = t.AtMost
		}
		row := Row{Label: t.Short, Group: t.Case, Value: t.Measured, Mark: goal, Suffix: "×", Color: "missed"}
		if t.Case == "" || strings.HasPrefix(t.Case, "worst: ") {
			row.Group = "other"
		}
		if strings.HasPrefix(t.Case, "worst: ") {
			row.Label += " (" + strings.TrimPrefix(t.Case, "worst: ") + ")"
		}
		if t.Status == "met" {
			row.Color = "met"
		}
		if !t.Measured.Valid() {
			row.Note = "not measured: " + t.Why
		}
		targets.Rows = append(targets.Rows, row)
	}
	cs = append(cs, targets)

	pps := Chart{Title: "Relayed ChannelData delivered per second, socket generator through the router", Unit: "packets/s", Log: true}
	cpu := Chart{Title: "Server CPU per relayed packet (XDP: the program's run time)", Unit: "ns/packet", Log: true}
	for _, c := range r.Cases {
		for _, s := range reportServers {
			k := Key{MetricDelivered, s, c}
			pps.Rows = append(pps.Rows, Row{Group: c, Label: s, Value: r.Summary(k), LowerBound: r.Capped(k), Color: s, Note: r.noteFor(s)})
			ck := Key{MetricCPU, s, c}
			label := s
			if s == XDP {
				ck, label = Key{MetricKCPU, XDP, c}, XDP+" (program)"
			}
			cpu.Rows = append(cpu.Rows, Row{Group: c, Label: label, Value: r.Summary(ck), Color: s, Note: r.noteFor(s)})
		}
	}
	kernel := Chart{Title: "Kernel path capacity, in-kernel generator on the relay's link", Unit: "packets/s", Log: true}
	for _, c := range r.Cases {
		for _, s := range []string{XDP, MACSwap} {
			k := Key{MetricKDelivered, s, c}
			kernel.Rows = append(kernel.Rows, Row{Group: c, Label: s, Value: r.Summary(k), LowerBound: r.Capped(k), Color: s, Note: r.noteFor(s)})
		}
	}
	cs = append(cs, pps, kernel, cpu)

	allocs := Chart{Title: "Allocations per second, TURN REST credentials", Unit: "allocations/s"}
	allocCPU := Chart{Title: "Server CPU per allocation", Unit: "µs"}
	mem := Chart{Title: fmt.Sprintf("User-space memory per allocation, at %d allocations", r.Allocations), Unit: "bytes (RSS growth / allocations)"}
	for _, s := range []string{Relaybox, Coturn, Pion} {
		note := r.MissingReason(s + " allocations")
		allocs.Rows = append(allocs.Rows, Row{Label: s, Value: r.Summary(Key{MetricAllocRate, s, ""}), Color: s, Note: note})
		allocCPU.Rows = append(allocCPU.Rows, Row{Label: s, Value: r.Summary(Key{MetricAllocCPU, s, ""}), Color: s, Note: note})
		mem.Rows = append(mem.Rows, Row{Label: s, Value: r.Summary(Key{MetricAllocBytes, s, ""}), Color: s, Note: note})
	}
	cs = append(cs, allocs, allocCPU, mem)

	cs = append(cs,
		r.pathChart("Program.Run per XDP path, a call per packet (MAC swap is the floor)", r.CallPaths(), "floor/mac_swap"),
		r.pathChart("Whole XDP paths, live frames (MAC swap is the floor)", r.WholePaths(), WholePrefix+"mac_swap"))

	boot := Chart{Title: "Boot under QEMU (TCG), qemu board", Unit: "seconds"}
	note := r.MissingReason(Appliance)
	boot.Rows = []Row{
		{Label: "QEMU start → relaybox: ready", Value: r.Summary(Key{MetricBootReady, Appliance, ""}), Color: "plain", Note: note},
		{Label: "init's share", Value: r.Summary(Key{MetricBootInit, Appliance, ""}), Color: "plain", Note: note},
	}
	return append(cs, boot)
}

// pathChart charts paths' ns per packet, with a line at twice floor's.
func (r *Results) pathChart(title string, paths []string, floor string) Chart {
	c := Chart{Title: title, Unit: "ns per packet"}
	if f := r.Summary(Key{MetricPathNs, floor, ""}); f.Valid() {
		c.Lines = []RefLine{{Value: 2 * f.Median, Label: "2× MAC swap"}}
	}
	for _, p := range paths {
		color := XDP
		if strings.HasPrefix(p, "floor/") || p == floor {
			color = MACSwap
		}
		c.Rows = append(c.Rows, Row{Label: p, Value: r.Summary(Key{MetricPathNs, p, ""}), Color: color})
	}
	if len(paths) == 0 {
		c.Rows = []Row{{Label: "every path", Note: "not measured: " + r.MissingReason("paths")}}
	}
	return c
}

// noteFor is what a chart shows for a subject without a value.
func (r *Results) noteFor(subject string) string {
	if why := r.MissingReason(subject); why != "" {
		return "not measured: " + why
	}
	return ""
}
