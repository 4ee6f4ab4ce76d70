// Package pid1 is relaybox's init: it mounts the kernel's filesystems,
// loads the board's modules, configures the relay NIC, loads and attaches
// the XDP program, supervises the relay and answers the serial console. It
// never returns: an exiting PID 1 panics the kernel.
package pid1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/netcfg"
	"github.com/relaybox/relaybox/relay"
)

// relayPath is the relay binary in the initramfs (u-root's busybox).
const relayPath = "/bbin/relay"

// partitionWait bounds the wait for the RELAYBOX partition: USB sticks
// enumerate a moment after their modules load, and a box without one (PXE)
// should not wait long.
const partitionWait = 3 * time.Second

// box is the running appliance as init sees it.
type box struct {
	// mu guards what run() assigns while a shell may already be open and
	// writeRunFiles reads on another goroutine: cfg, net,
	// relayIface, xdp, attach, relay, relayHeld. run() reads them unlocked.
	// It also orders a shutdown that comes during boot (signals run on
	// their own goroutine) against what run() starts: watchdog, stop,
	// stopped and down.
	mu       sync.Mutex
	console  *console
	cfg      Config
	net      *netcfg.Configurator
	xdp      *bpf.Program
	attach   *bpf.Attachment
	relay    *Service
	watchdog *watchdog
	// relayIface is the relay NIC's name, once the network is up.
	relayIface string
	launch     launcher
	reboot     func(cmd int) error
	// started is when init began: its share of the boot, on the ready line.
	started time.Time
	// relayHeld says why the relay is not running, when it is not.
	relayHeld string
	// down is set when shutdown begins: from then on run() starts nothing.
	down bool
	// shell is the console's shell, shellFiles where init keeps the files
	// the shell reads (runDir).
	shell, shellFiles string
	// shellOn is held while a shell is open: one at a time, on whichever
	// console the key was pressed.
	shellOn sync.Mutex

	stop         context.CancelFunc
	stopped      sync.WaitGroup
	readyOnce    sync.Once
	shutdownOnce sync.Once

	screen screen
}

// Main is PID 1's main. It never returns.
func Main() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stdout, "init: internal error: %v; the box stays up\n", r)
		}
		select {} // never exit: that would panic the kernel
	}()
	run()
}

// run boots the box; it returns once the relay is started (or held back
// by bad configuration), leaving the console, signals and supervisor
// running.
func run() {
	// The console first, so every later step can report; /dev is not
	// mounted yet, so this is the kernel's /dev/console from the initramfs.
	b := &box{console: &console{outs: []*os.File{os.Stdout}}, reboot: unix.Reboot, started: time.Now(),
		shell: shellPath, shellFiles: runDir}
	mountAll(b.console.Logf)
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		b.console.Logf("read kernel command line: %v", err)
	}
	params := ParseCmdline(string(raw))
	b.console = openConsoles(params)
	b.console.Logf("relaybox %s starting", Version)

	// Signals and the reaper before any child exists, or a fast child's
	// exit (or a poweroff sent early) could be lost.
	b.launch = newReaper()
	b.handleSignals()
	// A key opens a shell from now on, so a box stuck later in boot
	// (no carrier, an unreachable config URL) can still be looked at.
	b.serveConsoles()

	n, absent := loadModules("/"+modulesList, modulesDir(), b.console.Logf)
	b.console.Logf("loaded %d kernel modules (%d for hardware this box lacks)", n, absent)

	// The image's file and the partition are read once: a config URL
	// fetched later merges with them again.
	local, localErr := b.localSettings()
	cfg, cfgErr := mergeConfig(local, nil, params)
	cfgErr = errors.Join(localErr, cfgErr)
	b.set(func() { b.cfg = cfg })
	b.set(func() {
		if !b.down {
			b.watchdog = startWatchdog(cfg.Watchdog, b.console.Logf)
		}
	})
	unix.Sethostname([]byte(cfg.Hostname()))
	b.configureNetwork()

	if cfg.URL != "" && cfgErr == nil {
		cfg, cfgErr = b.fetchURLConfig(local, params)
		b.set(func() { b.cfg = cfg })
	}
	if cfgErr != nil {
		b.set(func() { b.relayHeld = "the configuration has errors (see the log); fix them and reboot" })
		b.console.Logf("configuration: %v", cfgErr)
		b.console.Logf("not starting the relay: %s", b.relayHeld)
		b.console.Logf("console: %s", keyHint)
		return
	}
	b.attachXDP()
	b.startRelay()
}

