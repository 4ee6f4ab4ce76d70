package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
)

// startServe runs Serve on the given addresses in the background and returns
// the bound addresses reported to ready and a function that stops Serve and
// returns its error.
func startServe(t *testing.T, listen ...string) (bound []netip.AddrPort, stop func() error) {
	t.Helper()
	cfg := Config{Software: "relaybox"}
	for _, l := range listen {
		cfg.Listen = append(cfg.Listen, netip.MustParseAddrPort(l))
	}
	ctx, cancel := context.WithCancel(t.Context())
	readyc := make(chan []netip.AddrPort, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, nil, func(a []netip.AddrPort) { readyc <- a }) }()
	select {
	case bound = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("Serve(%v) = %v before ready", cfg.Listen, err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("Serve(%v) not ready after 10s", cfg.Listen)
	}
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("Serve(%v) still running 10s after its context was cancelled", cfg.Listen)
			return nil
		}
	}
	return bound, stop
}

// exchange sends req from c to server and returns the response.
func exchange(t *testing.T, c *net.UDPConn, server netip.AddrPort, req []byte) []byte {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(req, server); err != nil {
		t.Fatalf("send to %v: %v", server, err)
	}
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("receive from %v: %v", server, err)
	}
	return buf[:n]
}

// client opens a UDP socket on the loopback address of server's family.
func client(t *testing.T, server netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(server.Addr(), 0)))
	if err != nil {
		t.Fatalf("client socket for %v: %v", server, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestServe(t *testing.T) {
	bound, stop := startServe(t, "127.0.0.1:0", "[::1]:0")

	if got, want := len(bound), 2; got != want {
		t.Fatalf("ready(addrs) got %d addresses %v, want %d", got, bound, want)
	}
	for i, want := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
		if bound[i].Addr() != want || bound[i].Port() == 0 {
			t.Errorf("ready(addrs)[%d] = %v, want %v with the port the kernel chose", i, bound[i], want)
		}
	}

	for _, server := range bound {
		t.Run(server.String(), func(t *testing.T) {
			c := client(t, server)
			// Garbage first: had it been answered, that answer would
			// arrive before the Binding response and fail the check.
			if _, err := c.WriteToUDPAddrPort([]byte("garbage"), server); err != nil {
				t.Fatalf("send to %v: %v", server, err)
			}
			resp := exchange(t, c, server, request(t, stun.BindingRequest, stun.Fingerprint))
			got := parseAnswer(t, resp, tid)
			self := c.LocalAddr().(*net.UDPAddr).AddrPort()
			want := &answer{Type: "Binding success response", Mapped: self.String(), Software: "relaybox"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Binding request from %v to %v: answer mismatch (-want +got):\n%s", self, server, diff)
			}
		})
	}

	if err := stop(); err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
}

// TestServeAllocs holds the whole per-packet path, receive to send, to zero
// allocations. AllocsPerRun counts every goroutine's allocations, so the
// server's loop is measured along with the (allocation-free) client.
func TestServeAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	bound, stop := startServe(t, "127.0.0.1:0")
	defer stop()
	server := bound[0]
	c := client(t, server)
	req := request(t, stun.BindingRequest, stun.Fingerprint)
	buf := make([]byte, 1500)
	roundTrip := func() {
		if _, err := c.WriteToUDPAddrPort(req, server); err != nil {
			t.Fatalf("send to %v: %v", server, err)
		}
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatalf("receive from %v: %v", server, err)
		}
	}
	roundTrip() // warm up
	if allocs := testing.AllocsPerRun(200, roundTrip); allocs != 0 {
		t.Errorf("Binding round trip allocates %v times, want 0", allocs)
	}
}

func TestServeListenError(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.LocalAddr().(*net.UDPAddr).AddrPort()
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())

	cfg := Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("[::1]:0"), addr}}
	called := false
	err = Serve(t.Context(), cfg, nil, func([]netip.AddrPort) { called = true })
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("Serve(%v) = %v, want EADDRINUSE", cfg.Listen, err)
	}
	want := "listen " + addr.String() + ": address already in use: another TURN server is running? stop it or choose --listen"
	if err == nil || err.Error() != want {
		t.Errorf("Serve(%v) = %q, want %q", cfg.Listen, err, want)
	}
	if called {
		t.Errorf("Serve(%v) called ready, want no call when a socket fails to open", cfg.Listen)
	}
}

func TestServeInvalidConfig(t *testing.T) {
	err := Serve(t.Context(), Config{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "listen: want at least one") {
		t.Errorf("Serve(Config{}) = %v, want an error about listen", err)
	}
}

func TestServeCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cfg := Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := Serve(ctx, cfg, nil, nil); err != nil {
		t.Errorf("Serve(cancelled context) = %v, want nil", err)
	}
}

// TestListenV6Only checks that IPv6 sockets are IPV6_V6ONLY, which is what
// lets 0.0.0.0:3478 and [::]:3478 be served side by side. (Binding the
// wildcards themselves would leave loopback, which tests do not.)
func TestListenV6Only(t *testing.T) {
	c, err := listen(t.Context(), netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v6only int
	var sockErr error
	if err := rc.Control(func(fd uintptr) {
		v6only, sockErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	}); err != nil {
		t.Fatal(err)
	}
	if sockErr != nil || v6only != 1 {
		t.Errorf("getsockopt(IPV6_V6ONLY) on %v = %d, %v; want 1, nil", c.LocalAddr(), v6only, sockErr)
	}
}
