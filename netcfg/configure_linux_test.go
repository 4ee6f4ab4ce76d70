package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/relaybox/relaybox/netcfg/nstest"
	"github.com/vishvananda/netlink"
)

// logSink collects Configure's log lines; the test prints them if it fails.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *logSink) has(substr string) bool { return strings.Contains(l.String(), substr) }

// configured is one Configure call in a test namespace.
type configured struct {
	nc     *Configurator
	n      *Network
	err    error
	log    *logSink
	resolv string // the resolver file's path
	took   time.Duration
}

// configureIn runs Configure in ns, with progress lines every 200ms, and
// stops the DHCP clients it leaves running before the namespaces go.
func configureIn(t *testing.T, ns *nstest.NS, cfg Config) *configured {
	t.Helper()
	c := &configured{log: &logSink{}, resolv: filepath.Join(t.TempDir(), "resolv.conf")}
	c.nc = New(ns.Netlink(t), InNamespace(ns.Do), ResolvConf(c.resolv))
	c.nc.progressEvery = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	c.n, c.err = c.nc.Configure(ctx, cfg, c.log.logf)
	c.took = time.Since(start)
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { c.n.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("the DHCP clients did not stop within 10s of their context's end")
		}
		if t.Failed() {
			t.Logf("Configure's log:\n%s", c.log)
		}
	})
	return c
}

// parseConfig builds a Config through the keys, as PID 1 does.
func parseConfig(t *testing.T, set ...kv) Config {
	t.Helper()
	c, fs := flags()
	for _, s := range set {
		if err := fs.Set(s.key, s.value); err != nil {
			t.Fatalf("Set(%s, %q) = %v", s.key, s.value, err)
		}
	}
	return *c
}

