package netcfg

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/relaybox/relaybox/netcfg/nstest"
	"github.com/vishvananda/netlink"
)

// pair returns two namespaces joined by a veth, a0 in a and b0 in b, both up,
// and a Configurator working in a through h.
func pair(t *testing.T) (a, b *nstest.NS, h *netlink.Handle, nc *Configurator) {
	t.Helper()
	a, b = nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "a0", b, "b0")
	h = a.Netlink(t)
	return a, b, h, New(h)
}

// fastDAD makes IPv6 duplicate address detection on dev take ~100ms instead
// of up to two seconds (a random delay up to router_solicitation_delay, then
// one retransmission timer).
func fastDAD(t *testing.T, ns *nstest.NS, dev string) {
	t.Helper()
	ns.Sysctl(t, "net/ipv6/conf/"+dev+"/router_solicitation_delay", "0")
	ns.Sysctl(t, "net/ipv6/neigh/"+dev+"/retrans_time_ms", "100")
}

// udpEcho proves that from (client, from) a datagram reaches server at to and
// that the answer comes back. Both sockets are made inside their namespace.
func udpEcho(t *testing.T, server *nstest.NS, to netip.AddrPort, client *nstest.NS, from netip.Addr) {
	t.Helper()
	var srv, cli *net.UDPConn
	if err := server.Do(func() (err error) {
		srv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", to, server.Name, err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, peer, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], peer)
		}
	}()
	if err := client.Do(func() (err error) {
		cli, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s in %s: %v", to, from, client.Name, err)
	}
	defer cli.Close()
	msg := []byte("relaybox")
	buf := make([]byte, 64)
	// Neighbour resolution queues the first datagram rather than drop it,
	// so one try normally does; three bounded tries cover a slow machine.
	for try := range 3 {
		if _, err := cli.Write(msg); err != nil {
			t.Fatalf("send %s -> %s: %v", from, to, err)
		}
		cli.SetReadDeadline(time.Now().Add(time.Second))
		n, err := cli.Read(buf)
		if err == nil && bytes.Equal(buf[:n], msg) {
			return
		}
		t.Logf("try %d: %s -> %s: read %q, %v", try, from, to, buf[:n], err)
	}
	t.Fatalf("no echo from %s to %s", to, from)
}
