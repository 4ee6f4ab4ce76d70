// Command relaybench runs relaybox's side-by-side benchmark (package bench)
// and writes results.md and results.svg. `make bench` runs it as root:
//
//	relaybench [-quick] [-out DIR] [-image out/qemu] [-runs N] [-parts relay,allocs,...]
//
// The full run takes about 15 minutes on a 2-core machine; -quick takes a
// few and writes to out/bench unless -out says otherwise, so that a
// development run does not overwrite the committed results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/bench"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "relaybench: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a short run for development: 1 run, short steps, few flows and allocations")
	out := fs.String("out", "", "`directory` for results.md and results.svg (default bench, or out/bench with -quick)")
	image := fs.String("image", "out/qemu", "`directory` of the qemu board's build (vmlinuz, initrd.img, cmdline) for the boot figures")
	full, short := bench.DefaultOptions(false), bench.DefaultOptions(true)
	runs := fs.Int("runs", 0, fmt.Sprintf("measure each figure `N` times (default %d, or %d with -quick)", full.Runs, short.Runs))
	parts := fs.String("parts", "", "comma-separated `parts` to run, of "+strings.Join(bench.Parts, ", ")+" (default all)")
	servers := fs.String("servers", "", "comma-separated `servers` to measure, of xdp, user, coturn, pion (default all)")
	step := fs.Duration("step", 0, fmt.Sprintf("how long each offered rate is sent (default %v, or %v with -quick)", full.Step, short.Step))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	opts := bench.DefaultOptions(*quick)
	if *runs > 0 {
		opts.Runs = *runs
	}
	if *step > 0 {
		opts.Step = *step
	}
	if *parts != "" {
		for _, p := range strings.Split(*parts, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(bench.Parts, p) {
				return fmt.Errorf("-parts: unknown part %q; want some of %s", p, strings.Join(bench.Parts, ", "))
			}
			opts.Parts = append(opts.Parts, p)
		}
	}
	names := map[string]string{"xdp": bench.XDP, "user": bench.UserSpace, "coturn": bench.Coturn, "pion": bench.Pion}
	if *servers != "" {
		for _, s := range strings.Split(*servers, ",") {
			name, ok := names[strings.TrimSpace(s)]
			if !ok {
				return fmt.Errorf("-servers: unknown server %q; want some of xdp, user, coturn, pion", s)
			}
			opts.Servers = append(opts.Servers, name)
		}
	}
	if *out == "" {
		*out = "bench"
		if *quick {
			*out = filepath.Join("out", "bench")
		}
	}
	var err error
	if opts.Go, err = exec.LookPath("go"); err != nil {
		return fmt.Errorf("the go command builds the relay and runs bpf's benchmark: %w", err)
	}
	gomod, err := exec.Command(opts.Go, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return errors.New("run relaybench inside the relaybox module (make bench does)")
	}
	opts.Root = filepath.Dir(strings.TrimSpace(string(gomod)))
	opts.Image = *image
	if opts.Work, err = os.MkdirTemp("", "relaybench-"); err != nil {
		return err
	}
	defer os.RemoveAll(opts.Work)
	opts.Log = log.New(stderr, "relaybench: ", log.Ltime)

	// SIGINT or SIGTERM ends the run at the next step and still cleans
	// up: servers, namespaces, XDP programs.
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := bench.Run(ctx, opts)
	if res == nil {
		return err
	}
	if err != nil {
		opts.Log.Printf("stopped early: %v; writing what was measured", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	md, svg := filepath.Join(*out, "results.md"), filepath.Join(*out, "results.svg")
	if err := writeFile(md, res.WriteMarkdown); err != nil {
		return err
	}
	if err := writeFile(svg, res.WriteSVG); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s in %s\n", md, svg, time.Since(start).Round(time.Second))
	return err
}

// writeFile writes a file through write, replacing it only when complete.
func writeFile(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := errors.Join(write(f), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
