package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoCarrier is wrapped by Configure's error for a link that had no
// carrier when the carrier timeout ran out.
var ErrNoCarrier = errors.New("no carrier")

// ErrNoLease is wrapped by Configure's error for a link that got no DHCP
// lease or SLAAC address within the DHCP timeout.
var ErrNoLease = errors.New("no lease")

// session is one Configure call and the background work it leaves.
type session struct {
	c    *Configurator
	cfg  Config
	logf func(string, ...any)
	n    *Network

	resolvMu sync.Mutex
}

// Configure is the one call that sets up the box's network, in this order:
//
//  1. loopback up;
//  2. the links the configuration names (ip entries, VLANs and their
//     parents, mtu) prepared: IPv6 router-advertisement sysctls for SLAAC
//     and DHCPv6 links, MTU, VLANs created, links up; a link whose driver
//     has not created it yet is waited for;
//  3. carrier on each link with an ip entry, waited for in parallel up to
//     the carrier timeout, with a progress line through logf every few
//     seconds; entries without a device take every Ethernet link no
//     other entry names, and drop those without carrier unless none has
//     it (then DHCP keeps trying on all of them);
//  4. per link and method, in parallel: static addresses and routes;
//     DHCPv4 and DHCPv6 until a lease or the DHCP timeout, then a client
//     that renews the lease (or keeps asking for one) until ctx ends;
//     SLAAC until a global address or the DHCP timeout;
//  5. the resolver's file, from the dns key, the static entries and the
//     leases (rewritten when a lease changes them);
//  6. the relay NIC: RelayLink resolved, the mtu without a link set on it,
//     and the sysctls a relay needs (RelaySysctls).
//
// A failure on one link does not stop the others. Configure returns what
// it configured and every failure joined, each naming its link (errors.Is
// finds ErrNoLink, ErrNoCarrier, ErrNoLease). An invalid cfg is reported
// the same way and what can be applied is applied: a box with a bad key
// keeps the network it can have. logf may be nil.
func (c *Configurator) Configure(ctx context.Context, cfg Config, logf func(format string, args ...any)) (*Network, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	s := &session{c: c, cfg: cfg, logf: logf, n: &Network{}}
	s.n.dnsChanged = s.resolvConfChanged
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.LinkUp("lo"); err != nil {
		errs = append(errs, err)
	}

	plans, err := s.plan()
	if err != nil {
		errs = append(errs, err)
	}
	// Before any DHCP client runs: they read it when a lease changes the
	// name servers.
	s.n.static = slices.Clone(cfg.DNS)
	for _, e := range cfg.IP {
		for _, a := range e.DNS {
			if !slices.Contains(s.n.static, a) {
				s.n.static = append(s.n.static, a)
			}
		}
	}
	errs = append(errs, s.waitLinks(ctx, plans)...)
	errs = append(errs, s.address(ctx, plans)...)
	if err := s.updateResolvConf(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, s.relayNIC(plans)...)
	return s.n, errors.Join(errs...)
}

// linkPlan is one link Configure works on.
type linkPlan struct {
	name     string
	vlan     *VLAN
	mtu      int
	entries  []IPConfig
	wildcard bool // found for entries without a device: no carrier is no error

	// Set by prepare.
	index   int
	mac     net.HardwareAddr
	sysctls bool   // the IPv6 sysctls are set
	ready   bool   // exists, has its MTU, is up
	carrier bool   // has carrier
	state   string // why it is not ready, for progress lines
	err     error  // a failure that waiting will not fix
}

func (p *linkPlan) has(m Method) bool {
	return slices.ContainsFunc(p.entries, func(e IPConfig) bool { return e.Method == m })
}

