package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// batchSize is how many datagrams one sendmmsg carries.
const batchSize = 64

// channelData returns a ChannelData message on channel carrying payload
// bytes (RFC 8656 section 12.4; over UDP no padding is needed).
func channelData(channel uint16, payload int) []byte {
	m := make([]byte, 4+payload)
	binary.BigEndian.PutUint16(m[0:], channel)
	binary.BigEndian.PutUint16(m[2:], uint16(payload))
	for i := range payload {
		m[4+i] = byte(i)
	}
	return m
}

// offer sends ChannelData of payload bytes from flows to server at rate
// packets per second for d, from threads OS threads, each with its own
// share of the flows and of the rate. It returns the packets sent and how
// long sending took. The flows' sockets stay open; only their send side is
// used, pion's client keeps reading them.
func offer(flows []*Flow, server netip.AddrPort, payload int, rate float64, d time.Duration, threads int) (uint64, time.Duration, error) {
	threads = max(1, min(threads, len(flows)))
	type result struct {
		sent uint64
		err  error
	}
	results := make([]result, threads)
	var wg sync.WaitGroup
	start := time.Now()
	for t := range threads {
		var mine []*Flow
		for i := t; i < len(flows); i += threads {
			mine = append(mine, flows[i])
		}
		wg.Go(func() {
			results[t].sent, results[t].err = offerThread(mine, server, payload, rate/float64(threads), d, start)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var sent uint64
	var errs []error
	for _, r := range results {
		sent += r.sent
		errs = append(errs, r.err)
	}
	return sent, elapsed, errors.Join(errs...)
}

// offerThread is one generator thread: it round-robins batches over its
// flows, as the pacer allows, until the step's time or packets are spent.
func offerThread(flows []*Flow, server netip.AddrPort, payload int, rate float64, d time.Duration, start time.Time) (uint64, error) {
	// A thread of its own: the generator takes a core, and the scheduler
	// should not move other goroutines onto it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	dst := net.UDPAddrFromAddrPort(server)
	type sender struct {
		pc   *ipv4.PacketConn
		msgs []ipv4.Message
	}
	senders := make([]sender, len(flows))
	for i, f := range flows {
		pkt := channelData(f.Channel, payload)
		msgs := make([]ipv4.Message, batchSize)
		for j := range msgs {
			msgs[j] = ipv4.Message{Buffers: [][]byte{pkt}, Addr: dst}
		}
		senders[i] = sender{pc: ipv4.NewPacketConn(f.Conn), msgs: msgs}
	}
	p := newPacer(rate, d, start)
	end := start.Add(d)
	next := 0
	var errs int
	for !p.finished() {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		n := p.due(now, batchSize)
		if n == 0 {
			time.Sleep(min(p.wait(now), end.Sub(now)))
			continue
		}
		i := next
		next = (next + 1) % len(senders)
		w, err := senders[i].pc.WriteBatch(senders[i].msgs[:n], 0)
		if w > 0 {
			p.done(w)
		}
		if err != nil {
			// ENOBUFS and the like: the host's queues are full, the
			// packets were not offered. Anything else is a bug.
			if !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.EAGAIN) {
				return p.sent, fmt.Errorf("send ChannelData from %v: %w", flows[i].Local, err)
			}
			if errs++; errs > 1_000_000 {
				return p.sent, fmt.Errorf("send ChannelData: %w, a million times", err)
			}
		}
	}
	return p.sent, nil
}
