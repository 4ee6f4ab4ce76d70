//go:build linux

package bpf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// testConfig leaves ports free on both sides of the allocation range, so
// tests can aim just outside it.
var testConfig = Config{ListenPort: 3478, PortMin: 50000, PortMax: 50100}

// Test addresses: the benchmarking ranges, and nothing else.
var (
	client4 = netip.MustParseAddr("198.18.0.2")
	relay4  = netip.MustParseAddr("198.18.0.1")
	client6 = netip.MustParseAddr("2001:2::2")
	relay6  = netip.MustParseAddr("2001:2::1")
)

func loadProgram(t testing.TB, cfg Config) *Program {
	t.Helper()
	nstest.RequireRoot(t)
	p, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load(%+v) = %v", cfg, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func readCounters(t testing.TB, p *Program) map[Class]Counter {
	t.Helper()
	c, err := p.Counters()
	if err != nil {
		t.Fatalf("Counters() = %v", err)
	}
	return c
}

// delta returns after - before for the classes or reasons that moved.
func delta[K comparable](before, after map[K]Counter) map[K]Counter {
	d := map[K]Counter{}
	for k, a := range after {
		if b := before[k]; a != b {
			d[k] = Counter{Packets: a.Packets - b.Packets, Bytes: a.Bytes - b.Bytes}
		}
	}
	return d
}

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		wantErr string // substring; "" for success
	}{
		{cfg: testConfig},
		{cfg: Config{ListenPort: 3478, PortMin: 49152, PortMax: 65535}},
		{cfg: Config{ListenPort: 3478, PortMin: 3479, PortMax: 3479}},
		{cfg: Config{ListenPort: 0, PortMin: 50000, PortMax: 50100}, wantErr: "listen port is 0"},
		{cfg: Config{ListenPort: 3478, PortMin: 0, PortMax: 50100}, wantErr: "includes port 0"},
		{cfg: Config{ListenPort: 3478, PortMin: 50000, PortMax: 0}, wantErr: "includes port 0"},
		{cfg: Config{ListenPort: 3478, PortMin: 50100, PortMax: 50000}, wantErr: "range 50100-50000 is empty"},
		{cfg: Config{ListenPort: 50000, PortMin: 50000, PortMax: 50100}, wantErr: "inside the allocation port range"},
		{cfg: Config{ListenPort: 50100, PortMin: 50000, PortMax: 50100}, wantErr: "inside the allocation port range"},
		{cfg: Config{ListenPort: 3478, PortMin: 50000, PortMax: 50100, NextHopTTL: MaxNextHopTTL}},
		{cfg: Config{ListenPort: 3478, PortMin: 50000, PortMax: 50100, NextHopTTL: -time.Millisecond}, wantErr: "next-hop TTL -1ms is outside 0-1s"},
		{cfg: Config{ListenPort: 3478, PortMin: 50000, PortMax: 50100, NextHopTTL: MaxNextHopTTL + 1}, wantErr: "next-hop TTL 1.000000001s is outside 0-1s"},
	} {
		if tc.wantErr == "" {
			loadProgram(t, tc.cfg)
			continue
		}
		p, err := Load(tc.cfg)
		if err == nil {
			p.Close()
			t.Errorf("Load(%+v) = nil error, want %q", tc.cfg, tc.wantErr)
		} else if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Load(%+v) = %v, want an error containing %q", tc.cfg, err, tc.wantErr)
		}
	}
}

