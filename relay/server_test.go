package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
)

var (
	lo4 = netip.MustParseAddr("127.0.0.1")
	lo6 = netip.MustParseAddr("::1")
)

// loopbackRelay is a relay on 127.0.0.1 and ::1 with loopback peers
// allowed: the quickest real-socket relay, for what needs no namespace.
func loopbackRelay(t testing.TB, opts Options) *running {
	cfg := testConfig(t, []netip.AddrPort{netip.AddrPortFrom(lo4, 0), netip.AddrPortFrom(lo6, 0)}, []netip.Addr{lo4, lo6}, "127.0.0.0/8", "::1/128")
	return startServer(t, cfg, opts)
}

// bindingRequest sends a STUN Binding request from c to server and returns
// the answer.
func bindingRequest(t testing.TB, c *net.UDPConn, server netip.AddrPort) *stun.Message {
	t.Helper()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := c.WriteToUDPAddrPort(req.Raw, server); err != nil {
		t.Fatalf("send to %v: %v", server, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("receive from %v: %v", server, err)
	}
	res := new(stun.Message)
	if err := stun.Decode(buf[:n], res); err != nil {
		t.Fatalf("decode answer from %v: %v", server, err)
	}
	if res.Type != stun.BindingSuccess || res.TransactionID != req.TransactionID {
		t.Fatalf("answer from %v = %v, want a Binding success for our transaction", server, res)
	}
	return res
}

func TestServeBinding(t *testing.T) {
	r := loopbackRelay(t, Options{})
	if len(r.listen) != 2 || r.listen[0].Addr() != lo4 || r.listen[1].Addr() != lo6 || r.listen[0].Port() == 0 {
		t.Fatalf("ready addresses %v, want 127.0.0.1 and ::1 with ports", r.listen)
	}
	for _, server := range r.listen {
		c := udpConn(t, nil, netip.AddrPortFrom(server.Addr(), 0))
		// Garbage first: had it been answered, that answer would arrive
		// before the Binding response and fail the check.
		c.WriteToUDPAddrPort([]byte("garbage"), server)
		res := bindingRequest(t, c, server)
		var x stun.XORMappedAddress
		if err := x.GetFrom(res); err != nil {
			t.Fatalf("XOR-MAPPED-ADDRESS: %v", err)
		}
		if self := c.LocalAddr().(*net.UDPAddr).AddrPort(); x.String() != self.String() {
			t.Errorf("Binding to %v: XOR-MAPPED-ADDRESS %v, want %v", server, x.String(), self)
		}
	}
	if err := r.stop(); err != nil {
		t.Errorf("stop = %v, want nil", err)
	}
}

// TestWildcardListen serves 0.0.0.0 and [::]: IP_PKTINFO tells which
// address a client wrote to, answers leave from it, and an allocation's
// five-tuple has the real address.
func TestWildcardListen(t *testing.T) {
	cfg := testConfig(t, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:0"), netip.MustParseAddrPort("[::]:0")}, []netip.Addr{lo4, lo6}, "127.0.0.0/8")
	r := startServer(t, cfg, Options{})
	for _, l := range r.listen {
		if !l.Addr().IsUnspecified() || l.Port() == 0 {
			t.Fatalf("ready addresses %v, want wildcards with ports", r.listen)
		}
	}
	to4 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), r.listen[0].Port())
	for _, to := range []netip.AddrPort{to4, netip.AddrPortFrom(lo6, r.listen[1].Port())} {
		c := udpConn(t, nil, netip.AddrPortFrom(to.Addr(), 0))
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		if _, err := c.WriteToUDPAddrPort(req.Raw, to); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1500)
		_, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("Binding to %v: %v", to, err)
		}
		if from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port()); from != to {
			t.Errorf("Binding to %v answered from %v, want the address it was sent to", to, from)
		}
	}
	tc := newTURNClient(t, udpConn(t, nil, netip.AddrPortFrom(lo4, 0)), to4, testUser, testPass)
	st := r.Status(10)
	if len(st.AllocationList) != 1 || st.AllocationList[0].Server != to4.String() {
		t.Errorf("allocations %+v, want one whose server address is %v", st.AllocationList, to4)
	}
	_ = tc
}

func TestServeListenError(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.LocalAddr().(*net.UDPAddr).AddrPort()
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())

	for _, workers := range []string{"1", "2"} {
		cfg := testConfig(t, []netip.AddrPort{netip.MustParseAddrPort("[::1]:0"), addr}, []netip.Addr{lo4})
		// Below the ephemeral ports, so that the taken one is never in
		// the allocation range (a different error).
		cfg.PortMin, cfg.PortMax = 1024, 2047
		NewFlagSet(new(Config)).Set("workers", workers)
		cfg.Workers = int(workers[0] - '0')
		called := false
		err = Serve(t.Context(), cfg, Options{Ready: func([]netip.AddrPort) { called = true }})
		if !errors.Is(err, unix.EADDRINUSE) {
			t.Errorf("workers %s: Serve(%v) = %v, want EADDRINUSE", workers, cfg.Listen, err)
		}
		want := "listen " + addr.String() + ": address already in use: another TURN server is running? stop it or choose --listen"
		if err == nil || err.Error() != want {
			t.Errorf("workers %s: Serve(%v) = %q, want %q", workers, cfg.Listen, err, want)
		}
		if called {
			t.Errorf("workers %s: Serve called Ready, want no call when a socket fails to open", workers)
		}
	}
}

func TestServeInvalidConfig(t *testing.T) {
	err := Serve(t.Context(), Config{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "listen: want at least one") {
		t.Errorf("Serve(Config{}) = %v, want an error about listen", err)
	}
}

func TestServeCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cfg := testConfig(t, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, nil)
	if err := Serve(ctx, cfg, Options{}); err != nil {
		t.Errorf("Serve(cancelled context) = %v, want nil", err)
	}
}

// TestListenV6Only checks that IPv6 sockets are IPV6_V6ONLY, which is what
// lets 0.0.0.0:3478 and [::]:3478 be served side by side.
func TestListenV6Only(t *testing.T) {
	sk, err := openSocket(netip.MustParseAddrPort("[::1]:0"), socketOptions{listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sk.close()
	v6only, err := unix.GetsockoptInt(sk.fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	if err != nil || v6only != 1 {
		t.Errorf("getsockopt(IPV6_V6ONLY) on %v = %d, %v; want 1, nil", sk.local, v6only, err)
	}
}

// TestRelayLoopback is the quickest end-to-end check: a pion client on
// loopback allocates, and data goes to an echo peer and back.
func TestRelayLoopback(t *testing.T) {
	r := loopbackRelay(t, Options{})
	peer := udpConn(t, nil, netip.AddrPortFrom(lo4, 0))
	go echo(peer)
	tc := newTURNClient(t, udpConn(t, nil, netip.AddrPortFrom(lo4, 0)), r.listen[0], testUser, testPass)
	peerAddr := peer.LocalAddr()
	msg := []byte("hello through the relay")
	buf := make([]byte, 1500)
	for i := range 5 {
		if _, err := tc.relay.WriteTo(msg, peerAddr); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		tc.relay.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := tc.relay.ReadFrom(buf)
		if err != nil {
			t.Fatalf("round %d: ReadFrom: %v", i, err)
		}
		if !bytes.Equal(buf[:n], msg) || from.String() != peerAddr.String() {
			t.Fatalf("round %d: got %q from %v, want %q from %v", i, buf[:n], from, msg, peerAddr)
		}
	}
}
