// Command mkimage builds a board's bootable artifacts: `make image BOARD=qemu`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/relaybox/relaybox/board"
	"github.com/relaybox/relaybox/image"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boardName := fs.String("board", "qemu", "board to build for: "+strings.Join(board.Names(), ", "))
	out := fs.String("out", "", "output directory (default out/<board>)")
	cache := fs.String("cache", "out/cache", "where downloaded Debian packages are kept")
	config := fs.String("config", "", "relaybox.conf for the disk image's RELAYBOX partition (default: the documented example, all defaults)")
	baked := fs.String("baked-config", "", "relaybox.conf built into the initramfs (/etc/relaybox/relaybox.conf), under every other source; for PXE the only file source")
	appendArgs := fs.String("append", "", "kernel parameters the PXE scripts and the UEFI image add to the board's, e.g. ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := board.Lookup(*boardName)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("out", b.Name)
	}
	o := image.Options{Board: b, OutDir: *out, CacheDir: *cache, Append: strings.Fields(*appendArgs),
		Log: slog.New(&lineHandler{w: stderr})}
	if *config != "" {
		if o.Config, err = os.ReadFile(*config); err != nil {
			return fmt.Errorf("-config: %w", err)
		}
	}
	if *baked != "" {
		if o.BakedConfig, err = os.ReadFile(*baked); err != nil {
			return fmt.Errorf("-baked-config: %w", err)
		}
	}
	art, err := image.Build(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "mkimage: %s: done; inputs and outputs are listed in %s\n", b.Name, art.Manifest)
	return nil
}

// lineHandler writes each build step as one plain line,
// "mkimage: <board>: <message>", for a person watching make.
type lineHandler struct {
	mu sync.Mutex
	w  io.Writer
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	prefix := "mkimage: "
	var rest []string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "board" {
			prefix += a.Value.String() + ": "
		} else {
			rest = append(rest, a.String())
		}
		return true
	})
	if r.Level >= slog.LevelWarn {
		prefix += strings.ToLower(r.Level.String()) + ": "
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintln(h.w, prefix+r.Message+strings.Join(append([]string{""}, rest...), " "))
	return err
}

func (h *lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineHandler) WithGroup(string) slog.Handler      { return h }