// classifyCases are packets with the counters each must move, against
// testConfig. Bytes count the UDP payload.
var classifyCases = []struct {
	name string
	pkt  packet
	want map[Class]Counter
}{
	{
		name: "stun binding request v4",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: stunMessage(0x0001, 0)},
		want: map[Class]Counter{ClassSTUN: {1, 20}},
	},
	{
		name: "stun binding request v6",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 3478), payload: stunMessage(0x0001, 0)},
		want: map[Class]Counter{ClassSTUN: {1, 20}},
	},
	{
		name: "stun allocate request with attributes",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: stunMessage(0x0003, 36)},
		want: map[Class]Counter{ClassSTUN: {1, 56}},
	},
	{
		name: "channel data 0x4000 v4",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: channelData(0x4000, []byte("hello peer"))},
		want: map[Class]Counter{ClassChannelData: {1, 14}},
	},
	{
		name: "channel data 0x7fff v6",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 3478), payload: channelData(0x7FFF, []byte("hello peer"))},
		want: map[Class]Counter{ClassChannelData: {1, 14}},
	},
	{
		// 46 bytes padded to a 60-byte frame: bytes follow the UDP
		// length, not the frame.
		name: "channel data header only",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: channelData(0x4001, nil)},
		want: map[Class]Counter{ClassChannelData: {1, 4}},
	},
	{
		name: "allocation port first",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 50000), payload: []byte("from a peer")},
		want: map[Class]Counter{ClassAllocation: {1, 11}},
	},
	{
		name: "allocation port last v6",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 50100), payload: []byte("from a peer")},
		want: map[Class]Counter{ClassAllocation: {1, 11}},
	},
	{
		name: "allocation port empty datagram",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 50050)},
		want: map[Class]Counter{ClassAllocation: {1, 0}},
	},
	{
		name: "other payload to listen port",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: []byte{0x80, 0x60, 0, 1, 0, 0, 0, 0}},
		want: map[Class]Counter{ClassOther: {1, 8}},
	},
	{
		name: "stun-like without magic cookie",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: make([]byte, 20)},
		want: map[Class]Counter{ClassOther: {1, 20}},
	},
	{
		name: "stun header one byte short",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: stunMessage(0x0001, 0)[:19]},
		want: map[Class]Counter{ClassOther: {1, 19}},
	},
	{
		name: "channel data header one byte short",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 3478), payload: []byte{0x40, 0x00, 0x00}},
		want: map[Class]Counter{ClassOther: {1, 3}},
	},
	{
		name: "empty datagram to listen port",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478)},
		want: map[Class]Counter{ClassOther: {1, 0}},
	},
	{
		name: "unrelated port",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 53), payload: stunMessage(0x0001, 0)},
	},
	{
		name: "just below allocation range",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 49999), payload: []byte("x")},
	},
	{
		name: "just above allocation range",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 50101), payload: []byte("x")},
	},
	{
		name: "tcp to listen port",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), tcp: true, payload: stunMessage(0x0001, 0)},
	},
	{
		name: "tcp to allocation port v6",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 50000), tcp: true},
	},
	{
		name: "ipv6 extension header",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 3478), hopByHop: true, payload: stunMessage(0x0001, 0)},
	},
	{
		name: "ipv4 later fragment",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), fragOffset: 185, payload: stunMessage(0x0001, 0)},
	},
	{
		name: "ipv4 first fragment",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), moreFragments: true, payload: stunMessage(0x0001, 0)},
	},
	{
		name: "ipv4 options",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), ipv4Options: true, payload: stunMessage(0x0001, 0)},
		want: map[Class]Counter{ClassSTUN: {1, 20}},
	},
	{
		name: "vlan tagged stun v4",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), vlan: []uint16{42}, payload: stunMessage(0x0001, 0)},
		want: map[Class]Counter{ClassSTUN: {1, 20}},
	},
	{
		name: "vlan tagged channel data v6",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 3478), vlan: []uint16{42}, payload: channelData(0x4000, []byte("hi"))},
		want: map[Class]Counter{ClassChannelData: {1, 6}},
	},
	{
		name: "802.1ad tagged allocation",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 50000), vlan: []uint16{7}, tpid: layers.EthernetTypeQinQ, payload: []byte("x")},
		want: map[Class]Counter{ClassAllocation: {1, 1}},
	},
	{
		name: "double tagged",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), vlan: []uint16{7, 42}, payload: stunMessage(0x0001, 0)},
	},
	{
		name: "udp length beyond the frame",
		pkt:  packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: stunMessage(0x0001, 0), truncate: 1},
	},
	{
		name: "truncated udp header",
		pkt:  packet{src: ap(client6, 40000), dst: ap(relay6, 3478), truncate: 1},
	},
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// run runs the program once on frame and returns its verdict and the frame
// it passed on.
func run(t testing.TB, p *Program, frame []byte) (uint32, []byte) {
	t.Helper()
	opts := ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256), Repeat: 1}
	verdict, err := p.objs.RelayXdp.Run(&opts)
	if err != nil {
		t.Fatalf("RelayXdp.Run = %v", err)
	}
	return verdict, opts.DataOut
}

