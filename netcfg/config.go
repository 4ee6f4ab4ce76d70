package netcfg

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of the timeout keys.
const (
	DefaultCarrierTimeout = 15 * time.Second
	DefaultDHCPTimeout    = 30 * time.Second
	maxTimeout            = 10 * time.Minute
)

// Limits of the mtu key. Below 1280 the kernel turns IPv6 off on the link,
// and TURN's media rarely fits; above 65535 no link goes.
const (
	minMTU = 1280
	maxMTU = 65535
)

// Config is the network configuration of a box. Every key can be given as a
// flag of the same name (see RegisterFlags); PID 1 reads them from its
// config file and from the kernel command line, where ip is the kernel's own
// ip= parameter and the others are relaybox.<key>=<value>.
type Config struct {
	// IP are the ip= entries: static addresses, DHCPv4, DHCPv6, SLAAC. Key:
	// ip (repeatable; see ParseIPConfig). A later entry replaces an earlier
	// one for the same link and family ("ip=eth0:dhcp" replaces a static
	// IPv4 address of eth0; IPv6 keeps one entry per method), and off
	// forgets what came before it, so the command line can override the
	// config file: ip=off ip=eth1:dhcp.
	IP []IPConfig
	// MTU are the MTUs to set. Key: mtu, "<link>:<bytes>" or "<bytes>"
	// for the relay NIC (repeatable; a later one for the same link wins).
	MTU []MTU
	// VLAN are the 802.1Q links to create, configured by an ip entry that
	// names them. Key: vlan, "<parent>.<id>", "<parent>:<id>" or
	// "<parent>:<id>:<name>" (repeatable).
	VLAN []VLAN
	// DNS are name servers to use before those from ip= and DHCP. Key:
	// dns (repeatable, or comma-separated).
	DNS []netip.Addr
	// CarrierTimeout bounds the wait for every link's carrier; zero means
	// DefaultCarrierTimeout. Key: carrier-timeout.
	CarrierTimeout time.Duration
	// DHCPTimeout bounds the wait for a first DHCPv4 or DHCPv6 lease, or a
	// SLAAC address, on each link; zero means DefaultDHCPTimeout. DHCP
	// keeps trying in the background after it. Key: dhcp-timeout.
	DHCPTimeout time.Duration

	// RelayLink chooses the relay NIC, in ResolveLink's syntax: the
	// plain mtu applies to it, and so do the sysctls a relay needs on its
	// NIC. Empty: there is none. Not a key: init sets it from its own.
	RelayLink string
	// RelayPorts is the relay's allocation range, which the kernel's
	// ephemeral ports must stay out of (see the sysctl table). The zero
	// range leaves ip_local_port_range alone. Not a key: init sets it.
	RelayPorts PortRange
}

// MTU is one value of the mtu key.
type MTU struct {
	Link  string // empty: the relay NIC (Config.RelayLink)
	Bytes int
}

func (m MTU) String() string {
	if m.Link == "" {
		return strconv.Itoa(m.Bytes)
	}
	return m.Link + ":" + strconv.Itoa(m.Bytes)
}

// VLAN is one value of the vlan key: an 802.1Q link Name on Parent.
type VLAN struct {
	Name   string
	Parent string
	ID     int // 1-4094
}

// String renders v as the vlan key reads it, the short form when the name
// is the usual <parent>.<id>.
func (v VLAN) String() string {
	if v.Name == vlanName(v.Parent, v.ID) {
		return v.Name
	}
	return fmt.Sprintf("%s:%d:%s", v.Parent, v.ID, v.Name)
}

func vlanName(parent string, id int) string { return parent + "." + strconv.Itoa(id) }

// PortRange is an inclusive range of UDP ports.
type PortRange struct{ First, Last uint16 }

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// IsZero reports whether r is the zero range, which means "not given".
func (r PortRange) IsZero() bool { return r == PortRange{} }

