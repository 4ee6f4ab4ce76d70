package netcfg

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLinkUp(t *testing.T) {
	a, _, h, nc := pair(t)
	a.MustRun(t, "ip", "link", "set", "a0", "down")
	if err := nc.LinkUp("a0"); err != nil {
		t.Fatalf("LinkUp(a0) = %v", err)
	}
	l, err := h.LinkByName("a0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("a0 flags = %v after LinkUp, want up", l.Attrs().Flags)
	}
	err = nc.LinkUp("eth9")
	if !errors.Is(err, ErrNoLink) || !strings.Contains(err.Error(), `"eth9"`) || !strings.Contains(err.Error(), "a0") {
		t.Errorf("LinkUp(eth9) = %v, want ErrNoLink naming eth9 and listing a0", err)
	}
}

func TestWaitCarrier(t *testing.T) {
	a, b, _, nc := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nc.WaitCarrier(ctx, "a0"); err != nil {
		t.Fatalf("WaitCarrier(a0) with the peer up = %v, want nil", err)
	}

	for _, tt := range []struct {
		name   string
		setup  func()
		substr []string
	}{
		{
			name:   "peer down",
			setup:  func() { b.MustRun(t, "ip", "link", "set", "b0", "down") },
			substr: []string{"wait for carrier on a0", "still no carrier (operstate down)"},
		},
		{
			name:   "link down",
			setup:  func() { a.MustRun(t, "ip", "link", "set", "a0", "down") },
			substr: []string{"wait for carrier on a0", "operstate down", "administratively down"},
		},
	} {
		tt.setup()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := nc.WaitCarrier(ctx, "a0")
		cancel()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: WaitCarrier took %v past a 300ms deadline", tt.name, took)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: WaitCarrier(a0) = %v, want context.DeadlineExceeded", tt.name, err)
			continue
		}
		for _, s := range tt.substr {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: WaitCarrier(a0) = %q, want it to contain %q", tt.name, err, s)
			}
		}
	}
}

// A NIC whose driver is still probing has no link yet: WaitCarrier waits
// for it to appear, and says so if it never does.
func TestWaitCarrierLateLink(t *testing.T) {
	a, _, _, nc := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := nc.WaitCarrier(ctx, "late0")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `still no link "late0" (links present: a0)`) {
		t.Errorf("WaitCarrier(late0) with no such link = %v, want a deadline error listing a0", err)
	}

	go func() {
		time.Sleep(200 * time.Millisecond)
		a.Command("sh", "-c", "ip link add late0 type veth peer name late1 && ip link set late1 up && ip link set late0 up").Run()
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nc.WaitCarrier(ctx, "late0"); err != nil {
		t.Errorf("WaitCarrier(late0) for a link that appears later = %v, want nil", err)
	}
}

func TestLinks(t *testing.T) {
	a, _, h, nc := pair(t)
	// No IPv6 link-local address (nstest.Veth raised a0, so one is there
	// already: flush it), so the address list is exact.
	a.Sysctl(t, "net/ipv6/conf/a0/addr_gen_mode", "1")
	a.MustRun(t, "ip", "-6", "addr", "flush", "dev", "a0", "scope", "link")
	a.MustRun(t, "ip", "link", "set", "a0", "mtu", "1400")
	a.MustRun(t, "ip", "addr", "add", "198.18.0.2/24", "dev", "a0")
	a.MustRun(t, "ip", "addr", "add", "2001:2::2/64", "dev", "a0", "nodad")
	a.MustRun(t, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")

	la, err := h.LinkByName("a0")
	if err != nil {
		t.Fatal(err)
	}
	ld, err := h.LinkByName("d0")
	if err != nil {
		t.Fatal(err)
	}
	ld1, err := h.LinkByName("d1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := nc.Links()
	if err != nil {
		t.Fatalf("Links() = %v", err)
	}
	want := []Link{
		{
			Name: "a0", Index: la.Attrs().Index, Kind: "veth", MAC: la.Attrs().HardwareAddr, MTU: 1400,
			Up: true, Carrier: true, OperState: "up", XDP: "off",
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("2001:2::2/64")},
		},
		{
			Name: "d1", Index: ld1.Attrs().Index, Kind: "veth", MAC: ld1.Attrs().HardwareAddr, MTU: 1500,
			OperState: "down", XDP: "off",
		},
		{
			Name: "d0", Index: ld.Attrs().Index, Kind: "veth", MAC: ld.Attrs().HardwareAddr, MTU: 1500,
			OperState: "down", XDP: "off",
		},
	}
	if diff := cmp.Diff(want, got, netipEqual, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Links() mismatch (-want +got):\n%s", diff)
	}
	if len(got) > 0 {
		line := got[0].String()
		wantLine := "a0 veth " + la.Attrs().HardwareAddr.String() + " mtu 1400 up xdp=off 198.18.0.2/24 2001:2::2/64"
		if line != wantLine {
			t.Errorf("Links()[0].String() = %q, want %q", line, wantLine)
		}
	}
}