func TestClassify(t *testing.T) {
	p := loadProgram(t, testConfig)
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.pkt.build(t)
			before := readCounters(t, p)
			verdict, out := run(t, p, in)
			after := readCounters(t, p)

			if verdict != uint32(XDPPass) {
				t.Errorf("relay_xdp(%s) verdict = %d, want XDP_PASS (%d)", tc.name, verdict, XDPPass)
			}
			if diff := cmp.Diff(in, out); diff != "" {
				t.Errorf("relay_xdp(%s) changed the frame (-in +out):\n%s", tc.name, diff)
			}
			want := tc.want
			if want == nil {
				want = map[Class]Counter{}
			}
			if diff := cmp.Diff(want, delta(before, after)); diff != "" {
				t.Errorf("relay_xdp(%s) counter deltas (-want +got):\n%s", tc.name, diff)
			}
		})
	}
}

// XDPPass is the kernel's XDP_PASS verdict.
const XDPPass = 2

func TestCountersHaveEveryClass(t *testing.T) {
	p := loadProgram(t, testConfig)
	got := readCounters(t, p)
	for c := range numClasses {
		if _, ok := got[c]; !ok {
			t.Errorf("Counters() has no entry for %s", c)
		}
	}
	if len(got) != int(numClasses) {
		t.Errorf("len(Counters()) = %d, want %d", len(got), numClasses)
	}
	// The map is sized by CLASS_MAX in maps.h: the two enums agree in size.
	if n := p.objs.Counters.MaxEntries(); n != uint32(numClasses) {
		t.Errorf("counters map has %d entries, want one per Class (%d)", n, numClasses)
	}
}

func TestClassString(t *testing.T) {
	for _, tc := range []struct {
		in   Class
		want string
	}{
		{ClassSTUN, "stun"},
		{ClassChannelData, "channel_data"},
		{ClassAllocation, "allocation"},
		{ClassOther, "other"},
		{Class(9), "Class(9)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Class(%d).String() = %q, want %q", int(tc.in), got, tc.want)
		}
	}
}

// mountBPFFS makes sure a bpffs is mounted at /sys/fs/bpf, as init does on
// the appliance. A mount made here is left in place: it is the standard
// mount point, and unmounting could pull it from under a concurrent user.
func mountBPFFS(t testing.TB) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
		t.Fatalf("mount -t bpf bpf /sys/fs/bpf: %v", err)
	}
}

// testPinDir returns a fresh pin directory on /sys/fs/bpf, removed with its
// pins when the test ends.
func testPinDir(t testing.TB) string {
	t.Helper()
	nstest.RequireRoot(t)
	mountBPFFS(t)
	dir, err := os.MkdirTemp("/sys/fs/bpf", "relaybox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove pins: %v", err)
		}
	})
	return dir
}

