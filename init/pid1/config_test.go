package pid1

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/netcfg"
	"github.com/relaybox/relaybox/relay"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Param
	}{
		{"", nil},
		{"quiet", []Param{{Key: "quiet"}}},
		{"console=ttyS0,115200 panic=-1\n", []Param{{"console", "ttyS0,115200"}, {"panic", "-1"}}},
		{`relaybox.software="relay box"  ip=off`, []Param{{"relaybox.software", "relay box"}, {"ip", "off"}}},
		{`a="x=y" b=`, []Param{{"a", "x=y"}, {"b", ""}}},
		{"\ttab=1\t", []Param{{"tab", "1"}}},
	} {
		if got := ParseCmdline(tc.in); !cmp.Equal(got, tc.want) {
			t.Errorf("ParseCmdline(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	const ip = "ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off"
	for _, tc := range []struct {
		cmdline   string
		iface     string
		xdp       bpf.Mode
		listen    []netip.AddrPort
		relayArgs []string
	}{
		{"console=ttyS0 " + ip, "eth0", bpf.ModeAuto, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")}, nil},
		{ip + " relaybox.xdp=generic relaybox.iface=eth1", "eth1", bpf.ModeGeneric, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")}, nil},
		{"relaybox.xdp=off", "default-route", bpf.ModeOff, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")}, nil},
		{
			ip + " relaybox.listen=0.0.0.0:3479 relaybox.listen=[::]:3479 relaybox.software=box",
			"eth0", bpf.ModeAuto,
			[]netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3479"), netip.MustParseAddrPort("[::]:3479")},
			[]string{"--listen=0.0.0.0:3479", "--listen=[::]:3479", "--software=box"},
		},
		{"ip=off", "default-route", bpf.ModeAuto, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")}, nil},
	} {
		c, err := parseCmdline((tc.cmdline))
		if err != nil {
			t.Errorf("ParseConfig(%q) error %v", tc.cmdline, err)
			continue
		}
		got := []any{c.Iface, c.XDP, c.Relay.Listen, c.RelayArgs}
		want := []any{tc.iface, tc.xdp, tc.listen, tc.relayArgs}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("ParseConfig(%q) [iface xdp listen relayArgs] (-want +got):\n%s", tc.cmdline, diff)
		}
	}
}

// Bad keys are reported by name, every one at once, and what could be read
// is still returned.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []string // substrings of the error
	}{
		{"relaybox.xdp=fast", []string{"relaybox.xdp", `"fast"`, "native"}},
		{"relaybox.colour=blue", []string{"kernel command line: relaybox.colour", "unknown key", "iface", "xdp", "listen"}},
		{"relaybox.listen=1.2.3", []string{"relaybox.listen", "ADDR:PORT"}},
		{"relaybox.iface=", []string{"relaybox.iface", "network interface"}},
		{"ip=bootp", []string{"kernel command line: ip: ", "bootp"}},
		{"relaybox.mtu=99", []string{"relaybox.mtu", "1280"}},
		{"relaybox.config=ftp://x", []string{"relaybox.config", "http://"}},
		{"relaybox.watchdog=1s", []string{"relaybox.watchdog", "at least 3s"}},
		{"relaybox.dashboard=maybe", []string{"relaybox.dashboard", "on or off"}},
		{"relaybox.xdp=fast relaybox.colour=blue", []string{"relaybox.xdp", "relaybox.colour"}},
	} {
		c, err := parseCmdline((tc.cmdline))
		if err == nil {
			t.Errorf("ParseConfig(%q) = nil error, want one mentioning %q", tc.cmdline, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseConfig(%q) error %q, want it to mention %q", tc.cmdline, err, w)
			}
		}
		if len(c.Relay.Listen) == 0 {
			t.Errorf("ParseConfig(%q) lost the relay's defaults", tc.cmdline)
		}
	}
}

func TestListenPort(t *testing.T) {
	c, err := parseCmdline(("relaybox.listen=0.0.0.0:3478 relaybox.listen=[::]:3479"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListenPort(); err == nil || !strings.Contains(err.Error(), "one port") {
		t.Errorf("ListenPort() with two ports = %v, want an error asking for one port", err)
	}
	c, _ = parseCmdline(("relaybox.listen=0.0.0.0:5349"))
	if p, err := c.ListenPort(); p != 5349 || err != nil {
		t.Errorf("ListenPort() = %d, %v, want 5349", p, err)
	}
}

func parseCmdline(cmdline string) (Config, error) {
	return ParseConfig(cmdlineSettings(ParseCmdline(cmdline)))
}

// Later sources win key by key; a repeatable key from a later source
// replaces the earlier values.
func TestConfigLayers(t *testing.T) {
	image := mustRead(t, "listen = 0.0.0.0:3478\nlisten = [::]:3478\nsoftware = image\nxdp = generic\n", "image")
	cmdline := cmdlineSettings(ParseCmdline("relaybox.listen=0.0.0.0:5000 relaybox.xdp=off"))
	c, err := ParseConfig(relay.MergeSettings(image, mustRead(t, "software = partition\n", "RELAYBOX:relaybox.conf"), cmdline))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Relay.Listen, c.Relay.Software, c.XDP}
	want := []any{[]netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:5000")}, "partition", bpf.ModeOff}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("layered config [listen software xdp] (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"--software=partition", "--listen=0.0.0.0:5000"}, c.RelayArgs); diff != "" {
		t.Errorf("RelayArgs (-want +got):\n%s", diff)
	}
}

func mustRead(t *testing.T, file, name string) []relay.Setting {
	t.Helper()
	s, err := relay.ReadConfigFile(strings.NewReader(file), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Without any ip key the box asks DHCP on every link; ip=off means no
// network configuration, and an ip entry naming a device makes it the relay
// NIC.
func TestNetworkDefaults(t *testing.T) {
	for _, tc := range []struct {
		cmdline   string
		wantIP    string
		wantIface string
	}{
		{"", "[dhcp]", "default-route"},
		{"ip=off", "[]", "default-route"},
		{"ip=eth1:dhcp", "[eth1:dhcp]", "eth1"},
		{"ip=198.18.0.2::198.18.0.1:255.255.255.0:box:eth0:off relaybox.iface=mac:52:54:00:12:34:56", "[198.18.0.2::198.18.0.1:255.255.255.0:box:eth0:off]", "mac:52:54:00:12:34:56"},
	} {
		c, err := parseCmdline(tc.cmdline)
		if err != nil {
			t.Errorf("ParseConfig(%q) error %v", tc.cmdline, err)
			continue
		}
		if got := fmt.Sprint(c.Net.IP); got != tc.wantIP {
			t.Errorf("ParseConfig(%q).Net.IP = %s, want %s", tc.cmdline, got, tc.wantIP)
		}
		if c.Iface != tc.wantIface || c.Net.RelayLink != tc.wantIface {
			t.Errorf("ParseConfig(%q): Iface %q, RelayLink %q, want %q", tc.cmdline, c.Iface, c.Net.RelayLink, tc.wantIface)
		}
	}
	c, _ := parseCmdline("ip=198.18.0.2::198.18.0.1:255.255.255.0:box:eth0:off")
	if got := c.Hostname(); got != "box" {
		t.Errorf("Hostname() = %q, want box from ip=", got)
	}
}

// The relay's allocation range is what the kernel's ephemeral ports keep
// clear of, and what the XDP program treats as allocation ports.
func TestRelayPortRange(t *testing.T) {
	c, err := parseCmdline("relaybox.port-range=50000-50100")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Net.RelayPorts, (netcfg.PortRange{First: 50000, Last: 50100}); got != want {
		t.Errorf("Net.RelayPorts = %+v, want %+v", got, want)
	}
}
