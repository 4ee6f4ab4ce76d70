package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaybox/relaybox/relay/auth"
	"github.com/relaybox/relaybox/relay/proto"
)

// Options are what a Server needs besides its Config.
type Options struct {
	// Log receives the relay's structured log; nil discards it.
	Log *slog.Logger
	// Ready, if not nil, is called once every listen socket is open, with
	// the addresses bound (port 0 replaced by the port the kernel chose).
	Ready func(listen []netip.AddrPort)
	// DataPlane receives the channel bindings. nil means the XDP data
	// plane when the Config's xdp keys ask for it (Run sets it up and
	// takes it down), else NoDataPlane.
	DataPlane DataPlane
	// InNamespace, if not nil, runs each function that opens a UDP or TCP
	// socket or reads the host's addresses. Tests set it to
	// (*nstest.NS).Do to run a relay in a network namespace of its own.
	InNamespace func(func() error) error
}

// Server is the relay: the TURN core (package proto) and the sockets,
// workers, timer, control socket and metrics around it.
//
// The core is not safe for concurrent use, so every call into it holds mu.
// The workers hold it only while the core handles a batch of datagrams and
// its events are applied; reading and sending happen outside it.
type Server struct {
	cfg   Config
	opts  Options
	log   *slog.Logger
	plane DataPlane

	mu       sync.Mutex
	core     *proto.Server
	relayed  map[netip.AddrPort]*socket // allocation sockets by relayed address
	armed    time.Time                  // when the timer goroutine wakes next
	planeErr uint64                     // failed DataPlane.Apply calls
	stopping bool

	sockMu sync.RWMutex
	byID   map[uint32]*socket // every open socket, by its epoll key
	nextID uint32

	workers []*worker
	listens []netip.AddrPort // bound, in Config.Listen order
	relay   []netip.Addr     // relay addresses in use
	// genericXDP: an XDP program runs in generic mode, so the sockets
	// leave UDP GRO off (offload.go). Set before the workers start.
	genericXDP bool
	wake       chan struct{} // the timer goroutine's: an earlier deadline
	ready      atomic.Bool
	started    time.Time
	nextPort   atomic.Uint32 // spreads allocation sockets over workers

	metricsAddr string
}