func TestPin(t *testing.T) {
	dir := filepath.Join(testPinDir(t), "relaybox") // Load creates it
	cfg := testConfig
	cfg.PinDir = dir
	stun := packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: stunMessage(0x0001, 0)}.build(t)

	p := loadProgram(t, cfg)
	run(t, p, stun)

	pin := filepath.Join(dir, "counters")
	m, err := ebpf.LoadPinnedMap(pin, nil)
	if err != nil {
		t.Fatalf("LoadPinnedMap(%s) = %v", pin, err)
	}
	defer m.Close()
	var perCPU []relayCounter
	key := uint32(ClassSTUN)
	if err := m.Lookup(&key, &perCPU); err != nil {
		t.Fatalf("pinned counters: Lookup(%s) = %v", ClassSTUN, err)
	}
	var sum Counter
	for _, c := range perCPU {
		sum.Packets += c.Packets
		sum.Bytes += c.Bytes
	}
	if want := (Counter{1, 20}); sum != want {
		t.Errorf("pinned counters[%s] = %+v, want %+v", ClassSTUN, sum, want)
	}

	// A second load reuses the pinned map: it starts from the same counts.
	p.Close()
	p2 := loadProgram(t, cfg)
	run(t, p2, stun)
	if got, want := readCounters(t, p2)[ClassSTUN], (Counter{2, 40}); got != want {
		t.Errorf("after reload, Counters()[%s] = %+v, want %+v", ClassSTUN, got, want)
	}
}

func TestPinIncompatible(t *testing.T) {
	dir := testPinDir(t)
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Pin(filepath.Join(dir, "counters")); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig
	cfg.PinDir = dir
	p, err := Load(cfg)
	if err == nil {
		p.Close()
		t.Fatalf("Load(%+v) over an incompatible pin = nil error, want ErrMapIncompatible", cfg)
	}
	if !errors.Is(err, ebpf.ErrMapIncompatible) || !strings.Contains(err.Error(), "remove that directory") {
		t.Errorf("Load(%+v) = %v, want ErrMapIncompatible saying to remove the directory", cfg, err)
	}
}

func TestPinDirNotBPFFS(t *testing.T) {
	nstest.RequireRoot(t)
	cfg := testConfig
	cfg.PinDir = t.TempDir()
	p, err := Load(cfg)
	if err == nil {
		p.Close()
		t.Fatalf("Load(%+v) = nil error, want one about the bpf filesystem", cfg)
	}
	if !strings.Contains(err.Error(), "not on a bpf filesystem") {
		t.Errorf("Load(%+v) = %v, want an error saying it is not on a bpf filesystem", cfg, err)
	}
}

// BenchmarkClassify measures the program per packet class, in the kernel
// through BPF_PROG_TEST_RUN. The program passes frames unchanged, so one
// run with Repeat=b.N measures b.N identical packets.
func BenchmarkClassify(b *testing.B) {
	p := loadProgram(b, testConfig)
	for _, bc := range []struct {
		name string
		pkt  packet
	}{
		{"stun", packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: stunMessage(0x0001, 0)}},
		{"channel_data", packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: channelData(0x4000, make([]byte, 100))}},
		{"allocation", packet{src: ap(client4, 40000), dst: ap(relay4, 50000), payload: make([]byte, 100)}},
		{"other", packet{src: ap(client4, 40000), dst: ap(relay4, 3478), payload: []byte{0x80, 0x60, 0, 1}}},
		{"unrelated", packet{src: ap(client4, 40000), dst: ap(relay4, 53), payload: make([]byte, 100)}},
		{"channel_data_v6", packet{src: ap(client6, 40000), dst: ap(relay6, 3478), payload: channelData(0x4000, make([]byte, 100))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			frame := bc.pkt.build(b)
			opts := ebpf.RunOptions{Data: frame, Repeat: uint32(b.N)}
			b.ResetTimer()
			verdict, err := p.objs.RelayXdp.Run(&opts)
			if err != nil {
				b.Fatalf("RelayXdp.Run = %v", err)
			}
			if verdict != XDPPass {
				b.Fatalf("verdict = %d, want XDP_PASS", verdict)
			}
		})
	}
}
