package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"
)

// requestedTransportUDP is REQUESTED-TRANSPORT: UDP (RFC 8656 section 18.7).
var requestedTransportUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

// allocateType is an Allocate request's message type.
var allocateType = stun.NewType(stun.MethodAllocate, stun.ClassRequest)

// allocator makes allocations the way every TURN client does, but with
// nothing else: an Allocate without credentials, the 401 with the realm
// and a nonce, an Allocate with REST credentials. pion/stun builds and
// parses the messages; pion/turn's client would cost the 2-core machine
// more than the servers measured.
type allocator struct {
	server *net.UDPAddr
	// timeout is one transaction's wait before a retransmission, tries
	// how many times a request is sent.
	timeout time.Duration
	tries   int
}

// allocate makes one allocation from conn.
func (a *allocator) allocate(conn *net.UDPConn, user string) error {
	username, password, err := restCredentials(user)
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	res, err := a.transact(conn, buf, stun.MustBuild(stun.TransactionID, allocateType, requestedTransportUDP, stun.Fingerprint))
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		var code stun.ErrorCodeAttribute
		if res.Type.Class == stun.ClassSuccessResponse {
			return nil // a server without authentication
		}
		if err := code.GetFrom(res); err != nil {
			return fmt.Errorf("Allocate answered %v without an error code", res.Type)
		}
		// 401 first, 438 (stale nonce) at most once after.
		if (code.Code != stun.CodeUnauthorized && code.Code != stun.CodeStaleNonce) || attempt > 1 {
			return fmt.Errorf("Allocate: error %d %s", code.Code, code.Reason)
		}
		var realm stun.Realm
		var nonce stun.Nonce
		if err := realm.GetFrom(res); err != nil {
			return fmt.Errorf("Allocate: %d without a realm: %w", code.Code, err)
		}
		if err := nonce.GetFrom(res); err != nil {
			return fmt.Errorf("Allocate: %d without a nonce: %w", code.Code, err)
		}
		req, err := stun.Build(stun.TransactionID, allocateType, requestedTransportUDP,
			stun.NewUsername(username), realm, nonce,
			stun.NewLongTermIntegrity(username, realm.String(), password), stun.Fingerprint)
		if err != nil {
			return err
		}
		if res, err = a.transact(conn, buf, req); err != nil {
			return err
		}
	}
}

// transact sends req and returns the answer with its transaction ID,
// retransmitting after each timeout.
func (a *allocator) transact(conn *net.UDPConn, buf []byte, req *stun.Message) (*stun.Message, error) {
	for range a.tries {
		if _, err := conn.WriteToUDP(req.Raw, a.server); err != nil {
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(a.timeout))
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return nil, err
			}
			res := new(stun.Message)
			if stun.Decode(buf[:n], res) == nil && res.TransactionID == req.TransactionID {
				return res, nil
			}
		}
	}
	return nil, fmt.Errorf("no answer to %v after %d tries", req.Type, a.tries)
}

// allocServer measures s's allocations per second, CPU time per
// allocation and memory per allocation in run: a fresh server, a few
// allocations to warm it up, its RSS and CPU time, then
// b.opts.Allocations allocations, C at a time, then its RSS and CPU time
// again. The client shares the machine's two cores with the server, so
// the CPU time per allocation is the figure that does not depend on the
// rig.
func (b *Bench) allocServer(run int, s Server) error {
	subject := allocSubject(s)
	dir, err := os.MkdirTemp(b.opts.Work, "alloc-")
	if err != nil {
		return err
	}
	p, err := startServer(b.topo, s, dir)
	if err != nil {
		return err
	}
	defer p.stop()

	const warm = 50
	n := b.opts.Allocations
	conns := make([]*net.UDPConn, 0, warm+n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// All sockets first, in one trip into the namespace: each allocation
	// needs a 5-tuple of its own, and they all stay open until the end so
	// that no port is reused by a later allocation.
	err = b.topo.Client.Do(func() error {
		for range warm + n {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ClientIP, 0)))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%d client sockets: %w", warm+n, err)
	}
	a := &allocator{server: net.UDPAddrFromAddrPort(b.topo.Listen()), timeout: 500 * time.Millisecond, tries: 4}
	if ok, _, err := b.allocateAll(a, conns[:warm], "warm"); ok < warm {
		return fmt.Errorf("%s: %d of %d warm-up allocations: %w", s.Name, ok, warm, err)
	}
	time.Sleep(300 * time.Millisecond)
	rss0, err := processRSS(p.Pid)
	if err != nil {
		return err
	}
	cpu0, err := processCPU(p.Pid)
	if err != nil {
		return err
	}

	start := time.Now()
	ok, failed, err := b.allocateAll(a, conns[warm:], "bench")
	elapsed := time.Since(start)
	if err := p.exited(); err != nil {
		return err
	}
	cpu1, cerr := processCPU(p.Pid)
	if cerr != nil {
		return cerr
	}
	if failed > n/100 {
		return fmt.Errorf("%s: %d of %d allocations failed, the last: %w", s.Name, failed, n, err)
	}
	time.Sleep(500 * time.Millisecond)
	rss1, err := processRSS(p.Pid)
	if err != nil {
		return err
	}
	rate := float64(ok) / elapsed.Seconds()
	perAlloc := (rss1 - rss0) / float64(ok)
	cpuPer := (cpu1 - cpu0) * 1e6 / float64(ok)
	b.res.Set(Key{MetricAllocRate, subject, ""}, run, rate)
	b.res.Set(Key{MetricAllocCPU, subject, ""}, run, cpuPer)
	b.res.Set(Key{MetricAllocBytes, subject, ""}, run, perAlloc)
	b.logf("%s: %d allocations in %.2fs (%s/s, %d failed, %.0f µs of server CPU each), RSS %s → %s bytes (%s per allocation)",
		s.Name, ok, elapsed.Seconds(), num(rate), failed, cpuPer, num(rss0), num(rss1), num(perAlloc))
	return nil
}

// allocateAll makes one allocation from each of conns, b.opts.Concurrency
// at a time, and returns how many succeeded and failed, with the last
// error. It stops starting new ones after a minute.
func (b *Bench) allocateAll(a *allocator, conns []*net.UDPConn, user string) (ok, failed int, last error) {
	var next, nok, nfail atomic.Int64
	var mu sync.Mutex
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for range min(b.opts.Concurrency, len(conns)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) || time.Now().After(deadline) {
					return
				}
				if err := a.allocate(conns[i], fmt.Sprintf("%s%d", user, i)); err != nil {
					nfail.Add(1)
					mu.Lock()
					last = err
					mu.Unlock()
					continue
				}
				nok.Add(1)
			}
		})
	}
	wg.Wait()
	return int(nok.Load()), int(nfail.Load()), last
}
