package netcfg

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr

	// netipEqual lets cmp compare netip values, whose fields are unexported.
	netipEqual = cmp.Options{
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	}
)

func TestParseIP(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Static
	}{
		{
			in:   "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off",
			want: Static{Iface: "eth0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1")},
		},
		{
			in:   "198.18.0.2::198.18.0.1:24::eth0:none",
			want: Static{Iface: "eth0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1")},
		},
		{
			// autoconf left out, and empty
			in:   "198.18.0.2:::255.255.0.0::eth0",
			want: Static{Iface: "eth0", Addr: pfx("198.18.0.2/16")},
		},
		{
			in:   "198.18.0.2:::255.255.0.0::eth0:",
			want: Static{Iface: "eth0", Addr: pfx("198.18.0.2/16")},
		},
		{
			// server-ip is checked and dropped
			in: "198.18.0.2:198.18.0.9:198.18.0.1:255.255.255.0:relay-1:enp3s0:off:198.18.0.53:198.18.0.54:198.18.0.123",
			want: Static{
				Iface: "enp3s0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1"), Hostname: "relay-1",
				DNS: []netip.Addr{addr("198.18.0.53"), addr("198.18.0.54")}, NTP: []netip.Addr{addr("198.18.0.123")},
			},
		},
		{
			// dns1 only
			in:   "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off::198.18.0.54",
			want: Static{Iface: "eth0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1"), DNS: []netip.Addr{addr("198.18.0.54")}},
		},
		{
			in:   "198.18.0.2:::255.255.255.255::eth0:off",
			want: Static{Iface: "eth0", Addr: pfx("198.18.0.2/32")},
		},
		{
			in:   "198.18.0.1::198.18.0.0:31::eth0:off",
			want: Static{Iface: "eth0", Addr: pfx("198.18.0.1/31"), Gateway: addr("198.18.0.0")},
		},
		{
			in: "[2001:2::2]::[2001:2::1]:64:relay:eth1:off:[2001:2::53]",
			want: Static{
				Iface: "eth1", Addr: pfx("2001:2::2/64"), Gateway: addr("2001:2::1"), Hostname: "relay",
				DNS: []netip.Addr{addr("2001:2::53")},
			},
		},
		{
			// a link-local IPv6 gateway is on every link
			in:   "[2001:2::2]::[fe80::1]:64::eth1:off",
			want: Static{Iface: "eth1", Addr: pfx("2001:2::2/64"), Gateway: addr("fe80::1")},
		},
	} {
		got, err := ParseIP(tt.in)
		if err != nil {
			t.Errorf("ParseIP(%q) = error %v, want %+v", tt.in, err, tt.want)
			continue
		}
		if diff := cmp.Diff(tt.want, got, netipEqual); diff != "" {
			t.Errorf("ParseIP(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseIPErrors(t *testing.T) {
	for _, tt := range []struct {
		in     string
		is     error    // errors.Is target, if any
		substr []string // every one must be in the message
	}{
		{in: "", substr: []string{"empty value", "ip=<client-ip>::<gateway-ip>"}},
		{in: "off", is: ErrOff},
		{in: "none", is: ErrOff},
		{in: "eth0:off", is: ErrOff},
		{in: "dhcp", is: ErrAutoconfUnsupported, substr: []string{`autoconf "dhcp"`, "DHCPv4", "not supported", ":<device>:off"}},
		{in: "on", is: ErrAutoconfUnsupported},
		{in: "any", is: ErrAutoconfUnsupported},
		{in: "bootp", is: ErrAutoconfUnsupported},
		{in: "rarp", is: ErrAutoconfUnsupported},
		{in: "both", is: ErrAutoconfUnsupported},
		{in: "dhcp6", is: ErrAutoconfUnsupported, substr: []string{"DHCPv6", "[<client-ipv6>]"}},
		{in: "auto6", is: ErrAutoconfUnsupported, substr: []string{"SLAAC"}},
		{in: "eth0:dhcp", is: ErrAutoconfUnsupported, substr: []string{":eth0:off"}},
		{in: ":::::eth0:dhcp", is: ErrAutoconfUnsupported, substr: []string{":eth0:off"}},
		{in: "198.18.0.2::198.18.0.1:255.255.255.0::eth0:on", substr: []string{`client-ip "198.18.0.2" with autoconf "on"`, "not both"}},
		{in: "198.18.0.2::198.18.0.1:255.255.255.0::eth0:static", substr: []string{`autoconf "static"`, "want off, none or empty", "dhcp6 or auto6"}},
		{in: "198.18.0.2::198.18.0.1:255.255.255.0:::off", substr: []string{"device is empty", "name the interface"}},
		{in: "[2001:2::2]::[2001:2::1]:64:::off", substr: []string{"device is empty", "[<client-ipv6>]"}},
		{in: "::198.18.0.1:255.255.255.0::eth0:off", substr: []string{"client-ip is empty"}},
		{in: "198.18.0.300::198.18.0.1:255.255.255.0::eth0:off", substr: []string{`client-ip "198.18.0.300"`, "not an IPv4 address"}},
		{in: "198.18.0.2:x:198.18.0.1:255.255.255.0::eth0:off", substr: []string{`server-ip "x"`}},
		{in: "198.18.0.2::198.18.0:255.255.255.0::eth0:off", substr: []string{`gw-ip "198.18.0"`}},
		{in: "198.18.0.2::198.18.0.1:::eth0:off", substr: []string{"netmask is empty", "255.255.255.0", "(24)"}},
		{in: "198.18.0.2::198.18.0.1:255.0.255.0::eth0:off", substr: []string{`netmask "255.0.255.0"`, "contiguous"}},
		{in: "198.18.0.2::198.18.0.1:0.0.0.0::eth0:off", substr: []string{`netmask "0.0.0.0"`}},
		{in: "198.18.0.2::198.18.0.1:33::eth0:off", substr: []string{`netmask "33"`, "1-32"}},
		{in: "198.18.0.2::198.18.0.1:0::eth0:off", substr: []string{`netmask "0"`}},
		{in: "198.18.0.2::198.18.0.1:/24::eth0:off", substr: []string{`netmask "/24"`}},
		{in: "[2001:2::2]::[2001:2::1]:255.255.255.0::eth0:off", substr: []string{"dotted mask is for IPv4"}},
		{in: "[2001:2::2]::[2001:2::1]:::eth0:off", substr: []string{"netmask is empty", "64"}},
		{in: "[2001:2::2]::[2001:2::1]:129::eth0:off", substr: []string{`netmask "129"`, "1-128"}},
		{in: "198.18.0.2::198.19.0.1:255.255.255.0::eth0:off", substr: []string{"gw-ip 198.19.0.1", "not on the link 198.18.0.0/24"}},
		{in: "198.18.0.2::198.18.0.2:255.255.255.0::eth0:off", substr: []string{"gw-ip 198.18.0.2", "own address"}},
		{in: "198.18.0.2::[2001:2::1]:255.255.255.0::eth0:off", substr: []string{"gw-ip 2001:2::1", "family"}},
		{in: "198.18.0.0:::255.255.255.0::eth0:off", substr: []string{"client-ip 198.18.0.0", "network address"}},
		{in: "198.18.0.255:::255.255.255.0::eth0:off", substr: []string{"client-ip 198.18.0.255", "broadcast address"}},
		{in: "224.0.0.1:::255.255.255.0::eth0:off", substr: []string{"client-ip 224.0.0.1", "not a unicast"}},
		{in: "0.0.0.0:::255.255.255.0::eth0:off", substr: []string{"client-ip 0.0.0.0"}},
		{in: "198.18.0.2:::255.255.255.0:bad_name:eth0:off", substr: []string{`hostname "bad_name"`}},
		{in: "198.18.0.2:::255.255.255.0:" + strings.Repeat("h", 65) + ":eth0:off", substr: []string{"hostname", "64"}},
		{in: "198.18.0.2:::255.255.255.0::eth/0:off", substr: []string{`device "eth/0"`}},
		{in: "198.18.0.2:::255.255.255.0::eth0:off:0.0.0.0", substr: []string{"dns server 0.0.0.0"}},
		{in: "198.18.0.2:::255.255.255.0::eth0:off:::224.0.1.1", substr: []string{"ntp server 224.0.1.1"}},
		{in: "198.18.0.2:::255.255.255.0::eth0:off::::", substr: []string{"11 fields", "at most 10"}},
		{in: "2001:2::2::2001:2::1:64::eth0:off", substr: []string{"brackets"}},
		{in: "[2001:2::2::[2001:2::1]:64::eth0:off", substr: []string{"nested '['"}},
		{in: "[2001:2::2]]::[2001:2::1]:64::eth0:off", substr: []string{"']' without '['"}},
		{in: "[2001:2::2::2001:2::1:64::eth0:off", substr: []string{"'[' without ']'"}},
		{in: "[198.18.0.2]:::24::eth0:off", substr: []string{`client-ip "[198.18.0.2]"`, "not an IPv6 address"}},
		{in: "[::ffff:198.18.0.2]:::24::eth0:off", substr: []string{`client-ip "[::ffff:198.18.0.2]"`}},
		{in: "[fe80::2%eth0]:::64::eth0:off", substr: []string{`client-ip "[fe80::2%eth0]"`}},
		{in: "[fe80::2]:::64::eth0:off", substr: []string{"client-ip fe80::2", "not a unicast address this host can own"}},
	} {
		got, err := ParseIP(tt.in)
		if err == nil {
			t.Errorf("ParseIP(%q) = %+v, want an error", tt.in, got)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("ParseIP(%q) = %v, want an error wrapping %v", tt.in, err, tt.is)
		}
		if !strings.HasPrefix(err.Error(), "ip="+tt.in+": ") {
			t.Errorf("ParseIP(%q) = %q, want it to start with the value", tt.in, err)
		}
		for _, s := range tt.substr {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("ParseIP(%q) = %q, want it to contain %q", tt.in, err, s)
			}
		}
		if !cmp.Equal(got, Static{}, netipEqual) {
			t.Errorf("ParseIP(%q) = %+v with an error, want the zero Static", tt.in, got)
		}
	}
}

func TestStaticString(t *testing.T) {
	for _, tt := range []struct {
		s    Static
		want string
	}{
		{Static{Iface: "eth0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1")}, "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off"},
		{Static{Iface: "eth0", Addr: pfx("198.18.0.2/32")}, "198.18.0.2:::255.255.255.255::eth0:off"},
		{
			Static{Iface: "eth1", Addr: pfx("2001:2::2/64"), Gateway: addr("fe80::1"), Hostname: "r",
				DNS: []netip.Addr{addr("2001:2::53"), addr("198.18.0.53"), addr("198.18.0.54")}, NTP: []netip.Addr{addr("198.18.0.123")}},
			"[2001:2::2]::[fe80::1]:64:r:eth1:off:[2001:2::53]:198.18.0.53:198.18.0.123",
		},
		{Static{Iface: "eth0", Addr: pfx("198.18.0.2/24"), NTP: []netip.Addr{addr("198.18.0.123")}}, "198.18.0.2:::255.255.255.0::eth0:off:::198.18.0.123"},
	} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Static{Iface: "eth0", Addr: pfx("198.18.0.2/24"), Gateway: addr("198.18.0.1")}
	if err := good.Validate(); err != nil {
		t.Fatalf("%+v.Validate() = %v, want nil", good, err)
	}
	for _, tt := range []struct {
		name   string
		change func(*Static)
		substr string
	}{
		{"no device", func(s *Static) { s.Iface = "" }, "no device"},
		{"no address", func(s *Static) { s.Addr = netip.Prefix{} }, "no address"},
		{"prefix 0", func(s *Static) { s.Addr = pfx("198.18.0.2/0") }, "prefix length 0"},
		{"mapped", func(s *Static) { s.Addr = netip.PrefixFrom(addr("::ffff:198.18.0.2"), 120) }, "not a unicast"},
		{"loopback", func(s *Static) { s.Addr = pfx("127.0.0.2/8"); s.Gateway = netip.Addr{} }, "not a unicast"},
		{"link-local v4 gateway", func(s *Static) { s.Gateway = addr("169.254.0.1") }, "not a unicast"},
		{"dns zero", func(s *Static) { s.DNS = []netip.Addr{{}} }, "dns server"},
	} {
		s := good
		tt.change(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tt.substr) {
			t.Errorf("%s: %+v.Validate() = %v, want an error containing %q", tt.name, s, err, tt.substr)
		}
	}
}

// FuzzParseIP checks that ParseIP never panics, that whatever it accepts is
// valid, and that String gives back a value that parses to the same Static.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{
		"198.18.0.2::198.18.0.1:255.255.255.0::eth0:off",
		"198.18.0.2:198.18.0.9:198.18.0.1:24:relay-1:enp3s0:off:198.18.0.53:198.18.0.54:198.18.0.123",
		"[2001:2::2]::[2001:2::1]:64:relay:eth1:off:[2001:2::53]",
		"dhcp", "off", "eth0:dhcp6", "", ":::::", "[", "]:[",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseIP(in)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseIP(%q) = %+v, which does not validate: %v", in, s, err)
		}
		out := s.String()
		s2, err := ParseIP(out)
		if err != nil {
			t.Fatalf("ParseIP(%q) = %+v; ParseIP(String() = %q) = error %v", in, s, out, err)
		}
		if !cmp.Equal(s, s2, netipEqual) {
			t.Fatalf("ParseIP(%q) = %+v; ParseIP(%q) = %+v, want the same", in, s, out, s2)
		}
	})
}
