package netcfg

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/relaybox/relaybox/netcfg/nstest"
	"github.com/vishvananda/netlink"
)

// dhcp4Server is a DHCPv4 server for one client in a test namespace: it
// offers 198.18.0.10/24 with router 198.18.0.1, a name server, a search
// domain and a classless route, and counts the requests.
type dhcp4Server struct {
	lease time.Duration

	mu       sync.Mutex
	discover int
	request  int // in the SELECTING state
	renew    int // from a client that has the address (ciaddr set)
}

// dhcp4ServerAddr is the server's address, and the router it hands out.
var dhcp4ServerAddr = netip.MustParseAddr("198.18.0.1")

// startDHCP4Server serves DHCPv4 on dev inside ns until the test ends. dev
// must have dhcp4ServerAddr.
func startDHCP4Server(t *testing.T, ns *nstest.NS, dev string, lease time.Duration) *dhcp4Server {
	t.Helper()
	s := &dhcp4Server{lease: lease}
	var srv *server4.Server
	if err := ns.Do(func() (err error) {
		srv, err = server4.NewServer(dev, nil, s.handle)
		return err
	}); err != nil {
		t.Fatalf("DHCPv4 server on %s in %s: %v", dev, ns.Name, err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

func (s *dhcp4Server) handle(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
	var typ dhcpv4.MessageType
	s.mu.Lock()
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		s.discover++
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if m.ClientIPAddr.IsUnspecified() {
			s.request++
		} else {
			s.renew++
		}
		typ = dhcpv4.MessageTypeAck
	default:
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	server := net.IP(dhcp4ServerAddr.AsSlice())
	reply, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(net.ParseIP("198.18.0.10")),
		dhcpv4.WithServerIP(server),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(server),
		dhcpv4.WithDNS(net.ParseIP("198.18.0.53")),
		dhcpv4.WithDomainSearchList("relay.test"),
		dhcpv4.WithLeaseTime(uint32(s.lease.Seconds())),
		// RFC 3442: the client must take the default route from here
		// and ignore the router option.
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: server},
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.ParseIP("198.19.0.0").To4(), Mask: net.CIDRMask(16, 32)}, Router: net.ParseIP("198.18.0.254")},
		)),
	)
	if err != nil {
		return
	}
	// The client has no address yet, or renews through a packet socket
	// that sees broadcasts too.
	conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
}

func (s *dhcp4Server) counts() (discover, request, renew int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.discover, s.request, s.renew
}

// routes lists the IPv4 routes of dev as "<dst> via <gw> proto <p> metric <m>".
func routes(t *testing.T, h *netlink.Handle, dev string) []string {
	t.Helper()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		dst := "default"
		if !isDefault(r) {
			dst = r.Dst.String()
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		out = append(out, s+" proto "+r.Protocol.String()+" metric "+strconv.Itoa(r.Priority))
	}
	return out
}

// DHCPv4 on every link (ip=dhcp): the lease, its routes, the name servers,
// the relay NIC found by its default route, and a renewal before the
// 4-second lease ends.
func TestConfigureDHCPv4(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	b.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "b0")
	srv := startDHCP4Server(t, b, "b0", 4*time.Second)

	cfg := parseConfig(t, kv{"ip", "dhcp"}, kv{"dhcp-timeout", "5"}, kv{"carrier-timeout", "2"})
	cfg.RelayLink = DefaultRoute
	c := configureIn(t, a, cfg)
	if c.err != nil {
		t.Fatalf("Configure = %v", c.err)
	}
	h := a.Netlink(t)
	if got, want := addrsOf(t, h, "a0", netlink.FAMILY_V4), []string{"198.18.0.10/24"}; !cmp.Equal(got, want) {
		t.Errorf("a0 has %q, want %q", got, want)
	}
	la, _ := h.LinkByName("a0")
	metric := strconv.Itoa(dhcpMetricBase + la.Attrs().Index)
	wantRoutes := []string{
		"default via 198.18.0.1 proto dhcp metric " + metric,
		"198.18.0.0/24 proto kernel metric 0",
		"198.19.0.0/16 via 198.18.0.254 proto dhcp metric " + metric,
	}
	if got := routes(t, h, "a0"); !cmp.Equal(got, wantRoutes) {
		t.Errorf("routes of a0 = %q, want %q", got, wantRoutes)
	}
	resolv, _ := os.ReadFile(c.resolv)
	if got, want := string(resolv), "# Written by relaybox from a0 dhcp.\nnameserver 198.18.0.53\nsearch relay.test\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	if c.n.Relay != "a0" {
		t.Errorf("Relay = %q, want a0, the link of the default route", c.n.Relay)
	}
	links := c.n.Links()
	if len(links) != 1 || links[0].Name != "a0" || !cmp.Equal(links[0].Gateways, []netip.Addr{dhcp4ServerAddr}, netipEqual) {
		t.Fatalf("Links() = %v, want a0 via %s", links, dhcp4ServerAddr)
	}
	first := links[0].Lease4
	if d := time.Until(first); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("Lease4 ends in %v, want about 4s", d)
	}

	// T1 is 2s: the client renews, and the lease moves on.
	if !waitFor(5*time.Second, func() bool {
		_, _, renew := srv.counts()
		return renew > 0 && c.n.Links()[0].Lease4.After(first)
	}) {
		d, r, n := srv.counts()
		t.Fatalf("no renewal within 5s: server saw %d discover, %d request, %d renew; Lease4 %v (first %v)", d, r, n, c.n.Links()[0].Lease4, first)
	}
	if !c.log.has("a0: DHCPv4 lease 198.18.0.10/24 via 198.18.0.1 renewed") {
		t.Errorf("log has no renewal line")
	}
	// The address outlives the first lease's 4 seconds, renewed.
	time.Sleep(time.Until(first.Add(500 * time.Millisecond)))
	if got := addrsOf(t, h, "a0", netlink.FAMILY_V4); !cmp.Equal(got, []string{"198.18.0.10/24"}) {
		t.Errorf("a0 has %q after the first lease ended, want the renewed 198.18.0.10/24", got)
	}
	if d, r, _ := srv.counts(); d != 1 || r != 1 {
		t.Errorf("server saw %d discover and %d request, want one each (renewals are not new leases)", d, r)
	}
}