// set makes run()'s assignments to the fields b.mu guards: a shell may be
// open while the box boots.
func (b *box) set(assign func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	assign()
}

// mergeConfig merges the config sources, later ones winning: local (the
// image's file, the RELAYBOX partition), the URL's settings (nil before
// they are fetched), the kernel command line.
func mergeConfig(local [][]relay.Setting, fromURL []relay.Setting, params []Param) (Config, error) {
	layers := append(slices.Clone(local), fromURL, cmdlineSettings(params))
	return ParseConfig(relay.MergeSettings(layers...))
}

// localSettings reads the image's file and the RELAYBOX partition, one
// layer each.
func (b *box) localSettings() ([][]relay.Setting, error) {
	var errs []error
	baked, err := readConfigFile(bakedConfig, "image "+bakedConfig)
	if err != nil {
		errs = append(errs, err)
	}
	part, dev, err := partitionConfig("/sys/class/block", partitionWait)
	if err != nil {
		errs = append(errs, fmt.Errorf("config partition %s: %w", dev, err))
	} else if dev != "" {
		b.console.Logf("config: %d settings from %s on %s", len(part), partitionFile, dev)
	}
	return [][]relay.Setting{baked, part}, errors.Join(errs...)
}

// fetchURLConfig fetches the config URL, retrying until it is reachable and
// valid: the relay may need what it holds (its secrets, say), so it does
// not start without it. The network is up by now and stays as configured.
// local are the image's file and partition settings, read without error
// (run fetches only then).
func (b *box) fetchURLConfig(local [][]relay.Setting, params []Param) (Config, error) {
	url := b.cfg.URL
	for backoff := time.Second; ; backoff = min(backoff*2, 30*time.Second) {
		settings, err := fetchConfig(context.Background(), url, b.console.Logf)
		if err != nil {
			return b.cfg, err
		}
		cfg, err := mergeConfig(local, settings, params)
		if err == nil {
			b.console.Logf("config: %d settings from %s", len(settings), url)
			netKeys := networkKeys()
			for _, s := range settings {
				if netKeys[s.Key] {
					b.console.Logf("config %s: %s is ignored: the network is already up", s.Source, s.Key)
				}
			}
			cfg.Net, cfg.Iface = b.cfg.Net, b.cfg.Iface
			return cfg, nil
		}
		b.console.Logf("config %s: %v; fetching it again in %s", url, err, backoff)
		time.Sleep(backoff)
	}
}

// configureNetwork brings the links up as configured. DHCP keeps renewing
// leases in the background for as long as the box runs; a link that fails
// is reported and the others carry on.
func (b *box) configureNetwork() {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		b.console.Logf("netlink: %v", err)
		return
	}
	b.set(func() { b.net = netcfg.New(h) })
	n, err := b.net.Configure(context.Background(), b.cfg.Net, b.console.Logf)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			b.console.Logf("network: %s", line)
		}
	}
	if n == nil {
		return
	}
	b.set(func() { b.relayIface = n.Relay })
	for _, line := range strings.Split(strings.TrimSpace(n.String()), "\n") {
		b.console.Logf("network: %s", line)
	}
	if b.relayIface == "" {
		b.console.Logf("network: no relay NIC (%s): XDP stays off", b.cfg.Iface)
	}
}