// RegisterFlags defines one flag per key on fs, writing parsed values into
// c. Like flag.DurationVar it stores the defaults into c first. Every flag
// checks its value as it is set and returns an error that names the key and
// says what is valid; call c.Validate once all are set (and RelayLink and
// RelayPorts filled in) for the checks that span keys.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.CarrierTimeout = DefaultCarrierTimeout
	c.DHCPTimeout = DefaultDHCPTimeout
	fs.Var(&ipFlag{c: c}, "ip",
		"the kernel's ip= `entry`: <client-ip>::<gw-ip>:<netmask>::<device>:off, dhcp, <device>:dhcp, <device>:dhcp6, <device>:auto6, off; repeatable")
	fs.Var(&mtuFlag{c: c}, "mtu",
		"`[LINK:]BYTES` MTU of LINK, or of the relay NIC without LINK ("+strconv.Itoa(minMTU)+"-"+strconv.Itoa(maxMTU)+"); repeatable")
	fs.Var(&vlanFlag{c: c}, "vlan",
		"802.1Q `PARENT.ID` (or PARENT:ID, or PARENT:ID:NAME) to create, for an ip entry naming it; repeatable")
	fs.Var(&dnsFlag{c: c}, "dns",
		"name server `ADDR`s, IPv4 or IPv6, used before those of ip= and DHCP; repeat or separate with commas")
	fs.Var((*timeoutFlag)(&c.CarrierTimeout), "carrier-timeout",
		"how long to wait for carrier on the links (`DURATION` such as 15s, or seconds)")
	fs.Var((*timeoutFlag)(&c.DHCPTimeout), "dhcp-timeout",
		"how long to wait for a first DHCP lease or SLAAC address before booting on (`DURATION`); DHCP keeps trying after it")
}

// ipFlag is the ip key.
type ipFlag struct{ c *Config }

func (f *ipFlag) String() string {
	if f == nil || f.c == nil {
		return ""
	}
	s := make([]string, len(f.c.IP))
	for i, e := range f.c.IP {
		s[i] = e.String()
	}
	return strings.Join(s, " ")
}

func (f *ipFlag) Set(v string) error {
	e, err := ParseIPConfig(v)
	if err != nil {
		return err
	}
	f.c.IP = slices.DeleteFunc(f.c.IP, func(old IPConfig) bool {
		if e.Method == MethodOff {
			return e.Iface == "" || old.Iface == e.Iface
		}
		return old.Iface == e.Iface && ipSlot(old) == ipSlot(e)
	})
	if e.Method != MethodOff {
		f.c.IP = append(f.c.IP, e)
	}
	return nil
}

// ipSlot is what a later ip entry for the same link replaces: the link's
// IPv4 configuration (static or DHCP), or one IPv6 method.
func ipSlot(e IPConfig) string {
	if e.family() == 4 {
		return "ipv4"
	}
	return string(e.Method)
}

// mtuFlag is the mtu key.
type mtuFlag struct{ c *Config }

func (f *mtuFlag) String() string {
	if f == nil || f.c == nil {
		return ""
	}
	s := make([]string, len(f.c.MTU))
	for i, m := range f.c.MTU {
		s[i] = m.String()
	}
	return strings.Join(s, ",")
}

func (f *mtuFlag) Set(v string) error {
	m, err := parseMTU(v)
	if err != nil {
		return err
	}
	f.c.MTU = slices.DeleteFunc(f.c.MTU, func(old MTU) bool { return old.Link == m.Link })
	f.c.MTU = append(f.c.MTU, m)
	return nil
}

const mtuForm = "want [<link>:]<bytes>, for example eth0:9000, or 9000 for the relay NIC"

func parseMTU(v string) (MTU, error) {
	var m MTU
	num := v
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		m.Link, num = v[:i], v[i+1:]
		if err := checkIfaceName(m.Link); err != nil {
			return MTU{}, fmt.Errorf("mtu %q: %v; %s", v, err, mtuForm)
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return MTU{}, fmt.Errorf("mtu %q: %s", v, mtuForm)
	}
	m.Bytes = n
	if err := m.check(); err != nil {
		return MTU{}, err
	}
	return m, nil
}

func (m MTU) check() error {
	if m.Bytes < minMTU || m.Bytes > maxMTU {
		return fmt.Errorf("mtu %s: %d bytes is out of range; want %d-%d (below %d the kernel turns IPv6 off)",
			m, m.Bytes, minMTU, maxMTU, minMTU)
	}
	if m.Link != "" {
		if err := checkIfaceName(m.Link); err != nil {
			return fmt.Errorf("mtu %s: %v", m, err)
		}
	}
	return nil
}

// vlanFlag is the vlan key.
type vlanFlag struct{ c *Config }