// readSysctl reads /proc/sys/<key> inside ns.
func readSysctl(t *testing.T, ns *nstest.NS, key string) string {
	t.Helper()
	var b []byte
	if err := ns.Do(func() (err error) {
		b, err = os.ReadFile("/proc/sys/" + key)
		return err
	}); err != nil {
		t.Fatalf("read sysctl %s in %s: %v", key, ns.Name, err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// noDAD turns IPv6 duplicate address detection off for the links created
// in ns from now on, so link-local and autoconfigured addresses are usable
// at once.
func noDAD(t *testing.T, ns *nstest.NS) {
	t.Helper()
	ns.Sysctl(t, "net/ipv6/conf/default/accept_dad", "0")
}

// waitFor polls cond every 50ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// Two NICs, one without carrier, and one that does not exist: the one with
// carrier is configured, the other gets its static address anyway, and
// the error names the two others. The relay NIC gets its sysctls.
func TestConfigureStatic(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	noDAD(t, a)
	nstest.Veth(t, a, "a0", b, "b0")
	nstest.Veth(t, a, "c0", b, "d0")
	b.MustRun(t, "ip", "link", "set", "d0", "down")
	b.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "b0")
	b.MustRun(t, "ip", "addr", "add", "198.19.0.1/32", "dev", "b0")
	b.MustRun(t, "ip", "addr", "add", "2001:2::1/64", "dev", "b0", "nodad")

	cfg := parseConfig(t,
		kv{"ip", "198.18.0.2::198.18.0.1:24::a0:off:198.18.0.53"},
		kv{"ip", "[2001:2::2]::[2001:2::1]:64::a0:off"},
		kv{"ip", "198.18.1.2:::24::c0:off"},
		kv{"ip", "eth9:dhcp"},
		kv{"dns", "2001:2::53"},
		kv{"carrier-timeout", "1"},
	)
	cfg.RelayLink = "a0"
	cfg.RelayPorts = PortRange{49152, 65535}
	c := configureIn(t, a, cfg)

	if c.err == nil {
		t.Fatal("Configure = nil, want errors for c0 and eth9")
	}
	if !errors.Is(c.err, ErrNoCarrier) || !errors.Is(c.err, ErrNoLink) {
		t.Errorf("Configure = %v, want it to wrap ErrNoCarrier and ErrNoLink", c.err)
	}
	for _, s := range []string{"c0: no carrier after 1s (no carrier, operstate down)", "eth9: no such link after 1s (no such link yet; links present: a0, c0)"} {
		if !strings.Contains(c.err.Error(), s) {
			t.Errorf("Configure = %q, want it to contain %q", c.err, s)
		}
	}
	if strings.Contains(c.err.Error(), "a0:") {
		t.Errorf("Configure = %q, want no error about a0", c.err)
	}
	if c.took > 3*time.Second {
		t.Errorf("Configure took %v with a carrier timeout of 1s", c.took)
	}
	for _, s := range []string{"waiting for carrier on c0 (no carrier", "eth9 (no such link yet)", "a0: carrier after"} {
		if !c.log.has(s) {
			t.Errorf("log has no line with %q", s)
		}
	}

	h := a.Netlink(t)
	if got, want := addrsOf(t, h, "c0", netlink.FAMILY_V4), []string{"198.18.1.2/24"}; !cmp.Equal(got, want) {
		t.Errorf("c0 without carrier has %q, want its static address %q", got, want)
	}
	la, _ := h.LinkByName("a0")
	lc, _ := h.LinkByName("c0")
	want := []LinkStatus{
		{Name: "a0", MAC: la.Attrs().HardwareAddr, Methods: []Method{MethodStatic},
			Addrs:    []netip.Prefix{pfx("198.18.0.2/24"), pfx("2001:2::2/64")},
			Gateways: []netip.Addr{addr("198.18.0.1"), addr("2001:2::1")}},
		{Name: "c0", MAC: lc.Attrs().HardwareAddr, Methods: []Method{MethodStatic}, Addrs: []netip.Prefix{pfx("198.18.1.2/24")}},
	}
	if diff := cmp.Diff(want, c.n.Links(), netipEqual, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Links() mismatch (-want +got):\n%s", diff)
	}

	resolv, err := os.ReadFile(c.resolv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resolv), "# Written by relaybox from configuration.\nnameserver 2001:2::53\nnameserver 198.18.0.53\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}

	if c.n.Relay != "a0" {
		t.Errorf("Relay = %q, want a0", c.n.Relay)
	}
	for key, want := range map[string]string{
		"net/ipv4/ip_local_port_range":  "32768 49151",
		"net/ipv4/conf/a0/rp_filter":    "2",
		"net/ipv4/conf/a0/forwarding":   "1",
		"net/ipv6/conf/a0/forwarding":   "1",
		"net/ipv4/conf/c0/forwarding":   "0", // only the relay NIC forwards
		"net/ipv6/conf/all/forwarding":  "0",
		"net/ipv4/conf/all/forwarding":  "0",
		"net/ipv6/conf/c0/forwarding":   "0",
		"net/ipv4/conf/c0/rp_filter":    readSysctl(t, a, "net/ipv4/conf/default/rp_filter"),
		"net/ipv6/conf/a0/disable_ipv6": "0",
	} {
		if got := readSysctl(t, a, key); got != want {
			t.Errorf("sysctl %s = %q, want %q", key, got, want)
		}
	}
	// The buffer maxima belong to the initial namespace, which the test
	// must not change: in a namespace they are skipped, and say so.
	if !c.log.has("sysctl net/core/rmem_max skipped") && !c.log.has("sysctl net/core/rmem_max:") {
		t.Errorf("log says nothing about net/core/rmem_max")
	}
	udpEcho(t, a, netip.MustParseAddrPort("198.18.0.2:3478"), b, netip.MustParseAddr("198.19.0.1"))
}

// vlanSupported reports whether the kernel can make 802.1Q links (this
// machine's kernel is built without them).
func vlanSupported(t *testing.T) bool {
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1")
	return ns.Command("ip", "link", "add", "link", "p0", "name", "p0.9", "type", "vlan", "id", "9").Run() == nil
}

func TestConfigureMTU(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	nstest.Veth(t, a, "c0", b, "d0")
	cfg := parseConfig(t, kv{"mtu", "a0:9000"}, kv{"mtu", "2000"}, kv{"ip", "198.18.0.2:::24::a0:off"}, kv{"carrier-timeout", "2"})
	cfg.RelayLink = "c0"
	h := a.Netlink(t)
	for pass := range 2 {
		c := configureIn(t, a, cfg)
		if c.err != nil {
			t.Fatalf("pass %d: Configure = %v", pass, c.err)
		}
		for name, want := range map[string]int{"a0": 9000, "c0": 2000} {
			if l, err := h.LinkByName(name); err != nil || l.Attrs().MTU != want {
				t.Errorf("pass %d: %s mtu = %v, %v; want %d", pass, name, l.Attrs().MTU, err, want)
			}
		}
		if changed := c.log.has("a0 mtu 1500 -> 9000"); changed != (pass == 0) {
			t.Errorf("pass %d: log says a0's mtu changed: %v", pass, changed)
		}
	}
	// An mtu for a link that never comes names it; the other links are
	// still configured.
	c := configureIn(t, a, parseConfig(t, kv{"mtu", "eth9:9000"}, kv{"ip", "198.18.1.2:::24::c0:off"}, kv{"carrier-timeout", "1"}))
	if !errors.Is(c.err, ErrNoLink) || !strings.Contains(c.err.Error(), "eth9: no such link after 1s") {
		t.Errorf("Configure with an mtu for a missing link = %v, want ErrNoLink naming eth9", c.err)
	}
	if got := addrsOf(t, h, "c0", netlink.FAMILY_V4); !cmp.Equal(got, []string{"198.18.1.2/24"}) {
		t.Errorf("c0 = %q, want 198.18.1.2/24 configured anyway", got)
	}
}

// Configure twice changes nothing the second time: the VLANs it created
// are recognised, not created again. Where the kernel has no 802.1Q
// support, the error says so.
func TestConfigureVLAN(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	cfg := parseConfig(t,
		kv{"vlan", "a0.100"}, kv{"vlan", "a0:200:v200"}, kv{"mtu", "a0:9000"}, kv{"mtu", "a0.100:1400"},
		kv{"ip", "198.18.100.2:::24::a0.100:off"}, kv{"ip", "198.18.200.2:::24::v200:off"}, kv{"carrier-timeout", "2"},
	)
	if !vlanSupported(t) {
		c := configureIn(t, a, cfg)
		for _, s := range []string{"vlan a0.100: create VLAN 100 on a0", "no 802.1Q support", "8021q", "vlan a0:200:v200"} {
			if c.err == nil || !strings.Contains(c.err.Error(), s) {
				t.Errorf("Configure without 802.1Q in the kernel = %v, want it to contain %q", c.err, s)
			}
		}
		t.Skip("the kernel has no 802.1Q support (CONFIG_VLAN_8021Q); checked the error, not the VLANs")
	}
	b.MustRun(t, "ip", "link", "set", "b0", "mtu", "9000")
	b.MustRun(t, "ip", "link", "add", "link", "b0", "name", "b0.100", "type", "vlan", "id", "100")
	b.MustRun(t, "ip", "link", "set", "b0.100", "up")
	b.MustRun(t, "ip", "addr", "add", "198.18.100.1/24", "dev", "b0.100")
	h := a.Netlink(t)
	for pass := range 2 {
		c := configureIn(t, a, cfg)
		if c.err != nil {
			t.Fatalf("pass %d: Configure = %v", pass, c.err)
		}
		for _, tt := range []struct {
			name   string
			mtu    int
			vlanID int
		}{{"a0", 9000, 0}, {"a0.100", 1400, 100}, {"v200", 9000, 200}} {
			l, err := h.LinkByName(tt.name)
			if err != nil {
				t.Fatalf("pass %d: %s: %v", pass, tt.name, err)
			}
			if l.Attrs().MTU != tt.mtu {
				t.Errorf("pass %d: %s mtu = %d, want %d", pass, tt.name, l.Attrs().MTU, tt.mtu)
			}
			if v, ok := l.(*netlink.Vlan); tt.vlanID != 0 && (!ok || v.VlanId != tt.vlanID) {
				t.Errorf("pass %d: %s = %T, want VLAN %d", pass, tt.name, l, tt.vlanID)
			}
		}
		if created := c.log.has("created a0.100"); created != (pass == 0) {
			t.Errorf("pass %d: log says a0.100 created: %v", pass, created)
		}
	}
	udpEcho(t, a, netip.MustParseAddrPort("198.18.100.2:3478"), b, netip.MustParseAddr("198.18.100.1"))

	// A link of the VLAN's name that is something else is reported, and
	// left alone.
	a.MustRun(t, "ip", "link", "add", "link", "a0", "name", "a0.300", "type", "vlan", "id", "301")
	c := configureIn(t, a, parseConfig(t, kv{"vlan", "a0.300"}, kv{"carrier-timeout", "1"}))
	if c.err == nil || !strings.Contains(c.err.Error(), "vlan a0.300: a0.300 exists already as another VLAN (id 301") {
		t.Errorf("Configure with a0.300 taken by VLAN 301 = %v, want an error saying so", c.err)
	}
}

func TestResolveLink(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	a.MustRun(t, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	a.MustRun(t, "ip", "link", "set", "d0", "up")
	a.MustRun(t, "ip", "link", "set", "d1", "up")
	a.MustRun(t, "ip", "addr", "add", "198.18.0.2/24", "dev", "a0")
	a.MustRun(t, "ip", "addr", "add", "198.18.1.2/24", "dev", "d0")
	h := a.Netlink(t)
	nc := New(h)
	mac := func(name string) string {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().HardwareAddr.String()
	}

	type want struct {
		name   string
		is     error
		substr string
	}
	check := func(when string, tests map[string]want) {
		t.Helper()
		for sel, w := range tests {
			got, err := nc.ResolveLink(sel)
			if got != w.name || (w.is != nil && !errors.Is(err, w.is)) || (w.substr != "" && (err == nil || !strings.Contains(err.Error(), w.substr))) ||
				(w.is == nil && w.substr == "" && err != nil) {
				t.Errorf("%s: ResolveLink(%q) = %q, %v; want %q, %v %q", when, sel, got, err, w.name, w.is, w.substr)
			}
		}
	}
	check("no default route", map[string]want{
		"a0":                       {name: "a0"},
		"eth9":                     {is: ErrNoLink, substr: `"eth9"`},
		"mac:" + mac("a0"):         {name: "a0"}, // not a0.5, which shares its MAC
		strings.ToUpper(mac("d1")): {name: "d1"},
		"mac:02:00:00:00:00:99":    {is: ErrNoLink, substr: "MAC 02:00:00:00:00:99"},
		"mac:02:00":                {substr: "not a MAC address"},
		"eth0/1":                   {substr: "not an interface name"},
		DefaultRoute:               {is: ErrNoDefaultRoute, substr: "links present: a0"},
	})

	a.MustRun(t, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "d0")
	check("IPv6 default route only", map[string]want{DefaultRoute: {name: "d0"}})

	a.MustRun(t, "ip", "route", "add", "default", "via", "198.18.0.1", "dev", "a0", "metric", "100")
	check("IPv4 default route", map[string]want{DefaultRoute: {name: "a0"}})

	a.MustRun(t, "ip", "route", "add", "default", "via", "198.18.1.1", "dev", "d0", "metric", "50")
	check("two IPv4 default routes", map[string]want{DefaultRoute: {name: "d0"}})

	a.MustRun(t, "ip", "link", "set", "d1", "address", mac("d0"))
	check("two links with one MAC", map[string]want{"mac:" + mac("d0"): {substr: "is on d1, d0"}})
}

// Entries without a device wait for carrier on one link, not on all, and
// leave the links without it alone.
func TestConfigureWildcardCarrier(t *testing.T) {
	t.Parallel()
	a, b := nstest.New(t), nstest.New(t)
	noDAD(t, a)
	noDAD(t, b)
	nstest.Veth(t, a, "a0", b, "b0")
	nstest.Veth(t, a, "c0", b, "d0")
	b.MustRun(t, "ip", "link", "set", "d0", "down")
	advertise(t, b, "b0", netip.MustParsePrefix("2001:2:0:1::/64"))
	c := configureIn(t, a, parseConfig(t, kv{"ip", "auto6"}, kv{"carrier-timeout", "5"}, kv{"dhcp-timeout", "5"}))
	if c.err != nil {
		t.Fatalf("Configure(ip=auto6) = %v", c.err)
	}
	if c.took > 2*time.Second {
		t.Errorf("Configure took %v: it waited for c0's carrier too", c.took)
	}
	if l := c.n.Links(); len(l) != 1 || l[0].Name != "a0" || len(l[0].Addrs) != 1 {
		t.Errorf("Links() = %v, want a0 with a SLAAC address and nothing about c0", l)
	}
	if !c.log.has("c0: no carrier") {
		t.Errorf("log does not say c0 was left out")
	}
}
