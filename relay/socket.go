package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// socket is one UDP socket of the relay: a listen socket (what arrives goes
// to HandleClient) or an allocation's (HandlePeer).
//
// Sockets are blocking file descriptors outside Go's netpoller: a worker's
// epoll set says when one is readable, and reads pass MSG_DONTWAIT. They
// are still *os.File, so that closing one while another goroutine sends on
// it is safe: the file's reference count keeps the descriptor number from
// being reused by a new socket under that send.
type socket struct {
	id    uint32 // key in the worker's epoll set, never reused
	file  *os.File
	rc    syscall.RawConn
	fd    int
	local netip.AddrPort // for a wildcard listen socket, its wildcard address
	// listen: a listen socket; wildcard: its address is unspecified, and
	// the address each datagram came to is learnt from IP_PKTINFO or
	// IPV6_PKTINFO, and set the same way as the source of answers.
	listen, wildcard bool
	worker           *worker
	// gro: UDP_GRO is on, a read may hold several datagrams (offload.go).
	gro bool
	// gsoMax is the largest datagram sends join into GSO messages; 0 when
	// they do not (off, or refused by the kernel).
	gsoMax atomic.Int32
}

// socketOptions say how to open a socket.
type socketOptions struct {
	listen    bool
	reusePort bool // join an SO_REUSEPORT group: one socket per worker
	bufBytes  int  // SO_RCVBUF and SO_SNDBUF, if not 0
	noGRO     bool // leave UDP_GRO off (see Server.genericXDP)
}

// listenBufBytes is the listen sockets' buffer size: room for a burst of a
// few thousand datagrams while a worker is busy. Allocation sockets keep
// the kernel's default, since there are many of them.
const listenBufBytes = 4 << 20

// openSocket opens a UDP socket bound to local.
func openSocket(local netip.AddrPort, o socketOptions) (*socket, error) {
	af := unix.AF_INET
	if local.Addr().Is6() {
		af = unix.AF_INET6
	}
	fd, err := unix.Socket(af, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	type opt struct {
		level, name, value int
		when               bool
		what               string
	}
	wildcard := o.listen && local.Addr().IsUnspecified()
	for _, s := range []opt{
		// Without V6ONLY, [::]:3478 would take IPv4 too and a separate
		// 0.0.0.0:3478 would fail with EADDRINUSE.
		{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1, af == unix.AF_INET6, "IPV6_V6ONLY"},
		{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, o.reusePort, "SO_REUSEPORT"},
		{unix.IPPROTO_IP, unix.IP_PKTINFO, 1, wildcard && af == unix.AF_INET, "IP_PKTINFO"},
		{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1, wildcard && af == unix.AF_INET6, "IPV6_RECVPKTINFO"},
		// RFC 8656 section 14: without DONT-FRAGMENT the relay lets the IP
		// layer fragment; Linux would otherwise set DF on UDP (PMTUDISC_WANT).
		{unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT, !o.listen && af == unix.AF_INET, "IP_MTU_DISCOVER"},
	} {
		if s.when {
			if err := unix.SetsockoptInt(fd, s.level, s.name, s.value); err != nil {
				return nil, fmt.Errorf("setsockopt %s: %w", s.what, err)
			}
		}
	}
	if o.bufBytes > 0 {
		// The FORCE options pass net.core.[rw]mem_max, for root; the
		// plain ones are capped by it.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.bufBytes) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.bufBytes)
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, o.bufBytes) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, o.bufBytes)
		}
	}
	if err := unix.Bind(fd, sockaddr(local)); err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	bound := local
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		bound = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		bound = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).WithZone(local.Addr().Zone()), uint16(sa.Port))
	}
	f := os.NewFile(uintptr(fd), "udp "+bound.String())
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		ok = true // closed with f
		return nil, err
	}
	ok = true
	sk := &socket{file: f, rc: rc, fd: fd, local: bound, listen: o.listen, wildcard: wildcard}
	sk.setOffload(fd, o)
	return sk, nil
}

func sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	sa := &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
	if z := a.Addr().Zone(); z != "" {
		if ifc, err := interfaceIndex(z); err == nil {
			sa.ZoneId = ifc
		}
	}
	return sa
}

// setDontFragment makes the socket send with DF (IPv4) or never fragment
// (IPv6), for an allocation whose client asked for DONT-FRAGMENT.
func (sk *socket) setDontFragment() error {
	var err error
	cerr := sk.rc.Control(func(fd uintptr) {
		if sk.local.Addr().Is4() {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		} else {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1)
		}
	})
	return errors.Join(cerr, err)
}

func (sk *socket) close() error { return sk.file.Close() }

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

// interfaceIndex is the index of the interface an IPv6 zone names.
func interfaceIndex(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifc, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, err
	}
	return uint32(ifc.Index), nil
}