// NewServer checks cfg, finds the relay addresses if none are configured,
// reads the secrets file and makes the TURN core. It opens no socket.
func NewServer(cfg Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		opts:    opts,
		log:     opts.Log,
		plane:   opts.DataPlane,
		relayed: make(map[netip.AddrPort]*socket),
		byID:    make(map[uint32]*socket),
		wake:    make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.plane == nil {
		s.plane = NoDataPlane{}
	}
	core := cfg.Config
	// Copies, so that the caller's Config is not shared.
	core.Auth.Secrets = append([]string(nil), cfg.Auth.Secrets...)
	if cfg.AuthSecretFile != "" {
		secrets, err := ReadSecretFile(cfg.AuthSecretFile)
		if err != nil {
			return nil, err
		}
		core.Auth.Secrets = append(core.Auth.Secrets, secrets...)
	}
	if len(core.RelayAddresses) == 0 {
		err := s.inNamespace(func() error {
			var err error
			core.RelayAddresses, err = DefaultRelayAddresses(cfg.Listen)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	s.relay = core.RelayAddresses
	core.Bind = s.bind
	var err error
	if s.core, err = proto.New(core); err != nil {
		return nil, err
	}
	if len(core.Auth.Users) == 0 && len(core.Auth.Secrets) == 0 {
		s.log.Warn("no user and no auth-secret: the relay answers STUN Binding only; every TURN request gets 401")
	}
	return s, nil
}

// Serve runs a relay with cfg until ctx is done; see Server.Run.
func Serve(ctx context.Context, cfg Config, opts Options) error {
	s, err := NewServer(cfg, opts)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

func (s *Server) inNamespace(f func() error) error {
	if s.opts.InNamespace != nil {
		return s.opts.InNamespace(f)
	}
	return f()
}

// Run opens the sockets, serves until ctx is done, then closes everything,
// takes its bindings out of the data plane and returns nil. An error
// opening a listen socket, the control socket or the metrics listener ends
// it before Ready is called.
func (s *Server) Run(ctx context.Context) (err error) {
	s.started = time.Now()
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()

	n := s.cfg.workers()
	for range n {
		w, err := newWorker(s)
		if err != nil {
			return err
		}
		s.workers = append(s.workers, w)
		cleanup = append(cleanup, func() { w.ep.Close() })
	}
	if err := s.openListens(); err != nil {
		return err
	}
	cleanup = append(cleanup, s.closeSockets)
	// The XDP data plane, once the listen port is known (the program is
	// compiled for it) and before any datagram is read. A failure is
	// logged, not returned: the user-space path relays everything, and a
	// relay that serves slowly beats one that does not serve (on the
	// appliance, init would restart it forever).
	if s.opts.DataPlane == nil && s.cfg.xdpEnabled() {
		x, err := openXDP(&s.cfg, s.listens[0].Port(), s.inNamespace, s.log)
		if err != nil {
			s.log.Error("xdp data plane not in use: every datagram takes the user-space path", "err", err)
			s.plane = userSpaceOnly{why: err.Error()}
		} else {
			s.plane = x
			if x.generic {
				s.genericXDP = true
				for _, w := range s.workers {
					for _, sk := range w.listens {
						sk.groOff()
					}
				}
				s.log.Info("xdp: a NIC runs the program in generic mode, after GRO: UDP GRO stays off so that the program sees every datagram")
			}
			cleanup = append(cleanup, func() {
				if err := x.Close(); err != nil {
					s.log.Warn("xdp: not all closed", "err", err)
				}
			})
		}
	}

	if s.cfg.Metrics != "" {
		stop, err := s.serveMetrics()
		if err != nil {
			return err
		}
		cleanup = append(cleanup, stop)
	}
	if s.cfg.Control != "" {
		stop, err := s.serveControl()
		if err != nil {
			return err
		}
		cleanup = append(cleanup, stop)
	}

	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Go(w.run)
	}
	timerCtx, stopTimer := context.WithCancel(context.Background())
	wg.Go(func() { s.runTimer(timerCtx) })
	wg.Go(func() { s.runBandwidth(timerCtx) })
	cleanup = append(cleanup, func() {
		// Closing the epoll sets stops the workers.
		for _, w := range s.workers {
			w.ep.Close()
		}
		stopTimer()
		wg.Wait()
		s.clearDataPlane()
	})

	s.ready.Store(true)
	s.log.Info("serving TURN", "listen", joinAddrs(s.listens), "relay-address", joinIPs(s.relay),
		"port-range", fmt.Sprintf("%d-%d", s.cfg.PortMin, s.cfg.PortMax), "workers", n, "data-plane", s.dataPlaneMode())
	if s.opts.Ready != nil {
		s.opts.Ready(append([]netip.AddrPort(nil), s.listens...))
	}
	<-ctx.Done()
	s.ready.Store(false)
	for i := len(cleanup) - 1; i >= 0; i-- {
		cleanup[i]()
	}
	cleanup = nil
	// The cause says why, for example "terminated signal received".
	s.log.Info("stopped", "reason", context.Cause(ctx))
	return nil
}

// openListens opens one socket per listen address and worker, all in one
// SO_REUSEPORT group per address, so the kernel spreads clients over the
// workers.
func (s *Server) openListens() error {
	reuse := len(s.workers) > 1
	return s.inNamespace(func() error {
		for _, a := range s.cfg.Listen {
			if reuse && a.Port() != 0 {
				// A probe without SO_REUSEPORT: another program's socket
				// in a reuse group of the same user would otherwise
				// share the port with us, silently.
				probe, err := openSocket(a, socketOptions{})
				if err != nil {
					return listenError(a, err)
				}
				probe.close()
			}
			bound := a
			for _, w := range s.workers {
				sk, err := openSocket(bound, socketOptions{listen: true, reusePort: reuse, bufBytes: listenBufBytes})
				if err != nil {
					return listenError(a, err)
				}
				bound = netip.AddrPortFrom(sk.local.Addr(), sk.local.Port())
				if sk.wildcard {
					sk.local = netip.AddrPortFrom(a.Addr(), sk.local.Port())
				}
				if err := s.register(sk, w); err != nil {
					sk.close()
					return fmt.Errorf("listen %s: %w", a, err)
				}
				w.listens = append(w.listens, sk)
			}
			s.listens = append(s.listens, netip.AddrPortFrom(bound.Addr().WithZone(a.Addr().Zone()), bound.Port()))
		}
		return nil
	})
}

// register gives sk an epoll key and puts it in w's set.
func (s *Server) register(sk *socket, w *worker) error {
	s.sockMu.Lock()
	s.nextID++
	sk.id = s.nextID
	s.byID[sk.id] = sk
	s.sockMu.Unlock()
	if err := w.add(sk); err != nil {
		s.sockMu.Lock()
		delete(s.byID, sk.id)
		s.sockMu.Unlock()
		return err
	}
	return nil
}

// unregister takes sk out of its worker's set and closes it.
func (s *Server) unregister(sk *socket) {
	s.sockMu.Lock()
	delete(s.byID, sk.id)
	s.sockMu.Unlock()
	if sk.worker != nil {
		sk.worker.remove(sk)
	}
	sk.close()
}

func (s *Server) closeSockets() {
	s.sockMu.RLock()
	all := make([]*socket, 0, len(s.byID))
	for _, sk := range s.byID {
		all = append(all, sk)
	}
	s.sockMu.RUnlock()
	for _, sk := range all {
		s.unregister(sk)
	}
}

// bind is the core's Config.Bind: it opens an allocation's sockets, one per
// relayed address, all on one port, or none. Called with mu held.
func (s *Server) bind(relayed []netip.AddrPort) error {
	opened := make([]*socket, 0, len(relayed))
	err := s.inNamespace(func() error {
		for _, a := range relayed {
			sk, err := openSocket(a, socketOptions{noGRO: s.genericXDP})
			if err != nil {
				return fmt.Errorf("allocation socket %s: %w", a, err)
			}
			opened = append(opened, sk)
		}
		return nil
	})
	if err == nil {
		w := s.workers[int(s.nextPort.Add(1))%len(s.workers)]
		for _, sk := range opened {
			if err = s.register(sk, w); err != nil {
				break
			}
		}
	}
	if err != nil {
		for _, sk := range opened {
			s.unregister(sk)
		}
		s.log.Debug("allocation port refused", "relayed", relayed, "err", err)
		return err
	}
	for _, sk := range opened {
		s.relayed[sk.local] = sk
	}
	return nil
}

// afterCore finishes a worker's step of the core, with mu held: the events
// are applied in order, each transmit is given the socket to leave from,
// and the timer goroutine is woken if the core's deadline is now earlier
// than the one it sleeps until.
func (s *Server) afterCore(w *worker, out *proto.Output) {
	s.applyAll(w, out)
	if d := s.core.Deadline(); !d.IsZero() && (s.armed.IsZero() || d.Before(s.armed)) {
		s.armed = d
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// applyAll applies out's events in order and routes its transmits, with
// mu held.
func (s *Server) applyAll(w *worker, out *proto.Output) {
	for i := range out.Events {
		s.apply(&out.Events[i])
	}
	w.route(out)
}

// apply carries out one event of the core, with mu held.
func (s *Server) apply(e *proto.Event) {
	rel := e.Binding.Relayed
	switch e.Kind {
	case proto.AllocationCreated:
		sk := s.relayed[rel]
		if sk == nil {
			s.log.Error("allocation without a socket", "relayed", rel) // Bind opens it: a bug
			return
		}
		if e.DontFragment {
			if err := sk.setDontFragment(); err != nil {
				s.log.Warn("DONT-FRAGMENT not applied", "relayed", rel, "err", err)
			}
		}
		s.log.Debug("allocation created", "client", e.Binding.Client, "relayed", rel, "user", e.Username)
	case proto.AllocationDeleted:
		if sk := s.relayed[rel]; sk != nil {
			delete(s.relayed, rel)
			s.unregister(sk)
		}
		s.log.Debug("allocation deleted", "client", e.Binding.Client, "relayed", rel, "user", e.Username)
	case proto.BindingCreated, proto.BindingRefreshed, proto.BindingDeleted:
		if err := s.plane.Apply(*e); err != nil {
			s.planeErr++
			s.log.Warn("data plane refused a binding; the user-space path relays it", "event", e.Kind, "binding", e.Binding, "err", err)
		}
	}
}

// socketFor is the socket to send from the local address from, with mu
// held: one of w's listen sockets, or an allocation's. (A listen port is
// usually outside the allocation range, but one asked as port 0 may land
// inside it: the listen sockets are looked at first.)
func (s *Server) socketFor(w *worker, from netip.AddrPort) *socket {
	if sk := w.listenFor(from); sk != nil {
		return sk
	}
	return s.relayed[from]
}

// runTimer calls the core's HandleTimeout at its deadlines. It sends what
// that produces through the first worker's listen sockets.
func (s *Server) runTimer(ctx context.Context) {
	w, err := newTimerWorker(s)
	if err != nil {
		s.log.Error("timer", "err", err)
		return
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		if d := s.core.Deadline(); !d.IsZero() && !now.Before(d) {
			s.core.HandleTimeout(now, &w.out)
		}
		s.applyAll(w, &w.out)
		// Not afterCore: waking itself would make this loop spin.
		next := s.core.Deadline()
		s.armed = next
		s.mu.Unlock()
		w.transmit(&w.out)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		t.Reset(wait)
	}
}

// newTimerWorker is a worker that only sends, for the timer goroutine:
// it shares the first worker's listen sockets.
func newTimerWorker(s *Server) (*worker, error) {
	return &worker{s: s, listens: s.workers[0].listens, send: newSendBatch()}, nil
}

// clearDataPlane takes every binding out of the data plane when the relay
// stops, so that a kernel path never relays for allocations no one serves.
func (s *Server) clearDataPlane() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for b := range s.core.Bindings() {
		if err := s.plane.Apply(proto.Event{Kind: proto.BindingDeleted, Binding: b}); err != nil {
			s.log.Warn("data plane kept a binding at stop", "binding", b, "err", err)
		}
	}
}

// receiveError logs a failed read; a socket error (an ICMP error queued on
// it, for one) belongs to one datagram, so the relay carries on.
func (s *Server) receiveError(sk *socket, err error) {
	s.log.Debug("receive failed", "socket", sk.local, "err", err)
}

// ReloadSecrets reads the auth-secret-file again and gives the core the
// auth-secret keys and the file's secrets; on an error nothing changes. The
// relay calls it on SIGHUP and for the control socket's reload command. It
// returns how many secrets are in use.
func (s *Server) ReloadSecrets() (int, error) {
	if s.cfg.AuthSecretFile == "" {
		return 0, errors.New("reload: no auth-secret-file to read")
	}
	secrets, err := ReadSecretFile(s.cfg.AuthSecretFile)
	if err != nil {
		return 0, err
	}
	a := auth.Config{
		Realm:   s.cfg.Auth.Realm,
		Users:   s.cfg.Auth.Users,
		Secrets: append(append([]string(nil), s.cfg.Auth.Secrets...), secrets...),
	}
	s.mu.Lock()
	err = s.core.SetAuth(a)
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	s.log.Info("secrets reloaded", "auth-secret-file", s.cfg.AuthSecretFile, "secrets", len(a.Secrets))
	return len(a.Secrets), nil
}
