package netcfg

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// Static is the static configuration of one address on one network
// interface, as the kernel's ip= parameter describes it. A dual-stack NIC is
// two of them, one per family (two ip= parameters, as dracut allows).
type Static struct {
	Iface    string       // device, for example "eth0"
	Addr     netip.Prefix // the host's address and the on-link prefix, 198.18.0.2/24
	Gateway  netip.Addr   // default route; the zero Addr means none
	Hostname string       // empty when not given; setting it is init's job
	DNS      []netip.Addr // name servers, in order of preference
	NTP      []netip.Addr // time servers
}

// ErrOff is returned by ParseIP for ip=off and ip=none: the command line asks
// for no network configuration. Check it with errors.Is.
var ErrOff = errors.New("no network configuration requested")

// ErrAutoconfUnsupported is wrapped by the errors of ParseIP for every
// automatic form (it reads the static form only), and of ParseIPConfig for
// the forms relaybox does not speak: bootp, rarp and both. Check it with
// errors.Is.
var ErrAutoconfUnsupported = errors.New("this form of automatic configuration is not supported")

// Method is how an ip= entry configures its link.
type Method string

// The methods of ip=, in the words an operator writes after the device.
const (
	MethodStatic Method = "static" // the address in the entry (autoconf off, none or empty)
	MethodDHCP   Method = "dhcp"   // DHCPv4 (also written on or any)
	MethodDHCP6  Method = "dhcp6"  // DHCPv6, with router advertisements for the default route
	MethodAuto6  Method = "auto6"  // IPv6 stateless autoconfiguration (SLAAC)
	MethodOff    Method = "off"    // no configuration: clears earlier entries (off or none)
)

// IPConfig is one ip= entry: a static address, or an automatic method on
// one link or on every link.
type IPConfig struct {
	Method Method
	// Static is the whole entry for MethodStatic. For the automatic
	// methods only Iface (empty: every Ethernet link that no other entry
	// names), Hostname (sent to the DHCP server) and the DNS and NTP
	// servers are set.
	Static
}

// The static forms of ip=, shown to a user who wrote something else.
const (
	staticForm4 = "ip=<client-ip>::<gateway-ip>:<netmask>:<hostname>:<device>:off " +
		"(for example ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off)"
	staticForm6 = "ip=[<client-ipv6>]::[<gateway-ipv6>]:<prefix-length>:<hostname>:<device>:off " +
		"(for example ip=[2001:2::2]::[2001:2::1]:64::eth0:off)"
)

// Field positions in ip=, from Documentation/admin-guide/nfs/nfsroot.rst.
var ipFields = [...]string{"client-ip", "server-ip", "gw-ip", "netmask", "hostname", "device", "autoconf", "dns0-ip", "dns1-ip", "ntp0-ip"}

// autoForms are the automatic forms of ip=, shown to a user who wrote
// something else.
const autoForms = "ip=dhcp, ip=<device>:dhcp, ip=<device>:dhcp6, ip=<device>:auto6 or ip=:::::<device>:dhcp"

// ParseIPConfig parses one value of the kernel's ip= parameter, static or
// automatic. The full form is
//
//	<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//
// and trailing fields may be left out. With autoconf off, none or empty it
// is a static address, for example "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off".
// Where that departs from the kernel:
//
//   - client-ip, netmask and device are required. The kernel guesses a
//     classful netmask and tries every device; a relay that came up on the
//     wrong NIC or subnet is harder to diagnose than one that says what is
//     missing.
//   - netmask is either dotted (255.255.255.0, contiguous) or a prefix length
//     (24).
//   - IPv6 addresses are accepted in brackets, as dracut does:
//     "[2001:2::2]::[2001:2::1]:64::eth0:off". Their netmask is a prefix
//     length.
//   - server-ip (the NFS server) is checked and ignored.
//
// The automatic forms are a bare method (dhcp, on, any: DHCPv4; dhcp6:
// DHCPv6; auto6: SLAAC), dracut's "<device>:<method>", or the full form with
// client-ip, gw-ip and netmask empty (":::::eth0:dhcp", which may carry a
// hostname and DNS servers). Without a device the method applies to every
// Ethernet link that no other entry names. bootp, rarp and both are refused
// with an error wrapping ErrAutoconfUnsupported.
//
// off and none, alone or as "<device>:off", return an IPConfig with
// MethodOff: the ip key then forgets the entries given before it.
func ParseIPConfig(value string) (IPConfig, error) {
	c, err := parseIPConfig(value)
	if err != nil {
		return IPConfig{}, fmt.Errorf("ip=%s: %w", value, err)
	}
	return c, nil
}

