package bench

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Parts of the benchmark, which Options.Parts selects.
const (
	PartRelay  = "relay"  // relayed ChannelData, every server (and XDP's in-kernel run)
	PartFloor  = "floor"  // the MAC-swap program with the in-kernel generator
	PartAllocs = "allocs" // allocations per second and memory per allocation
	PartPaths  = "paths"  // Program.Run per XDP path
	PartKmem   = "kmem"   // kernel memory per binding
	PartBoot   = "boot"   // QEMU boot to the ready line
)

// Parts lists every part, in the order they run.
var Parts = []string{PartPaths, PartKmem, PartFloor, PartRelay, PartAllocs, PartBoot}

// Options are the benchmark's settings.
type Options struct {
	// Quick is a short run for development: fewer runs, shorter steps,
	// fewer flows and allocations.
	Quick bool
	// Runs is how many times each figure is measured.
	Runs int
	// Step is how long the generator sends at each rate.
	Step time.Duration
	// ManyFlows is the flow count of the many-flows cases.
	ManyFlows int
	// Payloads are the ChannelData payload sizes.
	Payloads []int
	// Allocations is how many allocations the allocation benchmark makes
	// (the memory figure is at this count); Concurrency how many at a time.
	Allocations, Concurrency int
	// Boots is how many times the appliance is booted.
	Boots int
	// PathCount and PathRuns are BenchmarkPaths' -count and runs per path.
	PathCount, PathRuns int
	// Parts selects parts (see Parts); empty means all.
	Parts []string
	// Servers selects servers by name (XDP, UserSpace, Coturn, Pion);
	// empty means all.
	Servers []string
	// Image is the qemu board's build directory (out/qemu).
	Image string
	// Root is the module's directory, Go the go command.
	Root, Go string
	// Work is a scratch directory for binaries and server files.
	Work string
	// Log receives progress.
	Log *log.Logger
}

// DefaultOptions are `make bench`'s settings (about 15 minutes on a 2-core
// machine), or with quick, a few minutes' worth.
func DefaultOptions(quick bool) Options {
	if quick {
		return Options{Quick: true, Runs: 1, Step: 300 * time.Millisecond, ManyFlows: 4, Payloads: []int{100, 1200},
			Allocations: 1000, Concurrency: 32, Boots: 1, PathCount: 1, PathRuns: 5000}
	}
	return Options{Runs: 5, Step: 800 * time.Millisecond, ManyFlows: 16, Payloads: []int{100, 1200},
		Allocations: 10000, Concurrency: 64, Boots: 3, PathCount: 5, PathRuns: 50000}
}

// Bench is one benchmark run in progress.
type Bench struct {
	ctx  context.Context
	opts Options
	h    *harness
	topo *Topology
	sink *Sink
	kgen *kernelGen
	res  *Results
}

// Run runs the selected parts and returns their results. A part or a
// server that fails is reported in the results (and logged), and the rest
// goes on; an error is returned only when nothing can run.
func Run(ctx context.Context, opts Options) (*Results, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the benchmark needs root (network namespaces, XDP, BPF); run make bench as root")
	}
	res := NewResults(opts.Runs)
	res.Started, res.Quick, res.Allocations = time.Now(), opts.Quick, opts.Allocations
	res.Host = hostInfo()
	b := &Bench{ctx: ctx, opts: opts, h: newHarness(opts.Log), res: res}
	defer b.h.cleanup()
	for _, c := range b.cases() {
		res.Cases = append(res.Cases, c.String())
	}

	var servers []Server
	if b.want(PartRelay) || b.want(PartAllocs) {
		servers = b.servers()
	}
	if b.want(PartPaths) {
		b.paths()
	}
	if b.want(PartKmem) {
		b.kmem()
	}
	if b.want(PartRelay) || b.want(PartFloor) || b.want(PartAllocs) {
		if err := b.setup(); err != nil {
			return res, err
		}
		for run := range opts.Runs {
			if ctx.Err() != nil {
				break
			}
			b.logf("run %d of %d", run+1, opts.Runs)
			if b.want(PartFloor) {
				b.try(MACSwap, run, func() error { return b.macSwapFloor(run) })
			}
			// Take turns, starting with a different server each run.
			for i := range servers {
				s := servers[(i+run)%len(servers)]
				if ctx.Err() != nil {
					break
				}
				if len(opts.Servers) > 0 && !slices.Contains(opts.Servers, s.Name) {
					s.Missing = "not run (-servers)"
				}
				if s.Missing != "" {
					res.Missing(s.Name, s.Missing)
					if !s.XDP {
						res.Missing(allocSubject(s)+" allocations", s.Missing)
					}
					continue
				}
				if b.want(PartRelay) {
					b.try(s.Name, run, func() error { return b.relayServer(run, s) })
				}
				if b.want(PartAllocs) && !s.XDP {
					b.try(allocSubject(s)+" allocations", run, func() error { return b.allocServer(run, s) })
				}
			}
		}
	}
	if b.want(PartBoot) {
		b.boot()
	}
	for _, p := range Parts {
		if !b.want(p) {
			res.Note("part %q not run (-parts)", p)
		}
	}
	res.Elapsed = time.Since(res.Started)
	return res, ctx.Err()
}

