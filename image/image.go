// Package image builds relaybox's bootable artifacts for a board: the
// board's Debian kernel, a u-root initramfs holding our init, the relay, a
// few console commands and the board's kernel modules and firmware; from
// those a PXE bundle and a UEFI-bootable disk image for USB sticks; and a
// manifest of every input and output.
package image

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/relaybox/relaybox/board"
	"github.com/relaybox/relaybox/relay"
)

// ExampleConfig is the documented relaybox.conf the disk image carries when
// the build is given none: every key, all commented out.
//
//go:embed relaybox.conf
var ExampleConfig []byte

// Artifacts are the files a build leaves in its output directory.
type Artifacts struct {
	Kernel  string // vmlinuz
	Initrd  string // initrd.img: gzip-compressed newc cpio
	Cmdline string // the board's default kernel command line
	// PXE is the PXE bundle directory: vmlinuz, initrd.img, boot.ipxe and
	// pxelinux.cfg/default.
	PXE string
	// UKI is the unified kernel image (stub, kernel, initramfs, boot
	// command line), the disk image's \EFI\BOOT\BOOTX64.EFI.
	UKI string
	// Disk is relaybox.img: GPT, the EFI system partition and the
	// RELAYBOX config partition.
	Disk string
	// Manifest lists every input and output with its SHA-256.
	Manifest string
}

// ArtifactsIn names the artifacts of a build into dir.
func ArtifactsIn(dir string) Artifacts {
	return Artifacts{
		Kernel:   filepath.Join(dir, "vmlinuz"),
		Initrd:   filepath.Join(dir, "initrd.img"),
		Cmdline:  filepath.Join(dir, "cmdline"),
		PXE:      filepath.Join(dir, "pxe"),
		UKI:      filepath.Join(dir, "relaybox.efi"),
		Disk:     filepath.Join(dir, "relaybox.img"),
		Manifest: filepath.Join(dir, "manifest.txt"),
	}
}

// Outputs are the build's files, relative to its output directory, in the
// manifest's order.
func (a Artifacts) Outputs() []string {
	return []string{
		"vmlinuz", "initrd.img", "cmdline",
		"pxe/" + PXEKernel, "pxe/" + PXEInitrd, "pxe/" + IPXEScript, "pxe/" + PXELinuxCfg,
		"relaybox.efi", "relaybox.img",
	}
}

// Options say what to build and where.
type Options struct {
	Board    board.Board
	OutDir   string // e.g. out/qemu
	CacheDir string // downloaded and unpacked Debian packages; e.g. out/cache
	// Config is the relaybox.conf of the disk image's RELAYBOX
	// partition; nil means ExampleConfig.
	Config []byte
	// BakedConfig, when set, goes into the initramfs as
	// /etc/relaybox/relaybox.conf: the lowest-priority config source, and
	// the only file a PXE-booted box has without a config URL.
	BakedConfig []byte
	// Append are kernel parameters the boot media (the PXE scripts and
	// the unified kernel image) add to the board's command line, e.g. an
	// ip=. The plain cmdline file stays the board's.
	Append []string
	// SourceDir is the relaybox module's root, whose go.mod, go.sum and
	// git commit the manifest records; "" finds it from the working
	// directory.
	SourceDir string
	Log       *slog.Logger
}

// tools are the programs a build runs, with the Debian package of each.
var tools = []struct{ name, pkg string }{
	{"go", "golang (or a Go toolchain on PATH)"},
	{"apt-get", "apt"},
	{"dpkg-deb", "dpkg"},
	{"depmod", "kmod"},
	{"objcopy", "binutils"},
}

// checkTools fails with every missing tool and the package it is in.
func checkTools() error {
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", t.name, t.pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools: %s; `make deps` installs them", strings.Join(missing, ", "))
	}
	return nil
}