// attachXDP loads the XDP program, pins its maps for the relay, and attaches
// it to the relay NIC. Any failure leaves the relay on its user-space path.
func (b *box) attachXDP() {
	if b.cfg.XDP == bpf.ModeOff || b.relayIface == "" {
		return
	}
	port, err := b.cfg.ListenPort()
	if err != nil {
		b.console.Logf("xdp: %v", err)
		return
	}
	prog, err := bpf.Load(bpf.Config{ListenPort: port, PortMin: b.cfg.Relay.PortMin, PortMax: b.cfg.Relay.PortMax, PinDir: bpf.PinDir})
	if err != nil {
		b.console.Logf("xdp: %v", err)
		return
	}
	a, err := prog.Attach(b.relayIface, b.cfg.XDP)
	if err != nil {
		b.console.Logf("xdp: %v", err)
		prog.Close()
		return
	}
	b.set(func() { b.xdp, b.attach = prog, a })
	b.console.Logf("xdp: attached to %s in %s mode; clock: %s", a.Iface, a.Mode, prog.Clock())
}

// xdpReport is the xdp=<iface>:<mode> of the ready line, as the kernel
// reports the attachment, not as init asked for it.
func (b *box) xdpReport() string {
	iface := b.relayIface
	if iface == "" {
		return "xdp=none:off"
	}
	mode := "off"
	if b.net != nil && b.attach != nil {
		m, err := b.net.XDPMode(iface)
		if err != nil {
			b.console.Logf("xdp: %v", err)
		} else {
			mode = m
		}
	}
	return fmt.Sprintf("xdp=%s:%s", iface, mode)
}

func (b *box) startRelay() {
	args := b.cfg.RelayArgs
	if b.xdp != nil {
		// The relay writes its channel bindings into the maps pinned here,
		// and clears those a relay before it left.
		args = append(slices.Clip(args), "--xdp-maps="+bpf.PinDir)
	}
	svc := &Service{
		Name:        "relay",
		Path:        relayPath,
		Args:        args,
		Output:      func(line string) { b.console.Println("relay: " + line) },
		Logf:        b.console.Logf,
		Ready:       b.relayReady,
		MinBackoff:  250 * time.Millisecond,
		MaxBackoff:  30 * time.Second,
		StopTimeout: 5 * time.Second,
		launcher:    b.launch,
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return // shutting down: a relay started now would not be stopped
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.relay, b.stop = svc, cancel
	b.stopped.Add(1)
	safeGo("relay supervisor", func() {
		defer b.stopped.Done()
		svc.Run(ctx)
	})
}

// relayReady prints the ready line the first time the relay serves; later
// restarts are logged without it, so "relaybox: ready" means one boot.
func (b *box) relayReady(addrs []string) {
	first := false
	b.readyOnce.Do(func() {
		first = true
		b.console.Println(fmt.Sprintf("relaybox: ready listen=%s %s init=%.2fs",
			strings.Join(addrs, ","), b.xdpReport(), time.Since(b.started).Seconds()))
		if b.cfg.Dashboard {
			b.wantDashboard(true)
		} else {
			b.console.Logf("console: %s", keyHint)
		}
	})
	if !first {
		b.console.Logf("relay serving again on %s", strings.Join(addrs, ","))
	}
}

// stopServices stops the relay and the watchdog's pings, and waits for
// the relay, bounded by its stop timeout. run() starts neither after it.
func (b *box) stopServices() {
	b.mu.Lock()
	b.down = true
	stop, w := b.stop, b.watchdog
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	b.stopped.Wait()
	w.disarm()
}

// safeGo runs fn on its own goroutine, turning a panic into a console
// message: a panic anywhere in PID 1 would otherwise panic the kernel.
func safeGo(name string, fn func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stdout, "init: %s failed: %v\n", name, r)
			}
		}()
		fn()
	}()
}
