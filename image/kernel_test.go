package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A modules.dep in depmod's format, shaped like Debian 6.1's virtio and
// e1000 entries.
const modulesDep = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/foo-bar.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/lib/libcrc32c.ko:
kernel/drivers/net/ethernet/broadcom/bnx2x/bnx2x.ko: kernel/drivers/net/mdio.ko kernel/lib/libcrc32c.ko
kernel/drivers/net/mdio.ko:
`

// Soft dependencies and the aliases they name, as depmod writes them.
const (
	modulesSoftdep = "# Soft dependencies extracted from modules themselves.\nsoftdep libcrc32c pre: crc32c\nsoftdep foo_bar pre: nothing-here post: e1000\n"
	modulesAlias   = "# Aliases extracted from modules themselves.\nalias crc32c crc32c_intel\nalias crypto-crc32c crc32c_intel\nalias crc32c crc32c_generic\n"
)

func TestModuleLoadOrder(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"modules.dep": modulesDep, "modules.softdep": modulesSoftdep, "modules.alias": modulesAlias} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{[]string{"e1000"}, []string{"kernel/drivers/net/ethernet/intel/e1000/e1000.ko"}},
		{[]string{"virtio_pci", "virtio_net"}, []string{
			"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
			"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
			"kernel/drivers/virtio/virtio_ring.ko",
			"kernel/drivers/virtio/virtio.ko",
			"kernel/drivers/virtio/virtio_pci.ko",
			"kernel/net/core/failover.ko",
			"kernel/drivers/net/net_failover.ko",
			"kernel/drivers/net/virtio_net.ko",
		}},
		// A dependency named twice is loaded once; dashes and underscores
		// name the same module, as for modprobe. A soft dependency that
		// names nothing in the kernel is skipped; a post one follows.
		{[]string{"virtio_net", "virtio", "foo_bar"}, []string{
			"kernel/net/core/failover.ko",
			"kernel/drivers/net/net_failover.ko",
			"kernel/drivers/virtio/virtio_ring.ko",
			"kernel/drivers/virtio/virtio.ko",
			"kernel/drivers/net/virtio_net.ko",
			"kernel/drivers/net/foo-bar.ko",
			"kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
		}},
		// A soft dependency through an alias loads every module it
		// names, before the module and its own dependencies.
		{[]string{"bnx2x"}, []string{
			"kernel/drivers/net/mdio.ko",
			"kernel/arch/x86/crypto/crc32c-intel.ko",
			"kernel/crypto/crc32c_generic.ko",
			"kernel/lib/libcrc32c.ko",
			"kernel/drivers/net/ethernet/broadcom/bnx2x/bnx2x.ko",
		}},
	} {
		got, err := moduleLoadOrder(dir, tc.names)
		if err != nil {
			t.Errorf("moduleLoadOrder(%q) error %v", tc.names, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("moduleLoadOrder(%q) (-want +got):\n%s", tc.names, diff)
		}
	}
	if _, err := moduleLoadOrder(dir, []string{"ixgbe"}); err == nil || !strings.Contains(err.Error(), `"ixgbe"`) {
		t.Errorf("moduleLoadOrder(ixgbe) = %v, want an error naming the module", err)
	}
}

func TestVerifySHA256(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(f, []byte("relaybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const digest = "b76da55f8817e7cc3ea951ca7c465de30eae02c87e120662b5ea3454735f6aea" // of "relaybox\n"
	if err := verifySHA256(f, digest); err != nil {
		t.Errorf("verifySHA256(right digest) = %v, want nil", err)
	}
	wrong := strings.Repeat("0", 64)
	if err := verifySHA256(f, wrong); err == nil || !strings.Contains(err.Error(), digest) {
		t.Errorf("verifySHA256(wrong digest) = %v, want an error showing the real digest", err)
	}
}
