package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/relaybox/relaybox/image/qemu"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// bootTimeout bounds one boot: TCG on a shared 2-core machine takes well
// under a minute.
const bootTimeout = 4 * time.Minute

// Lines on the appliance's console that the boot figures are taken from.
const (
	initLine  = "init: relaybox" // "init: relaybox <version> starting", init's first line
	readyLine = "relaybox: ready"
)

// Boot is one timed boot.
type Boot struct {
	// Ready is from QEMU's start to the ready line, Init from init's
	// start to it: as init reports it on the ready line (init=<seconds>s)
	// if it does, else from its first console line, by the host's clock.
	Ready, Init time.Duration
	// InitFromGuest says Init is init's own figure.
	InitFromGuest bool
	// Line is the ready line.
	Line string
}

// readyField returns the value of key=<seconds>s on a ready line, if any.
func readyField(line, key string) (time.Duration, bool) {
	for _, f := range strings.Fields(line) {
		v, ok := strings.CutPrefix(f, key+"=")
		if !ok {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, false
		}
		return d, true
	}
	return 0, false
}

// bootOnce boots the kernel and initramfs in dir (out/qemu: vmlinuz,
// initrd.img, cmdline) under QEMU with a virtio-net NIC on a tap in a new
// namespace, and times the console lines as they arrive. The guest is
// killed once ready: nothing of it is kept.
func bootOnce(ctx context.Context, h *harness, dir string) (Boot, error) {
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return Boot{}, fmt.Errorf("boot: %w (build the image first: make image BOARD=qemu)", err)
	}
	var ns *nstest.NS
	err = catch(func() {
		ns = nstest.New(h)
		ns.MustRun(h, "ip", "tuntap", "add", "rbxtap0", "mode", "tap")
		ns.MustRun(h, "ip", "addr", "add", "198.18.0.1/24", "dev", "rbxtap0")
		ns.MustRun(h, "ip", "link", "set", "rbxtap0", "up")
	})
	if err != nil {
		return Boot{}, fmt.Errorf("boot: tap: %w", err)
	}
	o := qemu.Options{
		Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initrd.img"),
		Cmdline: strings.TrimSpace(string(cmdline)) +
			" ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off relaybox.dashboard=off",
		NIC: qemu.VirtioNet,
		Tap: "rbxtap0",
	}
	cmd := ns.Command("qemu-system-x86_64", o.Args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Boot{}, err
	}
	cmd.Stderr = cmd.Stdout
	console := &tailBuffer{max: 8 << 10}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Boot{}, fmt.Errorf("boot: start QEMU: %w", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	type seen struct {
		line string
		at   time.Time
	}
	lines := make(chan seen, 256)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			console.Write([]byte(line + "\n"))
			lines <- seen{line, time.Now()}
		}
		close(lines)
	}()
	var b Boot
	var initAt time.Time
	timeout := time.After(bootTimeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return Boot{}, errors.New("boot: QEMU exited before the ready line\n" + console.tail(15))
			}
			if initAt.IsZero() && strings.Contains(l.line, initLine) {
				initAt = l.at
			}
			if strings.Contains(l.line, readyLine) {
				if initAt.IsZero() {
					return Boot{}, fmt.Errorf("boot: ready line without init's %q line before it\n%s", initLine, console.tail(15))
				}
				b.Ready, b.Init, b.Line = l.at.Sub(start), l.at.Sub(initAt), strings.TrimSpace(l.line)
				if d, ok := readyField(b.Line, "init"); ok {
					b.Init, b.InitFromGuest = d, true
				}
				go func() { // let the reader finish once QEMU is killed
					for range lines {
					}
				}()
				return b, nil
			}
		case <-timeout:
			return Boot{}, fmt.Errorf("boot: no ready line within %s\n%s", bootTimeout, console.tail(15))
		case <-ctx.Done():
			return Boot{}, ctx.Err()
		}
	}
}
