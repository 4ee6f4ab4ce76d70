package image_test

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"pack.ag/tftp"

	"github.com/relaybox/relaybox/image"
	"github.com/relaybox/relaybox/image/qemu"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// TestPXEBoot boots QEMU from the network as a PXE server would serve the
// bundle: an in-process DHCP server hands the guest its address and
// boot.ipxe as the boot file, an in-process TFTP server serves out/<board>/pxe/,
// and the NIC's iPXE option ROM does the rest. The relay must come up and
// answer STUN at the address boot.ipxe gives the kernel.
func TestPXEBoot(t *testing.T) {
	art := buildImage(t)
	ns := tapNamespace(t)
	serveDHCP(t, ns, image.IPXEScript)
	serveTFTP(t, ns, art.PXE)
	netBoot(t, ns, "PXE")
}

// netBoot boots QEMU in ns from the network (a virtio NIC, whose option
// ROM is iPXE) to the ready line, which must name native XDP, and checks
// that the relay answers STUN. how names the way, for the log.
func netBoot(t *testing.T, ns *nstest.NS, how string) *vm {
	t.Helper()
	start := time.Now()
	vm := startVM(t, ns, qemu.Options{NetBoot: true, NIC: qemu.VirtioNet, Tap: "tap0"})
	ready := vm.waitFor(t, "relaybox: ready", bootTimeout)
	t.Logf("%s boot to the ready line: %s", how, time.Since(start).Round(time.Second))
	if !strings.Contains(ready, "xdp=eth0:native") {
		t.Errorf("ready line %q: want xdp=eth0:native", ready)
	}
	bindingFrom(t, ns)
	return vm
}