// allocSubject is the subject of a server's allocation figures: relaybox's
// allocations do not depend on its data path.
func allocSubject(s Server) string {
	if s.Name == UserSpace {
		return Relaybox
	}
	return s.Name
}

func (b *Bench) want(part string) bool {
	return len(b.opts.Parts) == 0 || slices.Contains(b.opts.Parts, part)
}

func (b *Bench) cases() []Case {
	var cs []Case
	for _, p := range b.opts.Payloads {
		for _, f := range []int{1, b.opts.ManyFlows} {
			cs = append(cs, Case{Payload: p, Flows: f})
		}
	}
	return cs
}

func (b *Bench) logf(format string, args ...any) { b.opts.Log.Printf(format, args...) }

// try runs one server's (or part's) run, and on failure logs it, notes it
// and, if it is the first, records it as why the subject is not measured
// (shown only while no run measured it).
func (b *Bench) try(subject string, run int, f func() error) {
	err := f()
	if err == nil {
		return
	}
	if errors.Is(err, errNotNative) {
		b.res.Missing(subject, err.Error()+"; generic XDP is never benchmarked as the fast path")
		return
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	b.logf("%s, run %d: %v", subject, run+1, err)
	b.res.Note("%s, run %d failed: %s", subject, run+1, first)
	b.res.Missing(subject, first)
}

// setup makes the topology, the sink and the in-kernel generator.
func (b *Bench) setup() error {
	t, err := NewTopology(b.h)
	if err != nil {
		return err
	}
	b.topo = t
	if b.sink, err = StartSink(t.Peer, t.Sink(), runtime.NumCPU(), 2*time.Hour); err != nil {
		return err
	}
	b.h.Cleanup(b.sink.Close)
	b.kgen = &kernelGen{ns: t.Router, ifindex: t.WireIndex}
	return nil
}

// servers builds relaybox's relay and the pion/turn server, finds coturn,
// and returns the four servers, each with why it cannot run if it cannot.
func (b *Bench) servers() []Server {
	relayBin := filepath.Join(b.opts.Work, "relay")
	pionBin := filepath.Join(b.opts.Work, "pionturn")
	relayErr := b.build(relayBin, "./relay/cmd/relay")
	pionErr := b.build(pionBin, "./bench/cmd/pionturn")
	threads := runtime.NumCPU()

	xdp, user := relayboxServer(relayBin, true), relayboxServer(relayBin, false)
	if relayErr != nil {
		xdp.Missing = "relay does not build: " + relayErr.Error()
		user.Missing = xdp.Missing
	}
	pion := pionServer(pionBin, threads)
	if pionErr != nil {
		pion.Missing = "bench/cmd/pionturn does not build: " + pionErr.Error()
	}
	coturn := coturnServer("turnserver", threads)
	if path, err := exec.LookPath("turnserver"); err != nil {
		coturn.Missing = "turnserver not found: install Debian's coturn (make deps)"
	} else {
		coturn = coturnServer(path, threads)
		out, _ := exec.Command(path, "--version").CombinedOutput()
		if v := strings.TrimSpace(string(out)); v != "" && !strings.Contains(v, "\n") {
			b.res.Versions = append(b.res.Versions, "coturn "+v)
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/pion/turn/v4" {
				b.res.Versions = append(b.res.Versions, "pion/turn "+d.Version)
			}
		}
	}
	if rev, err := exec.Command("git", "-C", b.opts.Root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		v := "relaybox " + strings.TrimSpace(string(rev))
		// --no-optional-locks: status must not rewrite the index (a
		// benchmark changes nothing in the repository).
		changes, err := exec.Command("git", "--no-optional-locks", "-C", b.opts.Root, "status", "--porcelain", "--untracked-files=no").Output()
		if err == nil && len(strings.TrimSpace(string(changes))) > 0 {
			v += " with uncommitted changes"
		}
		b.res.Versions = append(b.res.Versions, v)
	}
	return []Server{xdp, user, coturn, pion}
}

