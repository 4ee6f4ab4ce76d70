package image_test

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/relaybox/relaybox/image/qemu"
	"github.com/relaybox/relaybox/netcfg/nstest"
)

// The static user the appliance tests give the guest's relay.
const (
	turnUser = "alice"
	turnPass = "wonderland"
)

// TestApplianceKernelPath boots the image with each NIC model and relays
// through the guest's XDP program: a pion/turn client on the host side of
// the tap allocates, binds a channel to a UDP echo peer on the same host
// address, and its ChannelData comes back echoed. The guest relays it out
// the NIC it came in by (XDP_TX): the console's status shows the kernel
// path's tx verdicts, and the relay's own status what the kernel relayed.
func TestApplianceKernelPath(t *testing.T) {
	for _, tc := range []struct{ nic, mode string }{
		{qemu.VirtioNet, "native"},
		{qemu.E1000, "generic"},
	} {
		t.Run(tc.nic, func(t *testing.T) {
			ns := tapNamespace(t)
			vm := boot(t, ns, tc.nic, "relaybox.dashboard=off",
				"relaybox.user="+turnUser+":"+turnPass, "relaybox.allow-peer=198.18.0.0/15")
			ready := vm.waitFor(t, "relaybox: ready", bootTimeout)
			if !strings.Contains(ready, "xdp=eth0:"+tc.mode) {
				t.Fatalf("ready line %q: want xdp=eth0:%s", ready, tc.mode)
			}
			if want := `data-plane="xdp, attached by another process, maps in /sys/fs/bpf/relaybox"`; !strings.Contains(vm.output(), want) {
				t.Errorf("the relay does not log %s: init did not give it the maps", want)
			}

			relayThroughGuest(t, ns, 30)

			vm.openShell(t)
			line := vm.shell(t, "cat /run/relaybox/status", "xdp tx ")[0]
			if n := counted(t, line, `packets (\d+) `); n < 2 {
				t.Errorf("console status %q: want the kernel path's XDP_TX to have relayed both ways", line)
			}
			line = vm.shell(t, "relay status", "relayed (data plane)", "channel-to-peer")[1]
			if n := counted(t, line, `(\d+) packets`); n == 0 {
				t.Errorf("relay status %q: want ChannelData relayed by the kernel", line)
			}
			vm.shellPowerOff(t)
		})
	}
}

// relayThroughGuest allocates on the guest's relay from inside ns with
// pion/turn's client and sends n datagrams to a UDP echo peer in ns
// through the allocation, each waited for. pion sends the first as a Send
// indication while it binds a channel, the rest as ChannelData.
func relayThroughGuest(t *testing.T, ns *nstest.NS, n int) {
	t.Helper()
	var conn, peer *net.UDPConn
	err := ns.Do(func() error {
		var err error
		if conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(hostAddr)}); err != nil {
			return err
		}
		peer, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(hostAddr)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer peer.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := peer.ReadFromUDP(buf)
			if err != nil {
				return
			}
			peer.WriteToUDP(buf[:n], from)
		}
	}()

	server := guestAddr + ":3478"
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server, Username: turnUser, Password: turnPass,
		Conn: conn, RTO: 500 * time.Millisecond, // TCG is slow
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	alloc, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate on the guest's relay: %v", err)
	}
	defer alloc.Close()

	buf := make([]byte, 1500)
	// echoed reads until msg comes back from the peer or timeout passes,
	// skipping late echoes of earlier tries.
	echoed := func(msg []byte, timeout time.Duration) bool {
		alloc.SetReadDeadline(time.Now().Add(timeout))
		for {
			k, from, err := alloc.ReadFrom(buf)
			if err != nil {
				return false
			}
			if from.String() == peer.LocalAddr().String() && bytes.Equal(buf[:k], msg) {
				return true
			}
		}
	}
	for i := range n {
		msg := []byte(fmt.Sprintf("through the guest %d", i))
		for try := 0; ; try++ {
			if try == 5 {
				t.Fatalf("datagram %d: no echo through the guest's relay after %d tries", i, try)
			}
			if _, err := alloc.WriteTo(msg, peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if echoed(msg, 3*time.Second) {
				break
			}
		}
	}
}

// counted is the number re's group finds in line.
func counted(t *testing.T, line, re string) int {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%q: no %s in it", line, re)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
