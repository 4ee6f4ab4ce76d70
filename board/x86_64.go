package board

import "slices"

// The x86-64 board: a generic x86-64 server booted by PXE or from a USB
// stick. It carries the drivers of the NICs such servers ship with and the
// firmware those drivers ask for; the hardware that is absent costs only
// initramfs bytes. Serial-over-LAN is ttyS1 on most BMCs (iDRAC, iLO,
// Supermicro) and ttyS0 on the rest: the console goes to both, and to the
// screen. The chipset's TCO watchdog keeps a hung box from sitting dead.
func init() {
	register(Board{
		Name: "x86-64",
		Kernel: Kernel{
			Package: "linux-image-6.1.0-50-amd64",
			Version: "6.1.176-1",
			SHA256:  "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3",
		},
		Modules: slices.Concat([]string{
			"virtio_pci", "virtio_net", // cloud and virtual servers; native XDP
			"e1000", "e1000e", "igb", // Intel 1G
			"ixgbe", "i40e", "ice", // Intel 10/25/40/100G; ice needs its DDP package
			"mlx5_core",    // Mellanox/NVIDIA ConnectX-4 and later
			"bnxt_en",      // Broadcom NetXtreme-C/E
			"bnx2x", "tg3", // Broadcom NetXtreme II 10G, and the 1G of many boards' LOMs
			"8021q", // the vlan key's 802.1Q links
			// The chipset's watchdog, which init arms and pings. Intel's
			// TCO (iTCO_wdt) is a function of the PCH that no bus
			// enumerates: the driver binds to a platform device that
			// lpc_ich creates on ICH and older PCHs (QEMU's q35 too) and
			// i2c_i801 on Sunrise Point (Skylake) and later. There is no
			// modprobe to load those by their PCI aliases: unlisted,
			// iTCO_wdt loads and finds nothing. AMD's FCH TCO
			// (sp5100_tco) probes the PCI bus itself.
			"lpc_ich", "i2c_i801", "iTCO_wdt",
			"sp5100_tco",
		}, bootMedium),
		Firmware: []Package{
			// ice's intel/ice/ddp/ice.pkg and tg3's tigon/*: without the
			// DDP package ice runs in safe mode, without XDP.
			{Name: "firmware-misc-nonfree", Version: "20230210-5",
				SHA256: "bc837b3c19f046d48e4f2fb5530ab10b93a6e9e263d60ba06a345d13cee96422"},
			// bnx2x does not start without its firmware.
			{Name: "firmware-bnx2x", Version: "20230210-5",
				SHA256: "27a81b94a771a4e08ea49ffbf67be246cdcc20c6390e93b5d79659950cfb6aaf"},
		},
		Cmdline: []string{"console=tty0", "console=ttyS1,115200n8", "console=ttyS0,115200n8", "panic=-1", "quiet"},
	})
}
