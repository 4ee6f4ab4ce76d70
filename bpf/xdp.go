//go:build linux

// Package bpf loads relaybox's XDP program, pins its maps, attaches it to
// NICs and reads its counters.
//
// The program itself is C (xdp.c and the headers next to it), compiled by
// bpf2go into relay_bpfel.o and embedded in the binary. Today it classifies
// the UDP packets addressed to the relay and counts them; every packet still
// goes on to the stack, where the user-space relay handles it.
package bpf

import (
	"errors"
	"fmt"
	"os"
	"strings"

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
}

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
	}
	return nil
}

// Program is the XDP program loaded into the kernel, with its maps. One
// Program can be attached to several interfaces.
type Program struct {
	objs relayObjects
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
	for _, v := range []struct {
		spec  *ebpf.VariableSpec
		value uint16
	}{
		{vars.ListenPort, cfg.ListenPort},
		{vars.AllocPortMin, cfg.PortMin},
		{vars.AllocPortMax, cfg.PortMax},
	} {
		if err := v.spec.Set(v.value); err != nil {
			return nil, fmt.Errorf("load xdp program: set %s: %w", v.spec.Name, err)
		}
	}

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
			return nil, fmt.Errorf("load xdp program: maps pinned in %s come from another version of relaybox; remove that directory (or reboot) and load again: %w", cfg.PinDir, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			// The verdict alone rarely says why; the end of the log does.
			return nil, fmt.Errorf("load xdp program: this kernel's verifier refused it: %w\nverifier log (end):\n%s",
				err, strings.Join(ve.Log[max(0, len(ve.Log)-verifierLogTail):], "\n"))
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
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
