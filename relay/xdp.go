package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/relay/proto"
)

// xdpPlane is the kernel data plane: the XDP program's binding maps
// (package bpf). Apply writes the TURN core's channel bindings into them,
// both directions, and the kernel relays their ChannelData from then on;
// what it does not relay (STUN, Send and Data indications, a next hop not
// resolved yet, ...) reaches the user-space path as before.
//
// Either the relay loaded and attached the program itself (Config.XDP, on
// a host of its own) or another process did and pinned the maps in
// Config.XDPMaps (init, on the appliance). The plane works the same on
// both; only Close differs.
type xdpPlane struct {
	maps     *bpf.Maps
	prog     *bpf.Program      // loaded by this relay; nil for pinned maps
	attached []*bpf.Attachment // this relay's attachments, detached by Close
	mode     string            // for status: "xdp eth0:native", ...
	// stale counts the bindings of a dead relay removed at start.
	stale int
	// generic: a NIC of the relay's namespace runs an XDP program in
	// generic mode (offload.go says what follows).
	generic bool

	// use is each binding's state for the bandwidth cap (bandwidth.go),
	// under the relay's state lock as Apply is; nil without a cap.
	use       map[proto.Binding]*kernelUse
	suspended atomic.Int64  // bindings out of the kernel, over their cap
	errs      atomic.Uint64 // bindings the cap could not move in or out

	// mu keeps the relayed totals exact, so that no binding is counted
	// twice or not at all: a binding's traffic moves from the map to
	// removed under it, and a removal while DataPlaneStatus walks the
	// map (without mu: at many bindings the walk takes a while, and a
	// removal waits for mu with the relay's state locked) is noted in
	// walking, whose entries the walk does not count.
	mu      sync.Mutex
	removed [2]proto.Traffic     // to peer, to client, of bindings removed
	walking map[bpf.Binding]bool // removed during the walk under way, if any
	walkMu  sync.Mutex           // one walk at a time
}

// openXDP sets up the data plane the xdp keys of cfg ask for, with the
// program's listen port; attaching runs through inNamespace. On an error
// nothing is left loaded or attached.
func openXDP(cfg *Config, listenPort uint16, inNamespace func(func() error) error, log *slog.Logger) (*xdpPlane, error) {
	x := &xdpPlane{}
	if len(cfg.XDP) == 0 {
		m, err := bpf.OpenPinned(cfg.XDPMaps)
		if err != nil {
			return nil, fmt.Errorf("xdp-maps: %w", err)
		}
		x.maps = m
		x.mode = "xdp, attached by another process, maps in " + cfg.XDPMaps
	} else if err := x.load(cfg, listenPort, inNamespace, log); err != nil {
		return nil, err
	}
	// A relay killed before it could remove its bindings left them in
	// the maps, and the kernel would keep relaying for allocations no one
	// serves.
	n, err := x.removeStale()
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("xdp: remove the bindings of a previous relay: %w", err)
	}
	x.stale = n
	if n > 0 {
		log.Info("xdp: removed the bindings a previous relay left in the kernel", "bindings", n)
	}
	if cfg.Bandwidth > 0 {
		x.use = map[proto.Binding]*kernelUse{}
	}
	if err := inNamespace(func() error {
		var err error
		x.generic, err = genericXDP()
		return err
	}); err != nil {
		log.Warn("xdp: cannot tell whether a NIC runs XDP in generic mode; UDP GRO stays on", "err", err)
	}
	return x, nil
}

// capped reports whether a bandwidth cap is set: the relay then charges
// the kernel's relaying to the allocations (bandwidth.go).
func (x *xdpPlane) capped() bool { return x.use != nil }

