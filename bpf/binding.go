//go:build linux

package bpf

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Binding is a TURN channel binding as the XDP program relays it: the
// client's ChannelData on Channel leaves from Relay to Peer, and Peer's
// datagrams to Relay leave from Server to Client as ChannelData on Channel.
type Binding struct {
	// Client is the TURN client's address as the relay sees it (after any
	// NAT): the source of its ChannelData.
	Client netip.AddrPort
	// Server is the relay's address and listen port the client sends to.
	// Its family is Client's.
	Server netip.AddrPort
	// Channel is the channel number, 0x4000-0x7FFF (RFC 8656 uses up to
	// 0x4FFF, RFC 5766 clients up to 0x7FFF).
	Channel uint16
	// Relay is the allocation's relayed transport address: an address of
	// this host and a port of the allocation range.
	Relay netip.AddrPort
	// Peer is the peer the channel is bound to. Its family is Relay's.
	Peer netip.AddrPort
}

// String describes b for logs and errors.
func (b Binding) String() string {
	return fmt.Sprintf("client %s via %s channel %#04x relay %s peer %s", b.Client, b.Server, b.Channel, b.Relay, b.Peer)
}

// normalize returns b with IPv4-mapped IPv6 addresses unmapped, as a
// dual-stack socket reports IPv4 clients, or an error saying what is wrong
// with b.
func (b Binding) normalize() (Binding, error) {
	for _, a := range []*netip.AddrPort{&b.Client, &b.Server, &b.Relay, &b.Peer} {
		*a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	for _, f := range []struct {
		name string
		a    netip.AddrPort
	}{{"client", b.Client}, {"server", b.Server}, {"relay", b.Relay}, {"peer", b.Peer}} {
		switch {
		case !f.a.Addr().IsValid():
			return b, fmt.Errorf("binding %s: no %s address", b, f.name)
		case f.a.Addr().Zone() != "":
			return b, fmt.Errorf("binding %s: %s address %s has a zone; the kernel path relays only zone-less addresses", b, f.name, f.a.Addr())
		case f.a.Port() == 0:
			return b, fmt.Errorf("binding %s: %s port is 0", b, f.name)
		}
	}
	switch {
	case b.Client.Addr().Is4() != b.Server.Addr().Is4():
		return b, fmt.Errorf("binding %s: client and server address families differ; the server address is the one the client sends to", b)
	case b.Relay.Addr().Is4() != b.Peer.Addr().Is4():
		return b, fmt.Errorf("binding %s: relayed and peer address families differ", b)
	case b.Channel < 0x4000 || b.Channel > 0x7FFF:
		return b, fmt.Errorf("binding %s: channel %#04x is outside 0x4000-0x7FFF", b, b.Channel)
	}
	return b, nil
}

// entries returns the two map entries of a normalized binding: ChannelData
// from the client towards the peer, and UDP from the peer towards the
// client.
func (b Binding) entries() (toPeer, toClient entry) {
	toPeer = entry{
		key: newKey(b.Client, b.Server, b.Channel),
		out: newRewrite(b.Relay, b.Peer, 0),
	}
	toClient = entry{
		key: newKey(b.Peer, b.Relay, 0),
		out: newRewrite(b.Server, b.Client, b.Channel),
	}
	return toPeer, toClient
}

// entry is one direction of a binding in the bindings map.
type entry struct {
	key relayBindingKey
	out relayRewrite
}

func newKey(remote, local netip.AddrPort, channel uint16) relayBindingKey {
	return relayBindingKey{
		RemoteAddr: words(remote.Addr()),
		LocalAddr:  words(local.Addr()),
		RemotePort: htons(remote.Port()),
		LocalPort:  htons(local.Port()),
		Channel:    htons(channel),
		Family:     family(remote.Addr()),
	}
}

func newRewrite(src, dst netip.AddrPort, channel uint16) relayRewrite {
	return relayRewrite{
		SrcAddr: words(src.Addr()),
		DstAddr: words(dst.Addr()),
		SrcPort: htons(src.Port()),
		DstPort: htons(dst.Port()),
		Channel: htons(channel),
		Family:  family(src.Addr()),
	}
}

// binding recovers the binding an entry of the bindings map belongs to:
// either direction holds all of it. toPeer says which direction it is.
func (e entry) binding() (b Binding, toPeer bool) {
	if e.key.Channel != 0 {
		return Binding{
			Client:  addrPort(e.key.RemoteAddr, e.key.RemotePort, e.key.Family),
			Server:  addrPort(e.key.LocalAddr, e.key.LocalPort, e.key.Family),
			Channel: ntohs(e.key.Channel),
			Relay:   addrPort(e.out.SrcAddr, e.out.SrcPort, e.out.Family),
			Peer:    addrPort(e.out.DstAddr, e.out.DstPort, e.out.Family),
		}, true
	}
	return Binding{
		Client:  addrPort(e.out.DstAddr, e.out.DstPort, e.out.Family),
		Server:  addrPort(e.out.SrcAddr, e.out.SrcPort, e.out.Family),
		Channel: ntohs(e.out.Channel),
		Relay:   addrPort(e.key.LocalAddr, e.key.LocalPort, e.key.Family),
		Peer:    addrPort(e.key.RemoteAddr, e.key.RemotePort, e.key.Family),
	}, false
}

// The maps hold addresses as 16 bytes (IPv4 mapped) in network order, read
// by the program as four 32-bit words, and ports in network order.

func words(a netip.Addr) (w [4]uint32) {
	b := a.As16()
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w
}

func family(a netip.Addr) uint16 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func addrPort(w [4]uint32, port, fam uint16) netip.AddrPort {
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[4*i:], w[i])
	}
	a := netip.AddrFrom16(b)
	if fam == unix.AF_INET {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, ntohs(port))
}