// No DHCP server: Configure gives up after the DHCP timeout with an error
// that names the link, and the client keeps asking; when a server
// appears, the link gets its lease.
func TestConfigureDHCPv4Timeout(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	b.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "b0")

	c := configureIn(t, a, parseConfig(t, kv{"ip", "a0:dhcp"}, kv{"dhcp-timeout", "1"}))
	want := "a0: DHCPv4: no lease after 1s: no DHCP server answered; trying again in the background"
	if !errors.Is(c.err, ErrNoLease) || c.err.Error() != want {
		t.Errorf("Configure without a DHCP server = %v, want ErrNoLease: %q", c.err, want)
	}
	if c.took > 3*time.Second {
		t.Errorf("Configure took %v with a DHCP timeout of 1s", c.took)
	}
	if l := c.n.Links(); len(l) != 1 || !strings.Contains(l[0].Problem, "no lease yet") {
		t.Errorf("Links() = %v, want a0 with the problem no lease yet", l)
	}

	startDHCP4Server(t, b, "b0", time.Minute)
	if !waitFor(8*time.Second, func() bool {
		l := c.n.Links()
		return len(l) == 1 && len(l[0].Addrs) == 1 && l[0].Problem == ""
	}) {
		t.Fatalf("no lease within 8s of the server starting: %v", c.n.Links())
	}
	h := a.Netlink(t)
	if got := addrsOf(t, h, "a0", netlink.FAMILY_V4); !cmp.Equal(got, []string{"198.18.0.10/24"}) {
		t.Errorf("a0 has %q, want the late lease 198.18.0.10/24", got)
	}
}

// ip=dhcp with no NIC says so; with no carrier anywhere it keeps the links
// and DHCP tries in the background, so a cable plugged in later still gets
// the box online.
func TestConfigureDHCPv4Wildcard(t *testing.T) {
	t.Parallel()
	empty := nstest.New(t)
	c := configureIn(t, empty, parseConfig(t, kv{"ip", "dhcp"}, kv{"carrier-timeout", "1"}))
	if !errors.Is(c.err, ErrNoLink) || !strings.Contains(c.err.Error(), "ip=dhcp: no such link: no Ethernet link to configure (links present: none besides loopback") {
		t.Errorf("Configure(ip=dhcp) without a NIC = %v, want ErrNoLink saying there is no link", c.err)
	}

	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	b.MustRun(t, "ip", "link", "set", "b0", "down")
	b.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "b0")
	c = configureIn(t, a, parseConfig(t, kv{"ip", "dhcp"}, kv{"carrier-timeout", "1"}))
	if !errors.Is(c.err, ErrNoCarrier) || !strings.Contains(c.err.Error(), "a0: DHCPv4: no carrier; trying again in the background") {
		t.Errorf("Configure(ip=dhcp) without carrier = %v, want ErrNoCarrier naming a0", c.err)
	}
	b.MustRun(t, "ip", "link", "set", "b0", "up")
	startDHCP4Server(t, b, "b0", time.Minute)
	if !waitFor(8*time.Second, func() bool {
		l := c.n.Links()
		return len(l) == 1 && len(l[0].Addrs) == 1
	}) {
		t.Fatalf("no lease within 8s of carrier and a server: %v", c.n.Links())
	}
}
