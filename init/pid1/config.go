package pid1

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/netcfg"
	"github.com/relaybox/relaybox/relay"
)

// KeyPrefix marks relaybox's keys on the kernel command line:
// relaybox.<key>=<value>.
const KeyPrefix = "relaybox."

// Config is what init reads from the kernel command line.
type Config struct {
	// Net is the static configuration from the standard ip= parameter;
	// nil when there is none (or it asks for none).
	Net *netcfg.Static
	// Iface is the relay NIC, the one XDP attaches to. Key: iface;
	// defaults to the device named in ip=.
	Iface string
	// XDP is how the XDP program attaches. Key: xdp (auto, native,
	// generic, off); auto tries native and falls back to generic.
	XDP bpf.Mode
	// Relay is the relay's configuration; RelayArgs are the same keys as
	// the relay's flags, in the order given.
	Relay     relay.Config
	RelayArgs []string
}

// initKeys are init's own keys; every other relaybox.<key> is the relay's.
var initKeys = map[string]string{
	"iface": "the relay NIC, for example eth0 (default: the device in ip=)",
	"xdp":   "auto, native, generic or off",
}

// ParseConfig reads init's and the relay's keys from the kernel command
// line. It reports every problem at once, naming the key, and still returns
// what it could read: a box with a bad relay key keeps its network and
// console.
func ParseConfig(params []Param) (Config, error) {
	var errs []error
	c := Config{XDP: bpf.ModeAuto}
	fs := relay.NewFlagSet(&c.Relay)
	for _, p := range params {
		switch {
		case p.Key == "ip":
			s, err := netcfg.ParseIP(p.Value)
			switch {
			case errors.Is(err, netcfg.ErrOff):
				c.Net = nil
			case err != nil:
				errs = append(errs, err)
			default:
				c.Net = &s
			}
		case strings.HasPrefix(p.Key, KeyPrefix):
			key := strings.TrimPrefix(p.Key, KeyPrefix)
			if err := c.set(fs, key, p.Value); err != nil {
				errs = append(errs, fmt.Errorf("%s%s: %w", KeyPrefix, key, err))
			}
		}
	}
	if c.Iface == "" && c.Net != nil {
		c.Iface = c.Net.Iface
	}
	if err := c.Relay.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func (c *Config) set(relayFlags *flag.FlagSet, key, value string) error {
	switch key {
	case "iface":
		if value == "" {
			return errors.New("want a network interface name such as eth0")
		}
		c.Iface = value
		return nil
	case "xdp":
		m, err := bpf.ParseMode(value)
		if err != nil {
			return err
		}
		c.XDP = m
		return nil
	}
	if relayFlags.Lookup(key) == nil {
		return fmt.Errorf("unknown key; init knows %s, the relay knows %s", keyList(initKeys), relayKeys(relayFlags))
	}
	if err := relayFlags.Set(key, value); err != nil {
		return err
	}
	c.RelayArgs = append(c.RelayArgs, "--"+key+"="+value)
	return nil
}

func keyList(m map[string]string) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

func relayKeys(fs *flag.FlagSet) string {
	var keys []string
	fs.VisitAll(func(f *flag.Flag) { keys = append(keys, f.Name) })
	return strings.Join(keys, ", ")
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