func htons(v uint16) uint16 { return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v)) }
func ntohs(v uint16) uint16 { return binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, v)) }

// Traffic is what the kernel relayed in one direction of a binding.
type Traffic struct {
	// Packets and Bytes count datagrams and their application data
	// (ChannelData and UDP headers excluded), the unit of TURN quotas.
	Packets, Bytes uint64
	// LastSeen is when the last one was relayed, to a few milliseconds;
	// zero if none was.
	LastSeen time.Time
}

// BindingStats is a binding as the kernel holds it, with its traffic.
type BindingStats struct {
	Binding
	// ToPeer is the client's ChannelData relayed to the peer, ToClient the
	// peer's datagrams relayed to the client. A direction missing from the
	// map (a binding half written or half removed, say by a relay that
	// crashed) is nil.
	ToPeer, ToClient *Traffic
}

// Maps are the XDP program's maps that outlive it, pinned by Load: the
// channel bindings the relay writes, and the counters. The relay opens them
// with OpenPinned; a Program has its own.
type Maps struct {
	bindings, counters, reasons *ebpf.Map
	owned                       bool // Close closes the maps
}

// pinnedMaps are the maps OpenPinned opens, by pin name.
var pinnedMaps = []string{"bindings", "counters", "reasons"}

// OpenPinned opens the maps that Load pinned in dir (PinDir on the
// appliance), for a process other than the one that loaded the program:
// init loads and attaches, the relay writes bindings and reads counters.
func OpenPinned(dir string) (*Maps, error) {
	spec, err := loadRelay()
	if err != nil {
		return nil, fmt.Errorf("open pinned xdp maps: %w", err)
	}
	var ms []*ebpf.Map
	closeAll := func() {
		for _, m := range ms {
			m.Close()
		}
	}
	for _, name := range pinnedMaps {
		path := filepath.Join(dir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			closeAll()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open pinned xdp maps: %s does not exist; is the XDP program loaded with its maps pinned in %s?: %w", path, dir, err)
			}
			return nil, fmt.Errorf("open pinned xdp map %s: %w", path, err)
		}
		ms = append(ms, m)
		want := spec.Maps[name]
		if m.Type() != want.Type || m.KeySize() != want.KeySize || m.ValueSize() != want.ValueSize ||
			(name != "bindings" && m.MaxEntries() != want.MaxEntries) {
			closeAll()
			return nil, fmt.Errorf("open pinned xdp map %s: it comes from another version of relaybox (%s, key %d, value %d, %d entries; want %s, key %d, value %d); reload the XDP program: %w",
				path, m.Type(), m.KeySize(), m.ValueSize(), m.MaxEntries(), want.Type, want.KeySize, want.ValueSize, ebpf.ErrMapIncompatible)
		}
	}
	return &Maps{bindings: ms[0], counters: ms[1], reasons: ms[2], owned: true}, nil
}