// load loads the program with cfg's ports and attaches it to cfg.XDP.
func (x *xdpPlane) load(cfg *Config, listenPort uint16, inNamespace func(func() error) error, log *slog.Logger) error {
	p, err := bpf.Load(bpf.Config{ListenPort: listenPort, PortMin: cfg.PortMin, PortMax: cfg.PortMax, PinDir: cfg.XDPMaps})
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}
	x.prog, x.maps = p, p.Maps()
	var modes []string
	for _, name := range cfg.XDP {
		var a *bpf.Attachment
		var off []string
		err := inNamespace(func() error {
			var err error
			if a, err = p.Attach(name, cfg.XDPMode); err == nil {
				off = forwardingOff(name)
			}
			return err
		})
		if err != nil {
			x.Close()
			return fmt.Errorf("xdp: %w", err)
		}
		x.attached = append(x.attached, a)
		modes = append(modes, a.Iface+":"+a.Mode.String())
		if a.NativeErr != nil {
			log.Warn("xdp: the driver has no native XDP, so it runs in generic mode: correct, but no faster than user space",
				"interface", name, "err", a.NativeErr)
		}
		if len(off) > 0 {
			log.Warn("xdp: forwarding is off on the interface, so the kernel path passes every channel's datagrams to user space (reason fwd_disabled); set it to 1",
				"interface", name, "sysctl", strings.Join(off, " "))
		}
	}
	x.mode = "xdp " + strings.Join(modes, " ")
	return nil
}

// genericXDP reports whether a link of the calling thread's network
// namespace may have an XDP program attached in generic mode.
func genericXDP() (bool, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return false, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if mayRunGeneric(l.Attrs().Xdp) {
			return true, nil
		}
	}
	return false, nil
}

// xdpAttachedMulti is XDP_ATTACHED_MULTI from linux/if_link.h, which
// netlink/nl does not define.
const xdpAttachedMulti = 4

// mayRunGeneric reports whether a link's XDP state may include a program
// in generic mode. Multi is an offloaded program beside a generic or a
// native one (the kernel refuses those two together), and
// vishvananda/netlink drops the per-mode program ids that say which: so
// it counts as generic, since GRO off costs only speed while GRO on
// beside a generic program sends a flow's joined datagrams to user space.
func mayRunGeneric(x *netlink.LinkXdp) bool {
	return x != nil && (x.AttachMode == nl.XDP_ATTACHED_SKB || x.AttachMode == xdpAttachedMulti)
}

// forwardingOff lists the forwarding sysctls of iface that are 0, in the
// calling thread's network namespace: the program's FIB lookups refuse
// without them.
func forwardingOff(iface string) []string {
	var off []string
	for _, family := range []string{"ipv4", "ipv6"} {
		key := "net/" + family + "/conf/" + iface + "/forwarding"
		b, err := os.ReadFile("/proc/sys/" + key)
		if err == nil && strings.TrimSpace(string(b)) == "0" {
			off = append(off, key)
		}
	}
	return off
}

// kernelBinding is b as package bpf spells it.
func kernelBinding(b proto.Binding) bpf.Binding {
	return bpf.Binding{Client: b.Client, Server: b.Server, Channel: b.Channel, Relay: b.Relayed, Peer: b.Peer}
}

// Apply writes a binding into the maps or removes it. A binding whose
// allocation is over its bandwidth cap stays out until enforce puts it
// back.
func (x *xdpPlane) Apply(e proto.Event) error {
	switch e.Kind {
	case proto.BindingCreated, proto.BindingRefreshed:
		if x.capped() {
			if u := x.use[e.Binding]; u == nil {
				x.use[e.Binding] = &kernelUse{}
			} else if u.suspended {
				return nil
			}
		}
		return x.maps.AddBinding(kernelBinding(e.Binding))
	case proto.BindingDeleted:
		if u := x.use[e.Binding]; u != nil {
			delete(x.use, e.Binding)
			if u.suspended {
				x.suspended.Add(-1)
				return nil
			}
		}
		_, err := x.remove(e.Binding)
		return err
	}
	return nil
}

// remove takes b out of the maps, keeping its traffic for the totals.
func (x *xdpPlane) remove(b proto.Binding) (bpf.BindingStats, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, err := x.maps.RemoveBindingStats(kernelBinding(b))
	addTraffic(&x.removed, s)
	if x.walking != nil {
		x.walking[s.Binding] = true
	}
	return s, err
}

// addTraffic adds a binding's traffic to totals (to peer, to client).
func addTraffic(totals *[2]proto.Traffic, s bpf.BindingStats) {
	for i, t := range []*bpf.Traffic{s.ToPeer, s.ToClient} {
		if t != nil {
			totals[i].Packets += t.Packets
			totals[i].Bytes += t.Bytes
		}
	}
}