// TestUEFIUSBBoot boots relaybox.img as a USB stick on OVMF: the firmware
// finds \EFI\BOOT\BOOTX64.EFI, the unified kernel image, on the EFI system
// partition, and init finds relaybox.conf on the RELAYBOX partition.
func TestUEFIUSBBoot(t *testing.T) {
	art := buildImage(t)
	vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	b, err := os.ReadFile(qemu.OVMFVars)
	if err != nil {
		t.Fatalf("OVMF variable store: %v (is the ovmf package installed? make deps)", err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ns := tapNamespace(t)
	start := time.Now()
	vm := startVM(t, ns, qemu.Options{
		UEFIVars: vars, Disk: art.Disk, DiskBus: qemu.USBStick,
		NIC: qemu.VirtioNet, Tap: "tap0", MemoryMB: 1024,
	})
	ready := vm.waitFor(t, "relaybox: ready", bootTimeout)
	t.Logf("UEFI boot from the USB stick to the ready line: %s", time.Since(start).Round(time.Second))
	if !strings.Contains(ready, "xdp=eth0:native") {
		t.Errorf("ready line %q: want xdp=eth0:native", ready)
	}
	bindingFrom(t, ns)
	// The relay logs its configuration as it starts; SOFTWARE itself only
	// goes into authenticated responses, which a Binding is not.
	if want := "software=" + testSoftware; !strings.Contains(vm.output(), want) {
		t.Errorf("the relay did not start with %s from the RELAYBOX partition's relaybox.conf", want)
	}
}

// TestDiskImageLayout reads relaybox.img from the host side: a GPT with
// the EFI system partition holding the unified kernel image where UEFI
// firmware looks for it, and the RELAYBOX partition holding the config.
func TestDiskImageLayout(t *testing.T) {
	art := buildImage(t)
	d, err := diskfs.Open(art.Disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatalf("open %s: %v", art.Disk, err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatalf("partition table: %v", err)
	}
	table, ok := pt.(*gpt.Table)
	if !ok {
		t.Fatalf("partition table is %T, want GPT", pt)
	}
	if len(table.Partitions) != 2 {
		t.Fatalf("%d partitions, want 2", len(table.Partitions))
	}
	if p := table.Partitions[0]; p.Type != gpt.EFISystemPartition {
		t.Errorf("partition 1 type %s, want the EFI system partition's", p.Type)
	}
	if p := table.Partitions[1]; p.Name != image.ConfigLabel || p.Type != gpt.MicrosoftBasicData {
		t.Errorf("partition 2 %q type %s, want %q, basic data", p.Name, p.Type, image.ConfigLabel)
	}

	uki, err := os.ReadFile(art.UKI)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		part  int
		label string
		file  string
		want  []byte
	}{
		{1, "EFI", image.ESPBootFile, uki},
		{2, image.ConfigLabel, "/" + image.ConfigFile, testConfig},
	} {
		fs, err := d.GetFilesystem(tc.part)
		if err != nil {
			t.Errorf("partition %d: %v", tc.part, err)
			continue
		}
		if got := strings.TrimSpace(fs.Label()); got != tc.label {
			t.Errorf("partition %d: FAT label %q, want %q", tc.part, got, tc.label)
		}
		f, err := fs.OpenFile(tc.file, os.O_RDONLY)
		if err != nil {
			t.Errorf("partition %d: open %s: %v", tc.part, tc.file, err)
			continue
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("partition %d: %s holds %d bytes (%v), want the %d of the build", tc.part, tc.file, len(got), err, len(tc.want))
		}
	}
}

// serveDHCP answers DHCPv4 on tap0 in ns, as Talos's test provisioner
// does: the guest gets guestAddr/24, the host side as router and as TFTP
// server, and bootFile to boot.
func serveDHCP(t *testing.T, ns *nstest.NS, bootFile string) {
	t.Helper()
	server := net.ParseIP(hostAddr).To4()
	handler := func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		if m.OpCode != dhcpv4.OpcodeBootRequest {
			return
		}
		var reply dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			reply = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			reply = dhcpv4.MessageTypeAck
		default:
			return
		}
		resp, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(reply),
			dhcpv4.WithServerIP(server),
			dhcpv4.WithYourIP(net.ParseIP(guestAddr).To4()),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithOption(dhcpv4.OptRouter(server)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(10*time.Minute)),
			dhcpv4.WithOption(dhcpv4.OptTFTPServerName(hostAddr)),
			dhcpv4.WithOption(dhcpv4.OptBootFileName(bootFile)),
		)
		if err != nil {
			t.Logf("DHCP reply: %v", err)
			return
		}
		// The client has no address yet: answer to the broadcast
		// address, as RFC 2131 section 4.1 allows.
		if _, err := conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}); err != nil {
			t.Logf("DHCP send: %v", err)
		}
	}
	var srv *server4.Server
	if err := ns.Do(func() error {
		var err error
		srv, err = server4.NewServer("tap0", &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
		return err
	}); err != nil {
		t.Fatalf("DHCP server: %v", err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
}

// serveTFTP serves the files in dir by TFTP on the host side of tap0, and
// returns a function that lists the names asked for so far. Replies come
// from port 69 itself (single-port mode): a per-transfer socket would be
// opened outside the namespace, on whatever thread the library's
// goroutine runs.
func serveTFTP(t *testing.T, ns *nstest.NS, dir string) (asked func() []string) {
	t.Helper()
	srv, err := tftp.NewServer(hostAddr+":69", tftp.ServerSinglePort(true), tftp.ServerNet("udp4"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		names []string
	)
	files := tftp.FileServer(dir)
	srv.ReadHandler(tftp.ReadHandlerFunc(func(r tftp.ReadRequest) {
		mu.Lock()
		names = append(names, r.Name())
		mu.Unlock()
		// PXELINUX asks for configs named after the client's MAC and
		// address before pxelinux.cfg/default: answer those without the
		// file server's log line for each.
		if _, err := os.Stat(filepath.Join(dir, filepath.Clean("/"+r.Name()))); err != nil {
			r.WriteError(tftp.ErrCodeFileNotFound, "no such file")
			return
		}
		files.ServeTFTP(r)
	}))
	var conn *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(hostAddr), Port: 69})
		return err
	}); err != nil {
		t.Fatalf("TFTP server: %v", err)
	}
	go srv.Serve(conn)
	t.Cleanup(func() { srv.Close() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
}
