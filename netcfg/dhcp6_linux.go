package netcfg

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dhcp6Retransmit is the first retransmission timeout of a DHCPv6
// exchange, doubling after (RFC 8415's SOL_TIMEOUT is 1s).
const dhcp6Retransmit = time.Second

// lease6 is a DHCPv6 lease of addresses (IA_NA). DHCPv6 gives no routes and
// no prefix length: the addresses are /128 and the on-link prefix and
// default route come from router advertisements, which a DHCPv6 link
// accepts (accept_ra=2).
type lease6 struct {
	clientID dhcpv6.DUID
	serverID dhcpv6.DUID
	iana     *dhcpv6.OptIANA
	addrs    []lease6Addr
	dns      []netip.Addr
	search   []string
	t        leaseTiming
}

type lease6Addr struct {
	addr             netip.Addr
	preferred, valid time.Duration
}

func (l *lease6) timing() leaseTiming { return l.t }
func (l *lease6) String() string {
	s := make([]string, len(l.addrs))
	for i, a := range l.addrs {
		s[i] = a.addr.String()
	}
	return strings.Join(s, ",")
}

func (l *lease6) prefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(l.addrs))
	for i, a := range l.addrs {
		out[i] = netip.PrefixFrom(a.addr, 128)
	}
	return out
}

// dhcp6 is DHCPv6 on one link.
type dhcp6 struct {
	s  *session
	p  *linkPlan
	st *entryState
}

// dhcp6 runs DHCPv6 on the link: see runDHCP.
func (s *session) dhcp6(ctx context.Context, p *linkPlan, st *entryState, e IPConfig) error {
	proto := &dhcp6{s: s, p: p, st: st}
	return s.runDHCP(ctx, &dhcpClient{s: s, p: p, st: st, what: "DHCPv6", proto: proto})
}

// exchange runs a DHCPv6 exchange bounded by timeout: Solicit (with rapid
// commit, falling back to Request after an Advertise), or Renew, or
// Rebind. The client's socket is bound to the link-local address, so it
// waits for duplicate address detection of that address first.
func (d *dhcp6) exchange(ctx context.Context, timeout time.Duration, old lease, rebind bool) (lease, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ll, err := d.linkLocal(tctx)
	if err != nil {
		return nil, err
	}
	var conn net.PacketConn
	err = d.s.c.run(func() (err error) {
		// A numeric zone: Go resolves zone names through a cache of the
		// process's interfaces, which may belong to another namespace.
		conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: ll.AsSlice(), Port: dhcpv6.DefaultClientPort, Zone: strconv.Itoa(d.p.index)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open a DHCPv6 socket on %s: %w", d.p.name, err)
	}
	client, err := nclient6.NewWithConn(conn, d.p.mac, nclient6.WithTimeout(dhcp6Retransmit), nclient6.WithRetry(-1))
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer client.Close()

	var reply *dhcpv6.Message
	if old == nil {
		reply, err = client.RapidSolicit(tctx)
	} else {
		var msg *dhcpv6.Message
		if msg, err = extendMessage(old.(*lease6), rebind); err == nil {
			reply, err = client.SendAndRead(tctx, client.RemoteAddr(), msg, nclient6.IsMessageType(dhcpv6.MessageTypeReply))
		}
	}
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w after %v: no DHCPv6 server answered", ErrNoLease, timeout)
		}
		return nil, err
	}
	return parseLease6(reply, time.Now())
}

// extendMessage is the Renew (to the lease's server) or Rebind (to any)
// for l.
func extendMessage(l *lease6, rebind bool) (*dhcpv6.Message, error) {
	msg, err := dhcpv6.NewMessage()
	if err != nil {
		return nil, err
	}
	msg.MessageType = dhcpv6.MessageTypeRenew
	msg.AddOption(dhcpv6.OptClientID(l.clientID))
	if rebind {
		msg.MessageType = dhcpv6.MessageTypeRebind
	} else {
		msg.AddOption(dhcpv6.OptServerID(l.serverID))
	}
	msg.AddOption(dhcpv6.OptElapsedTime(0))
	msg.AddOption(l.iana)
	msg.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	return msg, nil
}