// removeStale removes every binding in the maps and returns how many it
// removed: at start the relay holds none, so any there is a dead relay's.
func (x *xdpPlane) removeStale() (removed int, err error) {
	all, err := x.maps.Bindings()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, s := range all {
		if err := x.maps.RemoveBinding(s.Binding); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// DataPlaneStatus reads the kernel's counters and the traffic of the
// bindings asked about.
func (x *xdpPlane) DataPlaneStatus(list []proto.Binding) DataPlaneStatus {
	st := DataPlaneStatus{Mode: x.mode, Counters: map[string]uint64{"stale_bindings_removed": uint64(x.stale)}}
	if x.capped() {
		st.Counters["bandwidth_suspended_bindings"] = uint64(x.suspended.Load())
		st.Counters["bandwidth_errors"] = x.errs.Load()
	}
	var errs []error

	x.walkMu.Lock()
	x.mu.Lock()
	x.walking = map[bpf.Binding]bool{}
	x.mu.Unlock()
	all, err := x.maps.Bindings()
	x.mu.Lock()
	totals, gone := x.removed, x.walking
	x.walking = nil
	x.mu.Unlock()
	x.walkMu.Unlock()
	if err != nil {
		errs = append(errs, err)
	}
	byBinding := make(map[bpf.Binding]bpf.BindingStats, len(all))
	for _, s := range all {
		if gone[s.Binding] {
			continue // in removed, with what it relayed until then
		}
		addTraffic(&totals, s)
		byBinding[s.Binding] = s
	}
	st.Installed = len(all)
	st.Relayed = map[string]proto.Traffic{
		proto.PathChannelToPeer.String(): totals[0],
		proto.PathPeerToChannel.String(): totals[1],
	}
	for _, b := range list {
		s, ok := byBinding[kernelBinding(b)]
		if !ok {
			continue
		}
		bt := BindingTraffic{Binding: b}
		for _, d := range []struct {
			from *bpf.Traffic
			to   *proto.Traffic
		}{{s.ToPeer, &bt.ToPeer}, {s.ToClient, &bt.ToClient}} {
			if d.from == nil {
				continue
			}
			*d.to = proto.Traffic{Packets: d.from.Packets, Bytes: d.from.Bytes}
			if d.from.LastSeen.After(bt.LastSeen) {
				bt.LastSeen = d.from.LastSeen
			}
		}
		st.Bindings = append(st.Bindings, bt)
	}

	if classes, err := x.maps.Counters(); err != nil {
		errs = append(errs, err)
	} else {
		st.Classes = make(map[string]proto.Traffic, len(classes))
		for c, n := range classes {
			st.Classes[c.String()] = proto.Traffic{Packets: n.Packets, Bytes: n.Bytes}
		}
	}
	if reasons, err := x.maps.Reasons(); err != nil {
		errs = append(errs, err)
	} else {
		st.Reasons = make(map[string]ReasonCount, len(reasons))
		for r, n := range reasons {
			st.Reasons[r.String()] = ReasonCount{Verdict: r.Verdict().String(), Traffic: proto.Traffic{Packets: n.Packets, Bytes: n.Bytes}}
		}
	}
	if err := errors.Join(errs...); err != nil {
		st.Error = err.Error()
	}
	return st
}

// userSpaceOnly is the data plane when the XDP one could not be set up:
// it does nothing, and status says why.
type userSpaceOnly struct {
	NoDataPlane
	why string
}

func (u userSpaceOnly) DataPlaneStatus([]proto.Binding) DataPlaneStatus {
	return DataPlaneStatus{Mode: "off", Error: u.why}
}

// Close detaches what the relay attached and closes the program or maps.
// Bindings are the relay's to remove first (Server.clearDataPlane); pinned
// maps stay pinned.
func (x *xdpPlane) Close() error {
	var errs []error
	for _, a := range x.attached {
		errs = append(errs, a.Close())
	}
	x.attached = nil
	if x.prog != nil {
		errs = append(errs, x.prog.Close())
	} else {
		errs = append(errs, x.maps.Close())
	}
	return errors.Join(errs...)
}

var _ DataPlaneReporter = (*xdpPlane)(nil)
