// Command mkimage builds a board's bootable artifacts: `make image BOARD=qemu`.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

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
	boardName := fs.String("board", "qemu", "board to build for")
	out := fs.String("out", "", "output directory (default out/<board>)")
	cache := fs.String("cache", "out/cache", "where downloaded kernel packages are kept")
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
	log := slog.New(slog.NewTextHandler(stderr, nil))
	_, err = image.Build(image.Options{Board: b, OutDir: *out, CacheDir: *cache, Log: log})
	return err
}