// Build builds the board's artifacts into o.OutDir. Each step logs one
// line; a missing input fails with what to do about it.
func Build(o Options) (Artifacts, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	art := ArtifactsIn(o.OutDir)
	const steps = 8
	step := 0
	// stepf starts a numbered step; logf reports within one.
	stepf := func(format string, v ...any) {
		step++
		log.Info(fmt.Sprintf("[%d/%d] ", step, steps)+fmt.Sprintf(format, v...), "board", o.Board.Name)
	}
	logf := func(format string, v ...any) { log.Info("      "+fmt.Sprintf(format, v...), "board", o.Board.Name) }

	stepf("checking tools and config")
	if err := checkTools(); err != nil {
		return art, err
	}
	conf := o.Config
	if conf == nil {
		conf = ExampleConfig
	}
	if _, err := relay.ReadConfigFile(bytes.NewReader(conf), ConfigFile); err != nil {
		return art, fmt.Errorf("config for the %s partition: %w", ConfigLabel, err)
	}
	if _, err := relay.ReadConfigFile(bytes.NewReader(o.BakedConfig), "/"+BakedConfig); err != nil {
		return art, fmt.Errorf("config for the initramfs: %w", err)
	}
	srcDir := o.SourceDir
	if srcDir == "" {
		var err error
		if srcDir, err = moduleRoot(); err != nil {
			return art, err
		}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return art, err
	}
	// The manifest stands for a complete build (make's target is it):
	// one from an earlier build must not outlive a failed one.
	if err := os.Remove(art.Manifest); err != nil && !errors.Is(err, os.ErrNotExist) {
		return art, err
	}
	m := manifest{board: o.Board.Name}

	stepf("kernel %s=%s", o.Board.Kernel.Package, o.Board.Kernel.Version)
	tree, err := fetchKernel(o.Board.Kernel, o.CacheDir, logf)
	if err != nil {
		return art, err
	}
	m.input("kernel", o.Board.Kernel.SHA256, o.Board.Kernel.DebFile())
	modules, err := moduleLoadOrder(tree.modulesDir(), o.Board.Modules)
	if err != nil {
		return art, fmt.Errorf("board %s: %w", o.Board.Name, err)
	}

	if len(o.Board.Firmware) == 0 {
		stepf("firmware: none for this board")
	} else {
		stepf("firmware: %d Debian packages", len(o.Board.Firmware))
	}
	firmware, err := boardFirmware(o.Board, tree, modules, o.CacheDir, logf)
	if err != nil {
		return art, err
	}
	for _, p := range o.Board.Firmware {
		m.input("firmware", p.SHA256, p.DebFile())
	}

	stepf("initramfs: init, relay, %d console commands, %d modules, %d firmware files",
		len(Commands)-2, len(modules), len(firmware))
	base, err := baseArchive(tree, modules, firmware, o.BakedConfig)
	if err != nil {
		return art, err
	}
	tmp, err := os.MkdirTemp("", "relaybox-image-")
	if err != nil {
		return art, err
	}
	defer os.RemoveAll(tmp)
	if err := buildInitramfs(base, art.Initrd, tmp, log); err != nil {
		return art, err
	}
	if err := copyFile(tree.vmlinuz(), art.Kernel); err != nil {
		return art, fmt.Errorf("copy kernel: %w", err)
	}
	if err := os.WriteFile(art.Cmdline, []byte(strings.Join(o.Board.Cmdline, " ")+"\n"), 0o644); err != nil {
		return art, err
	}
	bootCmdline := slices.Concat(o.Board.Cmdline, o.Append)

	stepf("PXE bundle: %s", art.PXE)
	if err := writePXE(art.PXE, art.Kernel, art.Initrd, o.Board.Name, bootCmdline); err != nil {
		return art, fmt.Errorf("PXE bundle: %w", err)
	}

	stepf("unified kernel image: %s", art.UKI)
	stub, stubDeb, err := fetchStub(o.CacheDir, logf)
	if err != nil {
		return art, err
	}
	m.input("stub", Stub.SHA256, filepath.Base(stubDeb)+":"+stubFile)
	if err := buildUKI(stub, art.Kernel, art.Initrd, strings.Join(bootCmdline, " "), osRelease(o.Board.Name), art.UKI, tmp); err != nil {
		return art, err
	}

	stepf("disk image: %s", art.Disk)
	uki, err := os.ReadFile(art.UKI)
	if err != nil {
		return art, err
	}
	if err := writeDisk(art.Disk, uki, conf); err != nil {
		return art, fmt.Errorf("disk image: %w", err)
	}

	stepf("manifest: %s", art.Manifest)
	m.input("config", sha256Hex(conf), ConfigLabel+":"+ConfigFile)
	if o.BakedConfig != nil {
		m.input("config", sha256Hex(o.BakedConfig), "initramfs:/"+BakedConfig)
	}
	if err := m.sources(srcDir); err != nil {
		return art, err
	}
	m.cmdline = strings.Join(o.Board.Cmdline, " ")
	m.bootCmdline = strings.Join(bootCmdline, " ")
	if err := m.write(art, o.OutDir); err != nil {
		return art, fmt.Errorf("manifest: %w", err)
	}
	return art, nil
}

// boardFirmware fetches the board's firmware packages and picks from them
// the files its modules ask for. Files no package carries are reported,
// not fatal: drivers list firmware for every hardware revision.
func boardFirmware(b board.Board, tree kernelTree, modules []string, cacheDir string, logf func(string, ...any)) ([]firmwareFile, error) {
	wanted, err := moduleFirmware(tree.modulesDir(), modules)
	if err != nil {
		return nil, err
	}
	if len(b.Firmware) == 0 {
		if len(wanted) > 0 {
			logf("no firmware packages: %d files the modules may ask for are left out", len(wanted))
		}
		return nil, nil
	}
	roots, _, err := fetchFirmware(b.Firmware, cacheDir, logf)
	if err != nil {
		return nil, err
	}
	found, missing, err := findFirmware(roots, wanted)
	if err != nil {
		return nil, err
	}
	var size int64
	for _, f := range found {
		if fi, err := os.Stat(f.Src); err == nil {
			size += fi.Size()
		}
	}
	logf("%d firmware files (%d KiB) for the board's modules", len(found), size/1024)
	if len(missing) > 0 {
		logf("not in the board's firmware packages (those drivers load without them): %s", strings.Join(missing, " "))
	}
	return found, nil
}

// osRelease is the unified kernel image's .osrel section, what a UEFI boot
// menu shows.
func osRelease(boardName string) string {
	return fmt.Sprintf("ID=relaybox\nNAME=relaybox\nPRETTY_NAME=\"relaybox (%s)\"\n", boardName)
}

// moduleRoot finds the directory holding the relaybox module's go.mod,
// from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/relaybox/relaybox\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no relaybox go.mod in %s or above: run the build from the repository", dir)
		}
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