// Close closes maps opened by OpenPinned; the pins stay. It does nothing
// for a Program's maps, which Program.Close closes.
func (m *Maps) Close() error {
	if !m.owned {
		return nil
	}
	return errors.Join(m.bindings.Close(), m.counters.Close(), m.reasons.Close())
}

// MaxBindings is how many bindings the map holds (Config.MaxBindings of the
// load that created it).
func (m *Maps) MaxBindings() int { return int(m.bindings.MaxEntries() / 2) }

// AddBinding installs both directions of b, so that the kernel relays its
// data from the next packet on: call it before the ChannelBind success
// response leaves. Adding a binding that is installed already (a refresh)
// keeps its counters; a direction whose key holds another binding's rewrite
// (a stale entry) is overwritten. If the second direction cannot be
// written, the first is removed again.
func (m *Maps) AddBinding(b Binding) error {
	b, err := b.normalize()
	if err != nil {
		return fmt.Errorf("add xdp binding: %w", err)
	}
	toPeer, toClient := b.entries()
	created, err := m.put(toClient)
	if err != nil {
		return m.addErr(b, err)
	}
	if _, err := m.put(toPeer); err != nil {
		if created {
			m.bindings.Delete(&toClient.key)
		}
		return m.addErr(b, err)
	}
	return nil
}

func (m *Maps) addErr(b Binding, err error) error {
	if errors.Is(err, unix.E2BIG) {
		return fmt.Errorf("add xdp binding %s: the bindings map is full (%d bindings); raise the maximum (Config.MaxBindings) or let this channel take the user-space path: %w", b, m.MaxBindings(), err)
	}
	return fmt.Errorf("add xdp binding %s: %w", b, err)
}

// put writes e unless the map holds it already, and reports whether it
// created the entry. A value it writes has zero counters and an empty next
// hop (Hop), which the program fills from the FIB for the new rewrite. One
// it leaves keeps its next hop: that depends on the rewrite alone, and
// expires by itself (Config.NextHopTTL).
func (m *Maps) put(e entry) (created bool, err error) {
	var cur relayBindingValue
	switch err := m.bindings.Lookup(&e.key, &cur); {
	case err == nil && cur.Out == e.out:
		return false, nil
	case err == nil:
		return false, m.bindings.Update(&e.key, &relayBindingValue{Out: e.out}, ebpf.UpdateExist)
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return true, m.bindings.Update(&e.key, &relayBindingValue{Out: e.out}, ebpf.UpdateNoExist)
	default:
		return false, err
	}
}

// RemoveBinding removes both directions of b. Directions already gone, or
// whose key now holds another binding, are left as they are: removing is
// idempotent and never takes a newer binding with it.
func (m *Maps) RemoveBinding(b Binding) error {
	_, err := m.RemoveBindingStats(b)
	return err
}

// RemoveBindingStats removes b as RemoveBinding does and returns what the
// kernel relayed for it up to its removal, for accounting that outlives
// the binding. A direction that was not there (or held another binding) is
// nil in the result.
func (m *Maps) RemoveBindingStats(b Binding) (BindingStats, error) {
	b, err := b.normalize()
	if err != nil {
		return BindingStats{}, fmt.Errorf("remove xdp binding: %w", err)
	}
	now, err := monotonicNow()
	if err != nil {
		return BindingStats{}, fmt.Errorf("remove xdp binding %s: %w", b, err)
	}
	wall := time.Now()
	out := BindingStats{Binding: b}
	toPeer, toClient := b.entries()
	for _, d := range []struct {
		e       entry
		traffic **Traffic
	}{{toPeer, &out.ToPeer}, {toClient, &out.ToClient}} {
		var cur relayBindingValue
		err := m.bindings.Lookup(&d.e.key, &cur)
		if errors.Is(err, ebpf.ErrKeyNotExist) || (err == nil && cur.Out != d.e.out) {
			continue
		}
		if err == nil {
			// Atomically, so that no datagram relayed between the
			// lookup and the delete goes uncounted.
			var last relayBindingValue
			switch err = m.bindings.LookupAndDelete(&d.e.key, &last); {
			case err == nil:
				cur = last
			case errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL):
				// Hash maps take it from Linux 5.14; before, lose the
				// last few datagrams' counts rather than the delete.
				err = m.bindings.Delete(&d.e.key)
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("remove xdp binding %s: %w", b, err)
		}
		*d.traffic = cur.traffic(now, wall)
	}
	return out, nil
}

