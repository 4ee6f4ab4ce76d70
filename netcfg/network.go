package netcfg

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Network is what Configure set up, kept current by the DHCP clients it
// leaves running until its context ends: the console's status screen reads
// it with Links.
type Network struct {
	// Relay is the link Config.RelayLink chose; empty when there is
	// none or it could not be resolved (Configure's error says why).
	Relay string

	mu     sync.Mutex
	links  []*linkState
	static []netip.Addr // name servers of the dns key and the static entries
	wg     sync.WaitGroup
	// dnsChanged is called, without mu, after a lease changed the name
	// servers or search domains.
	dnsChanged func()
}

// LinkStatus is one link as Configure configured it.
type LinkStatus struct {
	Name     string
	MAC      net.HardwareAddr
	Methods  []Method       // as the ip entries for the link say, in their order
	Addrs    []netip.Prefix // the addresses the methods gave, IPv4 first
	Gateways []netip.Addr   // the default routers the methods gave, IPv4 first
	Lease4   time.Time      // when the DHCPv4 lease ends; zero without one
	Lease6   time.Time      // when the DHCPv6 lease ends; zero without one
	Problem  string         // what is wrong, such as "DHCPv4: no lease yet"; empty when nothing is
}

// String is one console line:
//
//	eth0 52:54:00:12:34:56 dhcp,auto6 198.18.0.10/24 2001:2:0:1::5/64 via 198.18.0.1,fe80::1 lease4 3m58s
func (l LinkStatus) String() string {
	return l.format(time.Now())
}

func (l LinkStatus) format(now time.Time) string {
	var b strings.Builder
	b.WriteString(l.Name)
	if len(l.MAC) > 0 {
		fmt.Fprintf(&b, " %s", l.MAC)
	}
	m := make([]string, len(l.Methods))
	for i, x := range l.Methods {
		m[i] = string(x)
	}
	fmt.Fprintf(&b, " %s", strings.Join(m, ","))
	for _, a := range l.Addrs {
		fmt.Fprintf(&b, " %s", a)
	}
	if len(l.Gateways) > 0 {
		g := make([]string, len(l.Gateways))
		for i, a := range l.Gateways {
			g[i] = a.String()
		}
		fmt.Fprintf(&b, " via %s", strings.Join(g, ","))
	}
	for _, lease := range []struct {
		name string
		end  time.Time
	}{{"lease4", l.Lease4}, {"lease6", l.Lease6}} {
		if !lease.end.IsZero() {
			fmt.Fprintf(&b, " %s %v", lease.name, lease.end.Sub(now).Round(time.Second))
		}
	}
	if l.Problem != "" {
		fmt.Fprintf(&b, " (%s)", l.Problem)
	}
	return b.String()
}

// Links returns the configured links in the order of the configuration.
func (n *Network) Links() []LinkStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]LinkStatus, 0, len(n.links))
	for _, l := range n.links {
		out = append(out, l.status())
	}
	return out
}

// String is Links, one line each.
func (n *Network) String() string {
	var lines []string
	for _, l := range n.Links() {
		lines = append(lines, l.String())
	}
	return strings.Join(lines, "\n")
}

// Wait returns once the DHCP clients Configure left running have stopped,
// which they do when Configure's context ends. Addresses and routes stay.
func (n *Network) Wait() { n.wg.Wait() }

// linkState is what each entry found on one link.
type linkState struct {
	name    string
	mac     net.HardwareAddr
	entries []*entryState // in the order the configuration gives them
}

// entryState is what one ip entry configured on one link.
type entryState struct {
	link   *linkState
	method Method
	family int
	r      result
}

// result is what one entry configured.
type result struct {
	addrs   []netip.Prefix
	gateway netip.Addr
	expiry  time.Time
	dns     []netip.Addr
	search  []string
	problem string
}

func (l *linkState) status() LinkStatus {
	s := LinkStatus{Name: l.name, MAC: l.mac}
	var problems []string
	for _, e := range l.entries {
		if !slices.Contains(s.Methods, e.method) {
			s.Methods = append(s.Methods, e.method)
		}
		r := e.r
		s.Addrs = append(s.Addrs, r.addrs...)
		if r.gateway.IsValid() && !slices.Contains(s.Gateways, r.gateway) {
			s.Gateways = append(s.Gateways, r.gateway)
		}
		switch e.method {
		case MethodDHCP:
			s.Lease4 = r.expiry
		case MethodDHCP6:
			s.Lease6 = r.expiry
		}
		if r.problem != "" {
			problems = append(problems, r.problem)
		}
	}
	slices.SortStableFunc(s.Addrs, func(a, b netip.Prefix) int { return familyOrder(a.Addr()) - familyOrder(b.Addr()) })
	slices.SortStableFunc(s.Gateways, func(a, b netip.Addr) int { return familyOrder(a) - familyOrder(b) })
	s.Problem = strings.Join(problems, "; ")
	return s
}

func familyOrder(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// entry returns the state of entry e on the named link, adding both if
// new.
func (n *Network) entry(name string, mac net.HardwareAddr, e IPConfig) *entryState {
	n.mu.Lock()
	defer n.mu.Unlock()
	var l *linkState
	for _, x := range n.links {
		if x.name == name {
			l = x
		}
	}
	if l == nil {
		l = &linkState{name: name, mac: mac}
		n.links = append(n.links, l)
	}
	for _, x := range l.entries {
		if x.method == e.Method && x.family == e.family() {
			return x
		}
	}
	x := &entryState{link: l, method: e.Method, family: e.family()}
	l.entries = append(l.entries, x)
	return x
}

// set records what entry e found. A change to the name servers or search
// domains calls dnsChanged.
func (n *Network) set(e *entryState, r result) {
	n.mu.Lock()
	old := e.r
	e.r = r
	changed := !slices.Equal(old.dns, r.dns) || !slices.Equal(old.search, r.search)
	n.mu.Unlock()
	if changed && n.dnsChanged != nil {
		n.dnsChanged()
	}
}

// setProblem records a problem of entry e, keeping what it found.
func (n *Network) setProblem(e *entryState, problem string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e.r.problem = problem
}

// nameServers lists the name servers in order of preference: the dns key
// and the static entries, then DHCPv4 and DHCPv6 by link, without
// duplicates; and the search domains. sources says where they came from.
func (n *Network) nameServers() (servers []netip.Addr, search []string, sources []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	servers = slices.Clone(n.static)
	if len(servers) > 0 {
		sources = append(sources, "configuration")
	}
	for _, l := range n.links {
		for _, e := range l.entries {
			r := e.r
			if len(r.dns) == 0 && len(r.search) == 0 {
				continue
			}
			sources = append(sources, l.name+" "+string(e.method))
			for _, a := range r.dns {
				if !slices.Contains(servers, a) {
					servers = append(servers, a)
				}
			}
			for _, d := range r.search {
				if !slices.Contains(search, d) {
					search = append(search, d)
				}
			}
		}
	}
	return servers, search, sources
}

// resolvConf renders /etc/resolv.conf. glibc reads the first three name
// servers; Go's resolver, which the relay and init use, reads them all.
func resolvConf(servers []netip.Addr, search []string, sources []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by relaybox from %s.\n", strings.Join(sources, ", "))
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return []byte(b.String())
}
