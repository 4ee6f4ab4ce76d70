package netcfg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Configurator configures links through one netlink handle, and so in the
// network namespace that handle was opened in. PID 1 passes
// netlink.NewHandle(); tests pass a handle into a namespace of their own.
type Configurator struct {
	h             *netlink.Handle
	run           func(fn func() error) error // runs fn in h's namespace
	resolvConf    string
	progressEvery time.Duration
}

// DefaultResolvConf is where Configure writes the name servers.
const DefaultResolvConf = "/etc/resolv.conf"

// progressEvery paces the progress lines of the bounded waits: often enough
// that a person at the serial console sees the box is alive, rarely enough
// not to flood a 115200-baud line.
const progressEvery = 3 * time.Second

// New returns a Configurator using h, which must not be nil. The caller keeps
// ownership of h and closes it.
func New(h *netlink.Handle, opts ...Option) *Configurator {
	c := &Configurator{
		h:             h,
		run:           func(fn func() error) error { return fn() },
		resolvConf:    DefaultResolvConf,
		progressEvery: progressEvery,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Option configures a Configurator.
type Option func(*Configurator)

// InNamespace tells the Configurator how to run code in the network
// namespace its handle works in: DHCP sockets and /proc/sys/net writes
// belong to the namespace of the thread that makes them, which netlink's
// handle does not change. run must call fn on a thread inside the namespace
// and return its error; nstest.NS.Do does. Without it, everything runs in
// the caller's namespace, which is right for PID 1.
func InNamespace(run func(fn func() error) error) Option {
	return func(c *Configurator) { c.run = run }
}

// ResolvConf makes Configure write the name servers to path instead of
// DefaultResolvConf.
func ResolvConf(path string) Option {
	return func(c *Configurator) { c.resolvConf = path }
}

// ErrNoLink is wrapped by every error about a link that does not exist.
var ErrNoLink = errors.New("no such link")

// pollInterval paces WaitCarrier and WaitAddress. The netlink handle cannot
// subscribe to link events (a subscription binds to a namespace, not to a
// handle), and one RTM_GETLINK every 50ms costs nothing next to the seconds
// a NIC takes to negotiate.
const pollInterval = 50 * time.Millisecond

// link looks a link up by name. When it is missing the error lists the links
// that exist, since the usual cause is a name that differs from the one the
// kernel gave (eth0 against enp3s0), or a driver that is not loaded.
func (c *Configurator) link(name string) (netlink.Link, error) {
	l, err := c.h.LinkByName(name)
	if err == nil {
		return l, nil
	}
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) {
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return nil, fmt.Errorf("%w %q (links present: %s)", ErrNoLink, name, c.linkNames())
}

// linkNames is a best-effort list of non-loopback link names for messages.
func (c *Configurator) linkNames() string {
	links, err := c.linkList()
	if err != nil {
		return "unknown: " + err.Error()
	}
	var names []string
	for _, l := range links {
		if l.Attrs().RawFlags&unix.IFF_LOOPBACK == 0 {
			names = append(names, l.Attrs().Name)
		}
	}
	if len(names) == 0 {
		return "none besides loopback; is the NIC's driver loaded?"
	}
	return strings.Join(names, ", ")
}

// linkList dumps the links, retrying when a concurrent change interrupts
// the dump (netlink then returns a partial list with ErrDumpInterrupted).
func (c *Configurator) linkList() ([]netlink.Link, error) {
	var err error
	for range 5 {
		var links []netlink.Link
		links, err = c.h.LinkList()
		if err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list links: %w", err)
}

// addrList is AddrList with the same retry as linkList; a nil l lists the
// addresses of every link.
func (c *Configurator) addrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	var err error
	for range 5 {
		var addrs []netlink.Addr
		addrs, err = c.h.AddrList(l, family)
		if err == nil {
			return addrs, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if l == nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
}

// poll calls check at once and then every pollInterval until it reports
// done, returns an error, or ctx ends. On ctx's end it returns the last
// state check described, wrapped around ctx.Err().
func poll(ctx context.Context, check func() (done bool, state string, err error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	start := time.Now()
	for {
		done, state, err := check()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s after %v: %w", state, time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-t.C:
		}
	}
}
