package pid1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/relay"
)

// Where configuration comes from, later sources winning key by key:
// the file baked into the image, relaybox.conf on a FAT partition labelled
// RELAYBOX on the boot medium, a URL (key config), the kernel command line.
const (
	bakedConfig    = "/etc/relaybox/relaybox.conf"
	partitionLabel = "RELAYBOX"
	partitionFile  = "relaybox.conf"
	partitionMount = "/run/relaybox/config"
)

// readConfigFile reads one config file; a missing file is no settings.
func readConfigFile(path, name string) ([]relay.Setting, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return relay.ReadConfigFile(f, name)
}

// partitionConfig finds the RELAYBOX partition, waiting up to wait for
// block devices to appear (USB sticks enumerate after the modules load),
// and reads relaybox.conf from it. No partition is no settings.
func partitionConfig(sysBlock string, wait time.Duration) (settings []relay.Setting, dev string, err error) {
	deadline := time.Now().Add(wait)
	for {
		dev = findPartition(sysBlock, partitionLabel)
		if dev != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dev == "" {
		return nil, "", nil
	}
	if err := os.MkdirAll(partitionMount, 0o755); err != nil {
		return nil, dev, err
	}
	if err := unix.Mount(dev, partitionMount, "vfat", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, dev, fmt.Errorf("mount %s (vfat): %w", dev, err)
	}
	defer unix.Unmount(partitionMount, 0)
	settings, err = readConfigFile(filepath.Join(partitionMount, partitionFile), partitionLabel+":"+partitionFile)
	return settings, dev, err
}

// findPartition returns /dev/<name> of the block device whose GPT
// partition name or FAT volume label is label, or "".
func findPartition(sysBlock, label string) string {
	entries, _ := os.ReadDir(sysBlock)
	for _, e := range entries {
		name := e.Name()
		if partName(filepath.Join(sysBlock, name, "uevent")) == label || fatLabel("/dev/"+name) == label {
			return "/dev/" + name
		}
	}
	return ""
}

// partName reads PARTNAME (the GPT partition name) from a uevent file.
func partName(uevent string) string {
	b, err := os.ReadFile(uevent)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PARTNAME="); ok {
			return v
		}
	}
	return ""
}

// fatLabel reads the volume label from a FAT boot sector, or "".
func fatLabel(dev string) string {
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	var bs [512]byte
	if _, err := io.ReadFull(f, bs[:]); err != nil || bs[510] != 0x55 || bs[511] != 0xAA {
		return ""
	}
	return fatBootSectorLabel(bs[:])
}

// fatBootSectorLabel extracts the label of a FAT12/16 or FAT32 boot sector:
// the extended boot signature 0x29 says the label field is there.
func fatBootSectorLabel(bs []byte) string {
	off := 36 // FAT12/16: extended BPB right after the common one
	if bs[22] == 0 && bs[23] == 0 {
		off = 64 // FAT32: sectors-per-FAT (16-bit) is 0, extended BPB later
	}
	if bs[off+2] != 0x29 || !strings.HasPrefix(string(bs[off+18:off+26]), "FAT") {
		return ""
	}
	return strings.TrimRight(string(bs[off+7:off+18]), " ")
}

// fetchConfig gets the config at url, retrying with a growing backoff until
// it succeeds or ctx ends; each failure is reported through logf, because an
// operator watching the console needs to know what the box waits for.
func fetchConfig(ctx context.Context, url string, logf func(string, ...any)) ([]relay.Setting, error) {
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		settings, err := fetchConfigOnce(ctx, url)
		if err == nil {
			return settings, nil
		}
		logf("config %s: %v; retrying in %s (attempt %d)", url, err, backoff, attempt)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func fetchConfigOnce(ctx context.Context, url string) ([]relay.Setting, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return relay.ReadConfigFile(io.LimitReader(resp.Body, 1<<20), url)
}