func (f *vlanFlag) String() string {
	if f == nil || f.c == nil {
		return ""
	}
	s := make([]string, len(f.c.VLAN))
	for i, v := range f.c.VLAN {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func (f *vlanFlag) Set(v string) error {
	vl, err := parseVLAN(v)
	if err != nil {
		return err
	}
	f.c.VLAN = slices.DeleteFunc(f.c.VLAN, func(old VLAN) bool { return old.Name == vl.Name })
	f.c.VLAN = append(f.c.VLAN, vl)
	return nil
}

const vlanForm = "want <parent>.<id> or <parent>:<id> (eth0.100, eth0:100), or <parent>:<id>:<name> to name the link; id 1-4094"

func parseVLAN(v string) (VLAN, error) {
	var vl VLAN
	var id string
	switch parts := strings.Split(v, ":"); len(parts) {
	case 1:
		i := strings.LastIndexByte(v, '.')
		if i < 0 {
			return VLAN{}, fmt.Errorf("vlan %q: %s", v, vlanForm)
		}
		vl.Parent, id = v[:i], v[i+1:]
	case 2:
		vl.Parent, id = parts[0], parts[1]
	case 3:
		vl.Parent, id, vl.Name = parts[0], parts[1], parts[2]
	default:
		return VLAN{}, fmt.Errorf("vlan %q: %s", v, vlanForm)
	}
	n, err := strconv.Atoi(id)
	if err != nil || strings.HasPrefix(id, "+") {
		return VLAN{}, fmt.Errorf("vlan %q: id %q is not a number; %s", v, id, vlanForm)
	}
	vl.ID = n
	if vl.Name == "" {
		vl.Name = vlanName(vl.Parent, n)
	}
	if err := vl.check(); err != nil {
		return VLAN{}, fmt.Errorf("vlan %q: %v", v, err)
	}
	return vl, nil
}

func (v VLAN) check() error {
	if v.ID < 1 || v.ID > 4094 {
		return fmt.Errorf("id %d out of range 1-4094", v.ID)
	}
	if err := checkIfaceName(v.Parent); err != nil {
		return fmt.Errorf("parent: %v", err)
	}
	if len(v.Name) > maxIfaceName && v.Name == vlanName(v.Parent, v.ID) {
		return fmt.Errorf("the link name %q is longer than the kernel's %d characters; name it: %s:%d:<name>",
			v.Name, maxIfaceName, v.Parent, v.ID)
	}
	if err := checkIfaceName(v.Name); err != nil {
		return err
	}
	if v.Name == v.Parent {
		return fmt.Errorf("the VLAN link %q cannot have the name of its parent", v.Name)
	}
	return nil
}

// dnsFlag is the dns key. The first Set replaces what was there, later ones
// add to it.
type dnsFlag struct {
	c   *Config
	set bool
}

func (f *dnsFlag) String() string {
	if f == nil || f.c == nil {
		return ""
	}
	s := make([]string, len(f.c.DNS))
	for i, a := range f.c.DNS {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (f *dnsFlag) Set(v string) error {
	var addrs []netip.Addr
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
		if err == nil {
			err = checkDNS(a)
		}
		if err != nil {
			return fmt.Errorf("dns %q: want the IPv4 or IPv6 address of a name server, for example 198.18.0.53 or 2001:2::53", s)
		}
		addrs = append(addrs, a.Unmap())
	}
	if !f.set {
		f.c.DNS, f.set = nil, true
	}
	for _, a := range addrs {
		if !slices.Contains(f.c.DNS, a) {
			f.c.DNS = append(f.c.DNS, a)
		}
	}
	return nil
}

func checkDNS(a netip.Addr) error {
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" || a.IsLinkLocalUnicast() {
		return fmt.Errorf("dns %s: want a unicast IPv4 or IPv6 address that is not link-local", a)
	}
	return nil
}

// timeoutFlag is carrier-timeout and dhcp-timeout. A bare number is seconds,
// since that is what people type on a kernel command line.
type timeoutFlag time.Duration

func (f *timeoutFlag) String() string {
	if f == nil {
		return ""
	}
	return time.Duration(*f).String()
}

func (f *timeoutFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d < time.Second || d > maxTimeout {
		return fmt.Errorf("%q: want a duration from 1s to %v, such as 15s, 2m or 30 (seconds)", v, maxTimeout)
	}
	*f = timeoutFlag(d)
	return nil
}

// Validate checks c as a whole: each value (for a Config built in code) and
// what spans several: one static default route per address family, a link
// configured for IPv4 both statically and by DHCP, an mtu without a link
// when there is no relay NIC, a VLAN with a larger MTU than its parent, two
// VLANs of one name, the relay NIC's selector and port range. It reports
// every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	gateways := map[int][]IPConfig{}
	v4 := map[string]Method{}
	for _, e := range c.IP {
		if err := e.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("ip=%s: %w", e, err))
			continue
		}
		if e.Method == MethodOff {
			errs = append(errs, fmt.Errorf("ip=%s: off is a command to the ip key, not an entry", e))
			continue
		}
		if e.Method == MethodStatic && e.Gateway.IsValid() {
			gateways[e.family()] = append(gateways[e.family()], e)
		}
		if e.family() == 4 && e.Iface != "" {
			if m, ok := v4[e.Iface]; ok {
				errs = append(errs, fmt.Errorf("ip: %s is configured for IPv4 twice (%s and %s); give one entry", e.Iface, m, e.Method))
			}
			v4[e.Iface] = e.Method
		}
	}
	for _, fam := range []int{4, 6} {
		if g := gateways[fam]; len(g) > 1 {
			errs = append(errs, fmt.Errorf("ip: two IPv%d default routes (ip=%s and ip=%s); give gw-ip in one entry only", fam, g[0], g[1]))
		}
	}

	mtus := map[string]int{}
	for _, m := range c.MTU {
		if err := m.check(); err != nil {
			errs = append(errs, err)
			continue
		}
		link := m.Link
		if link == "" {
			if c.RelayLink == "" {
				errs = append(errs, fmt.Errorf("mtu %s names no link, so it is for the relay NIC, and none is chosen; write mtu=<link>:%d", m, m.Bytes))
				continue
			}
			if sel, err := parseSelector(c.RelayLink); err == nil && sel.name != "" {
				link = sel.name
			}
		}
		if _, dup := mtus[link]; dup && link != "" {
			errs = append(errs, fmt.Errorf("mtu: two values for %s; give one", link))
		}
		mtus[link] = m.Bytes
	}

	names := map[string]bool{}
	for _, v := range c.VLAN {
		if err := v.check(); err != nil {
			errs = append(errs, fmt.Errorf("vlan %s: %w", v, err))
			continue
		}
		if names[v.Name] {
			errs = append(errs, fmt.Errorf("vlan %s: a second VLAN named %s", v, v.Name))
		}
		names[v.Name] = true
		child, ok1 := mtus[v.Name]
		parent, ok2 := mtus[v.Parent]
		if ok1 && ok2 && child > parent {
			errs = append(errs, fmt.Errorf("mtu: %s has %d bytes, more than its parent %s (%d); a VLAN's MTU cannot exceed its parent's", v.Name, child, v.Parent, parent))
		}
	}

	for _, a := range c.DNS {
		if err := checkDNS(a); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"carrier-timeout", c.CarrierTimeout}, {"dhcp-timeout", c.DHCPTimeout}} {
		if t.d < 0 || t.d > maxTimeout {
			errs = append(errs, fmt.Errorf("%s %v: want a duration from 1s to %v (zero for the default)", t.key, t.d, maxTimeout))
		}
	}
	if c.RelayLink != "" {
		if _, err := parseSelector(c.RelayLink); err != nil {
			errs = append(errs, fmt.Errorf("relay NIC: %w", err))
		}
	}
	if !c.RelayPorts.IsZero() {
		if _, _, err := localPortRange(c.RelayPorts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// carrierTimeout and dhcpTimeout apply the defaults to the zero value.
func (c *Config) carrierTimeout() time.Duration {
	if c.CarrierTimeout <= 0 {
		return DefaultCarrierTimeout
	}
	return c.CarrierTimeout
}

func (c *Config) dhcpTimeout() time.Duration {
	if c.DHCPTimeout <= 0 {
		return DefaultDHCPTimeout
	}
	return c.DHCPTimeout
}

// DefaultRoute is the selector for the link carrying the default route.
const DefaultRoute = "default-route"

// selector is a parsed relay NIC selector: one of name, mac, or
// defaultRoute.
type selector struct {
	name         string
	mac          net.HardwareAddr
	defaultRoute bool
}

const selectorForm = "want an interface name (eth0), a MAC address (mac:52:54:00:12:34:56 or 52:54:00:12:34:56) or " + DefaultRoute

func parseSelector(s string) (selector, error) {
	if s == DefaultRoute {
		return selector{defaultRoute: true}, nil
	}
	if rest, ok := strings.CutPrefix(s, "mac:"); ok {
		mac, err := net.ParseMAC(rest)
		if err != nil || len(mac) != 6 {
			return selector{}, fmt.Errorf("%q: not a MAC address such as mac:52:54:00:12:34:56", s)
		}
		return selector{mac: mac}, nil
	}
	if mac, err := net.ParseMAC(s); err == nil && len(mac) == 6 {
		return selector{mac: mac}, nil
	}
	if err := checkIfaceName(s); err != nil {
		return selector{}, fmt.Errorf("%q: %v; %s", s, err, selectorForm)
	}
	return selector{name: s}, nil
}
