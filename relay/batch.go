package relay

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched datagram I/O: recvmmsg and sendmmsg through golang.org/x/sys/unix,
// with every buffer, address and control message allocated once per worker.
// golang.org/x/net's ipv4/ipv6 ReadBatch would do the same system calls but
// allocates a *net.UDPAddr per datagram, which the relayed path must not.

const (
	// batchSize is the datagrams per system call.
	batchSize = 32
	// maxDatagram is the receive buffer size: larger than any UDP payload,
	// so a datagram is never cut short into something that parses
	// differently.
	maxDatagram = 1 << 16
	// oobSize holds one IP_PKTINFO or IPV6_PKTINFO control message.
	oobSize = 64
)

// recvBatch receives up to batchSize datagrams at once.
type recvBatch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6
	oobs  [batchSize][oobSize]byte
	buf   []byte

	n   int   // datagrams received by the last read
	err error // its error, other than "nothing to read"
	fn  func(fd uintptr) bool
}

func newRecvBatch() *recvBatch {
	b := &recvBatch{buf: make([]byte, batchSize*maxDatagram)}
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
		h.Control = &b.oobs[i][0]
		b.iovs[i].Base = &b.buf[i*maxDatagram]
	}
	b.fn = b.read // one method value for every read: no allocation per call
	return b
}

// read is the RawConn.Read callback: one recvmmsg that does not wait.
func (b *recvBatch) read(fd uintptr) bool {
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(oobSize)
		h.Flags = 0
		b.iovs[i].SetLen(maxDatagram)
	}
	b.n, b.err = 0, nil
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			b.n = int(n)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			b.err = errno
		}
		return true
	}
}

// packet is the i-th datagram received.
func (b *recvBatch) packet(i int) []byte {
	start := i * maxDatagram
	return b.buf[start : start+int(b.hdrs[i].Len) : start+maxDatagram]
}

// from is the i-th datagram's source.
func (b *recvBatch) from(i int) netip.AddrPort {
	return decodeSockaddr(&b.names[i])
}

// to is the local address the i-th datagram was sent to, from its
// IP_PKTINFO or IPV6_PKTINFO; invalid without one.
func (b *recvBatch) to(i int, port uint16) netip.AddrPort {
	oob := b.oobs[i][:b.hdrs[i].Hdr.Controllen]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			break
		}
		data := oob[unix.CmsgLen(0):h.Len]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrPortFrom(netip.AddrFrom4(info.Addr), port)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrPortFrom(netip.AddrFrom16(info.Addr).Unmap(), port)
		}
		next := unix.CmsgSpace(int(h.Len) - unix.SizeofCmsghdr)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.AddrPort{}
}

// sendBatch sends up to batchSize datagrams from one socket at once.
type sendBatch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6
	oobs  [batchSize][oobSize]byte

	n      int // datagrams queued
	errors int // datagrams the last write could not send
	fn     func(fd uintptr) bool
}

func newSendBatch() *sendBatch {
	b := &sendBatch{}
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
	}
	b.fn = b.write
	return b
}

// add queues payload to to; a valid from sets the source address with
// IP_PKTINFO or IPV6_PKTINFO, for a wildcard socket. It reports false when
// the batch is full.
func (b *sendBatch) add(payload []byte, to, from netip.AddrPort) bool {
	if b.n == batchSize {
		return false
	}
	i := b.n
	h := &b.hdrs[i].Hdr
	h.Namelen = encodeSockaddr(&b.names[i], to)
	if len(payload) > 0 {
		b.iovs[i].Base = &payload[0]
	} else {
		b.iovs[i].Base = nil
	}
	b.iovs[i].SetLen(len(payload))
	h.Control, h.Controllen = nil, 0
	if from.IsValid() {
		oob := b.oobs[i][:]
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		data := oob[unix.CmsgLen(0):]
		clear(data[:unix.SizeofInet6Pktinfo])
		if from.Addr().Is4() {
			c.Level, c.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
			c.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			info.Spec_dst = from.Addr().As4()
			h.SetControllen(unix.CmsgSpace(unix.SizeofInet4Pktinfo))
		} else {
			c.Level, c.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
			c.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			info.Addr = from.Addr().As16()
			h.SetControllen(unix.CmsgSpace(unix.SizeofInet6Pktinfo))
		}
		h.Control = &oob[0]
	}
	b.n++
	return true
}

// write is the RawConn.Write callback: sendmmsg until every queued
// datagram is sent or has failed. A failure belongs to one datagram (no
// route to its destination, EMSGSIZE with DF): it is counted and skipped.
func (b *sendBatch) write(fd uintptr) bool {
	b.errors = 0
	for off := 0; off < b.n; {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[off])), uintptr(b.n-off), 0, 0, 0)
		switch errno {
		case 0:
			off += int(n)
		case unix.EINTR:
		default:
			b.errors++
			off++
		}
	}
	return true
}

// reset empties the batch and drops its references to payloads.
func (b *sendBatch) reset() {
	for i := range b.n {
		b.iovs[i].Base = nil
	}
	b.n = 0
}

func decodeSockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}

// encodeSockaddr writes a into sa and returns its length.
func encodeSockaddr(sa *unix.RawSockaddrInet6, a netip.AddrPort) uint32 {
	*sa = unix.RawSockaddrInet6{}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], a.Port())
	if a.Addr().Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = a.Addr().As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Addr = a.Addr().As16()
	return unix.SizeofSockaddrInet6
}
