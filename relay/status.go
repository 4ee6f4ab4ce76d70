package relay

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relaybox/relaybox/relay/proto"
)

// Status is what the relay tells about itself: the control socket's answer
// to "status", printed by `relay status`.
type Status struct {
	Software      string          `json:"software"`
	Started       time.Time       `json:"started"`
	Ready         bool            `json:"ready"`
	Listen        []string        `json:"listen"`
	RelayAddress  []string        `json:"relay_address"`
	PortRange     string          `json:"port_range"`
	Workers       int             `json:"workers"`
	DataPlane     DataPlaneStatus `json:"data_plane"`
	DataPlaneErrs uint64          `json:"data_plane_errors"`

	Allocations int `json:"allocations"`
	Permissions int `json:"permissions"`
	Channels    int `json:"channels"`
	Bindings    int `json:"bindings"`

	// Relayed is the user-space path's traffic, by path name.
	Relayed          map[string]proto.Traffic `json:"relayed"`
	Dropped          map[string]uint64        `json:"dropped"`
	Responses        map[string]uint64        `json:"responses"` // by code
	BindingResponses uint64                   `json:"binding_responses"`
	RefusedPeers     map[string]uint64        `json:"refused_peers"`
	AuthFailures     uint64                   `json:"auth_failures"`
	BindFailures     uint64                   `json:"bind_failures"`
	SendErrors       uint64                   `json:"send_errors"`
	// Offload counts the user-space path's UDP offloads (offload.go).
	Offload Offload `json:"offload"`

	// AllocationList lists allocations, at most the number asked for;
	// BindingList the data plane's bindings, likewise.
	AllocationList []AllocationStatus `json:"allocation_list"`
	BindingList    []proto.Binding    `json:"binding_list"`
}

// Offload is what UDP GRO and GSO did on the user-space path.
type Offload struct {
	// GRO says whether the listen sockets have UDP_GRO on: off without
	// kernel support, or with an XDP program in generic mode.
	GRO          bool   `json:"gro"`
	GROReads     uint64 `json:"gro_reads"`     // reads that held several datagrams
	GRODatagrams uint64 `json:"gro_datagrams"` // the datagrams in them
	GSODatagrams uint64 `json:"gso_datagrams"` // datagrams sent as segments after their message's first
	GSORefused   uint64 `json:"gso_refused"`   // GSO messages the kernel refused, resent one by one
}

// AllocationStatus is one allocation in a Status.
type AllocationStatus struct {
	Client      string    `json:"client"`
	Server      string    `json:"server"`
	Username    string    `json:"username"`
	Relayed     []string  `json:"relayed"`
	Expires     time.Time `json:"expires"`
	Permissions int       `json:"permissions"`
	Channels    int       `json:"channels"`
}

// Status returns the relay's status with at most limit allocations and
// limit bindings listed, sorted; with more than that, which ones are
// listed is chance.
func (s *Server) Status(limit int) Status {
	st := Status{
		Software:  s.cfg.Software,
		Started:   s.started,
		Ready:     s.ready.Load(),
		PortRange: fmt.Sprintf("%d-%d", s.cfg.PortMin, s.cfg.PortMax),
		Workers:   len(s.workers),
	}
	for _, a := range s.listens {
		st.Listen = append(st.Listen, a.String())
	}
	for _, a := range s.relay {
		st.RelayAddress = append(st.RelayAddress, a.String())
	}
	for _, w := range s.workers {
		st.SendErrors += w.sendErrors.Load()
		st.Offload.GROReads += w.groReads.Load()
		st.Offload.GRODatagrams += w.groDatagrams.Load()
		st.Offload.GSODatagrams += w.gsoDatagrams.Load()
		st.Offload.GSORefused += w.gsoRefused.Load()
		for _, sk := range w.listens {
			st.Offload.GRO = st.Offload.GRO || sk.gro
		}
	}

	s.mu.Lock()
	stats := s.core.Stats()
	st.DataPlaneErrs = s.planeErr
	for a := range s.core.Allocations() {
		if len(st.AllocationList) == limit {
			break
		}
		st.AllocationList = append(st.AllocationList, AllocationStatus{
			Client: a.Client.String(), Server: a.Server.String(), Username: a.Username,
			Relayed: strs(a.Relayed), Expires: a.Expires, Permissions: a.Permissions, Channels: a.Channels,
		})
	}
	for b := range s.core.Bindings() {
		if len(st.BindingList) == limit {
			break
		}
		st.BindingList = append(st.BindingList, b)
	}
	s.mu.Unlock()

	slices.SortFunc(st.AllocationList, func(a, b AllocationStatus) int { return cmp.Compare(a.Client, b.Client) })
	slices.SortFunc(st.BindingList, func(a, b proto.Binding) int { return cmp.Compare(a.String(), b.String()) })
	// Unlocked: reading the kernel's maps takes a while with many bindings.
	st.DataPlane = s.dataPlaneStatus(st.BindingList)

	st.Allocations, st.Permissions, st.Channels, st.Bindings = stats.Allocations, stats.Permissions, stats.Channels, stats.Bindings
	st.Relayed = make(map[string]proto.Traffic, proto.NumPaths)
	for p := range proto.NumPaths {
		st.Relayed[p.String()] = stats.Relayed[p]
	}
	st.Dropped = stats.Dropped
	st.Responses = make(map[string]uint64, len(stats.Responses))
	for code, n := range stats.Responses {
		st.Responses[strconv.Itoa(code)] = n
	}
	st.BindingResponses = stats.BindingResponses
	st.RefusedPeers = stats.RefusedPeers
	st.AuthFailures = stats.AuthFailures
	st.BindFailures = stats.BindFailures
	return st
}

