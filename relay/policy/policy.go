// Package policy decides which peer addresses a TURN allocation may reach.
//
// A relay that forwards to any address a client names is an open door into
// the networks behind it: its loopback, the operator's private ranges, cloud
// metadata services on link-local addresses, and the relay's own listen port.
// So the default is to refuse every address that is not ordinary global
// unicast (brief §3), and the operator opens what they need with an
// allow-list and closes more with a deny-list.
//
// IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) IPv6
// addresses are turned into their IPv4 address before anything is checked:
// coturn had CVEs from checking ::ffff:127.0.0.1 as if it were an IPv6
// address. Callers should relay to the normalised address (Normalize) too,
// so that what was checked is what is used.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
)

// Verdict is the outcome of a check: Allow, or the reason an address is
// refused. Its String is a short label fit for logs and metric labels.
type Verdict uint8

// The verdicts. Every one but Allow refuses the address.
const (
	Allow         Verdict = iota
	Invalid               // not an address, a zoned address, or port 0
	Denied                // on the operator's deny-list
	Self                  // one of the relay's own addresses or listen ports
	Unspecified           // 0.0.0.0, ::
	Loopback              // 127/8, ::1
	Private               // RFC 1918, fc00::/7
	Shared                // 100.64/10, carrier-grade NAT
	LinkLocal             // 169.254/16, fe80::/10
	Multicast             // 224/4, ff00::/8
	Broadcast             // 255.255.255.255
	Reserved              // 0/8, 240/4, IETF protocol assignments, non-global IPv6
	Documentation         // TEST-NETs, 2001:db8::/32, 3fff::/20
	Benchmarking          // 198.18/15, 2001:2::/48
	Translation           // NAT64, 6to4, Teredo: they embed an IPv4 address
)

var verdictNames = [...]string{
	Allow:         "allow",
	Invalid:       "invalid",
	Denied:        "deny-list",
	Self:          "self",
	Unspecified:   "unspecified",
	Loopback:      "loopback",
	Private:       "private",
	Shared:        "shared",
	LinkLocal:     "link-local",
	Multicast:     "multicast",
	Broadcast:     "broadcast",
	Reserved:      "reserved",
	Documentation: "documentation",
	Benchmarking:  "benchmarking",
	Translation:   "translation",
}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Allowed reports whether v lets the address through.
func (v Verdict) Allowed() bool { return v == Allow }

// Range is one default-denied block and why.
type Range struct {
	Prefix  netip.Prefix
	Verdict Verdict
}

func (r Range) String() string { return r.Prefix.String() + " " + r.Verdict.String() }

// DefaultDeny lists the blocks refused unless the allow-list opens them,
// most specific first so that the verdict names the narrowest block (2001:2::/48
// is benchmarking, not the IETF block 2001::/23 around it). IPv6 outside
// 2000::/3 is refused as reserved even when not listed: nothing outside it is
// global unicast today.
var DefaultDeny = []Range{
	{netip.MustParsePrefix("0.0.0.0/32"), Unspecified},
	{netip.MustParsePrefix("0.0.0.0/8"), Reserved},
	{netip.MustParsePrefix("10.0.0.0/8"), Private},
	{netip.MustParsePrefix("100.64.0.0/10"), Shared},
	{netip.MustParsePrefix("127.0.0.0/8"), Loopback},
	{netip.MustParsePrefix("169.254.0.0/16"), LinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), Private},
	{netip.MustParsePrefix("192.0.0.0/24"), Reserved},
	{netip.MustParsePrefix("192.0.2.0/24"), Documentation},
	{netip.MustParsePrefix("192.88.99.0/24"), Translation},
	{netip.MustParsePrefix("192.168.0.0/16"), Private},
	{netip.MustParsePrefix("198.18.0.0/15"), Benchmarking},
	{netip.MustParsePrefix("198.51.100.0/24"), Documentation},
	{netip.MustParsePrefix("203.0.113.0/24"), Documentation},
	{netip.MustParsePrefix("224.0.0.0/4"), Multicast},
	{netip.MustParsePrefix("255.255.255.255/32"), Broadcast},
	{netip.MustParsePrefix("240.0.0.0/4"), Reserved},

	{netip.MustParsePrefix("::/128"), Unspecified},
	{netip.MustParsePrefix("::1/128"), Loopback},
	{netip.MustParsePrefix("64:ff9b::/96"), Translation},
	{netip.MustParsePrefix("64:ff9b:1::/48"), Translation},
	{netip.MustParsePrefix("100::/64"), Reserved},
	{netip.MustParsePrefix("2001:2::/48"), Benchmarking},
	{netip.MustParsePrefix("2001:db8::/32"), Documentation},
	{netip.MustParsePrefix("2001::/32"), Translation},
	{netip.MustParsePrefix("2001::/23"), Reserved},
	{netip.MustParsePrefix("2002::/16"), Translation},
	{netip.MustParsePrefix("3fff::/20"), Documentation},
	{netip.MustParsePrefix("5f00::/16"), Reserved},
	{netip.MustParsePrefix("fc00::/7"), Private},
	{netip.MustParsePrefix("fe80::/10"), LinkLocal},
	{netip.MustParsePrefix("fec0::/10"), Reserved},
	{netip.MustParsePrefix("ff00::/8"), Multicast},
}

