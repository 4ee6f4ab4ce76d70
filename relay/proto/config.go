package proto

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/relaybox/relaybox/relay/auth"
	"github.com/relaybox/relaybox/relay/policy"
)

// Defaults. The lifetimes are RFC 8656's.
const (
	DefaultLifetime           = 600 * time.Second  // allocations, section 7.2
	DefaultMaxLifetime        = 3600 * time.Second // allocations, section 7.2
	DefaultPermissionLifetime = 300 * time.Second  // section 9
	DefaultChannelLifetime    = 600 * time.Second  // section 12
	DefaultNonceLifetime      = 600 * time.Second  // coturn's stale-nonce default
	DefaultPortMin            = 49152              // section 7.2
	DefaultPortMax            = 65535
	DefaultMaxPermissions     = 1024 // per allocation
	DefaultUnauthRate         = 10   // answers per second per source IP
	DefaultUnauthBurst        = 20
	DefaultAmplification      = 1 // answer bytes per request byte
	DefaultMaxSources         = 1 << 16
)

// ChannelCooldown is how long after a channel binding expires its number
// and peer stay reserved to each other (RFC 8656 section 12), so that late
// ChannelData cannot reach a new peer.
const ChannelCooldown = 300 * time.Second

const (
	reservationLifetime      = 30 * time.Second // RFC 8656 section 7.2 (EVEN-PORT R)
	maxSoftwareChars         = 127              // RFC 8489 section 14.14
	maxBindAttempts          = 8
	minNonceKeyLen           = 16
	defaultBandwidthBurstSec = 1
)

// Config is the TURN core's configuration. The comment of each field names
// its key: the flag and config-file key an operator sets it with, and the
// word errors from Validate start with. Zero values take the defaults.
type Config struct {
	// Auth holds the credentials. Keys: realm, user, auth-secret.
	Auth auth.Config
	// Software is the SOFTWARE text of authenticated responses; empty
	// leaves it out. Key: software.
	Software string

	// Listen are the addresses clients send requests to. The core does not
	// bind them; it refuses them as peers. Key: listen.
	Listen []netip.AddrPort
	// RelayAddresses are the addresses allocations are made on: at most one
	// IPv4 and one IPv6. A dual-stack relay needs both. Key: relay-address.
	RelayAddresses []netip.Addr
	// PortMin and PortMax bound the allocation ports, inclusive. Key:
	// port-range (MIN-MAX), default 49152-65535.
	PortMin, PortMax uint16

	// AllowPeers and DenyPeers edit the default peer policy (package
	// policy). Keys: allow-peer, deny-peer.
	AllowPeers, DenyPeers []netip.Prefix

	// MaxAllocations caps allocations in total; 0 is no cap. Key: max-allocations.
	MaxAllocations int
	// UserQuota caps allocations per user (auth.Account.User); 0 is no
	// cap. Key: user-quota.
	UserQuota int
	// MaxPermissions caps the permissions of one allocation. Key:
	// max-permissions, default 1024.
	MaxPermissions int
	// Bandwidth caps what one allocation relays, both directions together,
	// in bytes per second, with a burst of one second's worth (at least
	// one full datagram); 0 is no cap. Datagrams over the cap are dropped.
	// Key: bandwidth.
	Bandwidth int64

	// UnauthRate and UnauthBurst limit, per source IP address, the
	// answers to requests that are not authenticated (401, 438, 400 before
	// authentication, Binding): a token bucket of UnauthBurst tokens
	// refilled at UnauthRate per second. Keys: unauth-rate, unauth-burst.
	UnauthRate, UnauthBurst int
	// Amplification bounds the answers to unauthenticated requests other
	// than Binding: to each source IP address the relay sends at most
	// Amplification times the bytes it received from it in STUN requests.
	// 1, the default, means a reflected attack gains nothing; see
	// Server.HandleClient for what that costs a client. Key: unauth-amplification.
	Amplification int
	// MaxSources bounds the source addresses tracked for UnauthRate and
	// Amplification; sources beyond it get no unauthenticated answers
	// until others go idle. Key: max-sources.
	MaxSources int

	// Lifetimes. Keys: lifetime (the default allocation lifetime),
	// max-lifetime, permission-lifetime, channel-lifetime, nonce-lifetime.
	DefaultLifetime, MaxLifetime, PermissionLifetime, ChannelLifetime, NonceLifetime time.Duration

	// NonceKey keys the nonces; empty makes a random one (nonces then go
	// stale at restart, which costs each client one 438). Give several
	// relays behind one name the same key. Key: nonce-key.
	NonceKey []byte
	// Rand is the source of randomness for ports, tokens and the nonce
	// key; nil is crypto/rand. Tests give a seeded one.
	Rand io.Reader
	// Bind, if not nil, opens the sockets of a new allocation: one UDP
	// socket per address, all on the same port. It is called from within
	// HandleClient, before the Allocate success response is built; an
	// error (say EADDRINUSE from another program on the port) makes the
	// core try another port, up to 8, then answer 508. It must not call
	// back into the Server. With Bind nil the I/O layer opens sockets on
	// AllocationCreated and cannot refuse a port.
	Bind func(relayed []netip.AddrPort) error
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = DefaultPortMin, DefaultPortMax
	}
	if c.MaxPermissions == 0 {
		c.MaxPermissions = DefaultMaxPermissions
	}
	if c.UnauthRate == 0 {
		c.UnauthRate = DefaultUnauthRate
	}
	if c.UnauthBurst == 0 {
		c.UnauthBurst = max(DefaultUnauthBurst, c.UnauthRate)
	}
	if c.Amplification == 0 {
		c.Amplification = DefaultAmplification
	}
	if c.MaxSources == 0 {
		c.MaxSources = DefaultMaxSources
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.DefaultLifetime, DefaultLifetime},
		{&c.MaxLifetime, DefaultMaxLifetime},
		{&c.PermissionLifetime, DefaultPermissionLifetime},
		{&c.ChannelLifetime, DefaultChannelLifetime},
		{&c.NonceLifetime, DefaultNonceLifetime},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return c
}

