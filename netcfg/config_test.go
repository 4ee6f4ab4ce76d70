package netcfg

import (
	"flag"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// flags returns a Config with its flags registered on a quiet flag set.
func flags() (*Config, *flag.FlagSet) {
	var c Config
	fs := flag.NewFlagSet("netcfg", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	return &c, fs
}

type kv struct{ key, value string }

func TestConfigKeys(t *testing.T) {
	dhcp := func(iface string) IPConfig { return IPConfig{Method: MethodDHCP, Static: Static{Iface: iface}} }
	static4 := IPConfig{Method: MethodStatic, Static: Static{Iface: "eth0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1")}}
	for _, tt := range []struct {
		name string
		set  []kv
		want Config
	}{
		{
			name: "defaults",
			want: Config{CarrierTimeout: 15 * time.Second, DHCPTimeout: 30 * time.Second},
		},
		{
			name: "ip forms",
			set: []kv{
				{"ip", "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off"},
				{"ip", "eth1:dhcp"}, {"ip", ":::::eth2:any"}, {"ip", "eth1:auto6"}, {"ip", "eth1:dhcp6"}, {"ip", "on"},
			},
			want: Config{IP: []IPConfig{
				static4, dhcp("eth1"), dhcp("eth2"),
				{Method: MethodAuto6, Static: Static{Iface: "eth1"}}, {Method: MethodDHCP6, Static: Static{Iface: "eth1"}},
				dhcp(""),
			}},
		},
		{
			name: "a later ip entry replaces the link's IPv4 configuration",
			set:  []kv{{"ip", "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off"}, {"ip", "eth0:auto6"}, {"ip", "eth0:dhcp"}},
			want: Config{IP: []IPConfig{{Method: MethodAuto6, Static: Static{Iface: "eth0"}}, dhcp("eth0")}},
		},
		{
			name: "ip=off forgets what came before",
			set:  []kv{{"ip", "eth0:dhcp"}, {"ip", "eth1:dhcp"}, {"ip", "off"}, {"ip", "eth2:dhcp"}},
			want: Config{IP: []IPConfig{dhcp("eth2")}},
		},
		{
			name: "<device>:off forgets that device",
			set:  []kv{{"ip", "eth0:dhcp"}, {"ip", "eth0:auto6"}, {"ip", "eth1:dhcp"}, {"ip", "eth0:off"}},
			want: Config{IP: []IPConfig{dhcp("eth1")}},
		},
		{
			name: "dhcp with hostname and dns",
			set:  []kv{{"ip", "::::relay-1:eth0:dhcp:198.18.0.53"}},
			want: Config{IP: []IPConfig{{Method: MethodDHCP, Static: Static{Iface: "eth0", Hostname: "relay-1", DNS: []netip.Addr{addr("198.18.0.53")}}}}},
		},
		{
			name: "mtu",
			set:  []kv{{"mtu", "eth0:9000"}, {"mtu", "1500"}, {"mtu", "eth0:1600"}},
			want: Config{MTU: []MTU{{"", 1500}, {"eth0", 1600}}},
		},
		{
			name: "vlan",
			set:  []kv{{"vlan", "eth0.100"}, {"vlan", "eth1:200"}, {"vlan", "enp129s0f1np1:4094:uplink"}, {"vlan", "eth0.100.7"}},
			want: Config{VLAN: []VLAN{
				{"eth0.100", "eth0", 100}, {"eth1.200", "eth1", 200}, {"uplink", "enp129s0f1np1", 4094}, {"eth0.100.7", "eth0.100", 7},
			}},
		},
		{
			name: "dns",
			set:  []kv{{"dns", "198.18.0.53, 2001:2::53"}, {"dns", "[2001:2::54]"}, {"dns", "198.18.0.53"}},
			want: Config{DNS: []netip.Addr{addr("198.18.0.53"), addr("2001:2::53"), addr("2001:2::54")}},
		},
		{
			name: "timeouts",
			set:  []kv{{"carrier-timeout", "30"}, {"dhcp-timeout", "2m"}},
			want: Config{CarrierTimeout: 30 * time.Second, DHCPTimeout: 2 * time.Minute},
		},
	} {
		c, fs := flags()
		for _, s := range tt.set {
			if err := fs.Set(s.key, s.value); err != nil {
				t.Fatalf("%s: Set(%s, %q) = %v", tt.name, s.key, s.value, err)
			}
		}
		if tt.want.CarrierTimeout == 0 {
			tt.want.CarrierTimeout = DefaultCarrierTimeout
		}
		if tt.want.DHCPTimeout == 0 {
			tt.want.DHCPTimeout = DefaultDHCPTimeout
		}
		if diff := cmp.Diff(tt.want, *c, netipEqual, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: config mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

// Every bad value is refused by its flag with a message that names the key
// and says what is valid.
func TestConfigKeyErrors(t *testing.T) {
	for _, tt := range []struct {
		key, value string
		substr     []string
	}{
		{"ip", "", []string{"ip=: empty value", "ip=dhcp"}},
		{"ip", "bootp", []string{"ip=bootp", "BOOTP", "use ip=dhcp"}},
		{"ip", "eth0:rarp", []string{"ip=eth0:rarp", "RARP"}},
		{"ip", "eth0:dhcpv4", []string{"ip=eth0:dhcpv4", "client-ip"}},
		{"ip", "198.18.0.2:::24::eth0:dhcp", []string{"ip=198.18.0.2:::24::eth0:dhcp", "not both"}},
		{"ip", ":::::eth0:slaac", []string{`autoconf "slaac"`, "dhcp, on, any, dhcp6 or auto6"}},
		{"ip", "averyveryverylongname:dhcp", []string{"ip=averyveryverylongname:dhcp", "longer than the kernel's 15"}},
		{"ip", "::::bad_host:eth0:dhcp", []string{`hostname "bad_host"`}},
		{"ip", ":::::eth0:dhcp:224.0.0.1", []string{"dns server 224.0.0.1"}},
		{"ip", "198.18.0.2::198.19.0.1:24::eth0:off", []string{"ip=198.18.0.2::198.19.0.1:24::eth0:off", "gw-ip 198.19.0.1", "not on the link"}},
		{"mtu", "", []string{"mtu \"\"", "[<link>:]<bytes>"}},
		{"mtu", "jumbo", []string{`mtu "jumbo"`, "[<link>:]<bytes>"}},
		{"mtu", "eth0:", []string{`mtu "eth0:"`}},
		{"mtu", ":9000", []string{`mtu ":9000"`, "empty device name"}},
		{"mtu", "eth0:576", []string{"mtu eth0:576", "1280-65535"}},
		{"mtu", "70000", []string{"mtu 70000", "1280-65535"}},
		{"mtu", "a/b:9000", []string{`mtu "a/b:9000"`, "not an interface name"}},
		{"vlan", "eth0", []string{`vlan "eth0"`, "<parent>.<id>"}},
		{"vlan", "eth0.x", []string{`vlan "eth0.x"`, `id "x" is not a number`}},
		{"vlan", "eth0.0", []string{`vlan "eth0.0"`, "1-4094"}},
		{"vlan", "eth0:4095", []string{`vlan "eth0:4095"`, "1-4094"}},
		{"vlan", ".100", []string{`vlan ".100"`, "parent", "empty device name"}},
		{"vlan", "enp129s0f1np1.100", []string{`vlan "enp129s0f1np1.100"`, "longer than the kernel's 15", "enp129s0f1np1:100:<name>"}},
		{"vlan", "eth0:100:eth0", []string{`vlan "eth0:100:eth0"`, "name of its parent"}},
		{"vlan", "a:b:c:d", []string{`vlan "a:b:c:d"`}},
		{"dns", "ns1.example", []string{`dns "ns1.example"`, "IPv4 or IPv6 address"}},
		{"dns", "198.18.0.53,", []string{`dns ""`}},
		{"dns", "0.0.0.0", []string{`dns "0.0.0.0"`}},
		{"dns", "fe80::1%eth0", []string{`dns "fe80::1%eth0"`}},
		{"carrier-timeout", "soon", []string{`"soon"`, "1s to 10m0s"}},
		{"carrier-timeout", "0", []string{`"0"`, "1s to"}},
		{"dhcp-timeout", "1h", []string{`"1h"`, "1s to 10m0s"}},
		{"dhcp-timeout", "-5s", []string{`"-5s"`}},
	} {
		c, fs := flags()
		before := *c
		err := fs.Set(tt.key, tt.value)
		if err == nil {
			t.Errorf("Set(%s, %q) = nil, want an error", tt.key, tt.value)
			continue
		}
		for _, s := range tt.substr {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Set(%s, %q) = %q, want it to contain %q", tt.key, tt.value, err, s)
			}
		}
		if diff := cmp.Diff(before, *c, netipEqual, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Set(%s, %q) failed but changed the config:\n%s", tt.key, tt.value, diff)
		}
	}
}

// Flag errors come back through fs.Parse with the flag's name too, which is
// what a config file loader shows.
func TestConfigParseNamesTheKey(t *testing.T) {
	_, fs := flags()
	err := fs.Parse([]string{"-mtu=jumbo"})
	if err == nil || !strings.Contains(err.Error(), "-mtu") || !strings.Contains(err.Error(), "[<link>:]<bytes>") {
		t.Errorf("Parse(-mtu=jumbo) = %v, want an error naming -mtu and the syntax", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func(c *Config) {}
	if c, _ := flags(); c.Validate() != nil {
		t.Fatalf("the default Config does not validate: %v", c.Validate())
	}
	for _, tt := range []struct {
		name   string
		set    []kv
		change func(*Config)
		substr []string // empty: valid
	}{
		{name: "dual stack and dhcp elsewhere", set: []kv{
			{"ip", "198.18.0.2::198.18.0.1:24::eth0:off"}, {"ip", "[2001:2::2]::[2001:2::1]:64::eth0:off"}, {"ip", "eth1:dhcp"},
		}, change: ok},
		{name: "two IPv4 gateways", set: []kv{
			{"ip", "198.18.0.2::198.18.0.1:24::eth0:off"}, {"ip", "198.18.1.2::198.18.1.1:24::eth1:off"},
		}, change: ok, substr: []string{"ip: two IPv4 default routes", "198.18.0.1", "198.18.1.1"}},
		{name: "two IPv6 gateways", set: []kv{
			{"ip", "[2001:2::2]::[2001:2::1]:64::eth0:off"}, {"ip", "[2001:2:0:1::2]::[fe80::1]:64::eth1:off"},
		}, change: ok, substr: []string{"ip: two IPv6 default routes"}},
		{name: "static and dhcp on one link, built in code", change: func(c *Config) {
			c.IP = []IPConfig{
				{Method: MethodStatic, Static: Static{Iface: "eth0", Addr: pfx("198.18.0.2/24")}},
				{Method: MethodDHCP, Static: Static{Iface: "eth0"}},
			}
		}, substr: []string{"ip: eth0 is configured for IPv4 twice (static and dhcp)"}},
		{name: "off in code", change: func(c *Config) { c.IP = []IPConfig{{Method: MethodOff}} },
			substr: []string{"off is a command"}},
		{name: "unknown method in code", change: func(c *Config) { c.IP = []IPConfig{{Method: "bootp", Static: Static{Iface: "eth0"}}} },
			substr: []string{`method "bootp"`}},
		{name: "mtu for the relay NIC without one", set: []kv{{"mtu", "9000"}}, change: ok,
			substr: []string{"mtu 9000 names no link", "relay NIC", "mtu=<link>:9000"}},
		{name: "mtu for the relay NIC", set: []kv{{"mtu", "9000"}}, change: func(c *Config) { c.RelayLink = DefaultRoute }},
		{name: "mtu twice for the relay NIC by name", set: []kv{{"mtu", "9000"}, {"mtu", "eth0:1500"}},
			change: func(c *Config) { c.RelayLink = "eth0" }, substr: []string{"mtu: two values for eth0"}},
		{name: "vlan mtu above its parent", set: []kv{{"vlan", "eth0.100"}, {"mtu", "eth0:1500"}, {"mtu", "eth0.100:9000"}},
			change: ok, substr: []string{"mtu: eth0.100 has 9000 bytes, more than its parent eth0 (1500)"}},
		{name: "two VLANs of one name in code", change: func(c *Config) {
			c.VLAN = []VLAN{{"v", "eth0", 1}, {"v", "eth1", 2}}
		}, substr: []string{"a second VLAN named v"}},
		{name: "bad vlan in code", change: func(c *Config) { c.VLAN = []VLAN{{"eth0.0", "eth0", 0}} },
			substr: []string{"vlan eth0.0", "1-4094"}},
		{name: "bad dns in code", change: func(c *Config) { c.DNS = []netip.Addr{addr("ff02::1")} },
			substr: []string{"dns ff02::1"}},
		{name: "negative timeout in code", change: func(c *Config) { c.DHCPTimeout = -time.Second },
			substr: []string{"dhcp-timeout -1s"}},
		{name: "relay NIC by MAC", change: func(c *Config) { c.RelayLink = "mac:52:54:00:12:34:56" }},
		{name: "bad relay NIC", change: func(c *Config) { c.RelayLink = "mac:52:54" },
			substr: []string{"relay NIC", "not a MAC address"}},
		{name: "relay NIC name too long", change: func(c *Config) { c.RelayLink = "averyveryverylongname" },
			substr: []string{"relay NIC", "longer than", "default-route"}},
		{name: "relay ports", change: func(c *Config) { c.RelayPorts = PortRange{49152, 65535} }},
		{name: "relay ports everywhere", change: func(c *Config) { c.RelayPorts = PortRange{1500, 65000} },
			substr: []string{"relay ports 1500-65000", "fewer than 1024"}},
		{name: "relay ports upside down", change: func(c *Config) { c.RelayPorts = PortRange{60000, 50000} },
			substr: []string{"relay ports 60000-50000"}},
	} {
		c, fs := flags()
		for _, s := range tt.set {
			if err := fs.Set(s.key, s.value); err != nil {
				t.Fatalf("%s: Set(%s, %q) = %v", tt.name, s.key, s.value, err)
			}
		}
		tt.change(c)
		err := c.Validate()
		if len(tt.substr) == 0 {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Validate() = nil, want an error", tt.name)
			continue
		}
		for _, s := range tt.substr {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: Validate() = %q, want it to contain %q", tt.name, err, s)
			}
		}
	}
}

// What the flags print is what they read back.
func TestConfigFlagStrings(t *testing.T) {
	c, fs := flags()
	for _, s := range []kv{
		{"ip", "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off"}, {"ip", "eth1:dhcp"}, {"ip", "::::relay:eth2:dhcp6:[2001:2::53]"},
		{"mtu", "eth0:9000"}, {"mtu", "1500"}, {"vlan", "eth0.100"}, {"vlan", "eth1:7:up"},
		{"dns", "198.18.0.53,2001:2::53"}, {"carrier-timeout", "20s"},
	} {
		if err := fs.Set(s.key, s.value); err != nil {
			t.Fatal(err)
		}
	}
	c2, fs2 := flags()
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if f.Name == "ip" {
			for e := range strings.FieldsSeq(v) {
				if err := fs2.Set("ip", e); err != nil {
					t.Errorf("Set(ip, %q) from String = %v", e, err)
				}
			}
			return
		}
		for part := range strings.SplitSeq(v, ",") {
			if err := fs2.Set(f.Name, part); err != nil {
				t.Errorf("Set(%s, %q) from String = %v", f.Name, part, err)
			}
		}
	})
	if diff := cmp.Diff(c, c2, netipEqual, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("config read back from the flags' strings differs (-want +got):\n%s", diff)
	}
}

func TestParseIPConfig(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want IPConfig
	}{
		{"dhcp", IPConfig{Method: MethodDHCP}},
		{"on", IPConfig{Method: MethodDHCP}},
		{"any", IPConfig{Method: MethodDHCP}},
		{"dhcp6", IPConfig{Method: MethodDHCP6}},
		{"auto6", IPConfig{Method: MethodAuto6}},
		{"off", IPConfig{Method: MethodOff}},
		{"none", IPConfig{Method: MethodOff}},
		{"eth0:off", IPConfig{Method: MethodOff, Static: Static{Iface: "eth0"}}},
		{"eth0:dhcp", IPConfig{Method: MethodDHCP, Static: Static{Iface: "eth0"}}},
		{"eth0.100:auto6", IPConfig{Method: MethodAuto6, Static: Static{Iface: "eth0.100"}}},
		{":::::eth0:dhcp", IPConfig{Method: MethodDHCP, Static: Static{Iface: "eth0"}}},
		{"::::::dhcp", IPConfig{Method: MethodDHCP}},
		{":198.18.0.9:::relay:eth0:dhcp6:[2001:2::53]::198.18.0.123", IPConfig{Method: MethodDHCP6, Static: Static{
			Iface: "eth0", Hostname: "relay", DNS: []netip.Addr{addr("2001:2::53")}, NTP: []netip.Addr{addr("198.18.0.123")}}}},
		{"198.18.0.2::198.18.0.1:24::eth0", IPConfig{Method: MethodStatic, Static: Static{
			Iface: "eth0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1")}}},
	} {
		got, err := ParseIPConfig(tt.in)
		if err != nil {
			t.Errorf("ParseIPConfig(%q) = %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, netipEqual, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ParseIPConfig(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
		if tt.want.Method == MethodOff {
			continue
		}
		back, err := ParseIPConfig(got.String())
		if err != nil || !cmp.Equal(got, back, netipEqual, cmpopts.EquateEmpty()) {
			t.Errorf("ParseIPConfig(%q).String() = %q, which reads back as %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

// FuzzParseIPConfig checks that whatever ParseIPConfig accepts validates
// and survives String and back.
func FuzzParseIPConfig(f *testing.F) {
	for _, s := range []string{"dhcp", "eth0:auto6", ":::::eth0:dhcp:198.18.0.53", "198.18.0.2::198.18.0.1:24::eth0:off", "off", "::::h:e:dhcp6:[2001:2::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseIPConfig(in)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseIPConfig(%q) = %+v, which does not validate: %v", in, c, err)
		}
		if c.Method == MethodOff {
			return
		}
		c2, err := ParseIPConfig(c.String())
		if err != nil || !cmp.Equal(c, c2, netipEqual, cmpopts.EquateEmpty()) {
			t.Fatalf("ParseIPConfig(%q) = %+v; String() = %q reads back as %+v, %v", in, c, c.String(), c2, err)
		}
	})
}

func TestRelaySysctls(t *testing.T) {
	got, err := RelaySysctls("eth0.100", PortRange{49152, 65535})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range got {
		keys = append(keys, s.String())
		if s.Why == "" {
			t.Errorf("%s has no reason", s)
		}
	}
	want := []string{
		"net/core/rmem_max=16777216", "net/core/wmem_max=16777216", "net/ipv4/ip_local_port_range=32768 49151",
		"net/ipv4/conf/eth0.100/rp_filter=2", "net/ipv4/conf/eth0.100/forwarding=1", "net/ipv6/conf/eth0.100/forwarding=1",
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("RelaySysctls mismatch (-want +got):\n%s", diff)
	}
	if got, _ := RelaySysctls("", PortRange{}); len(got) != 2 {
		t.Errorf("RelaySysctls without a link or ports = %v, want the two buffer maxima", got)
	}
}

func TestLocalPortRange(t *testing.T) {
	for _, tt := range []struct {
		in     PortRange
		lo, hi int
	}{
		{PortRange{49152, 65535}, 32768, 49151},
		{PortRange{45000, 65535}, 32768, 44999},
		{PortRange{40000, 65535}, 1024, 39999}, // 32768-39999 would be too few
		{PortRange{30000, 65535}, 1024, 29999},
		{PortRange{10000, 20000}, 20001, 65534},
		{PortRange{1024, 60000}, 60001, 65534},
		{PortRange{50000, 50000}, 32768, 49999},
	} {
		lo, hi, err := localPortRange(tt.in)
		if err != nil || lo != tt.lo || hi != tt.hi {
			t.Errorf("localPortRange(%v) = %d, %d, %v; want %d, %d", tt.in, lo, hi, err, tt.lo, tt.hi)
		}
		if lo%2 == hi%2 {
			t.Errorf("localPortRange(%v) = %d, %d: same parity", tt.in, lo, hi)
		}
	}
}

func TestLinkStatusString(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	l := LinkStatus{
		Name: "eth0", MAC: []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, Methods: []Method{MethodDHCP, MethodAuto6},
		Addrs:    []netip.Prefix{pfx("198.18.0.10/24"), pfx("2001:2:0:1::5/64")},
		Gateways: []netip.Addr{addr("198.18.0.1"), addr("fe80::1")},
		Lease4:   now.Add(3*time.Minute + 58*time.Second), Problem: "SLAAC: no address yet",
	}
	want := "eth0 52:54:00:12:34:56 dhcp,auto6 198.18.0.10/24 2001:2:0:1::5/64 via 198.18.0.1,fe80::1 lease4 3m58s (SLAAC: no address yet)"
	if got := l.format(now); got != want {
		t.Errorf("format = %q, want %q", got, want)
	}
}