// plan lists the links the configuration names, VLAN parents before their
// VLANs, then adds the links that entries without a device take.
func (s *session) plan() ([]*linkPlan, error) {
	var plans []*linkPlan
	get := func(name string) *linkPlan {
		for _, p := range plans {
			if p.name == name {
				return p
			}
		}
		p := &linkPlan{name: name}
		plans = append(plans, p)
		return p
	}
	for _, v := range s.cfg.VLAN {
		if v.check() != nil {
			continue
		}
		get(v.Parent)
		get(v.Name).vlan = &v
	}
	var wild []IPConfig
	for _, e := range s.cfg.IP {
		switch {
		case e.Validate() != nil || e.Method == MethodOff:
		case e.Iface == "":
			wild = append(wild, e)
		default:
			p := get(e.Iface)
			p.entries = append(p.entries, e)
		}
	}
	for _, m := range s.cfg.MTU {
		if m.Link != "" && m.check() == nil {
			get(m.Link).mtu = m.Bytes
		}
	}
	if len(wild) == 0 {
		return plans, nil
	}
	links, err := s.c.linkList()
	if err != nil {
		return plans, fmt.Errorf("ip=%s: %w", wild[0], err)
	}
	parents := map[string]bool{}
	for _, v := range s.cfg.VLAN {
		parents[v.Parent] = true
	}
	take := func(p *linkPlan) {
		if len(p.entries) == 0 && !parents[p.name] {
			p.wildcard = true
		}
	}
	for _, l := range links {
		a := l.Attrs()
		if a.RawFlags&unix.IFF_LOOPBACK == 0 && a.EncapType == "ether" && len(a.HardwareAddr) == 6 {
			take(get(a.Name))
		}
	}
	for _, p := range plans {
		if p.vlan != nil {
			take(p)
		}
	}
	for _, p := range plans {
		if p.wildcard {
			p.entries = slices.Clone(wild)
		}
	}
	return plans, nil
}

// prepare brings p one step closer to ready: sysctls, VLAN, MTU, up. It is
// called again until p is ready or has failed.
func (s *session) prepare(p *linkPlan) {
	l, err := s.c.h.LinkByName(p.name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) && p.vlan != nil {
		l, err = s.createVLAN(p.vlan)
		if err != nil {
			if errors.As(err, &nf) {
				p.state = fmt.Sprintf("waiting for its parent %s", p.vlan.Parent)
			} else {
				p.err = err
			}
			return
		}
	}
	if errors.As(err, &nf) {
		p.state = "no such link yet"
		return
	}
	if err != nil {
		p.err = fmt.Errorf("%s: look up link: %w", p.name, err)
		return
	}
	a := l.Attrs()
	p.index, p.mac = a.Index, a.HardwareAddr
	if p.vlan != nil {
		if err := s.checkVLAN(l, p.vlan); err != nil {
			p.err = err
			return
		}
	}
	if !p.sysctls {
		// Before the link goes up: the kernel solicits routers once
		// link-local DAD completes, and only if accept_ra allows it.
		if errs := s.c.applySysctls(raSysctls(p), s.logf); len(errs) > 0 {
			p.err = fmt.Errorf("%s: %w", p.name, errors.Join(errs...))
			return
		}
		p.sysctls = true
	}
	if p.mtu != 0 && a.MTU != p.mtu {
		if err := s.c.h.LinkSetMTU(l, p.mtu); err != nil {
			p.err = fmt.Errorf("mtu %s:%d: %w (the driver's maximum may be lower)", p.name, p.mtu, err)
			return
		}
		s.logf("network: %s mtu %d -> %d", p.name, a.MTU, p.mtu)
	}
	if a.Flags&net.FlagUp == 0 {
		if err := s.c.h.LinkSetUp(l); err != nil {
			p.err = fmt.Errorf("set link %s up: %w", p.name, err)
			return
		}
		if l, err = s.c.h.LinkByIndex(a.Index); err != nil {
			p.err = fmt.Errorf("%s: look up link: %w", p.name, err)
			return
		}
		a = l.Attrs()
	}
	p.ready = true
	p.carrier = hasCarrier(a)
	p.state = fmt.Sprintf("no carrier, operstate %s", operState(a.OperState))
}

