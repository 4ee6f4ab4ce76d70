package board

import "slices"

// The qemu board: a q35 or pc guest under TCG with a virtio-net or e1000 NIC,
// the console on the first serial port and QEMU's i6300esb watchdog.
func init() {
	register(Board{
		Name: "qemu",
		Kernel: Kernel{
			Package: "linux-image-6.1.0-50-amd64",
			Version: "6.1.176-1",
			SHA256:  "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3",
		},
		Modules: slices.Concat([]string{
			// virtio_pci brings virtio_ring, virtio and the legacy and
			// modern device helpers; virtio_net brings failover and
			// net_failover. virtio_net takes native XDP.
			"virtio_pci",
			"virtio_net",
			// e1000 has no native XDP: the generic-mode path.
			"e1000",
			// -device i6300esb: the watchdog init pings.
			"i6300esb",
			// -device virtio-rng-pci: QEMU's default CPU has no RDRAND,
			// and without a seed getrandom blocks for minutes at boot
			// (DHCP transaction IDs, the relay's nonce key).
			"virtio_rng",
			// The vlan key's 802.1Q links.
			"8021q",
		}, bootMedium),
		Cmdline: []string{"console=ttyS0,115200", "panic=-1", "quiet"},
	})
}