// traffic is the Traffic of a bindings map value, with its last-seen time
// moved from the monotonic clock now to the wall clock wall.
func (v relayBindingValue) traffic(now uint64, wall time.Time) *Traffic {
	t := &Traffic{Packets: v.Packets, Bytes: v.Bytes}
	if v.LastSeenNs != 0 {
		t.LastSeen = wall.Add(-time.Duration(now - min(v.LastSeenNs, now)))
	}
	return t
}

// Bindings lists the bindings in the kernel with their traffic, sorted by
// client, channel and peer. A restarted relay compares it with its own
// state and removes what it no longer has.
func (m *Maps) Bindings() ([]BindingStats, error) {
	now, err := monotonicNow()
	if err != nil {
		return nil, fmt.Errorf("list xdp bindings: %w", err)
	}
	wall := time.Now()
	byBinding := map[Binding]*BindingStats{}
	add := func(key relayBindingKey, v *relayBindingValue) {
		b, toPeer := entry{key: key, out: v.Out}.binding()
		s := byBinding[b]
		if s == nil {
			s = &BindingStats{Binding: b}
			byBinding[b] = s
		}
		t := v.traffic(now, wall)
		if toPeer {
			s.ToPeer = t
		} else {
			s.ToClient = t
		}
	}
	if err := m.eachBinding(add); err != nil {
		return nil, fmt.Errorf("list xdp bindings: %w", err)
	}
	out := make([]BindingStats, 0, len(byBinding))
	for _, s := range byBinding {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b BindingStats) int {
		return cmp.Or(a.Client.Compare(b.Client), cmp.Compare(a.Channel, b.Channel),
			a.Peer.Compare(b.Peer), a.Server.Compare(b.Server), a.Relay.Compare(b.Relay))
	})
	return out, nil
}

// bindingBatch is how many entries one system call reads: more than a
// hash bucket ever holds (the kernel refuses a batch smaller than the
// bucket it stops in), few enough to stay small.
const bindingBatch = 1024

// eachBinding calls fn for every entry of the bindings map, reading them
// in batches (BPF_MAP_LOOKUP_BATCH, Linux 5.6): at tens of thousands of
// bindings, one system call per entry would take the better part of a
// second. Entries added or removed meanwhile may or may not be seen.
func (m *Maps) eachBinding(fn func(relayBindingKey, *relayBindingValue)) error {
	keys := make([]relayBindingKey, bindingBatch)
	values := make([]relayBindingValue, bindingBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.bindings.BatchLookup(&cursor, keys, values, nil)
		for i := range n {
			fn(keys[i], &values[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil // the end
		case errors.Is(err, ebpf.ErrNotSupported) && n == 0:
			return m.iterateBindings(fn)
		case err != nil:
			return err
		}
	}
}

// iterateBindings is eachBinding one entry at a time, for kernels without
// batch lookups.
func (m *Maps) iterateBindings(fn func(relayBindingKey, *relayBindingValue)) error {
	var key relayBindingKey
	var v relayBindingValue
	it := m.bindings.Iterate()
	for it.Next(&key, &v) {
		fn(key, &v)
	}
	return it.Err()
}

// monotonicNow reads the clock the program stamps bindings with
// (CLOCK_MONOTONIC, coarse: clock.h).
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("read monotonic clock: %w", err)
	}
	return uint64(ts.Nano()), nil
}