// waitLinks prepares every planned link and waits, up to the carrier
// timeout, for carrier on those with ip entries. It returns the failures:
// links that failed to prepare, and named links without carrier (whose
// static entries are still applied; DHCP keeps trying in the background).
// Links taken by entries without a device are waited for until one has
// carrier, and then those without it are dropped.
func (s *session) waitLinks(ctx context.Context, plans []*linkPlan) []error {
	if len(plans) == 0 {
		return nil
	}
	timeout := s.cfg.carrierTimeout()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	nextProgress := start.Add(s.c.progressEvery)
	// Links taken by entries without a device are waited for until one
	// of them has carrier, as the kernel's own ip= does: a box with four
	// NICs and one cable should not wait out the timeout at every boot.
	pending := func() []*linkPlan {
		wildUp := slices.ContainsFunc(plans, func(p *linkPlan) bool { return p.wildcard && p.carrier })
		var out []*linkPlan
		for _, p := range plans {
			if p.err == nil && (!p.ready || len(p.entries) > 0 && !p.carrier) && !(p.wildcard && wildUp) {
				out = append(out, p)
			}
		}
		return out
	}
	_ = poll(wctx, func() (bool, string, error) {
		for _, p := range plans {
			if p.err == nil && (!p.ready || !p.carrier) {
				s.prepare(p)
				if p.carrier && len(p.entries) > 0 {
					s.logf("network: %s: carrier after %v", p.name, time.Since(start).Round(10*time.Millisecond))
				}
			}
		}
		left := pending()
		if len(left) == 0 {
			return true, "", nil
		}
		if now := time.Now(); now.After(nextProgress) {
			nextProgress = now.Add(s.c.progressEvery)
			s.logf("network: waiting for carrier on %s (%v of %v)", describe(left), now.Sub(start).Round(time.Second), timeout)
		}
		return false, "", nil
	})
	// Entries without a device skip the links without carrier, unless
	// none has carrier: then all are kept, for DHCP to try in the
	// background (a cable plugged in later still gets the box online).
	wildUp := slices.ContainsFunc(plans, func(p *linkPlan) bool { return p.wildcard && p.carrier })
	var errs []error
	for _, p := range plans {
		switch {
		case p.err != nil:
			errs = append(errs, p.err)
		case !p.ready:
			errs = append(errs, fmt.Errorf("%s: %w after %v (%s; links present: %s)", p.name, ErrNoLink, timeout, p.state, s.c.linkNames()))
		case len(p.entries) == 0 || p.carrier:
		case p.wildcard && wildUp:
			s.logf("network: %s: %s after %v; not configuring it", p.name, p.state, timeout)
			p.entries = nil
		case p.wildcard:
		case ctx.Err() != nil:
			errs = append(errs, fmt.Errorf("%s: %w", p.name, ctx.Err()))
		default:
			errs = append(errs, fmt.Errorf("%s: %w after %v (%s); check the cable and the switch port", p.name, ErrNoCarrier, timeout, p.state))
		}
	}
	return errs
}

func describe(plans []*linkPlan) string {
	s := make([]string, len(plans))
	for i, p := range plans {
		s[i] = fmt.Sprintf("%s (%s)", p.name, p.state)
	}
	return strings.Join(s, ", ")
}