func (s *Server) dataPlaneStatus(bindings []proto.Binding) DataPlaneStatus {
	if r, ok := s.plane.(DataPlaneReporter); ok {
		return r.DataPlaneStatus(bindings)
	}
	return DataPlaneStatus{Mode: fmt.Sprintf("%T", s.plane)}
}

// dataPlaneMode is the data plane's mode as its status says it, without
// reading the kernel's maps for the rest.
func (s *Server) dataPlaneMode() string {
	if x, ok := s.plane.(*xdpPlane); ok {
		return x.mode
	}
	return s.dataPlaneStatus(nil).Mode
}

func strs[T fmt.Stringer](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// WriteText prints st for a person, as `relay status` does.
func (st Status) WriteText(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	state := "serving"
	if !st.Ready {
		state = "not ready"
	}
	p("relay\t%s, up %s (since %s)", state, now.Sub(st.Started).Truncate(time.Second), st.Started.Format(time.RFC3339))
	p("listen\t%s", strings.Join(st.Listen, " "))
	p("relay address\t%s, ports %s", strings.Join(st.RelayAddress, " "), st.PortRange)
	p("workers\t%d", st.Workers)
	dp := st.DataPlane
	p("data plane\t%s, %d bindings installed (%d errors)", dp.Mode, dp.Installed, st.DataPlaneErrs)
	if dp.Error != "" {
		p("  error\t%s", dp.Error)
	}
	if len(dp.Counters) > 0 {
		p("  counters\t%s", counts(dp.Counters))
	}
	p("allocations\t%d", st.Allocations)
	p("permissions\t%d", st.Permissions)
	p("channels\t%d (%d bindings in the data plane)", st.Channels, st.Bindings)
	p("relayed (user space)")
	for p2 := range proto.NumPaths {
		t := st.Relayed[p2.String()]
		p("  %s\t%d packets\t%d bytes", p2, t.Packets, t.Bytes)
	}
	if len(dp.Relayed) > 0 {
		p("relayed (data plane)")
		for _, path := range slices.Sorted(maps.Keys(dp.Relayed)) {
			t := dp.Relayed[path]
			p("  %s\t%d packets\t%d bytes", path, t.Packets, t.Bytes)
		}
	}
	// Only the reasons seen so far, or the list would be mostly zeros.
	if len(dp.Reasons) > 0 {
		p("data plane verdicts")
		for _, r := range slices.Sorted(maps.Keys(dp.Reasons)) {
			if c := dp.Reasons[r]; c.Packets > 0 {
				p("  %s %s\t%d packets\t%d bytes", c.Verdict, r, c.Packets, c.Bytes)
			}
		}
	}
	p("responses\t%s (and %d Binding)", counts(st.Responses), st.BindingResponses)
	p("auth failures\t%d", st.AuthFailures)
	p("dropped\t%s", counts(st.Dropped))
	p("refused peers\t%s", counts(st.RefusedPeers))
	p("send errors\t%d; ports refused %d", st.SendErrors, st.BindFailures)
	o := st.Offload
	gro := "off"
	if o.GRO {
		gro = "on"
	}
	p("udp offload\tGRO %s, %d datagrams in %d reads; GSO %d datagrams joined, %d messages refused", gro, o.GRODatagrams, o.GROReads, o.GSODatagrams, o.GSORefused)
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(st.AllocationList) > 0 {
		fmt.Fprintf(w, "\nALLOCATIONS (%d of %d)\n", len(st.AllocationList), st.Allocations)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT\tSERVER\tUSER\tRELAYED\tEXPIRES IN\tPERMISSIONS\tCHANNELS")
		for _, a := range st.AllocationList {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", a.Client, a.Server, a.Username, strings.Join(a.Relayed, " "),
				a.Expires.Sub(now).Truncate(time.Second), a.Permissions, a.Channels)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.BindingList) > 0 {
		fmt.Fprintf(w, "\nBINDINGS (%d of %d)\n", len(st.BindingList), st.Bindings)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		// The data plane's traffic, if it tells: busy or idle.
		kernel := make(map[proto.Binding]BindingTraffic, len(dp.Bindings))
		for _, bt := range dp.Bindings {
			kernel[bt.Binding] = bt
		}
		fmt.Fprintln(tw, "CLIENT\tSERVER\tCHANNEL\tRELAYED\tPEER\tTO PEER\tTO CLIENT\tIDLE")
		for _, b := range st.BindingList {
			toPeer, toClient, idle := "-", "-", "-"
			if bt, ok := kernel[b]; ok {
				toPeer = fmt.Sprintf("%d/%dB", bt.ToPeer.Packets, bt.ToPeer.Bytes)
				toClient = fmt.Sprintf("%d/%dB", bt.ToClient.Packets, bt.ToClient.Bytes)
				idle = "never used"
				if !bt.LastSeen.IsZero() {
					idle = max(now.Sub(bt.LastSeen), 0).Truncate(time.Second).String()
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%#04x\t%s\t%s\t%s\t%s\t%s\n", b.Client, b.Server, b.Channel, b.Relayed, b.Peer, toPeer, toClient, idle)
		}
		return tw.Flush()
	}
	return nil
}

// counts prints a map of counters as "a=1 b=2", sorted, or "none".
func counts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
