package netcfg

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/relaybox/relaybox/netcfg/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// advertise sends a router advertisement for prefix from dev in ns every
// 200ms until the test ends, as a router would (radvd's job, done here so
// the test needs no daemon). The autonomous flag asks for SLAAC.
func advertise(t *testing.T, ns *nstest.NS, dev string, prefix netip.Prefix) {
	t.Helper()
	var (
		conn *icmp.PacketConn
		ifi  *net.Interface
	)
	if err := ns.Do(func() (err error) {
		if ifi, err = net.InterfaceByName(dev); err != nil {
			return err
		}
		conn, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	}); err != nil {
		t.Fatalf("ICMPv6 socket in %s: %v", ns.Name, err)
	}
	// RFC 4861 4.2: cur hop limit, flags (no M, no O), router lifetime,
	// reachable time, retrans timer; then one prefix information option:
	// type 3, length 4 (x8 bytes), prefix length, flags L and A, valid and
	// preferred lifetimes, reserved, the prefix.
	body := make([]byte, 12+32)
	body[0] = 64
	binary.BigEndian.PutUint16(body[2:], 1800)
	pi := body[12:]
	pi[0], pi[1], pi[2], pi[3] = 3, 4, byte(prefix.Bits()), 0xc0
	binary.BigEndian.PutUint32(pi[4:], 86400)
	binary.BigEndian.PutUint32(pi[8:], 14400)
	a := prefix.Addr().As16()
	copy(pi[16:], a[:])
	msg, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Neighbour discovery drops what has not a hop limit of 255; the
	// kernel fills in the checksum.
	cm := &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}
	allNodes := &net.IPAddr{IP: net.ParseIP("ff02::1")}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			conn.IPv6PacketConn().WriteTo(msg, cm, allNodes)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait(); conn.Close() })
}

// linkLocalOf is the link-local address of dev.
func linkLocalOf(t *testing.T, h *netlink.Handle, dev string) netip.Addr {
	t.Helper()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatalf("%s has no link-local address", dev)
	return netip.Addr{}
}

// SLAAC on the relay NIC: an address from the advertised prefix, and a
// default route that survives the relay NIC's forwarding being turned on
// (with accept_ra=1 the kernel would drop it then).
func TestConfigureSLAAC(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	noDAD(t, a)
	noDAD(t, b)
	nstest.Veth(t, a, "a0", b, "b0")
	prefix := netip.MustParsePrefix("2001:2:0:1::/64")
	advertise(t, b, "b0", prefix)
	router := linkLocalOf(t, b.Netlink(t), "b0")

	cfg := parseConfig(t, kv{"ip", "a0:auto6"}, kv{"dhcp-timeout", "5"})
	cfg.RelayLink = "a0"
	c := configureIn(t, a, cfg)
	if c.err != nil {
		t.Fatalf("Configure = %v", c.err)
	}
	l := c.n.Links()
	if len(l) != 1 || len(l[0].Addrs) != 1 || !prefix.Contains(l[0].Addrs[0].Addr()) || l[0].Addrs[0].Bits() != 64 {
		t.Fatalf("Links() = %v, want a0 with an address in %s", l, prefix)
	}
	if !cmp.Equal(l[0].Gateways, []netip.Addr{router}, netipEqual) {
		t.Errorf("Links()[0].Gateways = %v, want the router %s", l[0].Gateways, router)
	}
	if got := readSysctl(t, a, "net/ipv6/conf/a0/forwarding"); got != "1" {
		t.Fatalf("a0 forwarding = %s, want 1 (it is the relay NIC)", got)
	}
	for key, want := range map[string]string{"accept_ra": "2", "autoconf": "1"} {
		if got := readSysctl(t, a, "net/ipv6/conf/a0/"+key); got != want {
			t.Errorf("a0 %s = %s, want %s", key, got, want)
		}
	}
	h := a.Netlink(t)
	if got := defaultRoutes(t, h, netlink.FAMILY_V6); len(got) != 1 || !strings.HasPrefix(got[0], "via "+router.String()+" dev a0 proto ra") {
		t.Errorf("IPv6 default routes with forwarding on = %q, want one via %s dev a0 proto ra", got, router)
	}
}

