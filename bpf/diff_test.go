//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The long run: go test ./bpf -run TestDifferential -args -diff.packets=1000000
// (make diff-long, or any seed with -diff.seed; 0 picks one from the clock).
var (
	diffPackets = flag.Int("diff.packets", 3000, "packets in TestDifferential")
	diffSeed    = flag.Uint64("diff.seed", 1, "seed of TestDifferential's packets; 0: from the clock")
)

// TestDifferential runs random, mutated, truncated and hostile frames
// through the program and through the reference: both must give the same
// verdict and the same bytes for every frame, and agree on the counters
// and per-binding traffic at the end.
func TestDifferential(t *testing.T) {
	seed := *diffSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("%d packets, seed %d (rerun with -args -diff.seed=%d -diff.packets=%d)", *diffPackets, seed, seed, *diffPackets)

	n := newRelayNet(t, Config{}, tableBindings...)
	g := &packetGen{r: rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15)), bindings: tableBindings}
	ingresses := []string{"r0", "r0", "r0", "r1", "r1", "r2"}

	classesBefore, reasonsBefore := readCounters(t, n.p), readReasons(t, n.p)
	wantClasses, wantReasons := map[Class]Counter{}, map[Reason]Counter{}
	type dirKey struct {
		b      Binding
		toPeer bool
	}
	wantTraffic := map[dirKey]Counter{}
	var failures []string

	const batch = 5000
	for done := 0; done < *diffPackets; done += batch {
		type job struct {
			in      []byte
			ingress string
			verdict Verdict
			out     []byte
		}
		jobs := make([]job, min(batch, *diffPackets-done))
		for i := range jobs {
			jobs[i].in = g.frame(t)
			jobs[i].ingress = ingresses[g.r.IntN(len(ingresses))]
		}
		err := n.ns.Do(func() error {
			for i := range jobs {
				v, out, _, err := runXDP(n.p.objs.RelayXdp, jobs[i].in, n.ifindex[jobs[i].ingress])
				if err != nil {
					return fmt.Errorf("frame % x: %w", jobs[i].in, err)
				}
				jobs[i].verdict, jobs[i].out = v, out
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		for _, j := range jobs {
			ref := reference(n.env(j.ingress, tableBindings), j.in)
			if j.verdict != ref.verdict || !bytes.Equal(j.out, ref.out) {
				failures = append(failures, fmt.Sprintf("in on %s: % x\n  kernel: %s % x\n  reference: %s (%s) % x",
					j.ingress, j.in, j.verdict, j.out, ref.verdict, ref.reason, ref.out))
				continue
			}
			// Relayed from a datagram with a valid checksum: the
			// receiver's checksum must hold too.
			if len(ref.relayed) > 0 && inputChecksumValid(j.in) && !checksumsValid(t, j.out) {
				failures = append(failures, fmt.Sprintf("in on %s: % x\n  relayed with a bad checksum: % x", j.ingress, j.in, j.out))
			}
			c := wantReasons[ref.reason]
			wantReasons[ref.reason] = Counter{c.Packets + 1, c.Bytes + uint64(len(j.in))}
			if ref.class >= 0 {
				c := wantClasses[ref.class]
				wantClasses[ref.class] = Counter{c.Packets + 1, c.Bytes + ref.classBytes}
			}
			for _, d := range ref.relayed {
				k := dirKey{d.b, d.toPeer}
				c := wantTraffic[k]
				wantTraffic[k] = Counter{c.Packets + 1, c.Bytes + uint64(ref.data)}
			}
		}
		if len(failures) > 0 {
			break
		}
	}
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Errorf("kernel and reference disagree: %s", f)
	}
	if len(failures) > 0 {
		return
	}

	if diff := cmp.Diff(wantReasons, delta(reasonsBefore, readReasons(t, n.p))); diff != "" {
		t.Errorf("reason counters: reference (-) and kernel (+):\n%s", diff)
	}
	if diff := cmp.Diff(wantClasses, delta(classesBefore, readCounters(t, n.p))); diff != "" {
		t.Errorf("class counters: reference (-) and kernel (+):\n%s", diff)
	}
	stats, err := n.p.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	gotTraffic := map[dirKey]Counter{}
	for _, s := range stats {
		for k, tr := range map[dirKey]*Traffic{{s.Binding, true}: s.ToPeer, {s.Binding, false}: s.ToClient} {
			if tr.Packets > 0 {
				gotTraffic[k] = Counter{tr.Packets, tr.Bytes}
			}
		}
	}
	if diff := cmp.Diff(wantTraffic, gotTraffic, cmpAddrs); diff != "" {
		t.Errorf("binding traffic: reference (-) and kernel (+):\n%s", diff)
	}

	var summary []string
	for r := range numReasons {
		summary = append(summary, fmt.Sprintf("%s=%d", r, wantReasons[r].Packets))
	}
	t.Logf("reasons: %v", summary)
	// The default run must reach every reason this network can produce.
	if *diffPackets >= 3000 {
		var missing []Reason
		for r := range numReasons {
			if wantReasons[r].Packets == 0 && !slices.Contains([]Reason{ReasonAborted, ReasonNoHeadroom, ReasonFwdDisabled}, r) {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			t.Errorf("no packet reached %v: the generator needs a look", missing)
		}
	}
}

// inputChecksumValid reports whether frame is an untagged, option-less IP
// frame whose UDP checksum is present and right.
func inputChecksumValid(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	var src, dst []byte
	var l4 int
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		if len(f) < 34 || f[14] != 0x45 {
			return false
		}
		src, dst, l4 = f[26:30], f[30:34], 34
	case 0x86DD:
		if len(f) < 54 {
			return false
		}
		src, dst, l4 = f[22:38], f[38:54], 54
	default:
		return false
	}
	if len(f) < l4+8 {
		return false
	}
	n := int(binary.BigEndian.Uint16(f[l4+4:]))
	if n < 8 || l4+n > len(f) || binary.BigEndian.Uint16(f[l4+6:]) == 0 {
		return false
	}
	s, _ := netip.AddrFromSlice(src)
	d, _ := netip.AddrFromSlice(dst)
	return onesSum(pseudoHeader(s, d, n), f[l4:l4+n]) == 0xFFFF
}

// packetGen makes the differential test's frames: mostly datagrams of the
// installed bindings (so that most reach the rewrite), the rest random
// traffic, and a share of each mangled on the way.
type packetGen struct {
	r        *rand.Rand
	bindings []Binding
}

var (
	genAddrs = []netip.Addr{client4, client6, relay4, relay6, peer4, peer6, secondRelay4, relayPeer4, unresolved4,
		netip.AddrFrom16(client4.As16()), netip.AddrFrom16(relay4.As16())}
	genPorts = []uint16{3478, 3479, 49999, 50000, 50001, 50004, 50005, 50012, 50100, 50101, 40000, 40001, 40002, 7, 8, 9, 53}
)

func (g *packetGen) pick(n int) int { return g.r.IntN(n) }
func (g *packetGen) chance(p float64) bool {
	return g.r.Float64() < p
}

func (g *packetGen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

// dataLen is mostly small, sometimes up to and past the MTUs.
func (g *packetGen) dataLen() int {
	if g.chance(0.8) {
		return g.pick(65)
	}
	return g.pick(1501)
}

func (g *packetGen) frame(t testing.TB) []byte {
	var p packet
	switch k := g.r.Float64(); {
	case k < 0.40:
		b := g.bindings[g.pick(len(g.bindings))]
		var extra []byte
		switch x := g.r.Float64(); {
		case x < 0.3:
			extra = g.bytes(1 + g.pick(3))
		case x < 0.4:
			extra = g.bytes(4 + g.pick(3))
		}
		p = fromClient(b, g.bytes(g.dataLen()), extra...)
	case k < 0.70:
		b := g.bindings[g.pick(len(g.bindings))]
		p = fromPeer(b, g.bytes(g.dataLen()))
	default:
		src, dst := genAddrs[g.pick(len(genAddrs))], genAddrs[g.pick(len(genAddrs))]
		if src.Is4() != dst.Is4() {
			dst = src
		}
		p = packet{src: ap(src, genPorts[g.pick(len(genPorts))]), dst: ap(dst, genPorts[g.pick(len(genPorts))])}
		switch g.pick(4) {
		case 0:
			p.payload = channelData(uint16(0x4000+g.pick(0x4000)), g.bytes(g.pick(40)))
		case 1:
			p.payload = stunMessage(uint16(g.pick(0x4000)), 4*g.pick(5))
		case 2:
			p.payload = g.bytes(g.pick(80))
		default:
			p.tcp = true
		}
	}

	// Header variants the kernel path leaves to the stack.
	is4 := p.dst.Addr().Is4()
	switch x := g.r.Float64(); {
	case x < 0.03:
		p.vlan = []uint16{uint16(1 + g.pick(4094))}
	case x < 0.04:
		p.vlan = []uint16{7, 42}
	case x < 0.07 && is4:
		p.ipv4Options = true
	case x < 0.09 && is4:
		p.moreFragments = true
	case x < 0.11 && is4:
		p.fragOffset = uint16(1 + g.pick(100))
	case x < 0.11:
		p.hopByHop = true
	}
	if g.chance(0.06) {
		p.zeroChecksum = true
	}
	if g.chance(0.05) {
		p.trailer = g.bytes(1 + g.pick(20))
	}
	f := p.build(t)

	// Mangling: the hostile share.
	if g.chance(0.3) {
		f = g.mangle(f)
	}
	if len(f) < 14 {
		f = append(f, make([]byte, 14-len(f))...)
	}
	return f
}

// mangle damages f in one of the ways a hostile or broken sender would.
func (g *packetGen) mangle(f []byte) []byte {
	l3 := 14
	if binary.BigEndian.Uint16(f[12:]) == 0x8100 {
		l3 = 18
	}
	l4 := l3 + 20
	if len(f) > l3 && f[l3]>>4 == 6 {
		l4 = l3 + 40
	}
	set16 := func(off int, v uint16) {
		if off+2 <= len(f) {
			binary.BigEndian.PutUint16(f[off:], v)
		}
	}
	near := func(off int) uint16 {
		if off+2 > len(f) {
			return 0
		}
		return binary.BigEndian.Uint16(f[off:]) + uint16(g.pick(9)) - 4
	}
	switch g.pick(9) {
	case 0: // random bytes anywhere
		for range 1 + g.pick(3) {
			f[g.pick(len(f))] ^= byte(1 + g.pick(255))
		}
	case 1: // a byte in the headers
		f[g.pick(min(len(f), l4+12))] ^= byte(1 + g.pick(255))
	case 2:
		f = f[:14+g.pick(len(f)-13)]
	case 3:
		f = append(f, g.bytes(1+g.pick(40))...)
	case 4: // UDP length
		if g.chance(0.5) {
			set16(l4+4, near(l4+4))
		} else {
			set16(l4+4, uint16(g.r.Uint32()))
		}
	case 5: // IP length
		if f[l3]>>4 == 6 {
			set16(l3+4, near(l3+4))
		} else {
			set16(l3+2, near(l3+2))
		}
	case 6: // ChannelData length
		set16(l4+10, near(l4+10))
	case 7: // version and header length
		if l3 < len(f) {
			f[l3] = byte(g.pick(256))
		}
	case 8: // UDP checksum
		set16(l4+6, uint16(g.r.Uint32()))
	}
	return f
}
