package relay

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// defaultListen is where the relay listens when no listen address is given:
// the STUN/TURN port of RFC 8489 on every IPv4 address.
var defaultListen = netip.MustParseAddrPort("0.0.0.0:3478")

// maxSoftwareChars is the SOFTWARE limit of RFC 8489 section 14.14: fewer
// than 128 characters.
const maxSoftwareChars = 127

// Config holds the relay's settings. Every field is a key that can be given
// as a flag of the same name (--listen) or, on the appliance, as a kernel
// command-line key (relaybox.listen=...); see RegisterFlags.
type Config struct {
	// Listen are the UDP addresses the relay serves STUN/TURN on.
	// Flag: listen (repeatable, or comma-separated).
	Listen []netip.AddrPort
	// Software is the text of the SOFTWARE attribute in responses; empty
	// leaves the attribute out. Flag: software.
	Software string
	// LogLevel is the lowest level logged. Flag: log-level.
	LogLevel slog.Level
}

// RegisterFlags defines one flag per config key on fs, writing parsed values
// into c. Like flag.StringVar, it stores the defaults into c first, so c is
// a complete configuration even if no flag is ever set.
//
// Every flag checks its value as it is set and returns an error that names the
// key and says what is valid: PID 1 relies on that to reject a bad
// relaybox.<key>=<value> from the kernel command line before it starts the
// relay.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Listen = []netip.AddrPort{defaultListen}
	c.Software = "relaybox"
	c.LogLevel = slog.LevelInfo
	fs.Var(&listenFlag{c: c}, "listen",
		"UDP `ADDR:PORT` to serve STUN/TURN on, IPv4 or IPv6 ([::]:3478); repeat or separate with commas for several")
	fs.Var((*softwareFlag)(&c.Software), "software",
		"`text` of the SOFTWARE attribute in responses (fewer than 128 characters; empty leaves it out)")
	fs.Var((*levelFlag)(&c.LogLevel), "log-level",
		"lowest `level` logged: debug, info (the default), warn or error")
}

// NewFlagSet returns a flag set named "relay" holding c's flags, with
// ContinueOnError so that callers get an error instead of an exit. Set or
// Parse checks each value alone; call c.Validate once all are set.
func NewFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return fs
}

// Validate checks c as a whole: each key's value (for a Config built in code
// rather than through flags) and the checks that span several values, such as
// two listen addresses that cannot both be bound.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: want at least one ADDR:PORT such as 0.0.0.0:3478"))
	}
	for i, a := range c.Listen {
		if err := checkListen(a); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, b := range c.Listen[:i] {
			if err := listenConflict(b, a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := checkSoftware(c.Software); err != nil {
		errs = append(errs, err)
	}
	if _, ok := levelName(c.LogLevel); !ok {
		errs = append(errs, fmt.Errorf("log-level %d: want one of debug, info, warn, error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// LogValue makes a Config log as its keys, so PID 1 and the relay can record
// the configuration they run with.
func (c Config) LogValue() slog.Value {
	level, _ := levelName(c.LogLevel)
	return slog.GroupValue(
		slog.String("listen", joinAddrs(c.Listen)),
		slog.String("software", c.Software),
		slog.String("log-level", level),
	)
}

// listenFlag is the listen key. The first Set replaces the default, later
// ones add to it, so "--listen A --listen B" means exactly A and B.
type listenFlag struct {
	c   *Config
	set bool
}

func (f *listenFlag) String() string {
	// flag.PrintDefaults calls String on a zero listenFlag.
	if f == nil || f.c == nil {
		return ""
	}
	return joinAddrs(f.c.Listen)
}

func (f *listenFlag) Set(s string) error {
	var addrs []netip.AddrPort
	for v := range strings.SplitSeq(s, ",") {
		a, err := parseListen(v)
		if err != nil {
			return err
		}
		addrs = append(addrs, a)
	}
	if !f.set {
		f.c.Listen = nil
		f.set = true
	}
	f.c.Listen = append(f.c.Listen, addrs...)
	return nil
}

func parseListen(s string) (netip.AddrPort, error) {
	a, err := netip.ParseAddrPort(strings.TrimSpace(s))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen %q: want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478", s)
	}
	// An IPv4-mapped IPv6 address means its IPv4 address: the IPv6 socket
	// would be IPV6_V6ONLY and could never receive on it.
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	if err := checkListen(a); err != nil {
		return netip.AddrPort{}, err
	}
	return a, nil
}

func checkListen(a netip.AddrPort) error {
	if !a.IsValid() {
		return errors.New("listen: empty address: want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478")
	}
	if ip := a.Addr(); ip.IsMulticast() || ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("listen %s: a relay cannot serve on a multicast or broadcast address; want a unicast or wildcard ADDR:PORT such as 0.0.0.0:3478", a)
	}
	return nil
}

// listenConflict reports why a and b cannot both be bound: the same address
// twice, or a wildcard and a specific address of the same family on the same
// port (the kernel refuses the second bind with EADDRINUSE). Port 0 asks the
// kernel for a free port, so it never conflicts.
func listenConflict(a, b netip.AddrPort) error {
	if a.Port() != b.Port() || a.Port() == 0 || a.Addr().Is4() != b.Addr().Is4() {
		return nil
	}
	if a == b {
		return fmt.Errorf("listen %s: given twice; give each address once", a)
	}
	if a.Addr().IsUnspecified() || b.Addr().IsUnspecified() {
		wild, other := a, b
		if b.Addr().IsUnspecified() {
			wild, other = b, a
		}
		return fmt.Errorf("listen %s: overlaps listen %s, which already covers every %s address on that port; give only one of them",
			other, wild, family(wild.Addr()))
	}
	return nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func joinAddrs(addrs []netip.AddrPort) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// softwareFlag is the software key.
type softwareFlag string

func (f *softwareFlag) String() string {
	if f == nil {
		return ""
	}
	return string(*f)
}

func (f *softwareFlag) Set(s string) error {
	if err := checkSoftware(s); err != nil {
		return err
	}
	*f = softwareFlag(s)
	return nil
}

func checkSoftware(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("software %q: want UTF-8 text", s)
	}
	if n := utf8.RuneCountInString(s); n > maxSoftwareChars {
		return fmt.Errorf("software: %d characters is too long; want fewer than %d (RFC 8489)", n, maxSoftwareChars+1)
	}
	return nil
}

// levelFlag is the log-level key. It takes only the four names an operator
// would type, unlike slog.Level's own parser (which also takes "INFO+2").
type levelFlag slog.Level

var levelNames = []struct {
	name  string
	level slog.Level
}{
	{"debug", slog.LevelDebug},
	{"info", slog.LevelInfo},
	{"warn", slog.LevelWarn},
	{"error", slog.LevelError},
}

func levelName(l slog.Level) (string, bool) {
	for _, n := range levelNames {
		if n.level == l {
			return n.name, true
		}
	}
	return l.String(), false
}

func (f *levelFlag) String() string {
	if f == nil {
		return ""
	}
	name, _ := levelName(slog.Level(*f))
	return name
}

func (f *levelFlag) Set(s string) error {
	for _, n := range levelNames {
		if strings.EqualFold(s, n.name) {
			*f = levelFlag(n.level)
			return nil
		}
	}
	return fmt.Errorf("log-level %q: want one of debug, info, warn, error", s)
}
