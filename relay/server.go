package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// maxDatagram is the receive buffer size: larger than any UDP payload, so a
// datagram is never cut short into something that parses differently.
const maxDatagram = 1 << 16

// Serve answers STUN on a UDP socket per cfg.Listen address until ctx is
// done, then closes the sockets and returns nil. Once every socket is open it
// calls ready, if not nil, with the addresses actually bound (port 0 replaced
// by the port the kernel chose). An error opening a socket, or receiving on
// one, ends Serve with that error.
func Serve(ctx context.Context, cfg Config, log *slog.Logger, ready func(addrs []netip.AddrPort)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	conns := make([]*net.UDPConn, 0, len(cfg.Listen))
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	bound := make([]netip.AddrPort, 0, len(cfg.Listen))
	for _, a := range cfg.Listen {
		c, err := listen(ctx, a)
		if err != nil {
			closeAll()
			return err
		}
		conns = append(conns, c)
		// An IPv4 socket may report its address in 16-byte form.
		local := c.LocalAddr().(*net.UDPAddr).AddrPort()
		bound = append(bound, netip.AddrPortFrom(local.Addr().Unmap(), local.Port()))
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			errs[i] = serveConn(c, bound[i], &Handler{Software: cfg.Software}, log)
			if errs[i] != nil {
				cancel() // one broken socket stops the relay; the supervisor restarts it
			}
		})
	}
	log.Info("serving STUN", "listen", joinAddrs(bound))
	if ready != nil {
		ready(bound)
	}

	<-ctx.Done()
	closeAll() // unblocks every read with net.ErrClosed
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The cause says why, for example "terminated signal received".
	log.Info("stopped", "reason", context.Cause(parent))
	return nil
}

// listen opens the UDP socket for a.
func listen(ctx context.Context, a netip.AddrPort) (*net.UDPConn, error) {
	// "udp6" makes Go set IPV6_V6ONLY, so [::]:3478 leaves IPv4 to a
	// separate 0.0.0.0:3478 socket instead of failing with EADDRINUSE.
	network := "udp4"
	if a.Addr().Is6() {
		network = "udp6"
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, a.String())
	if err != nil {
		return nil, listenError(a, err)
	}
	return pc.(*net.UDPConn), nil
}

// listenHints tell an operator what to do about the usual bind failures.
var listenHints = map[unix.Errno]string{
	unix.EADDRINUSE:    "another TURN server is running? stop it or choose --listen",
	unix.EADDRNOTAVAIL: "no interface on this host has that address; choose --listen with one of its addresses, or 0.0.0.0 or [::] for all",
	unix.EACCES:        "ports below 1024 need root or CAP_NET_BIND_SERVICE; run as root or choose --listen with a higher port",
	unix.EAFNOSUPPORT:  "IPv6 is disabled on this host (ipv6.disable=1?); enable it or drop the IPv6 --listen address",
}

// listenError words a failure to open a's socket as "listen ADDR: what
// happened: what to do", keeping the errno for errors.Is.
func listenError(a netip.AddrPort, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("listen %s: %w", a, err)
	}
	if hint, ok := listenHints[errno]; ok {
		return fmt.Errorf("listen %s: %w: %s", a, errno, hint)
	}
	return fmt.Errorf("listen %s: %w", a, errno)
}

// serveConn answers every datagram c receives until c is closed. The loop
// reuses one receive and one send buffer and so does not allocate.
func serveConn(c *net.UDPConn, local netip.AddrPort, h *Handler, log *slog.Logger) error {
	buf := make([]byte, maxDatagram)
	out := make([]byte, 0, 1500)
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("receive on %s: %w", local, err)
		}
		out = h.Handle(buf[:n], from, out[:0])
		if len(out) == 0 {
			continue
		}
		// A send fails for reasons that belong to one destination (no
		// route, a firewall): worth a debug line, not stopping for.
		if _, err := c.WriteToUDPAddrPort(out, from); err != nil && debug {
			log.Debug("send failed", "listen", local, "to", from, "err", err)
		}
	}
}
