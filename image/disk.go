package image

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"sync"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
)

// The disk image, out/<board>/relaybox.img: a GPT disk to write to a USB
// stick (or any disk) whole. Partition 1 is the EFI system partition with
// the unified kernel image at the path UEFI firmware boots from removable
// media without a boot entry; partition 2 is a FAT partition, both named
// and labelled RELAYBOX, holding relaybox.conf, which init reads at boot
// and an operator edits from any computer.
const (
	ESPBootFile     = "/EFI/BOOT/BOOTX64.EFI"
	ConfigLabel     = "RELAYBOX"
	ConfigFile      = "relaybox.conf"
	espLabel        = "EFI"
	sectorSize      = 512
	mib             = 1 << 20
	firstPartSector = mib / sectorSize // 1 MiB alignment, as partitioning tools do
	// FAT32 with go-diskfs's 512-byte clusters needs 65525 clusters to be
	// FAT32 to every reader (Windows and macOS go by the count): 40 MiB
	// gives about 80000.
	minFAT32Size = 40 * mib
	configSize   = minFAT32Size
)

// fatEpoch is the time of every file and directory on the disk image:
// go-diskfs stamps entries with SOURCE_DATE_EPOCH, else the current time.
// 1980-01-01 is FAT's own epoch, as the initramfs's cpio has time zero.
const fatEpoch = 315532800

// relayboxNamespace makes the disk's GUIDs name-based (RFC 9562 version 5)
// from the image's content: the same content, the same GUIDs.
var relayboxNamespace = uuid.MustParse("6c6b0f4e-3c55-4d36-9a43-7265c1a7b0c5")

// diskEnvMu serialises the SOURCE_DATE_EPOCH setting in writeDisk: it is
// process-wide, and tests build images concurrently.
var diskEnvMu sync.Mutex

// writeDisk writes the disk image to dst (replacing it) with the unified
// kernel image uki on the ESP and conf as RELAYBOX's relaybox.conf.
func writeDisk(dst string, uki, conf []byte) error {
	diskEnvMu.Lock()
	defer diskEnvMu.Unlock()
	old, had := os.LookupEnv("SOURCE_DATE_EPOCH")
	os.Setenv("SOURCE_DATE_EPOCH", strconv.Itoa(fatEpoch))
	defer func() {
		if had {
			os.Setenv("SOURCE_DATE_EPOCH", old)
		} else {
			os.Unsetenv("SOURCE_DATE_EPOCH")
		}
	}()

	espSize := max(minFAT32Size, alignUp64(int64(len(uki))+int64(len(uki))/4+4*mib, mib))
	espStart := int64(firstPartSector)
	cfgStart := espStart + espSize/sectorSize
	size := (cfgStart+configSize/sectorSize)*sectorSize + mib // room for the backup GPT

	sum := func(b []byte) string { h := sha256.Sum256(b); return fmt.Sprintf("%x", h) }
	ukiSum, confSum := sum(uki), sum(conf)
	guid := func(what string) string {
		return uuid.NewSHA1(relayboxNamespace, []byte(what+"\x00"+ukiSum+"\x00"+confSum)).String()
	}
	table := &gpt.Table{
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		ProtectiveMBR:      true,
		GUID:               guid("disk"),
		Partitions: []*gpt.Partition{
			{Index: 1, Start: uint64(espStart), Size: uint64(espSize), Type: gpt.EFISystemPartition,
				Name: "EFI system partition", GUID: guid("esp")},
			{Index: 2, Start: uint64(cfgStart), Size: uint64(configSize), Type: gpt.MicrosoftBasicData,
				Name: ConfigLabel, GUID: guid("config")},
		},
	}

	tmp := dst + ".tmp"
	os.Remove(tmp)
	d, err := diskfs.Create(tmp, size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("create disk image: %w", err)
	}
	err = func() error {
		defer d.Close()
		if err := d.Partition(table); err != nil {
			return fmt.Errorf("write partition table: %w", err)
		}
		if err := writeFAT(d, 1, espLabel, map[string][]byte{ESPBootFile: uki}); err != nil {
			return fmt.Errorf("EFI system partition: %w", err)
		}
		if err := writeFAT(d, 2, ConfigLabel, map[string][]byte{"/" + ConfigFile: conf}); err != nil {
			return fmt.Errorf("%s partition: %w", ConfigLabel, err)
		}
		return nil
	}()
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// go-diskfs writes volume ID 0 in reproducible mode; give each
	// filesystem one of its own, derived like the GUIDs.
	if err := setVolumeID(tmp, espStart*sectorSize, volumeID(guid("esp"))); err != nil {
		return err
	}
	if err := setVolumeID(tmp, cfgStart*sectorSize, volumeID(guid("config"))); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// writeFAT makes a FAT32 filesystem on partition part and writes files
// (absolute paths) into it, parent directories first.
func writeFAT(d *disk.Disk, part int, label string, files map[string][]byte) error {
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{
		Partition: part, FSType: filesystem.TypeFat32, VolumeLabel: label, Reproducible: true,
	})
	if err != nil {
		return err
	}
	defer fs.Close()
	// Map order is random; the bytes must not be.
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if dir := path.Dir(name); dir != "/" {
			if err := fs.Mkdir(dir); err != nil {
				return fmt.Errorf("mkdir %s: %w", dir, err)
			}
		}
		f, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if _, err := f.Write(files[name]); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// volumeID is a FAT volume serial number taken from a GUID.
func volumeID(guid string) uint32 {
	u := uuid.MustParse(guid)
	return binary.LittleEndian.Uint32(u[:4])
}

// setVolumeID writes the volume serial number of the FAT32 filesystem at
// byte offset off in the image, in its boot sector (offset 0x43) and the
// backup boot sector six sectors further.
func setVolumeID(img string, off int64, id uint32) error {
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], id)
	for _, sector := range []int64{0, 6} {
		if _, err := f.WriteAt(b[:], off+sector*sectorSize+0x43); err != nil {
			f.Close()
			return fmt.Errorf("set volume ID: %w", err)
		}
	}
	return f.Close()
}

func alignUp64(n, a int64) int64 { return (n + a - 1) / a * a }
