//go:build linux

// Package bpf loads relaybox's XDP program, pins its maps, attaches it to
// NICs and reads its counters.
//
// The program itself is C (xdp.c and the headers next to it), compiled by
// bpf2go into relay_bpfel.o and embedded in the binary. It classifies the
// UDP packets addressed to the relay and counts them, and relays the
// ChannelData of the channel bindings the relay installs (AddBinding) in
// both directions, any address families; everything else goes on to the
// stack, where the user-space relay handles it. reference_test.go holds a
// Go model of the program that the tests compare it with packet by packet.
package bpf

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// PinDir is where the appliance pins the program's maps, on the bpffs that
// init mounts at /sys/fs/bpf.
const PinDir = "/sys/fs/bpf/relaybox"

// Config holds the load-time settings of the XDP program. Ports are compiled
// into the program as constants when it is loaded.
type Config struct {
	// ListenPort is the TURN listen port (3478 by convention).
	ListenPort uint16
	// PortMin and PortMax bound, inclusively, the ports of relayed addresses
	// (allocations).
	PortMin, PortMax uint16
	// PinDir is the directory on a bpffs where maps are pinned by name, and
	// reused from when they are already there. "" disables pinning.
	PinDir string
	// MaxBindings is how many channel bindings the kernel path holds (two
	// map entries each, preallocated: about 370 bytes per binding); 0
	// means DefaultMaxBindings. Bindings beyond it take the user-space
	// path. Pinned maps keep the size they were created with: changing it
	// takes a reboot or removing PinDir.
	MaxBindings int
	// NextHopTTL is how long the program reuses the next hop it found for
	// a binding (egress NIC, MAC addresses, MTU) before it asks the
	// kernel's FIB again, hence the longest a route, neighbour, MTU or
	// forwarding change takes to reach the kernel path. 0 means
	// DefaultNextHopTTL; at most MaxNextHopTTL.
	NextHopTTL time.Duration
}

// DefaultMaxBindings is the binding capacity when Config.MaxBindings is 0:
// 64Ki bindings, about 24 MB of kernel memory.
const DefaultMaxBindings = 1 << 16

// DefaultNextHopTTL is the next-hop cache's lifetime when
// Config.NextHopTTL is 0: a low-rate binding (50 packets a second) then
// pays for one FIB lookup in fifty packets.
const DefaultNextHopTTL = time.Second

// FailedNextHopTTL is how long a binding keeps a failed next-hop lookup
// (no neighbour, no route, forwarding off; at most Config.NextHopTTL):
// what a peer's neighbour that resolves, or a route that appears, waits
// before the kernel path relays to it. User space relays meanwhile.
const FailedNextHopTTL = 10 * time.Millisecond

// MaxNextHopTTL bounds Config.NextHopTTL, and so how stale a next hop the
// kernel path may use.
const MaxNextHopTTL = time.Second

// maxMaxBindings bounds Config.MaxBindings: 4Mi bindings take over 1 GB.
const maxMaxBindings = 1 << 22

func (c Config) validate() error {
	switch {
	case c.ListenPort == 0:
		return errors.New("xdp config: listen port is 0; set the TURN listen port (usually 3478)")
	case c.PortMin == 0 || c.PortMax == 0:
		return fmt.Errorf("xdp config: allocation port range %d-%d includes port 0; set both ends (for example 49152-65535)", c.PortMin, c.PortMax)
	case c.PortMin > c.PortMax:
		return fmt.Errorf("xdp config: allocation port range %d-%d is empty; the first port must not exceed the last", c.PortMin, c.PortMax)
	case c.PortMin <= c.ListenPort && c.ListenPort <= c.PortMax:
		return fmt.Errorf("xdp config: listen port %d lies inside the allocation port range %d-%d; move one of them", c.ListenPort, c.PortMin, c.PortMax)
	case c.MaxBindings < 0 || c.MaxBindings > maxMaxBindings:
		return fmt.Errorf("xdp config: max bindings %d is outside 0-%d; 0 means the default %d", c.MaxBindings, maxMaxBindings, DefaultMaxBindings)
	case c.NextHopTTL < 0 || c.NextHopTTL > MaxNextHopTTL:
		return fmt.Errorf("xdp config: next-hop TTL %s is outside 0-%s; 0 means the default %s", c.NextHopTTL, MaxNextHopTTL, DefaultNextHopTTL)
	}
	return nil
}

// Program is the XDP program loaded into the kernel, with its maps. One
// Program can be attached to several interfaces.
type Program struct {
	objs     relayObjects
	maps     *Maps
	clock    jiffyClock // as loaded into the program
	clockErr error      // why it is not calibrated, if it is not
}

// verifierLogTail is how many lines of a verifier refusal an error carries.
const verifierLogTail = 30

