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
`

func TestModuleLoadOrder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(modulesDep), 0o644); err != nil {
		t.Fatal(err)
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
		// name the same module, as for modprobe.
		{[]string{"virtio_net", "virtio", "foo_bar"}, []string{
			"kernel/net/core/failover.ko",
			"kernel/drivers/net/net_failover.ko",
			"kernel/drivers/virtio/virtio_ring.ko",
			"kernel/drivers/virtio/virtio.ko",
			"kernel/drivers/net/virtio_net.ko",
			"kernel/drivers/net/foo-bar.ko",
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
