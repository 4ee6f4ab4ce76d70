package pid1

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mount is one filesystem PID 1 mounts at boot.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (m mount) String() string { return fmt.Sprintf("%s on %s (%s)", m.source, m.target, m.fstype) }

// mounts are mounted in order: devpts needs /dev, bpffs needs /sys.
var mounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"bpf", "/sys/fs/bpf", "bpf", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0700"},
}

// mountAll mounts every filesystem, carrying on past failures: a box with
// /proc but no bpffs can still boot to a console and say what went wrong.
func mountAll(logf func(string, ...any)) {
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			logf("mount %s: %v", m, err)
			continue
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		// EBUSY: already mounted, as /dev is when the kernel mounts
		// devtmpfs itself (CONFIG_DEVTMPFS_MOUNT).
		if err != nil && !errors.Is(err, unix.EBUSY) {
			logf("mount %s: %v", m, err)
		}
	}
}
