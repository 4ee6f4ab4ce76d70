package relay

import (
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relaybox/relaybox/relay/proto"
)

// worker is one I/O goroutine. It owns an epoll set of sockets (its own
// SO_REUSEPORT listen socket per listen address and a share of the
// allocation sockets), and the buffers to serve them: a batch of datagrams
// is read with one recvmmsg, handed to the TURN core under the server's
// lock, and its answers sent with one sendmmsg per socket after the lock
// is released. Nothing on that path allocates.
//
// The epoll set is itself in Go's netpoller, so an idle worker parks its
// goroutine, not an OS thread, and closing the set stops the worker.
type worker struct {
	s       *Server
	ep      *os.File
	epRC    syscall.RawConn
	events  [64]unix.EpollEvent
	nEvents int
	pollFn  func(fd uintptr) bool
	ready   []*socket

	listens []*socket // this worker's listen sockets
	recv    *recvBatch
	send    *sendBatch
	out     proto.Output
	via     []*socket // the socket to send each of out.Transmits from

	// Counters the core cannot see, read by Status.
	sendErrors, unroutable atomic.Uint64
	// UDP offload (offload.go): reads that were GRO-joined and the
	// datagrams in them; datagrams sent as GSO segments beyond the first
	// of their message; GSO messages the kernel refused.
	groReads, groDatagrams, gsoDatagrams, gsoRefused atomic.Uint64
}

func newWorker(s *Server) (*worker, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile puts it in the netpoller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(fd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, err
	}
	w := &worker{s: s, ep: ep, epRC: rc, recv: newRecvBatch(), send: newSendBatch()}
	w.pollFn = w.poll
	return w, nil
}

// add puts sk in the worker's epoll set.
func (w *worker) add(sk *socket) error {
	sk.worker = w
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sk.id)}
	var err error
	cerr := w.epRC.Control(func(epfd uintptr) {
		err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, sk.fd, &ev)
	})
	if cerr != nil {
		return cerr
	}
	return os.NewSyscallError("epoll_ctl", err)
}

// remove takes sk out of the epoll set, before sk is closed: a socket
// whose close waits for a read in progress would otherwise keep being
// reported readable.
func (w *worker) remove(sk *socket) {
	w.epRC.Control(func(epfd uintptr) {
		unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, sk.fd, nil)
	})
}

// run serves the worker's sockets until its epoll set is closed.
func (w *worker) run() {
	for {
		if err := w.epRC.Read(w.pollFn); err != nil {
			return // closed: the server stops
		}
		w.ready = w.ready[:0]
		w.s.sockMu.RLock()
		for _, ev := range w.events[:w.nEvents] {
			if sk := w.s.byID[uint32(ev.Fd)]; sk != nil {
				w.ready = append(w.ready, sk)
			}
		}
		w.s.sockMu.RUnlock()
		for i, sk := range w.ready {
			w.serve(sk)
			w.ready[i] = nil
		}
	}
}

// poll is the epoll set's RawConn.Read callback: it takes what is ready
// now, or asks the netpoller to wait.
func (w *worker) poll(epfd uintptr) bool {
	for {
		n, err := unix.EpollWait(int(epfd), w.events[:], 0)
		if err == unix.EINTR {
			continue
		}
		w.nEvents = max(n, 0)
		return n > 0
	}
}

// maxRounds bounds the batches read from one socket before the others get
// their turn; the epoll set is level-triggered, so what is left is
// reported again.
const maxRounds = 4

// serve reads and handles what sk has, up to maxRounds batches.
func (w *worker) serve(sk *socket) {
	for range maxRounds {
		if err := sk.rc.Read(w.recv.fn); err != nil {
			return // closed under us: its allocation ended
		}
		n := w.recv.n
		if n == 0 {
			if w.recv.err != nil {
				w.s.receiveError(sk, w.recv.err)
			}
			return
		}
		w.handle(sk, n)
		if n < batchSize {
			return
		}
	}
}

// handle gives the n messages of w.recv to the core, each datagram of a
// GRO read on its own, then sends what it answered.
func (w *worker) handle(sk *socket, n int) {
	s := w.s
	now := time.Now()
	s.mu.Lock()
	for i := range n {
		pkt, from := w.recv.packet(i), w.recv.from(i)
		local, segment := w.recv.control(i, sk.local.Port())
		if !sk.wildcard {
			local = sk.local
		} else if !local.IsValid() {
			w.unroutable.Add(1) // no IP_PKTINFO: cannot happen, but never guess
			continue
		}
		if segment <= 0 || segment >= len(pkt) {
			w.deliver(sk, pkt, from, local, now)
			continue
		}
		// A GRO read: its datagrams, each with a capacity that ends
		// where it does.
		w.groReads.Add(1)
		w.groDatagrams.Add(uint64((len(pkt) + segment - 1) / segment))
		for off := 0; off < len(pkt); off += segment {
			end := min(off+segment, len(pkt))
			w.deliver(sk, pkt[off:end:end], from, local, now)
		}
	}
	s.afterCore(w, &w.out)
	s.mu.Unlock()
	w.transmit(&w.out)
}

// deliver gives one datagram that came to local on sk to the core, with
// the server locked.
func (w *worker) deliver(sk *socket, pkt []byte, from, local netip.AddrPort, now time.Time) {
	if sk.listen {
		w.s.core.HandleClient(pkt, from, local, now, &w.out)
	} else {
		w.s.core.HandlePeer(pkt, from, local, now, &w.out)
	}
}

// route finds, with the server locked, the socket to send each transmit
// from: an allocation's, or one of w's listen sockets.
func (w *worker) route(out *proto.Output) {
	w.via = w.via[:0]
	for _, t := range out.Transmits {
		w.via = append(w.via, w.s.socketFor(w, t.From))
	}
}

// transmit sends out's transmits from the sockets route chose, one
// sendmmsg per run of transmits from the same socket (GSO messages where
// the socket allows), then resets out. The payloads may point into
// w.recv: it is not read again before this returns.
func (w *worker) transmit(out *proto.Output) {
	var cur *socket
	b := w.send
	flush := func() {
		if cur != nil && b.n > 0 {
			if err := cur.rc.Write(b.fn); err != nil {
				w.sendErrors.Add(uint64(b.nd)) // closed under us
			} else {
				if b.errors > 0 {
					w.sendErrors.Add(uint64(b.errors))
				}
				if b.gsoErr != nil {
					cur.gsoRefused(b.gsoErr, b.gsoSegment)
					w.gsoRefused.Add(1)
				}
				if joined := b.nd - b.n - b.resent; joined > 0 {
					w.gsoDatagrams.Add(uint64(joined))
				}
			}
		}
		b.reset()
	}
	for i, t := range out.Transmits {
		sk := w.via[i]
		if sk == nil {
			w.unroutable.Add(1)
			continue
		}
		var from netip.AddrPort
		if sk.wildcard {
			from = t.From
		}
		if sk != cur || !b.add(t.Payload, t.To, from) {
			flush()
			cur = sk
			b.segmentMax = int(sk.gsoMax.Load())
			b.add(t.Payload, t.To, from)
		}
		w.via[i] = nil
	}
	flush()
	out.Reset()
}

// listenFor is w's listen socket for the local address a: the socket bound
// to a, or the wildcard one of a's family and port.
func (w *worker) listenFor(a netip.AddrPort) *socket {
	var wild *socket
	for _, sk := range w.listens {
		if sk.local == a {
			return sk
		}
		if sk.wildcard && sk.local.Port() == a.Port() && sk.local.Addr().Is4() == a.Addr().Is4() {
			wild = sk
		}
	}
	return wild
}