// ParseIP parses the static form of ip= only (see ParseIPConfig): the
// automatic forms return an error wrapping ErrAutoconfUnsupported that shows
// the static form, and ip=off, ip=none and "<device>:off" return ErrOff. It
// is for callers that cannot run DHCP or SLAAC; Config's ip key takes every
// form.
func ParseIP(value string) (Static, error) {
	c, err := parseIPConfig(value)
	if err == nil {
		switch c.Method {
		case MethodStatic:
			return c.Static, nil
		case MethodOff:
			err = ErrOff
		default:
			err = notStatic(c.Method, c.Iface)
		}
	}
	return Static{}, fmt.Errorf("ip=%s: %w", value, err)
}

func parseIPConfig(value string) (IPConfig, error) {
	if value == "" {
		return IPConfig{}, fmt.Errorf("empty value; use %s, or %s", staticForm4, autoForms)
	}
	fields, err := splitFields(value)
	if err != nil {
		return IPConfig{}, err
	}
	// The kernel accepts a bare method (ip=dhcp, ip=off); dracut also
	// accepts <device>:<method>.
	switch {
	case len(fields) == 1 && isMethod(fields[0]) && fields[0] != "":
		return autoConfig(fields[0], IPConfig{})
	case len(fields) == 2 && isMethod(fields[1]) && fields[1] != "":
		if err := checkIfaceName(fields[0]); err != nil {
			return IPConfig{}, err
		}
		return autoConfig(fields[1], IPConfig{Static: Static{Iface: fields[0]}})
	}
	if len(fields) > len(ipFields) {
		return IPConfig{}, fmt.Errorf("%d fields, at most %d (%s); IPv6 addresses go in brackets, [2001:2::2]",
			len(fields), len(ipFields), strings.Join(ipFields[:], ":"))
	}
	var f [len(ipFields)]string
	copy(f[:], fields)
	if !isMethod(f[6]) {
		return IPConfig{}, fmt.Errorf("autoconf %q: want off, none or empty for a static address, or dhcp, on, any, dhcp6 or auto6", f[6])
	}
	if methods[f[6]] == MethodStatic {
		s, err := parseStatic(f)
		if err != nil {
			return IPConfig{}, err
		}
		return IPConfig{Method: MethodStatic, Static: s}, nil
	}
	// The full form with an automatic method: the address fields belong
	// to the static form.
	for _, i := range []int{0, 2, 3} {
		if f[i] != "" {
			return IPConfig{}, fmt.Errorf("%s %q with autoconf %q: give either a static address (autoconf off) or %s, not both",
				ipFields[i], f[i], f[6], f[6])
		}
	}
	if _, err := parseAddr("server-ip", f[1]); err != nil {
		return IPConfig{}, err
	}
	c := IPConfig{Static: Static{Hostname: f[4], Iface: f[5]}}
	if err := parseServers(&c.Static, f); err != nil {
		return IPConfig{}, err
	}
	return autoConfig(f[6], c)
}

// autoConfig completes c, an entry with the automatic method m or off.
func autoConfig(m string, c IPConfig) (IPConfig, error) {
	c.Method = methods[m]
	switch c.Method {
	case MethodStatic:
		// A bare "off", "none" or "<device>:off" names no address.
		c.Method = MethodOff
	case "":
		return IPConfig{}, fmt.Errorf("autoconf %q asks for %s: %w; relaybox speaks DHCP: use %s",
			m, legacyProtocols[m], ErrAutoconfUnsupported, autoForms)
	}
	if err := c.Validate(); err != nil {
		return IPConfig{}, err
	}
	return c, nil
}