// build compiles pkg of the module into out.
func (b *Bench) build(out, pkg string) error {
	cmd := exec.CommandContext(b.ctx, b.opts.Go, "build", "-o", out, pkg)
	cmd.Dir = b.opts.Root
	if msg, err := cmd.CombinedOutput(); err != nil {
		first, _, _ := strings.Cut(strings.TrimSpace(string(msg)), "\n")
		return fmt.Errorf("go build %s: %v: %s", pkg, err, first)
	}
	return nil
}

// paths runs bpf's BenchmarkPaths.
func (b *Bench) paths() {
	b.logf("Program.Run per XDP path: go test -bench BenchmarkPaths ./bpf, -count %d, %d runs per path", b.opts.PathCount, b.opts.PathRuns)
	samples, err := runPaths(b.ctx, b.opts.Go, b.opts.Root, b.opts.PathCount, b.opts.PathRuns)
	if err != nil {
		b.logf("paths: %v", err)
		first, _, _ := strings.Cut(err.Error(), "\n")
		b.res.Missing("paths", first)
		return
	}
	// The k-th line of a path is its k-th run (go test -count).
	seen := map[string]int{}
	for _, s := range samples {
		k := seen[s.Path]
		seen[s.Path]++
		if k == 0 {
			b.res.Paths = append(b.res.Paths, s.Path)
		}
		b.res.Set(Key{MetricPathNs, s.Path, ""}, k, s.Ns)
		b.res.Set(Key{MetricPathRatio, s.Path, ""}, k, s.XMACSwap)
	}
}

// kmem measures the kernel memory per binding.
func (b *Bench) kmem() {
	memlock, kv, err := bindingMemory(10000)
	if err != nil {
		b.logf("kernel memory per binding: %v", err)
		b.res.Missing(Bindings, err.Error())
		return
	}
	b.res.Set(Key{MetricBindingMemlock, Bindings, ""}, 0, memlock)
	b.res.Set(Key{MetricBindingKV, Bindings, ""}, 0, kv)
	b.logf("kernel memory per binding: %s bytes memlock, %s bytes of keys and values", num(memlock), num(kv))
}

// boot boots the appliance opts.Boots times.
func (b *Bench) boot() {
	// The first failure is the section's reason if no boot succeeds.
	var firstErr error
	booted := false
	for i := range b.opts.Boots {
		if b.ctx.Err() != nil {
			break
		}
		bt, err := bootOnce(b.ctx, b.h, b.opts.Image)
		if err != nil {
			b.logf("boot %d: %v", i+1, err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		booted = true
		b.logf("boot %d: ready after %.1fs, init's share %.1fs: %s", i+1, bt.Ready.Seconds(), bt.Init.Seconds(), bt.Line)
		b.res.Set(Key{MetricBootReady, Appliance, ""}, i, bt.Ready.Seconds())
		b.res.Set(Key{MetricBootInit, Appliance, ""}, i, bt.Init.Seconds())
		if i == 0 {
			how := "init's share is from its first console line to the ready line, by the host's clock (the ready line has no init= figure: an image built before init printed one)"
			if bt.InitFromGuest {
				how = "init's share is the init= figure init prints on the ready line"
			}
			b.res.Note("boot: the ready line reads %q; %s", bt.Line, how)
		}
	}
	if !booted && firstErr != nil {
		first, _, _ := strings.Cut(firstErr.Error(), "\n")
		b.res.Missing(Appliance, first)
	}
}

// hostInfo describes the machine: kernel, CPUs and their model.
func hostInfo() string {
	var u unix.Utsname
	unix.Uname(&u)
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("Linux %s, %d CPUs (%s)", unix.ByteSliceToString(u.Release[:]), runtime.NumCPU(), model)
}
