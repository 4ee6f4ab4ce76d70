//go:build linux

package bpf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// bindingList returns the bindings of Bindings() without their traffic.
func bindingList(t testing.TB, m interface {
	Bindings() ([]BindingStats, error)
}) []Binding {
	t.Helper()
	stats, err := m.Bindings()
	if err != nil {
		t.Fatalf("Bindings() = %v", err)
	}
	var out []Binding
	for _, s := range stats {
		if s.ToPeer == nil || s.ToClient == nil {
			t.Errorf("Bindings(): %s has a direction missing", s.Binding)
		}
		out = append(out, s.Binding)
	}
	return out
}

var cmpAddrs = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

func TestAddRemoveBinding(t *testing.T) {
	p := loadProgram(t, testConfig)
	for _, b := range []Binding{b66, b44, b46} {
		if err := p.AddBinding(b); err != nil {
			t.Fatalf("AddBinding(%s) = %v", b, err)
		}
	}
	// Sorted by client, then channel.
	if diff := cmp.Diff([]Binding{b44, b46, b66}, bindingList(t, p), cmpAddrs); diff != "" {
		t.Errorf("Bindings() (-want +got):\n%s", diff)
	}

	// A refresh keeps the counters.
	var key relayBindingKey = newKey(b44.Client, b44.Server, b44.Channel)
	var v relayBindingValue
	if err := p.objs.Bindings.Lookup(&key, &v); err != nil {
		t.Fatal(err)
	}
	v.Packets, v.Bytes = 5, 50
	if err := p.objs.Bindings.Update(&key, &v, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	if err := p.AddBinding(b44); err != nil {
		t.Fatalf("AddBinding(%s) again = %v", b44, err)
	}
	stats, err := p.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	if got := stats[0].ToPeer; got.Packets != 5 || got.Bytes != 50 {
		t.Errorf("after refresh, %s to peer = %+v, want the 5 packets and 50 bytes from before", b44, *got)
	}

	// A stale entry under the same key is replaced.
	moved := b44
	moved.Peer = ap(peer4, 9999)
	if err := p.AddBinding(moved); err != nil {
		t.Fatalf("AddBinding(%s) over a stale entry = %v", moved, err)
	}
	// b44's peer->client entry is still there (a different key): it
	// shows as a half binding.
	stats, err = p.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	var halves []string
	for _, s := range stats {
		if s.ToPeer == nil || s.ToClient == nil {
			halves = append(halves, s.Binding.String())
		}
	}
	if want := []string{b44.String()}; !cmp.Equal(halves, want) {
		t.Errorf("half bindings = %q, want %q", halves, want)
	}

	// Removing the old binding leaves the new one's entries alone.
	if err := p.RemoveBinding(b44); err != nil {
		t.Fatalf("RemoveBinding(%s) = %v", b44, err)
	}
	if diff := cmp.Diff([]Binding{moved, b46, b66}, bindingList(t, p), cmpAddrs); diff != "" {
		t.Errorf("after RemoveBinding(%s) (-want +got):\n%s", b44, diff)
	}
	for _, b := range []Binding{moved, b46, b66, b66} { // twice: idempotent
		if err := p.RemoveBinding(b); err != nil {
			t.Fatalf("RemoveBinding(%s) = %v", b, err)
		}
	}
	if got := bindingList(t, p); len(got) != 0 {
		t.Errorf("after removing all, Bindings() = %v", got)
	}
}

func TestBindingNormalized(t *testing.T) {
	p := loadProgram(t, testConfig)
	mapped := b44
	mapped.Client = ap(netip.AddrFrom16(client4.As16()), b44.Client.Port())
	mapped.Server = ap(netip.AddrFrom16(relay4.As16()), 3478)
	if err := p.AddBinding(mapped); err != nil {
		t.Fatalf("AddBinding(%s) = %v", mapped, err)
	}
	if diff := cmp.Diff([]Binding{b44}, bindingList(t, p), cmpAddrs); diff != "" {
		t.Errorf("IPv4-mapped binding listed as (-want +got):\n%s", diff)
	}
	if err := p.RemoveBinding(mapped); err != nil {
		t.Fatal(err)
	}
	if got := bindingList(t, p); len(got) != 0 {
		t.Errorf("RemoveBinding of the mapped form left %v", got)
	}
}

func TestAddBindingErrors(t *testing.T) {
	p := loadProgram(t, testConfig)
	with := func(f func(*Binding)) Binding { b := b44; f(&b); return b }
	for _, tc := range []struct {
		b       Binding
		wantErr string
	}{
		{with(func(b *Binding) { b.Client = netip.AddrPort{} }), "no client address"},
		{with(func(b *Binding) { b.Peer = ap(peer4, 0) }), "peer port is 0"},
		{with(func(b *Binding) { b.Server = ap(relay6, 3478) }), "client and server address families differ"},
		{with(func(b *Binding) { b.Peer = ap(peer6, 7) }), "relayed and peer address families differ"},
		{with(func(b *Binding) { b.Channel = 0x3FFF }), "channel 0x3fff is outside 0x4000-0x7FFF"},
		{with(func(b *Binding) { b.Channel = 0x8000 }), "channel 0x8000 is outside"},
		{with(func(b *Binding) { b.Peer = ap(netip.MustParseAddr("fe80::1%x0"), 7); b.Relay = ap(relay6, 50000) }), "has a zone"},
	} {
		err := p.AddBinding(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "add xdp binding: binding client") {
			t.Errorf("AddBinding(%s) = %v, want an error containing %q", tc.b, err, tc.wantErr)
		}
		if err := p.RemoveBinding(tc.b); err == nil {
			t.Errorf("RemoveBinding(%s) = nil, want an error", tc.b)
		}
	}
	if got := bindingList(t, p); len(got) != 0 {
		t.Errorf("after failed adds, Bindings() = %v", got)
	}
}

func TestMaxBindings(t *testing.T) {
	cfg := testConfig
	cfg.MaxBindings = 2
	p := loadProgram(t, cfg)
	if got := p.MaxBindings(); got != 2 {
		t.Errorf("MaxBindings() = %d, want 2", got)
	}
	for _, b := range []Binding{b44, b66} {
		if err := p.AddBinding(b); err != nil {
			t.Fatalf("AddBinding(%s) = %v", b, err)
		}
	}
	err := p.AddBinding(b46)
	if !errors.Is(err, unix.E2BIG) || !strings.Contains(err.Error(), "the bindings map is full (2 bindings)") {
		t.Errorf("AddBinding beyond MaxBindings = %v, want E2BIG saying the map is full", err)
	}
	// The failed add left nothing behind.
	if diff := cmp.Diff([]Binding{b44, b66}, bindingList(t, p), cmpAddrs); diff != "" {
		t.Errorf("after a failed add (-want +got):\n%s", diff)
	}

	for _, n := range []int{-1, maxMaxBindings + 1} {
		cfg.MaxBindings = n
		if p, err := Load(cfg); err == nil {
			p.Close()
			t.Errorf("Load(MaxBindings: %d) = nil error", n)
		} else if !strings.Contains(err.Error(), "max bindings") {
			t.Errorf("Load(MaxBindings: %d) = %v, want an error about max bindings", n, err)
		}
	}
	cfg.MaxBindings = 0
	if got := loadProgram(t, cfg).MaxBindings(); got != DefaultMaxBindings {
		t.Errorf("MaxBindings() with 0 configured = %d, want %d", got, DefaultMaxBindings)
	}
}

// TestOpenPinned: another process's view of the maps (the relay's) writes
// bindings the loaded program relays, and reads its counters.
func TestOpenPinned(t *testing.T) {
	dir := filepath.Join(testPinDir(t), "relaybox")
	n := newRelayNet(t, Config{ListenPort: testConfig.ListenPort, PortMin: testConfig.PortMin, PortMax: testConfig.PortMax, PinDir: dir})

	m, err := OpenPinned(dir)
	if err != nil {
		t.Fatalf("OpenPinned(%s) = %v", dir, err)
	}
	defer m.Close()
	if err := m.AddBinding(b44); err != nil {
		t.Fatalf("pinned AddBinding = %v", err)
	}
	if got := m.MaxBindings(); got != DefaultMaxBindings {
		t.Errorf("pinned MaxBindings() = %d, want %d", got, DefaultMaxBindings)
	}
	if v, _ := n.run(t, fromClient(b44, []byte("via pin")).build(t), "r0"); v != VerdictRedirect {
		t.Errorf("binding written through the pin: verdict %s, want redirect", v)
	}
	stats, err := m.Bindings()
	if err != nil || len(stats) != 1 || stats[0].ToPeer.Packets != 1 {
		t.Errorf("pinned Bindings() = %+v, %v; want %s with one packet to the peer", stats, err, b44)
	}
	reasons, err := m.Reasons()
	if err != nil || reasons[ReasonRedirect].Packets != 1 {
		t.Errorf("pinned Reasons() = %v, %v; want one redirect", reasons, err)
	}
	classes, err := m.Counters()
	if err != nil || classes[ClassChannelData].Packets != 1 {
		t.Errorf("pinned Counters() = %v, %v; want one channel data", classes, err)
	}
	if err := m.RemoveBinding(b44); err != nil {
		t.Fatal(err)
	}
	if got := bindingList(t, n.p); len(got) != 0 {
		t.Errorf("after pinned RemoveBinding, the program's Bindings() = %v", got)
	}
}

func TestOpenPinnedErrors(t *testing.T) {
	dir := testPinDir(t)
	_, err := OpenPinned(dir)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "is the XDP program loaded") {
		t.Errorf("OpenPinned(empty dir) = %v, want ErrNotExist asking whether the program is loaded", err)
	}

	// Maps of the right names but another shape.
	for _, name := range pinnedMaps {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = OpenPinned(dir)
	if !errors.Is(err, ebpf.ErrMapIncompatible) || !strings.Contains(err.Error(), "another version of relaybox") {
		t.Errorf("OpenPinned(foreign maps) = %v, want ErrMapIncompatible", err)
	}
}

// addBindings adds n bindings of one client address, each its own port,
// allocation port and peer port (n up to 20000).
func addBindings(t testing.TB, p *Program, n int) {
	t.Helper()
	for i := range n {
		b := Binding{
			Client:  netip.AddrPortFrom(netip.MustParseAddr("198.18.0.10"), uint16(1024+i)),
			Server:  netip.MustParseAddrPort("198.18.0.1:3478"),
			Channel: 0x4000,
			Relay:   netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), uint16(40000+i)),
			Peer:    netip.AddrPortFrom(netip.MustParseAddr("198.18.2.10"), uint16(1024+i)),
		}
		if err := p.AddBinding(b); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkBindings reads 10000 bindings (20000 map entries) with their
// traffic, as relay status and the bandwidth cap's poll do.
func BenchmarkBindings(b *testing.B) {
	cfg := testConfig
	cfg.MaxBindings = 10000
	p := loadProgram(b, cfg)
	addBindings(b, p, cfg.MaxBindings)
	b.ResetTimer()
	for range b.N {
		stats, err := p.Bindings()
		if err != nil || len(stats) != cfg.MaxBindings {
			b.Fatalf("Bindings() = %d bindings, %v; want %d", len(stats), err, cfg.MaxBindings)
		}
	}
}

// Reading the bindings in batches sees every entry once, across batch
// boundaries, as the one-by-one walk of older kernels does.
func TestEachBindingBatches(t *testing.T) {
	cfg := testConfig
	cfg.MaxBindings = 3 * bindingBatch / 2 // three batches of entries
	p := loadProgram(t, cfg)
	addBindings(t, p, cfg.MaxBindings)
	collect := func(each func(func(relayBindingKey, *relayBindingValue)) error) map[relayBindingKey]int {
		t.Helper()
		seen := map[relayBindingKey]int{}
		if err := each(func(k relayBindingKey, _ *relayBindingValue) { seen[k]++ }); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	batched, walked := collect(p.maps.eachBinding), collect(p.maps.iterateBindings)
	if len(batched) != 2*cfg.MaxBindings {
		t.Errorf("batches saw %d entries, want %d", len(batched), 2*cfg.MaxBindings)
	}
	for k, n := range batched {
		if n != 1 || walked[k] != 1 {
			t.Fatalf("entry %+v seen %d times in batches, %d times walking; want once each", k, n, walked[k])
		}
	}
}