// Validate checks c after defaults are applied, returning every problem,
// each starting with the key at fault.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, err := auth.NewStore(c.Auth); err != nil {
		errs = append(errs, err)
	}
	if _, err := policy.New(policy.Config{Allow: c.AllowPeers, Deny: c.DenyPeers}); err != nil {
		errs = append(errs, err)
	}
	if !utf8.ValidString(c.Software) || utf8.RuneCountInString(c.Software) > maxSoftwareChars {
		errs = append(errs, fmt.Errorf("software: want UTF-8 text of fewer than %d characters (RFC 8489)", maxSoftwareChars+1))
	}
	errs = append(errs, checkRelayAddresses(c.RelayAddresses)...)
	if c.PortMin == 0 || c.PortMin > c.PortMax {
		errs = append(errs, fmt.Errorf("port-range %d-%d: want MIN-MAX with 1 <= MIN <= MAX <= 65535, such as 49152-65535", c.PortMin, c.PortMax))
	}
	for _, l := range c.Listen {
		if l.Port() >= c.PortMin && l.Port() <= c.PortMax {
			errs = append(errs, fmt.Errorf("port-range %d-%d: contains the listen port of %s; move one of them", c.PortMin, c.PortMax, l))
		}
	}
	for _, n := range []struct {
		key string
		v   int64
	}{
		{"max-allocations", int64(c.MaxAllocations)},
		{"user-quota", int64(c.UserQuota)},
		{"max-permissions", int64(c.MaxPermissions)},
		{"bandwidth", c.Bandwidth},
		{"unauth-rate", int64(c.UnauthRate)},
		{"unauth-burst", int64(c.UnauthBurst)},
		{"unauth-amplification", int64(c.Amplification)},
		{"max-sources", int64(c.MaxSources)},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: want 0 (the default) or more", n.key, n.v))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"lifetime", c.DefaultLifetime},
		{"max-lifetime", c.MaxLifetime},
		{"permission-lifetime", c.PermissionLifetime},
		{"channel-lifetime", c.ChannelLifetime},
		{"nonce-lifetime", c.NonceLifetime},
	} {
		if d.v < time.Second || d.v%time.Second != 0 {
			errs = append(errs, fmt.Errorf("%s %v: want a whole number of seconds, at least 1s", d.key, d.v))
		}
	}
	if c.MaxLifetime < c.DefaultLifetime {
		errs = append(errs, fmt.Errorf("max-lifetime %v: shorter than lifetime %v; want max-lifetime >= lifetime", c.MaxLifetime, c.DefaultLifetime))
	}
	if len(c.NonceKey) != 0 && len(c.NonceKey) < minNonceKeyLen {
		errs = append(errs, fmt.Errorf("nonce-key: %d bytes is too short; want at least %d random bytes", len(c.NonceKey), minNonceKeyLen))
	}
	return errors.Join(errs...)
}

func checkRelayAddresses(addrs []netip.Addr) []error {
	if len(addrs) == 0 {
		return []error{errors.New("relay-address: none given; want the public IPv4 and/or IPv6 address allocations are made on")}
	}
	var errs []error
	var seen4, seen6 bool
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case !a.IsValid():
			errs = append(errs, errors.New("relay-address: empty address"))
			continue
		case a.Zone() != "":
			errs = append(errs, fmt.Errorf("relay-address %s: a relay address cannot have a zone", a))
			continue
		case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			errs = append(errs, fmt.Errorf("relay-address %s: want a unicast address clients can reach, not a wildcard, multicast or broadcast one", a))
			continue
		}
		if a.Is4() && seen4 || a.Is6() && seen6 {
			errs = append(errs, fmt.Errorf("relay-address %s: a second %s address; give at most one IPv4 and one IPv6", a, familyName(a)))
			continue
		}
		seen4, seen6 = seen4 || a.Is4(), seen6 || a.Is6()
	}
	return errs
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