// parseStatic reads the fields of the static form.
func parseStatic(f [len(ipFields)]string) (Static, error) {
	var s Static
	client, err := parseAddr("client-ip", f[0])
	if err != nil {
		return Static{}, err
	}
	if !client.IsValid() {
		return Static{}, fmt.Errorf("client-ip is empty; give this host's address: %s, or use %s", staticForm4, autoForms)
	}
	if _, err := parseAddr("server-ip", f[1]); err != nil {
		return Static{}, err
	}
	if s.Gateway, err = parseAddr("gw-ip", f[2]); err != nil {
		return Static{}, err
	}
	plen, err := parseNetmask(f[3], client)
	if err != nil {
		return Static{}, err
	}
	s.Addr = netip.PrefixFrom(client, plen)
	s.Hostname = f[4]
	s.Iface = f[5]
	if s.Iface == "" {
		form := staticForm4
		if client.Is6() {
			form = staticForm6
		}
		return Static{}, fmt.Errorf("device is empty; name the interface to configure (see the console's link list): %s", form)
	}
	if err := parseServers(&s, f); err != nil {
		return Static{}, err
	}
	if err := s.Validate(); err != nil {
		return Static{}, err
	}
	return s, nil
}

// parseServers reads dns0-ip, dns1-ip and ntp0-ip into s.
func parseServers(s *Static, f [len(ipFields)]string) error {
	for i, name := range ipFields[7:] {
		a, err := parseAddr(name, f[7+i])
		if err != nil {
			return err
		}
		if !a.IsValid() {
			continue
		}
		if name == "ntp0-ip" {
			s.NTP = append(s.NTP, a)
		} else {
			s.DNS = append(s.DNS, a)
		}
	}
	return nil
}

// splitFields splits ip= at colons outside brackets.
func splitFields(value string) ([]string, error) {
	var fields []string
	start, inBracket := 0, false
	for i, c := range value {
		switch c {
		case '[':
			if inBracket {
				return nil, fmt.Errorf("nested '[' at offset %d", i)
			}
			inBracket = true
		case ']':
			if !inBracket {
				return nil, fmt.Errorf("']' without '[' at offset %d", i)
			}
			inBracket = false
		case ':':
			if !inBracket {
				fields = append(fields, value[start:i])
				start = i + 1
			}
		}
	}
	if inBracket {
		return nil, errors.New("'[' without ']'")
	}
	return append(fields, value[start:]), nil
}

// methods maps each autoconf value of ip= to its Method; the empty Method
// marks the ones relaybox refuses. The IPv6 ones come from dracut.
var methods = map[string]Method{
	"": MethodStatic, "off": MethodStatic, "none": MethodStatic,
	"dhcp": MethodDHCP, "on": MethodDHCP, "any": MethodDHCP,
	"dhcp6": MethodDHCP6, "auto6": MethodAuto6,
	"bootp": "", "rarp": "", "both": "",
}

// protocol names what m speaks, for messages.
func (m Method) protocol() string {
	switch m {
	case MethodDHCP:
		return "DHCPv4"
	case MethodDHCP6:
		return "DHCPv6"
	case MethodAuto6:
		return "SLAAC"
	}
	return string(m)
}

// legacyProtocols names what the refused autoconf values ask for.
var legacyProtocols = map[string]string{"bootp": "BOOTP", "rarp": "RARP", "both": "BOOTP or RARP"}

func isMethod(s string) bool { _, ok := methods[s]; return ok }

// notStatic is ParseIP's error for an automatic method: what to write
// instead to configure the link statically.
func notStatic(m Method, device string) error {
	if device == "" {
		device = "<device>"
	}
	form := staticForm4
	if strings.HasSuffix(string(m), "6") {
		form = staticForm6
	}
	return fmt.Errorf("autoconf %q asks for %s: %w here; configure the address statically with %s",
		m, m.protocol(), ErrAutoconfUnsupported, strings.Replace(form, "<device>", device, 1))
}

// parseAddr parses one address field: empty, dotted IPv4, or IPv6 in brackets.
func parseAddr(field, raw string) (netip.Addr, error) {
	if raw == "" {
		return netip.Addr{}, nil
	}
	if inner, ok := strings.CutPrefix(raw, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		a, err := netip.ParseAddr(inner)
		if !ok || err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("%s %q: not an IPv6 address in brackets such as [2001:2::2]", field, raw)
		}
		return a, nil
	}
	a, err := netip.ParseAddr(raw)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%s %q: not an IPv4 address (IPv6 goes in brackets: [2001:2::2])", field, raw)
	}
	return a, nil
}