// address runs every entry of every ready link, in parallel, and returns the
// failures. For entries without a device, a failure on one link is only
// logged if another link got configured by the same entry.
func (s *session) address(ctx context.Context, plans []*linkPlan) []error {
	type outcome struct {
		e        IPConfig
		wildcard bool
		err      error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	for _, p := range plans {
		if p.ready {
			for _, e := range p.entries {
				s.n.entry(p.name, p.mac, e) // in the configuration's order
			}
		}
	}
	for _, p := range plans {
		if !p.ready {
			continue
		}
		for _, e := range p.entries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.recoverPanic(p.name + " " + string(e.Method))
				err := s.configure(ctx, p, e)
				mu.Lock()
				outcomes = append(outcomes, outcome{e, p.wildcard, err})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	var errs []error
	for _, e := range s.cfg.IP {
		if e.Iface != "" || e.Validate() != nil || e.Method == MethodOff {
			continue
		}
		if !slices.ContainsFunc(outcomes, func(o outcome) bool { return o.wildcard && o.e.Method == e.Method }) {
			errs = append(errs, fmt.Errorf("ip=%s: %w: no Ethernet link to configure (links present: %s)", e, ErrNoLink, s.c.linkNames()))
		}
	}
	for _, o := range outcomes {
		if o.err == nil {
			continue
		}
		if o.wildcard && slices.ContainsFunc(outcomes, func(x outcome) bool {
			return x.wildcard && x.err == nil && x.e.Method == o.e.Method
		}) {
			s.logf("network: %v", o.err)
			continue
		}
		errs = append(errs, o.err)
	}
	return errs
}

// configure applies one entry to one link.
func (s *session) configure(ctx context.Context, p *linkPlan, e IPConfig) error {
	st := s.n.entry(p.name, p.mac, e)
	switch e.Method {
	case MethodStatic:
		return s.static(ctx, p, st, e)
	case MethodDHCP:
		return s.dhcp4(ctx, p, st, e)
	case MethodDHCP6:
		return s.dhcp6(ctx, p, st, e)
	case MethodAuto6:
		return s.slaac(ctx, p, st)
	}
	return fmt.Errorf("%s: method %q: want static, dhcp, dhcp6 or auto6", p.name, e.Method)
}

// static applies a static entry and, for IPv6, waits (up to the DHCP
// timeout) for duplicate address detection, so the relay can bind the
// address once Configure returns.
func (s *session) static(ctx context.Context, p *linkPlan, st *entryState, e IPConfig) error {
	st2 := e.Static
	st2.Iface = p.name
	if err := s.c.ApplyStatic(st2); err != nil {
		s.n.setProblem(st, err.Error())
		return err
	}
	r := result{addrs: []netip.Prefix{st2.Addr}, gateway: st2.Gateway}
	if st2.Addr.Addr().Is6() {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.dhcpTimeout())
		err := s.c.WaitAddress(wctx, p.name, st2.Addr.Addr())
		cancel()
		if err != nil {
			r.problem = err.Error()
			s.n.set(st, r)
			return err
		}
	}
	s.n.set(st, r)
	s.logf("network: %s: ip=%s", p.name, st2)
	return nil
}

// relayNIC resolves the relay NIC, sets the mtu without a link on it and
// applies the relay's sysctls.
func (s *session) relayNIC(plans []*linkPlan) []error {
	var errs []error
	link := ""
	if s.cfg.RelayLink != "" {
		name, err := s.c.ResolveLink(s.cfg.RelayLink)
		if err != nil {
			errs = append(errs, fmt.Errorf("relay NIC: %w", err))
		} else {
			link = name
			s.n.Relay = name
			s.logf("network: relay NIC %s (%s)", name, s.cfg.RelayLink)
		}
	}
	if link != "" {
		for _, m := range s.cfg.MTU {
			if m.Link != "" || m.check() != nil {
				continue
			}
			if err := s.setMTU(link, m.Bytes); err != nil {
				errs = append(errs, err)
			}
		}
	}
	t, err := RelaySysctls(link, s.cfg.RelayPorts)
	if err != nil {
		return append(errs, err)
	}
	if s.cfg.RelayPorts.IsZero() {
		s.logf("network: ip_local_port_range left alone: no relay port range given")
	}
	return append(errs, s.c.applySysctls(t, s.logf)...)
}

func (s *session) setMTU(name string, mtu int) error {
	l, err := s.c.link(name)
	if err != nil {
		return fmt.Errorf("mtu %d: %w", mtu, err)
	}
	if old := l.Attrs().MTU; old != mtu {
		if err := s.c.h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("mtu %s:%d: %w (the driver's maximum may be lower)", name, mtu, err)
		}
		s.logf("network: %s mtu %d -> %d", name, old, mtu)
	}
	return nil
}

// updateResolvConf writes the resolver's file from what the network knows,
// and says why when there is nothing to write.
func (s *session) updateResolvConf() error {
	s.resolvMu.Lock()
	defer s.resolvMu.Unlock()
	servers, search, sources := s.n.nameServers()
	if len(servers) == 0 {
		s.logf("network: no name servers (dns key, ip= or DHCP): host names will not resolve")
		return nil
	}
	if err := writeFileAtomic(s.c.resolvConf, resolvConf(servers, search, sources)); err != nil {
		return fmt.Errorf("write %s: %w", s.c.resolvConf, err)
	}
	return nil
}

// resolvConfChanged is updateResolvConf for the DHCP clients, which log.
func (s *session) resolvConfChanged() {
	if err := s.updateResolvConf(); err != nil {
		s.logf("network: %v", err)
	}
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, so a reader never sees half a file.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// recoverPanic turns a panic of a netcfg goroutine into a log line: in PID
// 1 a panic would panic the kernel.
func (s *session) recoverPanic(what string) {
	if r := recover(); r != nil {
		s.logf("network: %s: internal error: %v", what, r)
	}
}

// goBackground runs fn until it returns, counted in Network.Wait.
func (s *session) goBackground(what string, fn func()) {
	s.n.wg.Add(1)
	go func() {
		defer s.n.wg.Done()
		defer s.recoverPanic(what)
		fn()
	}()
}

// progress logs line(elapsed) every progressEvery until the returned stop
// is called.
func (s *session) progress(line func(elapsed time.Duration) string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(s.c.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s.logf("%s", line(now.Sub(start).Round(time.Second)))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
