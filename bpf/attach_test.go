//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{in: "off", want: ModeOff},
		{in: "generic", want: ModeGeneric},
		{in: "native", want: ModeNative},
		{in: "auto", want: ModeAuto},
		{in: "Native", wantErr: true},
		{in: "skb", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := ParseMode(tc.in)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "want off, generic, native or auto") {
				t.Errorf("ParseMode(%q) = %v, %v, want an error listing the modes", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v, want %v, nil", tc.in, got, err, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("ParseMode(%q).String() = %q, want %q", tc.in, s, tc.in)
		}
	}
	if got, want := Mode(7).String(), "Mode(7)"; got != want {
		t.Errorf("Mode(7).String() = %q, want %q", got, want)
	}
}

// xdpAttached returns the kernel's view of XDP on ifname in ns
// (nl.XDP_ATTACHED_*) and the attached program's ID.
func xdpAttached(t *testing.T, ns *nstest.NS, ifname string) (mode uint32, progID uint32) {
	t.Helper()
	l, err := ns.Netlink(t).LinkByName(ifname)
	if err != nil {
		t.Fatalf("LinkByName(%s) = %v", ifname, err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return nl.XDP_ATTACHED_NONE, 0
	}
	return x.AttachMode, x.ProgId
}

// relayPair gives the test a relay namespace with x0 and a client namespace
// with x1, linked by a veth and addressed from the benchmarking ranges.
func relayPair(t *testing.T) (relay, client *nstest.NS) {
	t.Helper()
	relay, client = nstest.New(t), nstest.New(t)
	nstest.Veth(t, relay, "x0", client, "x1")
	for _, a := range []struct {
		ns     *nstest.NS
		ifname string
		addrs  []netip.Addr
	}{
		{relay, "x0", []netip.Addr{relay4, relay6}},
		{client, "x1", []netip.Addr{client4, client6}},
	} {
		for _, addr := range a.addrs {
			bits := 24
			args := []string{"addr", "add"}
			if addr.Is6() {
				bits = 64
				args = []string{"-6", "addr", "add"}
			}
			args = append(args, netip.PrefixFrom(addr, bits).String(), "dev", a.ifname)
			if addr.Is6() {
				args = append(args, "nodad") // usable at once
			}
			a.ns.MustRun(t, "ip", args...)
		}
	}
	return relay, client
}

// sendUDP sends each payload from ns to dst through the stack. The socket
// is unconnected: nothing listens at dst, and the ICMP errors coming back
// would fail the writes of a connected one.
func sendUDP(t *testing.T, ns *nstest.NS, dst netip.AddrPort, payloads ...[]byte) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, p := range payloads {
			if _, err := c.WriteToUDPAddrPort(p, dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send UDP to %s: %v", dst, err)
	}
}

// waitCounters polls until the counters have moved by want since before,
// for at most a few seconds (the first packets wait for ARP/ND).
func waitCounters(t *testing.T, p *Program, before, want map[Class]Counter) {
	t.Helper()
	var diff string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if diff = cmp.Diff(want, delta(before, readCounters(t, p))); diff == "" {
			return
		}
	}
	t.Errorf("counter deltas after sending (-want +got):\n%s", diff)
}

func TestAttach(t *testing.T) {
	for _, tc := range []struct {
		want, got Mode
		kernel    uint32
	}{
		{ModeAuto, ModeNative, nl.XDP_ATTACHED_DRV},
		{ModeNative, ModeNative, nl.XDP_ATTACHED_DRV},
		{ModeGeneric, ModeGeneric, nl.XDP_ATTACHED_SKB},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			relay, client := relayPair(t)
			p := loadProgram(t, testConfig)
			info, err := p.objs.RelayXdp.Info()
			if err != nil {
				t.Fatal(err)
			}
			progID, _ := info.ID()

			var a *Attachment
			if err := relay.Do(func() (err error) {
				a, err = p.Attach("x0", tc.want)
				return err
			}); err != nil {
				t.Fatalf("Attach(x0, %s) = %v", tc.want, err)
			}
			t.Cleanup(func() { a.Close() })
			if a.Iface != "x0" || a.Mode != tc.got || a.NativeErr != nil {
				t.Errorf("Attach(x0, %s) = {Iface: %s, Mode: %s, NativeErr: %v}, want {x0, %s, <nil>}", tc.want, a.Iface, a.Mode, a.NativeErr, tc.got)
			}
			if mode, id := xdpAttached(t, relay, "x0"); mode != tc.kernel || id != uint32(progID) {
				t.Errorf("after Attach(x0, %s): kernel says mode %d prog %d, want mode %d prog %d", tc.want, mode, id, tc.kernel, progID)
			}

			before := readCounters(t, p)
			sendUDP(t, client, netip.AddrPortFrom(relay4, 3478), stunMessage(0x0001, 0), stunMessage(0x0001, 0), stunMessage(0x0001, 0))
			sendUDP(t, client, netip.AddrPortFrom(relay6, 3478), channelData(0x4000, []byte("0123456789")), channelData(0x4000, []byte("0123456789")))
			sendUDP(t, client, netip.AddrPortFrom(relay4, 50000), []byte("hello"))
			sendUDP(t, client, netip.AddrPortFrom(relay6, 3478), []byte{0x80, 0, 0, 0})
			sendUDP(t, client, netip.AddrPortFrom(relay4, 9), []byte("discard"))
			waitCounters(t, p, before, map[Class]Counter{
				ClassSTUN:        {3, 60},
				ClassChannelData: {2, 28},
				ClassAllocation:  {1, 5},
				ClassOther:       {1, 4},
			})

			if err := a.Close(); err != nil {
				t.Errorf("Attachment.Close() = %v", err)
			}
			if mode, _ := xdpAttached(t, relay, "x0"); mode != nl.XDP_ATTACHED_NONE {
				t.Errorf("after Close: kernel says XDP mode %d on x0, want none", mode)
			}
		})
	}
}

