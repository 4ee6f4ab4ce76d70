package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/relaybox/relaybox/relay/proto"
)

// Credentials of the test relays.
const (
	testRealm  = "relaybox.test"
	testUser   = "alice"
	testPass   = "wonderland"
	testSecret = "rest-secret-2"
)

// testConfig is a relay on the given listen addresses with a static user,
// two REST secrets, loose unauthenticated limits (pion's first Allocate is
// smaller than a 401: with the default amplification bound it is answered
// only on a retransmission) and peers allowed in allow.
func testConfig(t testing.TB, listen []netip.AddrPort, relayAddrs []netip.Addr, allow ...string) Config {
	t.Helper()
	var c Config
	fs := NewFlagSet(&c)
	for _, kv := range [][2]string{
		{"realm", testRealm},
		{"user", testUser + ":" + testPass},
		{"auth-secret", "rest-secret-1"},
		{"auth-secret", testSecret},
		{"port-range", "40000-40999"},
		{"unauth-amplification", "20"},
		{"unauth-rate", "1000"},
		{"unauth-burst", "1000"},
		{"control", ""},
		{"workers", "2"},
	} {
		if err := fs.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range allow {
		if err := fs.Set("allow-peer", a); err != nil {
			t.Fatal(err)
		}
	}
	c.Listen = listen
	c.RelayAddresses = relayAddrs
	return c
}

// running is a Server started by startServer.
type running struct {
	*Server
	listen []netip.AddrPort
	stop   func() error
}

// startServer runs a Server for cfg and opts until the test ends, and waits
// for it to be ready.
func startServer(t testing.TB, cfg Config, opts Options) *running {
	t.Helper()
	readyc := make(chan []netip.AddrPort, 1)
	opts.Ready = func(a []netip.AddrPort) { readyc <- a }
	s, err := NewServer(cfg, opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	r := &running{Server: s}
	select {
	case r.listen = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("Run = %v before ready", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("relay not ready after 10s")
	}
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = errors.New("relay still running 10s after its context was cancelled")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop relay: %v", err)
		}
	})
	return r
}

// turnClient is a pion/turn client with an allocation on a relay.
type turnClient struct {
	c     *turn.Client
	conn  net.PacketConn // the client's own UDP socket
	relay net.PacketConn // the allocation
}

// newTURNClient makes a pion client on conn (a real UDP socket, possibly
// wrapped to watch it) talking to server, and allocates.
func newTURNClient(t testing.TB, conn net.PacketConn, server netip.AddrPort, user, pass string) *turnClient {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Username:       user,
		Password:       pass,
		Conn:           conn,
		RTO:            100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("turn.NewClient: %v", err)
	}
	if err := c.Listen(); err != nil {
		t.Fatalf("turn client Listen: %v", err)
	}
	relayConn, err := c.Allocate()
	if err != nil {
		c.Close()
		t.Fatalf("Allocate from %v to %v as %q: %v", conn.LocalAddr(), server, user, err)
	}
	tc := &turnClient{c: c, conn: conn, relay: relayConn}
	t.Cleanup(tc.close)
	return tc
}

func (tc *turnClient) close() {
	tc.relay.Close()
	tc.c.Close()
}

// relayedAddr is the allocation's relayed address.
func (tc *turnClient) relayedAddr() netip.AddrPort {
	return tc.relay.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpConn opens a UDP socket on a, in ns if not nil.
func udpConn(t testing.TB, do func(func() error) error, a netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	open := func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
		return err
	}
	var err error
	if do != nil {
		err = do(open)
	} else {
		err = open()
	}
	if err != nil {
		t.Fatalf("UDP socket on %v: %v", a, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo answers every datagram on c with the same bytes until c is closed.
func echo(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// recorder is an in-process DataPlane: it records what it is told, in
// order, with the sequence number of a clock it shares with a wire tap.
type recorder struct {
	mu     sync.Mutex
	clock  *seqClock
	events []recorded
	// block, if not nil, is waited on by every Apply of a BindingCreated.
	block chan struct{}
	// entered is signalled when an Apply starts.
	entered chan proto.EventKind
}

type recorded struct {
	seq uint64
	e   proto.Event
}

func (r *recorder) Apply(e proto.Event) error {
	if r.entered != nil {
		select {
		case r.entered <- e.Kind:
		default:
		}
	}
	if r.block != nil && e.Kind == proto.BindingCreated {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, recorded{r.clock.next(), e})
	return nil
}

func (r *recorder) DataPlaneStatus([]proto.Binding) DataPlaneStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return DataPlaneStatus{Mode: "recorder", Counters: map[string]uint64{"applied": uint64(len(r.events))}}
}

func (r *recorder) snapshot() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.events...)
}

// seqClock orders things that happen in different goroutines.
type seqClock struct {
	mu sync.Mutex
	n  uint64
}

func (c *seqClock) next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

// tempControl is a control socket path in a fresh directory (short enough
// for sun_path).
func tempControl(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rbx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "relay.sock")
}

// waitFor polls cond every 10ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