// parseLease6 reads the addresses, lifetimes and name servers of a Reply.
func parseLease6(reply *dhcpv6.Message, now time.Time) (*lease6, error) {
	if st := reply.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return nil, fmt.Errorf("%w: %s %s", errRefused, st.StatusCode, st.StatusMessage)
	}
	ia := reply.Options.OneIANA()
	if ia == nil {
		return nil, errors.New("the DHCPv6 reply has no addresses (IA_NA); is the server configured to give addresses, or only other options?")
	}
	if st := ia.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return nil, fmt.Errorf("%w: %s %s", errRefused, st.StatusCode, st.StatusMessage)
	}
	l := &lease6{clientID: reply.Options.ClientID(), serverID: reply.Options.ServerID(), iana: ia}
	minPreferred, minValid := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for _, a := range ia.Options.Addresses() {
		ip, ok := netip.AddrFromSlice(a.IPv6Addr)
		if !ok || !ip.Is6() || !ip.IsGlobalUnicast() || a.ValidLifetime == 0 {
			continue
		}
		l.addrs = append(l.addrs, lease6Addr{ip, a.PreferredLifetime, a.ValidLifetime})
		minPreferred, minValid = min(minPreferred, a.PreferredLifetime), min(minValid, a.ValidLifetime)
	}
	if len(l.addrs) == 0 {
		return nil, errors.New("the DHCPv6 reply has no usable address")
	}
	l.t = leaseTiming{start: now, length: minValid}
	if minValid >= math.MaxUint32*time.Second {
		l.t.length = forever
	} else {
		// RFC 8415 21.4: T1 and T2 of zero leave them to the client,
		// which uses 0.5 and 0.8 of the shortest preferred lifetime.
		l.t.t1, l.t.t2 = ia.T1, ia.T2
		if l.t.t1 <= 0 || l.t.t1 > l.t.length {
			l.t.t1 = minPreferred / 2
		}
		if l.t.t2 < l.t.t1 || l.t.t2 > l.t.length {
			l.t.t2 = minPreferred / 5 * 4
		}
		l.t.t1, l.t.t2 = max(l.t.t1, minRenewRetry), max(l.t.t2, l.t.t1)
	}
	for _, d := range reply.Options.DNS() {
		if a, ok := netip.AddrFromSlice(d); ok && checkDNS(a.Unmap()) == nil && !slices.Contains(l.dns, a.Unmap()) {
			l.dns = append(l.dns, a.Unmap())
		}
	}
	if labels := reply.Options.DomainSearchList(); labels != nil {
		l.search = append(l.search, labels.Labels...)
	}
	return l, nil
}

// linkLocal waits for a usable link-local address on the link.
func (d *dhcp6) linkLocal(ctx context.Context) (netip.Addr, error) {
	var ll netip.Addr
	err := poll(ctx, func() (bool, string, error) {
		l, err := d.s.c.link(d.p.name)
		if err != nil {
			return false, "", err
		}
		addrs, err := d.s.c.addrList(l, netlink.FAMILY_V6)
		if err != nil {
			return false, "", err
		}
		for _, a := range addrs {
			p, ok := prefixOf(a.IPNet)
			if ok && p.Addr().IsLinkLocalUnicast() && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
				ll = p.Addr()
				return true, "", nil
			}
		}
		return false, "no usable link-local IPv6 address yet (duplicate address detection runs, or IPv6 is off on the link)", nil
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v", ErrNoLease, err)
	}
	return ll, nil
}

// apply adds the leased addresses with their lifetimes and removes those of
// old that are gone.
func (d *dhcp6) apply(ln, oldl lease) error {
	l := ln.(*lease6)
	link, err := d.s.c.link(d.p.name)
	if err != nil {
		return err
	}
	for _, a := range l.addrs {
		addr := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a.addr, 128))}
		if a.valid < math.MaxUint32*time.Second {
			addr.ValidLft = max(int(a.valid.Seconds()), 1)
			addr.PreferedLft = int(a.preferred.Seconds())
		}
		if err := d.s.c.h.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("add address %s to %s: %w", a.addr, d.p.name, err)
		}
	}
	if oldl != nil {
		for _, a := range oldl.(*lease6).addrs {
			if !slices.ContainsFunc(l.addrs, func(b lease6Addr) bool { return b.addr == a.addr }) {
				_ = d.s.c.h.AddrDel(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a.addr, 128))})
			}
		}
	}
	d.s.n.set(d.st, result{addrs: l.prefixes(), gateway: d.s.routerOf(link.Attrs().Index),
		expiry: l.t.end(), dns: l.dns, search: l.search})
	return nil
}

// drop removes the lease's addresses.
func (d *dhcp6) drop(ln lease) {
	link, err := d.s.c.link(d.p.name)
	if err != nil {
		return
	}
	for _, a := range ln.(*lease6).addrs {
		_ = d.s.c.h.AddrDel(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a.addr, 128))})
	}
}