// parseNetmask returns the prefix length of a dotted mask or a number.
func parseNetmask(raw string, client netip.Addr) (int, error) {
	if raw == "" {
		if client.Is6() {
			return 0, errors.New("netmask is empty; give IPv6 a prefix length, for example 64")
		}
		return 0, errors.New("netmask is empty; give it dotted (255.255.255.0) or as a prefix length (24)")
	}
	if n, err := strconv.Atoi(raw); err == nil {
		if n < 1 || n > client.BitLen() {
			return 0, fmt.Errorf("netmask %q: prefix length out of range 1-%d", raw, client.BitLen())
		}
		return n, nil
	}
	m, err := netip.ParseAddr(raw)
	if err != nil || !m.Is4() {
		return 0, fmt.Errorf("netmask %q: neither a dotted mask (255.255.255.0) nor a prefix length (24)", raw)
	}
	if client.Is6() {
		return 0, fmt.Errorf("netmask %q: a dotted mask is for IPv4; give IPv6 a prefix length, for example 64", raw)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if inv := ^v; inv&(inv+1) != 0 {
		return 0, fmt.Errorf("netmask %q: not a contiguous mask such as 255.255.255.0", raw)
	}
	if v == 0 {
		return 0, fmt.Errorf("netmask %q: puts every address on the link; give the real netmask", raw)
	}
	return bits.OnesCount32(v), nil
}

// Validate reports the first thing that makes s unusable: a missing device,
// an address that is not unicast, a gateway of the other family or off the
// link, a malformed hostname or server address. ParseIP validates what it
// returns; a Static built by other means should be checked before use.
func (s Static) Validate() error {
	if s.Iface == "" {
		return errors.New("no device named")
	}
	if err := checkIfaceName(s.Iface); err != nil {
		return err
	}
	if !s.Addr.IsValid() {
		return errors.New("no address")
	}
	a := s.Addr.Addr()
	if a.Zone() != "" || a.Is4In6() || !a.IsGlobalUnicast() {
		return fmt.Errorf("client-ip %s: not a unicast address this host can own", a)
	}
	if s.Addr.Bits() == 0 {
		return fmt.Errorf("address %s: prefix length 0 puts every address on the link", s.Addr)
	}
	if a.Is4() && s.Addr.Bits() <= 30 {
		p := s.Addr.Masked()
		if a == p.Addr() {
			return fmt.Errorf("client-ip %s: the network address of %s, not a host address", a, p)
		}
		if a == lastAddr(p) {
			return fmt.Errorf("client-ip %s: the broadcast address of %s, not a host address", a, p)
		}
	}
	if g := s.Gateway; g.IsValid() {
		switch {
		case g.Is4() != a.Is4():
			return fmt.Errorf("gw-ip %s: not the same address family as client-ip %s", g, a)
		case g == a:
			return fmt.Errorf("gw-ip %s: the host's own address", g)
		case g.Zone() != "" || !(g.IsGlobalUnicast() || g.Is6() && g.IsLinkLocalUnicast()):
			return fmt.Errorf("gw-ip %s: not a unicast address", g)
		case !s.Addr.Contains(g) && !g.IsLinkLocalUnicast():
			// The kernel refuses it too ("Gateway not on directly
			// connected network"): the route would be unreachable.
			return fmt.Errorf("gw-ip %s: not on the link %s; check the netmask", g, s.Addr.Masked())
		}
	}
	return s.checkNames()
}

// checkNames checks the hostname and the DNS and NTP servers.
func (s Static) checkNames() error {
	if len(s.Hostname) > 64 {
		return fmt.Errorf("hostname %q: longer than 64 characters", s.Hostname)
	}
	for _, c := range s.Hostname {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("hostname %q: only letters, digits, '-' and '.' are allowed", s.Hostname)
		}
	}
	for _, list := range []struct {
		name  string
		addrs []netip.Addr
	}{{"dns", s.DNS}, {"ntp", s.NTP}} {
		for _, d := range list.addrs {
			if !d.IsValid() || d.IsUnspecified() || d.IsMulticast() || d.Zone() != "" {
				return fmt.Errorf("%s server %s: not a unicast address", list.name, d)
			}
		}
	}
	return nil
}