var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// Config is what the operator decides.
type Config struct {
	// Allow opens blocks that DefaultDeny or Self would refuse. Key: allow-peer.
	Allow []netip.Prefix
	// Deny refuses blocks that would be allowed; it wins over Allow. Key: deny-peer.
	Deny []netip.Prefix
	// Self are the relay's own addresses (relay and listen addresses),
	// refused unless Allow names them: two clients of one relay reaching each
	// other through their relayed addresses need that.
	Self []netip.Addr
	// Listen are the relay's STUN/TURN service addresses. They are refused
	// even when Allow covers them: relayed traffic must never reach the
	// relay's own request port, where it would be taken for a client's.
	Listen []netip.AddrPort
}

// Policy checks peer addresses. It is immutable and safe for concurrent use.
type Policy struct {
	allow, deny []netip.Prefix
	self        []netip.Addr
	listen      []netip.AddrPort
}

// New checks c and returns its Policy. Errors name the key at fault.
func New(c Config) (*Policy, error) {
	p := &Policy{}
	var errs []error
	var err error
	if p.allow, err = normalizePrefixes("allow-peer", c.Allow); err != nil {
		errs = append(errs, err)
	}
	if p.deny, err = normalizePrefixes("deny-peer", c.Deny); err != nil {
		errs = append(errs, err)
	}
	for _, a := range c.Self {
		if a.IsValid() {
			p.self = append(p.self, Normalize(a))
		}
	}
	for _, a := range c.Listen {
		if a.IsValid() {
			p.listen = append(p.listen, netip.AddrPortFrom(Normalize(a.Addr()), a.Port()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// normalizePrefixes rewrites IPv4-mapped prefixes (::ffff:10.0.0.0/104) as
// IPv4 ones, since the addresses they are matched against are normalised.
func normalizePrefixes(key string, in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	var errs []error
	for _, p := range in {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("%s: empty or invalid prefix; want a CIDR such as 198.18.0.0/15 or 2001:2::/48", key))
			continue
		}
		if p.Addr().Zone() != "" {
			errs = append(errs, fmt.Errorf("%s %s: a prefix cannot have a zone; drop the %%%s", key, p, p.Addr().Zone()))
			continue
		}
		if p != p.Masked() {
			errs = append(errs, fmt.Errorf("%s %s: host bits set; did you mean %s?", key, p, p.Masked()))
			continue
		}
		// A masked prefix with an IPv4-mapped address has at least 96 bits.
		if a := p.Addr(); a.Is4In6() {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// Normalize returns the address a peer address really names: the IPv4
// address inside an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible
// (::a.b.c.d) IPv6 address, a without its zone, or a itself. :: and ::1 are
// kept: they are IPv6's own unspecified and loopback addresses.
func Normalize(a netip.Addr) netip.Addr {
	a = a.WithZone("")
	if a.Is4In6() {
		return a.Unmap()
	}
	if a.Is6() {
		b := a.As16()
		loopbackOrUnspecified := b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1
		if [12]byte(b[:12]) == [12]byte{} && !loopbackOrUnspecified {
			return netip.AddrFrom4([4]byte(b[12:]))
		}
	}
	return a
}

// Check decides whether a peer may be reached at address a, whatever its
// port: the check of CreatePermission, whose permissions ignore ports.
func (p *Policy) Check(a netip.Addr) Verdict {
	if !a.IsValid() || a.Zone() != "" {
		return Invalid
	}
	return p.check(Normalize(a), 0, false)
}

// CheckAddrPort decides whether a peer may be reached at a: Check, and a
// port that is neither 0 nor one of the relay's listen ports. This is the
// check of ChannelBind and Send.
func (p *Policy) CheckAddrPort(a netip.AddrPort) Verdict {
	if !a.Addr().IsValid() || a.Addr().Zone() != "" || a.Port() == 0 {
		return Invalid
	}
	return p.check(Normalize(a.Addr()), a.Port(), true)
}

func (p *Policy) check(a netip.Addr, port uint16, withPort bool) Verdict {
	for _, d := range p.deny {
		if d.Contains(a) {
			return Denied
		}
	}
	if withPort {
		for _, l := range p.listen {
			if l.Port() == port && (l.Addr() == a || l.Addr().IsUnspecified() && p.isSelf(a)) {
				return Self
			}
		}
	}
	for _, al := range p.allow {
		if al.Contains(a) {
			return Allow
		}
	}
	if p.isSelf(a) {
		return Self
	}
	return Default(a)
}

func (p *Policy) isSelf(a netip.Addr) bool {
	for _, s := range p.self {
		if s == a {
			return true
		}
	}
	return false
}

// Default is the verdict of DefaultDeny alone for a normalised address.
func Default(a netip.Addr) Verdict {
	for _, r := range DefaultDeny {
		if r.Prefix.Contains(a) {
			return r.Verdict
		}
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return Reserved
	}
	return Allow
}