// Load checks cfg, compiles its ports into the program and loads the program
// and its maps into the kernel. With cfg.PinDir set, it creates that
// directory and pins the maps there, or reuses the maps already pinned there
// (so counters survive a reload).
func Load(cfg Config) (*Program, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	spec, err := loadRelay()
	if err != nil {
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	var vars relayVariableSpecs
	if err := spec.Assign(&vars); err != nil {
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	ttl := cfg.NextHopTTL
	if ttl == 0 {
		ttl = DefaultNextHopTTL
	}
	// Without a calibration the program reads the clock through a helper:
	// slower, as right.
	clock, clockErr := calibrateClock()
	for _, v := range []struct {
		spec  *ebpf.VariableSpec
		value any
	}{
		{vars.ListenPort, cfg.ListenPort},
		{vars.AllocPortMin, cfg.PortMin},
		{vars.AllocPortMax, cfg.PortMax},
		{vars.NextHopTtlNs, uint64(ttl.Nanoseconds())},
		{vars.FailedHopTtlNs, uint64(min(ttl, FailedNextHopTTL).Nanoseconds())},
		{vars.TickNs, clock.tickNs},
		{vars.OriginJiffies, clock.originJiffies},
		{vars.OriginNs, clock.originNs},
	} {
		if err := v.spec.Set(v.value); err != nil {
			return nil, fmt.Errorf("load xdp program: set %s: %w", v.spec.Name, err)
		}
	}

	maxBindings := cfg.MaxBindings
	if maxBindings == 0 {
		maxBindings = DefaultMaxBindings
	}
	spec.Maps["bindings"].MaxEntries = uint32(2 * maxBindings)

	var opts ebpf.CollectionOptions
	if cfg.PinDir != "" {
		if err := prepPinDir(cfg.PinDir); err != nil {
			return nil, err
		}
		opts.Maps.PinPath = cfg.PinDir
	} else {
		// The C side asks for pinning by name; without a directory,
		// cilium/ebpf refuses rather than guess one.
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}

	var p Program
	if err := spec.LoadAndAssign(&p.objs, &opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("load xdp program: maps pinned in %s come from another version of relaybox or another max bindings; remove that directory (or reboot) and load again: %w", cfg.PinDir, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			// The verdict alone rarely says why; the end of the log does.
			return nil, fmt.Errorf("load xdp program: this kernel's verifier refused it: %w\nverifier log (end):\n%s",
				err, strings.Join(ve.Log[max(0, len(ve.Log)-verifierLogTail):], "\n"))
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	p.clock, p.clockErr = clock, clockErr
	p.maps = &Maps{bindings: p.objs.Bindings, counters: p.objs.Counters, reasons: p.objs.Reasons}
	return &p, nil
}

// prepPinDir creates dir and checks that it is on a bpffs: pinning anywhere
// else fails with a bare EPERM that does not say what is wrong.
func prepPinDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create bpf pin directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("check bpf pin directory %s: %w", dir, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("bpf pin directory %s is not on a bpf filesystem; mount one with `mount -t bpf bpf /sys/fs/bpf`", dir)
	}
	return nil
}

// Close unloads the program and closes its maps. Attachments hold their own
// reference to the program and keep it running until they are closed too.
// Pinned maps stay pinned, for the next Load to reuse.
func (p *Program) Close() error {
	if err := p.objs.Close(); err != nil {
		return fmt.Errorf("close xdp program: %w", err)
	}
	return nil
}

// Clock says how the program reads the time for every relayed packet:
// from jiffies ("jiffies, HZ=250"), or, when Load could not calibrate
// them, through a helper call, slower, and why.
func (p *Program) Clock() string {
	if p.clockErr != nil {
		return fmt.Sprintf("bpf_ktime_get_coarse_ns (%v)", p.clockErr)
	}
	return fmt.Sprintf("jiffies, HZ=%d", (1_000_000_000+p.clock.tickNs/2)/p.clock.tickNs)
}

// Maps are the program's maps, for code that works the same on a program
// it loaded and on maps another process pinned (OpenPinned).
func (p *Program) Maps() *Maps { return p.maps }

// AddBinding installs both directions of b; see Maps.AddBinding.
func (p *Program) AddBinding(b Binding) error { return p.maps.AddBinding(b) }

// RemoveBinding removes both directions of b; see Maps.RemoveBinding.
func (p *Program) RemoveBinding(b Binding) error { return p.maps.RemoveBinding(b) }

// Bindings lists the installed bindings with their traffic; see
// Maps.Bindings.
func (p *Program) Bindings() ([]BindingStats, error) { return p.maps.Bindings() }

// Counters returns every class's counter; see Maps.Counters.
func (p *Program) Counters() (map[Class]Counter, error) { return p.maps.Counters() }

// Reasons returns every reason's counter; see Maps.Reasons.
func (p *Program) Reasons() (map[Reason]Counter, error) { return p.maps.Reasons() }

// MaxBindings is how many bindings the program's map holds.
func (p *Program) MaxBindings() int { return p.maps.MaxBindings() }
