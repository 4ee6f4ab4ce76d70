package bench

import (
	"fmt"
	"io"
	"strings"
)

// Servers in the order the report lists them.
var reportServers = []string{XDP, UserSpace, Coturn, Pion}

// WriteMarkdown writes the results as the markdown of bench/results.md:
// the targets first, then every figure with its runs' median, min and max.
func (r *Results) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	mode := "full"
	if r.Quick {
		mode = "quick (development: short steps, few runs; not for the README)"
	}
	fmt.Fprintf(&b, "# relaybox benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (bench/cmd/relaybench) on %s, %s mode, %d run(s), in %s. Host: %s.",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), mode, r.Runs, r.Elapsed.Round(1e9), r.Host)
	if len(r.Versions) > 0 {
		fmt.Fprintf(&b, " Versions: %s.", strings.Join(r.Versions, ", "))
	}
	b.WriteString("\n\nEach figure is the median of the runs, with the lowest and highest in parentheses; " +
		"each ratio is taken run by run, then its median. ≥ marks a value the rig capped (the generator's ceiling, not the server's). " +
		"How each figure is measured: bench/doc.go. The plot: results.svg.\n\n")

	b.WriteString("## Targets\n\n| target | case | measured | status | why |\n|---|---|---|---|---|\n")
	for _, t := range r.Targets() {
		measured := "–"
		if t.Measured.Valid() {
			measured = ratioString(t.Measured)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", t.Name, t.Case, measured, t.Status, cell(t.Why))
	}

	b.WriteString("\n## Relayed ChannelData, socket generator through the router\n\n")
	b.WriteString("Highest offered rate with under 1% loss at the sink, the most the sink counted per second in any step, " +
		"and the server process's CPU time per relayed packet at the highest lossless rate " +
		"(relaybox XDP's relay process does not touch these packets: its CPU is the program's, in the next table).\n\n")
	b.WriteString("| server | case | lossless pps | delivered pps | CPU ns/packet |\n|---|---|---|---|---|\n")
	for _, s := range reportServers {
		if why := r.MissingReason(s); why != "" && !r.anyFor(s, MetricDelivered) {
			fmt.Fprintf(&b, "| %s | all | not measured: %s | | |\n", s, cell(why))
			continue
		}
		for _, c := range r.Cases {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s, c,
				r.cappedString(Key{MetricLossless, s, c}), r.cappedString(Key{MetricDelivered, s, c}), r.Summary(Key{MetricCPU, s, c}))
		}
	}

	b.WriteString("\n## Kernel path capacity, in-kernel generator on the relay's link\n\n")
	b.WriteString("BPF_PROG_TEST_RUN with live frames sends the flows' ChannelData into the relay's NIC as fast as the path takes it, from one thread; " +
		"the router's end of the link counts what comes back towards the peer. The softirq that carries the frames runs in the generator's thread and is charged to it, " +
		"so packets per CPU-second of that thread is the capacity of one core, and its inverse the whole path's ns per packet (generator, two veth hops, the program, the counter); " +
		"the program's own run time comes from the kernel's BPF statistics. The MAC-swap rows are the rig's floor.\n\n")
	b.WriteString("| program | case | pps per core | path ns/packet | program ns/packet | loss % |\n|---|---|---|---|---|---|\n")
	for _, s := range []string{XDP, MACSwap} {
		if why := r.MissingReason(s); why != "" && !r.anyFor(s, MetricKDelivered) {
			fmt.Fprintf(&b, "| %s | all | not measured: %s | | | |\n", s, cell(why))
			continue
		}
		for _, c := range r.Cases {
			pps := r.Values(Key{MetricKDelivered, s, c})
			ns := make([]float64, len(pps))
			for i, v := range pps {
				ns[i] = 1e9 / v
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s, c,
				r.Summary(Key{MetricKDelivered, s, c}), Summarize(ns), r.Summary(Key{MetricKCPU, s, c}), r.Summary(Key{MetricKLoss, s, c}))
		}
	}

	fmt.Fprintf(&b, "\n## Allocations\n\nAllocations per second with TURN REST credentials (unauthenticated Allocate, 401, authenticated Allocate; the client shares the two cores), "+
		"the server's CPU time per allocation, and its RSS growth per allocation at %d allocations.\n\n", r.Allocations)
	b.WriteString("| server | allocations/s | server CPU µs/allocation | user-space bytes/allocation |\n|---|---|---|---|\n")
	for _, s := range []string{Relaybox, Coturn, Pion} {
		if why := r.MissingReason(s + " allocations"); why != "" && !r.anyFor(s, MetricAllocRate) {
			fmt.Fprintf(&b, "| %s | not measured: %s | | |\n", s, cell(why))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s, r.Summary(Key{MetricAllocRate, s, ""}), r.Summary(Key{MetricAllocCPU, s, ""}), r.Summary(Key{MetricAllocBytes, s, ""}))
	}

	b.WriteString("\n## Kernel memory per binding\n\n")
	if why := r.MissingReason(Bindings); why != "" {
		fmt.Fprintf(&b, "Not measured: %s\n", why)
	} else {
		fmt.Fprintf(&b, "The bindings map's memlock (its fdinfo) per binding: %s bytes; its key and value sizes times the two entries of a binding: %s bytes.\n",
			r.Summary(Key{MetricBindingMemlock, Bindings, ""}), r.Summary(Key{MetricBindingKV, Bindings, ""}))
	}

	b.WriteString("\n## Program.Run per XDP path\n\nbpf's BenchmarkPaths: the kernel's time per run of each path, one BPF_PROG_TEST_RUN call per packet, and its ratio to the MAC-swap XDP_TX program measured in turns with it. floor/relay_minimum is the least a relay path does (one hash lookup on a 16-byte key, moving the frame's head, a header template, an array devmap redirect, nothing checked or counted), the floor of the relay paths.\n\n")
	r.pathTable(&b, r.CallPaths())
	b.WriteString("\n## Whole XDP paths\n\nThe relay paths again, whole, as a NIC's batch meets them: the in-kernel generator (live frames) sends each path's frame from the far end of a veth into the relay's NIC, where the program runs in native mode, and the NIC the frame leaves by hands it to an XDP_DROP program; the generator thread's CPU time per frame covers the generator, two veth hops, the program and the drop. MAC swap is measured the same way, on a NIC of its own, in turns with each path.\n\n")
	r.pathTable(&b, r.WholePaths())

	b.WriteString("\n## Boot\n\nQEMU under TCG, virtio-net, from QEMU's start to the ready line; init's share is the init=<seconds>s that init prints on the ready line if it does, else from init's first console line to the ready line by the host's clock.\n\n")
	if why := r.MissingReason(Appliance); why != "" {
		fmt.Fprintf(&b, "Not measured: %s\n", why)
	} else {
		fmt.Fprintf(&b, "| figure | seconds |\n|---|---|\n| QEMU start → relaybox: ready | %s |\n| init's share (init starting → ready) | %s |\n",
			r.Summary(Key{MetricBootReady, Appliance, ""}), r.Summary(Key{MetricBootInit, Appliance, ""}))
	}

	if len(r.notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// anyFor reports whether subject has any value of metric, in any case.
func (r *Results) anyFor(subject string, m Metric) bool {
	for k := range r.values {
		if k.Subject == subject && k.Metric == m && r.Summary(k).Valid() {
			return true
		}
	}
	return false
}

// cappedString is k's summary, marked ≥ when a run was capped by the rig.
func (r *Results) cappedString(k Key) string {
	s := r.Summary(k).String()
	if r.Summary(k).Valid() && r.Capped(k) {
		return "≥ " + s
	}
	return s
}

// pathTable writes the table of paths, or why they were not measured.
func (r *Results) pathTable(b *strings.Builder, paths []string) {
	if len(paths) == 0 {
		fmt.Fprintf(b, "Not measured: %s\n", r.MissingReason("paths"))
		return
	}
	b.WriteString("| path | ns/packet | × MAC swap |\n|---|---|---|\n")
	for _, p := range paths {
		fmt.Fprintf(b, "| %s | %s | %s |\n", p, r.Summary(Key{MetricPathNs, p, ""}), ratioString(r.Summary(Key{MetricPathRatio, p, ""})))
	}
}

// ratioString formats a ratio's summary as 12.3× (11–13.5×).
func ratioString(s Summary) string {
	if !s.Valid() {
		return "–"
	}
	if s.N == 1 || s.Min == s.Max {
		return num(s.Median) + "×"
	}
	return fmt.Sprintf("%s× (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

// cell makes s safe in a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.Join(strings.Fields(s), " ")
}
