package pid1

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/netcfg"
	"github.com/relaybox/relaybox/relay"
)

// KeyPrefix marks relaybox's keys on the kernel command line:
// relaybox.<key>=<value>.
const KeyPrefix = "relaybox."

// Config is the box's configuration: init's own keys and the relay's. The
// same keys are read from every source (config files, a URL, the kernel
// command line), and are the relay's flags for the relay's part.
type Config struct {
	// Net is the network configuration: keys ip (also the kernel's own
	// ip= parameter), mtu, vlan, dns, carrier-timeout, dhcp-timeout. With
	// no ip at all, every Ethernet link asks DHCP.
	Net netcfg.Config
	// Iface chooses the relay NIC, the one XDP attaches to: a name, a MAC
	// (mac:52:54:00:12:34:56) or default-route. Key: iface; defaults to
	// the device of the first ip entry that names one, else default-route.
	Iface string
	// XDP is how the XDP program attaches. Key: xdp (auto, native,
	// generic, off); auto tries native and falls back to generic.
	XDP bpf.Mode
	// URL is where more configuration is fetched from once the network
	// is up. Key: config (http:// or https://).
	URL string
	// Watchdog is the hardware watchdog's timeout; init pings it at a
	// third of that. Key: watchdog (a duration; 0 leaves it alone).
	Watchdog time.Duration
	// Dashboard puts the status screen on the console once the relay
	// serves. Key: dashboard (on or off).
	Dashboard bool
	// Relay is the relay's configuration; RelayArgs are the same keys as
	// the relay's flags.
	Relay     relay.Config
	RelayArgs []string
	// Settings are what the configuration was made from, for the console.
	Settings []relay.Setting
}

// initFlags are the keys init reads itself; every other key is the relay's.
func (c *Config) initFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	c.Net.RegisterFlags(fs)
	fs.Var(flagFunc(func(v string) error {
		if v == "" {
			return errors.New("want a network interface: a name such as eth0, mac:<address> or default-route")
		}
		c.Iface = v
		return nil
	}), "iface", "the relay NIC: eth0, mac:52:54:00:12:34:56 or default-route (default: the device in ip)")
	fs.Var(flagFunc(func(v string) error {
		m, err := bpf.ParseMode(v)
		c.XDP = m
		return err
	}), "xdp", "auto, native, generic or off")
	fs.Var(flagFunc(func(v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q: want an http:// or https:// URL", v)
		}
		c.URL = v
		return nil
	}), "config", "URL of more configuration, fetched once the network is up")
	fs.Var(flagFunc(func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d > 0 && d < 3*time.Second) {
			return fmt.Errorf("%q: want a duration of at least 3s, such as 30s, or 0 to leave the watchdog alone", v)
		}
		c.Watchdog = d
		return nil
	}), "watchdog", "hardware watchdog timeout, e.g. 30s; 0 leaves it alone")
	fs.Var(flagFunc(func(v string) error {
		switch v {
		case "on":
			c.Dashboard = true
		case "off":
			c.Dashboard = false
		default:
			return fmt.Errorf("%q: want on or off", v)
		}
		return nil
	}), "dashboard", "the status screen on the console once the relay serves: on or off")
	return fs
}

// flagFunc is a flag whose Set is a function; init's keys are set once
// from merged settings, so they need no String.
type flagFunc func(string) error

func (f flagFunc) Set(v string) error { return f(v) }
func (f flagFunc) String() string     { return "" }

// cmdlineSettings picks relaybox's keys, and the kernel's standard ip=, out
// of the kernel command line.
func cmdlineSettings(params []Param) []relay.Setting {
	var out []relay.Setting
	for _, p := range params {
		switch {
		case p.Key == "ip":
			out = append(out, relay.Setting{Key: "ip", Value: p.Value, Source: "kernel command line"})
		case strings.HasPrefix(p.Key, KeyPrefix):
			out = append(out, relay.Setting{Key: strings.TrimPrefix(p.Key, KeyPrefix), Value: p.Value, Source: "kernel command line"})
		}
	}
	return out
}

// ParseConfig applies merged settings to init's keys and the relay's. It
// reports every problem at once, each naming its key and source, and still
// returns what it could read: a box with a bad relay key keeps its network
// and console.
func ParseConfig(settings []relay.Setting) (Config, error) {
	c := Config{XDP: bpf.ModeAuto, Watchdog: 30 * time.Second, Dashboard: true, Settings: settings}
	initFS := c.initFlags()
	relayFS := relay.NewFlagSet(&c.Relay)
	var errs []error
	for _, s := range settings {
		var err error
		switch {
		case initFS.Lookup(s.Key) != nil:
			err = initFS.Set(s.Key, s.Value)
		case relayFS.Lookup(s.Key) != nil:
			if err = relayFS.Set(s.Key, s.Value); err == nil {
				c.RelayArgs = append(c.RelayArgs, "--"+s.Key+"="+s.Value)
			}
		default:
			err = fmt.Errorf("unknown key; init knows %s; the relay knows %s", flagNames(initFS), flagNames(relayFS))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", s.Source, displayKey(s), err))
		}
	}
	if !slices.ContainsFunc(settings, func(s relay.Setting) bool { return s.Key == "ip" }) {
		// An appliance plugged in with no configuration asks DHCP;
		// ip=off, given, means no network configuration at all.
		dhcp, _ := netcfg.ParseIPConfig("dhcp")
		c.Net.IP = []netcfg.IPConfig{dhcp}
	}
	if c.Iface == "" {
		c.Iface = netcfg.DefaultRoute
		for _, ip := range c.Net.IP {
			if ip.Iface != "" {
				c.Iface = ip.Iface
				break
			}
		}
	}
	c.Net.RelayLink = c.Iface
	c.Net.RelayPorts = netcfg.PortRange{First: c.Relay.PortMin, Last: c.Relay.PortMax}
	if err := c.Net.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Relay.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// displayKey is the key as the user wrote it.
func displayKey(s relay.Setting) string {
	if s.Source == "kernel command line" && s.Key != "ip" {
		return KeyPrefix + s.Key
	}
	return s.Key
}

func flagNames(fs *flag.FlagSet) string {
	var keys []string
	fs.VisitAll(func(f *flag.Flag) { keys = append(keys, f.Name) })
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// Hostname is the first hostname an ip entry gives, else relaybox.
func (c Config) Hostname() string {
	for _, ip := range c.Net.IP {
		if ip.Hostname != "" {
			return ip.Hostname
		}
	}
	return "relaybox"
}

// networkKeys are the keys that configure the network.
func networkKeys() map[string]bool {
	fs := flag.NewFlagSet("net", flag.ContinueOnError)
	new(netcfg.Config).RegisterFlags(fs)
	keys := map[string]bool{"iface": true}
	fs.VisitAll(func(f *flag.Flag) { keys[f.Name] = true })
	return keys
}

// ListenPort is the relay's STUN/TURN port, the one the XDP program
// classifies for. Several listen addresses must share it.
func (c Config) ListenPort() (uint16, error) {
	port := c.Relay.Listen[0].Port()
	for _, a := range c.Relay.Listen[1:] {
		if a.Port() != port {
			return 0, fmt.Errorf("listen %s and %s: the XDP data plane needs one port for every listen address", c.Relay.Listen[0], a)
		}
	}
	return port, nil
}
