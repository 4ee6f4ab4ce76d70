package relay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/stun/v3"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// Tests of UDP GRO and GSO (offload.go) through real sockets in
// namespaces: a client, the relay and a peer on veths (newTopology).
//
// On a veth, GRO happens only with NAPI (gro on, or an XDP program) and
// only for datagrams that one NAPI poll finds together: a sender's
// softirq otherwise polls after every datagram. Threaded NAPI lets
// datagrams queue up, as a busy NIC does; a sender's own GSO packet
// reaches the socket whole, which is the same UDP_GRO read, with
// segments of our choosing.

// napiGRO makes dev in ns poll as a NIC does, GRO on. Without the flush
// timeout a NAPI thread that keeps up with the sender still polls one
// datagram at a time, and whether GRO joins anything is up to the
// scheduler.
func napiGRO(t testing.TB, ns *nstest.NS, dev string) {
	t.Helper()
	ns.PollLikeANIC(t, dev, 200*time.Microsecond)
}

// txChecksum turns transmit checksum offload back on for dev in ns:
// nstest.Veth turns it off, and UDP GSO needs it (EIO without).
func txChecksum(t testing.TB, ns *nstest.NS, dev string) {
	t.Helper()
	ns.MustRun(t, "ethtool", "-K", dev, "tx", "on")
}

// offloadRig is a relay in tp with a raw client that has an allocation
// and channel 0x4000 to sink, a UDP socket in the peer namespace.
type offloadRig struct {
	tp      *topology
	r       *running
	rc      *rawClient
	sink    *net.UDPConn
	relayed netip.AddrPort
}

func newOffloadRig(t *testing.T, tp *topology) *offloadRig {
	t.Helper()
	r := tp.startRelay(t, 3478, nil)
	sink := udpConn(t, tp.peer.Do, netip.AddrPortFrom(peerIP4, 5000))
	rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), r.listen[0], testUser, testPass)
	relayed := rc.allocate()
	mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(sink.LocalAddr().(*net.UDPAddr).AddrPort()), channelNumber(0x4000)))
	return &offloadRig{tp: tp, r: r, rc: rc, sink: sink, relayed: relayed[0]}
}

// counters reads the relay's offload counters as relay status shows them.
func (o *offloadRig) counters() (groReads, groDatagrams, gsoDatagrams, gsoRefused uint64) {
	off := o.r.Status(0).Offload
	return off.GROReads, off.GRODatagrams, off.GSODatagrams, off.GSORefused
}

// numbered is a datagram of n bytes that says which it is: its number,
// then bytes that depend on it.
func numbered(i, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, uint32(i))
	for k := 4; k < n; k++ {
		b[k] = byte(i*7 + k)
	}
	return b
}

// numberedRun is k numbered datagrams, from number first on, of size
// bytes but the last, of last bytes: a run GSO and GRO may join.
func numberedRun(first, k, size, last int) [][]byte {
	out := make([][]byte, k)
	for i := range out {
		n := size
		if i == k-1 {
			n = last
		}
		out[i] = numbered(first+i, n)
	}
	return out
}

// segmentOOB is a UDP_SEGMENT control message for size.
func segmentOOB(size int) []byte {
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
	return oob
}

// sendGSO sends dgrams, all of one size but the last, as one GSO packet
// from c to dst.
func sendGSO(t testing.TB, c *net.UDPConn, dst netip.AddrPort, dgrams [][]byte) {
	t.Helper()
	var buf []byte
	for _, d := range dgrams {
		buf = append(buf, d...)
	}
	if _, _, err := c.WriteMsgUDPAddrPort(buf, segmentOOB(len(dgrams[0])), dst); err != nil {
		t.Fatalf("GSO send of %d datagrams to %v: %v", len(dgrams), dst, err)
	}
}

// sendBurst sends dgrams from c to dst with sendmmsg.
func sendBurst(t testing.TB, c *net.UDPConn, dst netip.AddrPort, dgrams [][]byte) {
	t.Helper()
	msgs := make([]ipv4.Message, len(dgrams))
	to := net.UDPAddrFromAddrPort(dst)
	for i, d := range dgrams {
		msgs[i] = ipv4.Message{Buffers: [][]byte{d}, Addr: to}
	}
	pc := ipv4.NewPacketConn(c)
	for off := 0; off < len(msgs); {
		n, err := pc.WriteBatch(msgs[off:], 0)
		if err != nil {
			t.Fatalf("sendmmsg to %v: %v", dst, err)
		}
		off += n
	}
}