// No router: the error names the link and says what to look for.
func TestConfigureSLAACTimeout(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	c := configureIn(t, a, parseConfig(t, kv{"ip", "a0:auto6"}, kv{"dhcp-timeout", "1"}))
	if c.err == nil || !strings.Contains(c.err.Error(), "a0: SLAAC: no lease: no global IPv6 address from router advertisements after") ||
		!strings.Contains(c.err.Error(), "is a router advertising") {
		t.Errorf("Configure without a router = %v, want an error naming a0 and SLAAC", c.err)
	}
	if !c.log.has("a0: waiting for a router advertisement") {
		t.Errorf("log has no progress line")
	}
}

// dhcp6Server leases 2001:2:0:2::10 for 4s (T1 1s, T2 2s), with a name
// server, and counts what it is asked.
type dhcp6Server struct {
	duid dhcpv6.DUID
	mu   sync.Mutex
	seen map[dhcpv6.MessageType]int
}

func startDHCP6Server(t *testing.T, ns *nstest.NS, dev string) *dhcp6Server {
	t.Helper()
	s := &dhcp6Server{
		duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}},
		seen: map[dhcpv6.MessageType]int{},
	}
	var srv *server6.Server
	if err := ns.Do(func() (err error) {
		srv, err = server6.NewServer(dev, nil, s.handle)
		return err
	}); err != nil {
		t.Fatalf("DHCPv6 server on %s in %s: %v", dev, ns.Name, err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

func (s *dhcp6Server) handle(conn net.PacketConn, peer net.Addr, m dhcpv6.DHCPv6) {
	msg, ok := m.(*dhcpv6.Message)
	if !ok {
		return
	}
	s.mu.Lock()
	s.seen[msg.MessageType]++
	s.mu.Unlock()
	ia := msg.Options.OneIANA()
	if ia == nil {
		return
	}
	reply, err := dhcpv6.NewReplyFromMessage(msg, dhcpv6.WithServerID(s.duid), dhcpv6.WithDNS(net.ParseIP("2001:2::53")))
	if err != nil {
		return
	}
	reply.AddOption(&dhcpv6.OptIANA{IaId: ia.IaId, T1: time.Second, T2: 2 * time.Second, Options: dhcpv6.IdentityOptions{
		Options: []dhcpv6.Option{&dhcpv6.OptIAAddress{
			IPv6Addr: net.ParseIP("2001:2:0:2::10"), PreferredLifetime: 3 * time.Second, ValidLifetime: 4 * time.Second,
		}},
	}})
	conn.WriteTo(reply.ToBytes(), peer)
}

func (s *dhcp6Server) count(t dhcpv6.MessageType) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[t]
}

// DHCPv6 with router advertisements for the route: the leased /128, the
// name server in resolv.conf, the lease renewed at T1.
func TestConfigureDHCPv6(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	noDAD(t, a)
	noDAD(t, b)
	nstest.Veth(t, a, "a0", b, "b0")
	srv := startDHCP6Server(t, b, "b0")

	c := configureIn(t, a, parseConfig(t, kv{"ip", "a0:dhcp6"}, kv{"dhcp-timeout", "5"}, kv{"dns", "198.18.0.53"}))
	if c.err != nil {
		t.Fatalf("Configure = %v", c.err)
	}
	h := a.Netlink(t)
	if got := addrsOf(t, h, "a0", netlink.FAMILY_V6); !slices.Contains(got, "2001:2:0:2::10/128") {
		t.Errorf("a0 has %q, want 2001:2:0:2::10/128", got)
	}
	if got := readSysctl(t, a, "net/ipv6/conf/a0/autoconf"); got != "0" {
		t.Errorf("a0 autoconf = %s, want 0 with dhcp6 alone", got)
	}
	resolv, _ := os.ReadFile(c.resolv)
	if got, want := string(resolv), "# Written by relaybox from configuration, a0 dhcp6.\nnameserver 198.18.0.53\nnameserver 2001:2::53\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	l := c.n.Links()
	if len(l) != 1 || l[0].Lease6.IsZero() || !cmp.Equal(l[0].Addrs, []netip.Prefix{netip.MustParsePrefix("2001:2:0:2::10/128")}, netipEqual) {
		t.Fatalf("Links() = %v, want a0 with the DHCPv6 lease", l)
	}
	first := l[0].Lease6
	if !waitFor(4*time.Second, func() bool {
		return srv.count(dhcpv6.MessageTypeRenew) > 0 && c.n.Links()[0].Lease6.After(first)
	}) {
		t.Errorf("no renewal within 4s: server saw %v; Lease6 %v (first %v)", srv.seen, c.n.Links()[0].Lease6, first)
	}
}
