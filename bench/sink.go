package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// sinkBuffer is each socket's receive buffer: room for a few milliseconds
// at the highest rates, so the sink is not where packets are lost.
const sinkBuffer = 32 << 20

// Sink counts the datagrams that reach the peer: a few SO_REUSEPORT
// sockets on one address (the kernel spreads flows over them), each read
// with recvmmsg into 16-byte buffers with MSG_TRUNC, so no payload is
// copied and the count is all that is kept.
type Sink struct {
	conns  []*net.UDPConn
	counts []paddedCount
	wg     sync.WaitGroup
}

// paddedCount keeps each reader's counter on its own cache line.
type paddedCount struct {
	n atomic.Uint64
	_ [56]byte
}

// StartSink opens sockets sockets on addr in ns and counts until Close, or
// until lifetime has passed: every loop of the benchmark is bounded.
func StartSink(ns *nstest.NS, addr netip.AddrPort, sockets int, lifetime time.Duration) (*Sink, error) {
	s := &Sink{counts: make([]paddedCount, sockets)}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sinkBuffer))
		})
		return errors.Join(err, serr)
	}}
	err := ns.Do(func() error {
		for range sockets {
			c, err := lc.ListenPacket(context.Background(), "udp4", addr.String())
			if err != nil {
				return err
			}
			s.conns = append(s.conns, c.(*net.UDPConn))
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sink on %v in %s: %w", addr, ns.Name, err)
	}
	deadline := time.Now().Add(lifetime)
	for i, c := range s.conns {
		c.SetReadDeadline(deadline)
		s.wg.Go(func() { s.read(c, &s.counts[i].n) })
	}
	return s, nil
}

// read counts datagrams on c until it is closed or its deadline passes.
func (s *Sink) read(c *net.UDPConn, n *atomic.Uint64) {
	pc := ipv4.NewPacketConn(c)
	msgs := make([]ipv4.Message, batchSize)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 16)}
	}
	for {
		k, err := pc.ReadBatch(msgs, unix.MSG_TRUNC)
		if k > 0 {
			n.Add(uint64(k))
		}
		if err != nil {
			return // closed, or past its lifetime
		}
	}
}

// Count returns the datagrams received so far.
func (s *Sink) Count() uint64 {
	var n uint64
	for i := range s.counts {
		n += s.counts[i].n.Load()
	}
	return n
}

// Close stops the sink and waits for its readers.
func (s *Sink) Close() {
	for _, c := range s.conns {
		c.Close()
	}
	s.wg.Wait()
}