// expect reads len(want) datagrams from c, through read, and compares
// them with want, in order.
func expect(t testing.TB, what string, want [][]byte, read func() ([]byte, error)) {
	t.Helper()
	for i, w := range want {
		got, err := read()
		if err != nil {
			t.Fatalf("%s: datagram %d of %d: %v", what, i, len(want), err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("%s: datagram %d of %d is %d bytes %x…, want %d bytes %x…", what, i, len(want), len(got), got[:min(8, len(got))], len(w), w[:min(8, len(w))])
		}
	}
}

// sinkReader reads datagrams from c, each valid until the next read.
func sinkReader(c *net.UDPConn) func() ([]byte, error) {
	buf := make([]byte, 65536)
	return func() ([]byte, error) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		return buf[:n], err
	}
}

// TestGRO: datagrams that reach the relay's sockets joined by GRO are
// relayed as the same datagrams, bytes and order, both ways: ChannelData
// from the client to the peer, and the peer's datagrams to the client.
func TestGRO(t *testing.T) {
	tp := newTopology(t)
	// GSO answers too, where it can: both ends' tx checksum offload on.
	txChecksum(t, tp.relay, "r0")
	txChecksum(t, tp.relay, "r1")
	txChecksum(t, tp.client, "c0")
	txChecksum(t, tp.peer, "p0")
	napiGRO(t, tp.relay, "r0")
	o := newOffloadRig(t, tp)
	seq := 0
	// nextRun is numberedRun, numbered on from the last one.
	nextRun := func(k, size, last int) [][]byte {
		run := numberedRun(seq+1, k, size, last)
		seq += k
		return run
	}

	t.Run("client GSO packet, shorter last datagram", func(t *testing.T) {
		before, _, _, _ := o.counters()
		data := nextRun(20, 1200, 100)
		sendGSO(t, o.rc.c, o.rc.server, onChannel(0x4000, data, channelData))
		expect(t, "peer", data, sinkReader(o.sink))
		if after, _, _, _ := o.counters(); after == before {
			t.Errorf("no GRO read counted: the relay got the datagrams one by one")
		}
	})

	t.Run("NAPI GRO of a sendmmsg burst", func(t *testing.T) {
		// GRO leaves alone what a veth hands over with a partial checksum.
		tp.client.MustRun(t, "ethtool", "-K", "c0", "tx", "off")
		before, _, _, _ := o.counters()
		// Until one burst is joined: whether a poll finds several
		// datagrams waiting is up to the scheduler.
		for try := 0; try < 20; try++ {
			data := nextRun(64, 500, 500)
			sendBurst(t, o.rc.c, o.rc.server, onChannel(0x4000, data, channelData))
			expect(t, "peer", data, sinkReader(o.sink))
			if after, _, _, _ := o.counters(); after > before {
				return
			}
		}
		t.Errorf("no GRO read in 20 bursts of 64 datagrams")
	})

	t.Run("peer GSO packet to the relayed address", func(t *testing.T) {
		before, _, _, _ := o.counters()
		dgrams := nextRun(30, 800, 13)
		sendGSO(t, o.sink, o.relayed, dgrams)
		expect(t, "client", onChannel(0x4000, dgrams, unpaddedChannelData), func() ([]byte, error) { return o.rc.read(5 * time.Second) })
		if after, _, _, _ := o.counters(); after == before {
			t.Errorf("no GRO read counted on the allocation socket")
		}
	})

	// What relay status and /metrics say of it.
	reads, dgrams, _, _ := o.counters()
	var text bytes.Buffer
	o.r.Status(0).WriteText(&text, time.Now())
	rec := httptest.NewRecorder()
	o.r.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := fmt.Sprintf("GRO on, %d datagrams in %d reads", dgrams, reads); !strings.Contains(text.String(), want) {
		t.Errorf("relay status:\n%s\nwant it to contain %q", text.String(), want)
	}
	if got := metricValue(t, rec.Body.String(), "relaybox_gro_reads_total"); got != reads {
		t.Errorf("relaybox_gro_reads_total = %d, want %d", got, reads)
	}
}

