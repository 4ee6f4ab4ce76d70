package image_test

import (
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/relaybox/relaybox/image/qemu"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// testVLAN is the 802.1Q VLAN the guest's relay is configured on.
const testVLAN = 42

// TestBootsOnVLAN boots the appliance with its address on an 802.1Q VLAN
// of its NIC (relaybox.vlan=eth0.42) and reaches the relay through it.
//
// The host side needs a VLAN too, and this host's kernel has no 802.1Q
// links (CONFIG_VLAN_8021Q is not set). So the namespace's tap tags and
// untags in tc instead: on egress every frame to the guest gets tag 42;
// on ingress a frame from the guest with tag 42 loses it, and any other
// frame is dropped. A STUN answer therefore proves that the guest
// received on VLAN 42 and answered on it.
func TestBootsOnVLAN(t *testing.T) {
	ns := tapNamespace(t)
	tagTap(t, ns, "tap0", testVLAN)

	vlan := "eth0.42"
	// ip=off forgets the boot's static entry for eth0: the address is on
	// the VLAN only.
	vm := boot(t, ns, qemu.VirtioNet, "relaybox.vlan="+vlan, "ip=off",
		"ip="+guestAddr+"::"+hostAddr+":255.255.255.0::"+vlan+":off")
	ready := vm.waitFor(t, "relaybox: ready", bootTimeout)
	t.Logf("ready: %s", ready)
	b := bindingFrom(t, ns)
	if got := b.Mapped.IP.String(); got != hostAddr {
		t.Errorf("STUN over VLAN %d: mapped address %s, want %s", testVLAN, got, hostAddr)
	}
	vm.powerOff(t)
}

// tagTap makes iface, in ns, a host on VLAN vid without an 802.1Q link:
// tc programs push the tag on every frame leaving and pop it from frames
// arriving with it, dropping those without.
func tagTap(t *testing.T, ns *nstest.NS, iface string, vid int) {
	t.Helper()
	// struct __sk_buff offsets (linux/bpf.h).
	const (
		skbVLANPresent = 20
		skbVLANTCI     = 24
		tcActOK        = 0
		tcActShot      = 2
		ethP8021QBE    = 0x0081 // htons(ETH_P_8021Q) on a little-endian host
	)
	push := asm.Instructions{
		asm.Mov.Imm(asm.R2, ethP8021QBE),
		asm.Mov.Imm(asm.R3, int32(vid)),
		asm.FnSkbVlanPush.Call(),
		asm.Mov.Imm(asm.R0, tcActOK),
		asm.Return(),
	}
	pop := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, skbVLANPresent, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "drop"),
		asm.LoadMem(asm.R2, asm.R1, skbVLANTCI, asm.Word),
		asm.And.Imm(asm.R2, 0xFFF),
		asm.JNE.Imm(asm.R2, int32(vid), "drop"),
		asm.FnSkbVlanPop.Call(),
		asm.Mov.Imm(asm.R0, tcActOK),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("drop"),
		asm.Return(),
	}
	for _, p := range []struct {
		name   string
		insns  asm.Instructions
		attach ebpf.AttachType
	}{{"vlan_push", push, ebpf.AttachTCXEgress}, {"vlan_pop", pop, ebpf.AttachTCXIngress}} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: p.name, Type: ebpf.SchedCLS, Instructions: p.insns, License: "GPL"})
		if err != nil {
			t.Fatalf("load %s: %v", p.name, err)
		}
		t.Cleanup(func() { prog.Close() })
		err = ns.Do(func() error {
			ifc, err := net.InterfaceByName(iface)
			if err != nil {
				return err
			}
			l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: p.attach})
			if err != nil {
				return err
			}
			t.Cleanup(func() { l.Close() })
			return nil
		})
		if err != nil {
			t.Fatalf("attach %s to %s in %s: %v", p.name, iface, ns.Name, err)
		}
	}
}
