package board

// bootMedium are the modules init needs to read relaybox.conf from the FAT
// partition labelled RELAYBOX on the medium the box booted from: the disk
// controllers a USB stick, a SATA or NVMe disk or a virtual disk hangs off,
// the SCSI disk driver that USB and SATA disks appear through, and the FAT
// filesystem with the code pages its short names and labels use. Debian's
// kernel builds all of them as modules; the kernel cannot load them by
// itself (no modprobe in the initramfs), so every board lists them.
var bootMedium = []string{
	"virtio_blk",           // QEMU's virtio disks
	"ahci",                 // SATA
	"nvme",                 // NVMe
	"sd_mod",               // the sdX disks of SATA and USB storage
	"xhci_pci", "ehci_pci", // USB 3 and USB 2 host controllers
	"usb_storage", "uas", // USB sticks (bulk-only and UAS)
	"vfat",
	// The code page of short names (FAT_DEFAULT_CODEPAGE=437), the I/O
	// charset Debian's kernel mounts vfat with (FAT_DEFAULT_IOCHARSET=
	// ascii: without nls_ascii the mount fails with EINVAL), and the
	// one an iocharset=iso8859-1 mount asks for.
	"nls_cp437", "nls_ascii", "nls_iso8859_1",
}