// maxIfaceName is IFNAMSIZ less the terminating NUL.
const maxIfaceName = 15

// checkIfaceName rejects what the kernel would refuse as an interface name
// (dev_valid_name), with the rule that was broken.
func checkIfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty device name; name an interface such as eth0")
	case len(name) > maxIfaceName:
		return fmt.Errorf("device %q: longer than the kernel's %d characters for an interface name", name, maxIfaceName)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("device %q: not an interface name", name)
	}
	return nil
}

// Validate checks one entry: for MethodStatic everything Static.Validate
// checks; for the automatic methods the device name if there is one, the
// hostname and the servers. An entry carrying MethodOff, or a method
// ParseIPConfig never returns, is refused: off is a command to the ip key,
// not a configuration.
func (c IPConfig) Validate() error {
	switch c.Method {
	case MethodStatic:
		return c.Static.Validate()
	case MethodDHCP, MethodDHCP6, MethodAuto6:
		if c.Addr.IsValid() || c.Gateway.IsValid() {
			return fmt.Errorf("%s with an address or gateway: give either a static address or %s", c.Method, c.Method)
		}
	case MethodOff:
		if c.Iface != "" {
			return checkIfaceName(c.Iface)
		}
		return nil
	default:
		return fmt.Errorf("method %q: want static, dhcp, dhcp6 or auto6", c.Method)
	}
	if c.Iface != "" {
		if err := checkIfaceName(c.Iface); err != nil {
			return err
		}
	}
	return c.checkNames()
}

// String renders c in the ip= syntax ParseIPConfig reads (without "ip="):
// Static.String for a static entry, else dracut's "<device>:<method>" (or
// the bare method) when that says everything, or the kernel's full form.
func (c IPConfig) String() string {
	switch c.Method {
	case MethodStatic:
		return c.Static.String()
	case "":
		return ""
	}
	if c.Hostname == "" && len(c.DNS) == 0 && len(c.NTP) == 0 {
		if c.Iface == "" {
			return string(c.Method)
		}
		return c.Iface + ":" + string(c.Method)
	}
	f := make([]string, len(ipFields))
	f[4], f[5], f[6] = c.Hostname, c.Iface, string(c.Method)
	for i, d := range c.DNS[:min(2, len(c.DNS))] {
		f[7+i] = fieldAddr(d)
	}
	if len(c.NTP) > 0 {
		f[9] = fieldAddr(c.NTP[0])
	}
	for len(f) > 7 && f[len(f)-1] == "" {
		f = f[:len(f)-1]
	}
	return strings.Join(f, ":")
}

// family is the address family an entry configures: 4 or 6.
func (c IPConfig) family() int {
	switch c.Method {
	case MethodDHCP:
		return 4
	case MethodStatic:
		if c.Addr.Addr().Is4() {
			return 4
		}
	}
	return 6
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// String renders s in the ip= syntax ParseIP reads (without "ip="), so logs
// show what a user would write: an IPv4 netmask dotted, IPv6 addresses in
// brackets. DNS servers beyond two and NTP servers beyond one do not fit the
// syntax and are left out.
func (s Static) String() string {
	if s.Iface == "" && !s.Addr.IsValid() {
		return ""
	}
	f := make([]string, len(ipFields))
	f[0] = fieldAddr(s.Addr.Addr())
	f[2] = fieldAddr(s.Gateway)
	if a := s.Addr.Addr(); a.Is4() {
		m := ^uint32(0) << (32 - s.Addr.Bits())
		f[3] = netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
	} else if a.IsValid() {
		f[3] = strconv.Itoa(s.Addr.Bits())
	}
	f[4] = s.Hostname
	f[5] = s.Iface
	f[6] = "off"
	for i, d := range s.DNS[:min(2, len(s.DNS))] {
		f[7+i] = fieldAddr(d)
	}
	if len(s.NTP) > 0 {
		f[9] = fieldAddr(s.NTP[0])
	}
	for len(f) > 7 && f[len(f)-1] == "" {
		f = f[:len(f)-1]
	}
	return strings.Join(f, ":")
}

func fieldAddr(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return ""
	case a.Is6():
		return "[" + a.String() + "]"
	}
	return a.String()
}