// TestAttachFallback uses a bridge: its driver has no native XDP.
func TestAttachFallback(t *testing.T) {
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	ns.MustRun(t, "ip", "link", "set", "br0", "up")
	p := loadProgram(t, testConfig)

	var a *Attachment
	err := ns.Do(func() (err error) {
		if a, err := p.Attach("br0", ModeNative); err == nil {
			a.Close()
			return errors.New("Attach(br0, native) = nil error, want EOPNOTSUPP")
		} else if !errors.Is(err, unix.EOPNOTSUPP) || !strings.Contains(err.Error(), "use xdp mode generic or auto") {
			return fmt.Errorf("Attach(br0, native) = %v, want EOPNOTSUPP saying to use generic or auto", err)
		}
		a, err = p.Attach("br0", ModeAuto)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Mode != ModeGeneric || !errors.Is(a.NativeErr, unix.EOPNOTSUPP) {
		t.Errorf("Attach(br0, auto) = {Mode: %s, NativeErr: %v}, want {generic, EOPNOTSUPP}", a.Mode, a.NativeErr)
	}
	if mode, _ := xdpAttached(t, ns, "br0"); mode != nl.XDP_ATTACHED_SKB {
		t.Errorf("after Attach(br0, auto): kernel says XDP mode %d, want generic (%d)", mode, nl.XDP_ATTACHED_SKB)
	}
}

func TestAttachErrors(t *testing.T) {
	relay, _ := relayPair(t)
	p := loadProgram(t, testConfig)
	err := relay.Do(func() error {
		// Occupy x0 so that every later attach to it meets a program.
		a, err := p.Attach("x0", ModeNative)
		if err != nil {
			return err
		}
		defer a.Close()

		for _, tc := range []struct {
			ifname  string
			mode    Mode
			wantErr string
		}{
			{"nosuch0", ModeAuto, "attach xdp to nosuch0: "},
			{"x0", ModeOff, "cannot attach in mode off"},
			{"x0", Mode(9), "cannot attach in mode Mode(9)"},
			{"x0", ModeNative, "another XDP program is attached to x0"},
			{"x0", ModeGeneric, "another XDP program is attached to x0"},
			{"x0", ModeAuto, "another XDP program is attached to x0"},
		} {
			a, err := p.Attach(tc.ifname, tc.mode)
			if err == nil {
				a.Close()
				t.Errorf("Attach(%s, %s) = nil error, want %q", tc.ifname, tc.mode, tc.wantErr)
			} else if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Attach(%s, %s) = %v, want an error containing %q", tc.ifname, tc.mode, err, tc.wantErr)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAttachRedirectTarget: a native attachment makes its interface a
// redirect target until Close; a generic one does not.
func TestAttachRedirectTarget(t *testing.T) {
	relay, _ := relayPair(t)
	p := loadProgram(t, testConfig)
	targets := func() []uint32 {
		var k, v uint32
		var out []uint32
		it := p.objs.TxPorts.Iterate()
		for it.Next(&k, &v) {
			out = append(out, k)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	err := relay.Do(func() error {
		iface, err := net.InterfaceByName("x0")
		if err != nil {
			return err
		}
		for _, mode := range []Mode{ModeNative, ModeGeneric} {
			a, err := p.Attach("x0", mode)
			if err != nil {
				return err
			}
			var want []uint32
			if mode == ModeNative {
				want = []uint32{uint32(iface.Index)}
			}
			if got := targets(); !cmp.Equal(got, want) {
				t.Errorf("attached in %s mode: redirect targets %v, want %v", mode, got, want)
			}
			if err := a.Close(); err != nil {
				return err
			}
			if got := targets(); len(got) != 0 {
				t.Errorf("after Close of the %s attachment: redirect targets %v, want none", mode, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