// TestGSO: datagrams the relay sends as GSO segments reach the peer as
// separate datagrams with their bytes, in order; runs of other sizes or
// destinations are not joined; and a GSO message the kernel refuses is
// sent again one datagram at a time, losing nothing.
func TestGSO(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup prepares the relay's veths.
		setup func(tp *topology)
		// refused: the kernel refuses the 1200-byte runs, and the
		// allocation socket's budget ends below 1200.
		refused bool
	}{
		{"checksum offload", func(tp *topology) {
			txChecksum(t, tp.relay, "r0")
			txChecksum(t, tp.relay, "r1")
		}, false},
		// Linux 6.11 and later checksum GSO segments in software for such
		// a device; earlier ones said EIO.
		{"no checksum offload", func(*topology) {}, false},
		// A segment too large for the MTU: EINVAL. Sent alone, each is
		// fragmented (allocation sockets do not set DF).
		{"MTU below the segment: EINVAL", func(tp *topology) {
			txChecksum(t, tp.relay, "r1")
			tp.relay.MustRun(t, "ip", "link", "set", "r1", "mtu", "1100")
			tp.peer.MustRun(t, "ip", "link", "set", "p0", "mtu", "1100")
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopology(t)
			tc.setup(tp)
			o := newOffloadRig(t, tp)
			// A second peer, on channel 0x4001, so that runs interleave.
			sink2 := udpConn(t, tp.peer.Do, netip.AddrPortFrom(peerIP4, 5001))
			mustSucceed(t, o.rc.do(stun.MethodChannelBind, peerAttr(sink2.LocalAddr().(*net.UDPAddr).AddrPort()), channelNumber(0x4001)))
			seq := 0
			var gso, refused uint64
			// Until the relay has read a burst in one batch: how many
			// datagrams one recvmmsg finds is up to the scheduler.
			for try := 0; try < 20 && gso == 0; try++ {
				var cd, want1, want2 [][]byte
				add := func(ch uint16, n int) {
					seq++
					d := numbered(seq, n)
					cd = append(cd, channelData(ch, d))
					if ch == 0x4000 {
						want1 = append(want1, d)
					} else {
						want2 = append(want2, d)
					}
				}
				for range 40 { // joinable: one GSO message (or two)
					add(0x4000, 1200)
				}
				add(0x4000, 700) // shorter: ends the message
				for range 5 {
					add(0x4000, 1000) // a new one
				}
				add(0x4000, 1100) // larger: not joined
				for i := range 10 {
					add(0x4000+uint16(i%2), 300) // interleaved: none joined
				}
				sendBurst(t, o.rc.c, o.rc.server, cd)
				expect(t, "peer 1", want1, sinkReader(o.sink))
				expect(t, "peer 2", want2, sinkReader(sink2))
				_, _, gso, refused = o.counters()
			}
			if gso == 0 {
				t.Errorf("no datagram sent as a GSO segment")
			}
			// The worker adapts the socket once sendmmsg returns, which
			// may be after the peer has read the datagrams.
			budget := func() int32 {
				o.r.mu.Lock()
				defer o.r.mu.Unlock()
				return o.r.relayed[o.relayed].gsoMax.Load()
			}
			if tc.refused {
				waitFor(t, time.Second, "a GSO message refused and the budget lowered", func() bool {
					_, _, _, refused = o.counters()
					return refused > 0 && budget() < 1200
				})
			} else if refused > 0 || budget() < 1200 {
				t.Errorf("%d GSO messages refused, allocation socket's segment budget %d; want none and %d", refused, budget(), gsoSegmentMax(relayIP4))
			}
		})
	}
}

// TestGSORefused: what a refusal does to a socket's GSO budget.
func TestGSORefused(t *testing.T) {
	for _, tc := range []struct {
		err     error
		segment int
		want    int32
	}{
		{unix.EIO, 1000, 0}, // no checksum offload (before Linux 6.11), IPsec
		{unix.EINVAL, 1200, 1199},
		{unix.EINVAL, 1500, 1472}, // over the budget already: unchanged
		{unix.EMSGSIZE, 900, 899},
		{unix.ENETUNREACH, 1000, 1472}, // the datagrams' own
	} {
		sk := &socket{}
		sk.gsoMax.Store(1472)
		sk.gsoRefused(tc.err, tc.segment)
		if got := sk.gsoMax.Load(); got != tc.want {
			t.Errorf("gsoRefused(%v, %d) from 1472: budget %d, want %d", tc.err, tc.segment, got, tc.want)
		}
	}
}

