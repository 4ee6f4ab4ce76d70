// Package image builds relaybox's bootable artifacts for a board: the
// board's Debian kernel and a u-root initramfs holding our init, the relay,
// a few console commands and the board's kernel modules.
package image

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/relaybox/relaybox/board"
)

// Artifacts are the files a build leaves in its output directory.
type Artifacts struct {
	Kernel  string // vmlinuz
	Initrd  string // initrd.img: gzip-compressed newc cpio
	Cmdline string // the board's default kernel command line
}

// ArtifactsIn names the artifacts of a build into dir.
func ArtifactsIn(dir string) Artifacts {
	return Artifacts{
		Kernel:  filepath.Join(dir, "vmlinuz"),
		Initrd:  filepath.Join(dir, "initrd.img"),
		Cmdline: filepath.Join(dir, "cmdline"),
	}
}

// Options say what to build and where.
type Options struct {
	Board    board.Board
	OutDir   string // e.g. out/qemu
	CacheDir string // downloaded and unpacked kernel packages; e.g. out/cache
	Log      *slog.Logger
}

// Build builds the board's kernel and initramfs into o.OutDir. Each step
// says what it is doing; a missing input fails with what to do about it.
func Build(o Options) (Artifacts, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	art := ArtifactsIn(o.OutDir)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return art, err
	}
	logf := func(format string, v ...any) { log.Info(fmt.Sprintf(format, v...), "board", o.Board.Name) }

	tree, err := fetchKernel(o.Board.Kernel, o.CacheDir, logf)
	if err != nil {
		return art, err
	}
	modules, err := moduleLoadOrder(tree.modulesDir(), o.Board.Modules)
	if err != nil {
		return art, fmt.Errorf("board %s: %w", o.Board.Name, err)
	}
	logf("kernel %s with %d modules", tree.Release, len(modules))

	base, err := baseArchive(tree, modules)
	if err != nil {
		return art, err
	}
	tmp, err := os.MkdirTemp("", "relaybox-image-")
	if err != nil {
		return art, err
	}
	defer os.RemoveAll(tmp)
	logf("building initramfs (init, relay, %d console commands)", len(Commands)-2)
	if err := buildInitramfs(base, art.Initrd, tmp, log); err != nil {
		return art, err
	}
	if err := copyFile(tree.vmlinuz(), art.Kernel); err != nil {
		return art, fmt.Errorf("copy kernel: %w", err)
	}
	cmdline := strings.Join(o.Board.Cmdline, " ") + "\n"
	if err := os.WriteFile(art.Cmdline, []byte(cmdline), 0o644); err != nil {
		return art, err
	}
	logf("wrote %s and %s", art.Kernel, art.Initrd)
	return art, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
