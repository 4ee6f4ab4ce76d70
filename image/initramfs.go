package image

import (
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// Commands are the Go programs in the initramfs, built as one u-root
// busybox binary: our init and relay, the console shell's poweroff and
// reboot (which ask init for its clean shutdown), and a few u-root core
// commands so the shell is usable.
var Commands = []string{
	"github.com/relaybox/relaybox/init",
	"github.com/relaybox/relaybox/relay/cmd/relay",
	"github.com/relaybox/relaybox/init/cmd/poweroff",
	"github.com/relaybox/relaybox/init/cmd/reboot",
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/ip",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/kill",
}

// ModulesList is where init finds the modules to load, one file per line
// relative to /lib/modules/<release>, dependencies first.
const ModulesList = "etc/relaybox/modules"

// FirmwareDir is where the kernel looks for firmware files.
const FirmwareDir = "lib/firmware"

// BakedConfig is where init reads the config file built into the image.
const BakedConfig = "etc/relaybox/relaybox.conf"

// baseArchive holds what is not a Go program: the directories PID 1 mounts
// onto, the console node the kernel opens for /init before devtmpfs exists,
// the board's kernel modules and the firmware they load, and the baked-in
// config file when there is one.
func baseArchive(tree kernelTree, modules []string, firmware []firmwareFile, config []byte) (*cpio.Archive, error) {
	recs := []cpio.Record{
		cpio.Directory("bin", 0o755),
		cpio.Directory("dev", 0o755),
		cpio.Directory("etc", 0o755),
		cpio.Directory("etc/relaybox", 0o755),
		cpio.Directory("proc", 0o555),
		cpio.Directory("run", 0o755),
		cpio.Directory("sys", 0o555),
		cpio.Directory("tmp", 0o1777),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
		cpio.StaticFile("etc/hostname", "relaybox\n", 0o644),
	}
	// Directories before the files in them, each once.
	dirs := map[string]bool{}
	var mkdirs func(dir string)
	mkdirs = func(dir string) {
		if dir == "." || dirs[dir] {
			return
		}
		mkdirs(filepath.Dir(dir))
		dirs[dir] = true
		recs = append(recs, cpio.Directory(dir, 0o755))
	}
	modRoot := filepath.Join("lib", "modules", tree.Release)
	for _, m := range modules {
		b, err := os.ReadFile(filepath.Join(tree.modulesDir(), m))
		if err != nil {
			return nil, fmt.Errorf("read module: %w", err)
		}
		dst := filepath.Join(modRoot, m)
		mkdirs(filepath.Dir(dst))
		recs = append(recs, cpio.StaticFile(dst, string(b), 0o644))
	}
	recs = append(recs, cpio.StaticFile(ModulesList, strings.Join(modules, "\n")+"\n", 0o644))
	for _, fw := range firmware {
		b, err := os.ReadFile(fw.Src)
		if err != nil {
			return nil, fmt.Errorf("read firmware: %w", err)
		}
		dst := filepath.Join(FirmwareDir, fw.Name)
		mkdirs(filepath.Dir(dst))
		recs = append(recs, cpio.StaticFile(dst, string(b), 0o644))
	}
	if config != nil {
		recs = append(recs, cpio.StaticFile(BakedConfig, string(config), 0o644))
	}
	return cpio.ArchiveFromRecords(recs)
}

// buildInitramfs writes the gzip-compressed newc archive to dst. The
// archive and the Go build are both reproducible (u-root zeroes times and
// inode numbers; Go builds with -trimpath), and gzip here writes no name or
// time, so the same inputs give the same bytes.
func buildInitramfs(base *cpio.Archive, dst, tmpDir string, log *slog.Logger) error {
	raw := filepath.Join(tmpDir, "initramfs.cpio")
	env := golang.Default(golang.WithGOOS("linux"), golang.WithGOARCH("amd64"), golang.DisableCGO(),
		// gosh's plain line editor: the rich one queries the terminal
		// and waits for answers that a serial line never gives.
		golang.WithBuildTag("goshsmall"))
	// QEMU's default CPU and older servers only have the baseline x86-64
	// instructions. The Go tool takes it from the environment.
	os.Setenv("GOAMD64", "v1")
	l := llog.New(slog.LevelWarn, func(format string, v ...any) { log.Debug(fmt.Sprintf(format, v...)) })
	err := uimage.Create(l,
		uimage.WithReplaceEnv(env),
		uimage.WithBaseArchive(base),
		uimage.WithBusyboxCommands(Commands...),
		uimage.WithBusyboxBuildOpts(&golang.BuildOpts{EnableInlining: true}),
		uimage.WithInit("init"),
		uimage.WithShell("gosh"),
		uimage.WithSkipLDD(),
		uimage.WithTempDir(tmpDir),
		uimage.WithCPIOOutput(raw),
	)
	if err != nil {
		return fmt.Errorf("build initramfs: %w", err)
	}
	return gzipFile(raw, dst)
}

func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(out, gzip.BestCompression)
	if err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