// TestSendBatchJoins holds sendBatch to the kernel's rules for joining
// datagrams into a GSO message.
func TestSendBatchJoins(t *testing.T) {
	a := netip.MustParseAddrPort("198.18.1.2:5000")
	b := netip.MustParseAddrPort("198.18.1.3:5000")
	src := netip.MustParseAddrPort("198.18.0.1:3478")
	type dg struct {
		n        int
		to, from netip.AddrPort
	}
	rep := func(k int, d dg) []dg {
		out := make([]dg, k)
		for i := range out {
			out[i] = d
		}
		return out
	}
	cat := func(parts ...[]dg) []dg {
		var out []dg
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		segmentMax int
		in         []dg
		want       []int // datagrams per message
	}{
		{"off", 0, rep(3, dg{100, a, src}), []int{1, 1, 1}},
		{"equal", 1472, rep(3, dg{100, a, src}), []int{3}},
		{"shorter last ends it", 1472, cat(rep(2, dg{100, a, src}), rep(2, dg{50, a, src})), []int{3, 1}},
		{"larger starts another", 1472, cat(rep(2, dg{100, a, src}), rep(2, dg{150, a, src})), []int{2, 2}},
		{"other destination", 1472, []dg{{100, a, src}, {100, b, src}, {100, a, src}}, []int{1, 1, 1}},
		{"other source", 1472, []dg{{100, a, src}, {100, a, netip.MustParseAddrPort("198.18.0.9:3478")}}, []int{1, 1}},
		{"over the budget", 1000, rep(2, dg{1200, a, src}), []int{1, 1}},
		{"64 segments", 1472, rep(70, dg{10, a, src}), []int{64, 6}},
		{"64 KiB", 1472, rep(50, dg{1400, a, src}), []int{46, 4}},
		{"empty", 1472, rep(2, dg{0, a, src}), []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSendBatch()
			sb.segmentMax = tc.segmentMax
			for _, d := range tc.in {
				if !sb.add(make([]byte, d.n), d.to, d.from) {
					t.Fatal("batch full")
				}
			}
			var got []int
			total := 0
			for i := range sb.n {
				m := sb.msgs[i]
				got = append(got, m.segments)
				total += m.segments
				if m.segments > 1 {
					if m.bytes > maxGSOBytes {
						t.Errorf("message %d: %d bytes, over %d", i, m.bytes, maxGSOBytes)
					}
					if int(sb.hdrs[i].Hdr.Iovlen) != m.segments {
						t.Errorf("message %d: %d iovecs, want %d", i, sb.hdrs[i].Hdr.Iovlen, m.segments)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || total != len(tc.in) || sb.nd != len(tc.in) {
				t.Errorf("messages of %v datagrams (%d in all), want %v", got, total, tc.want)
			}
			sb.reset()
		})
	}
}

// TestOffloadWildcard: on loopback (which passes GSO packets whole, as
// GRO reads), both families, with wildcard listen sockets: a peer's GSO
// packet to an allocation is one GRO read, and its datagrams reach the
// client as ChannelData in one GSO message with IPV6_PKTINFO or
// IP_PKTINFO, from the address the client wrote to.
func TestOffloadWildcard(t *testing.T) {
	cfg := testConfig(t, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:0"), netip.MustParseAddrPort("[::]:0")}, []netip.Addr{lo4, lo6}, "127.0.0.0/8", "::1/128")
	r := startServer(t, cfg, Options{})
	o := &offloadRig{r: r}
	for i, server := range []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), r.listen[0].Port()),
		netip.AddrPortFrom(lo6, r.listen[1].Port()),
	} {
		t.Run(server.String(), func(t *testing.T) {
			var family []stun.Setter
			peerIP := lo4
			if server.Addr().Is6() {
				family, peerIP = []stun.Setter{familyIPv6}, lo6
			}
			rc := newRawClient(t, udpConn(t, nil, netip.AddrPortFrom(server.Addr(), 0)), server, testUser, testPass)
			relayed := rc.allocate(family...)
			peer := udpConn(t, nil, netip.AddrPortFrom(peerIP, 0))
			mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(peer.LocalAddr().(*net.UDPAddr).AddrPort()), channelNumber(0x4000)))
			groBefore, _, gsoBefore, _ := o.counters()
			dgrams := numberedRun(1000*i, 30, 1000, 999)
			sendGSO(t, peer, relayed[0], dgrams)
			// rc.read takes only datagrams from server: the source is
			// checked too.
			expect(t, "client", onChannel(0x4000, dgrams, unpaddedChannelData), func() ([]byte, error) { return rc.read(5 * time.Second) })
			// The worker counts GSO segments once sendmmsg returns,
			// which may be after the client has read them.
			waitFor(t, time.Second, "a GRO read and GSO segments counted", func() bool {
				groAfter, _, gsoAfter, _ := o.counters()
				return groAfter > groBefore && gsoAfter > gsoBefore
			})
		})
	}
}
