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
// With UDP offload (offload.go), a read may carry several datagrams of one
// flow (GRO) and a message sent may carry several (GSO).

const (
	// batchSize is the messages per system call.
	batchSize = 32
	// maxDatagram is the receive buffer size: larger than any UDP payload,
	// so a datagram is never cut short into something that parses
	// differently. A GRO read is at most that size too.
	maxDatagram = 1 << 16
	// oobSize holds the control messages of one message: IP_PKTINFO or
	// IPV6_PKTINFO (40 bytes with its header) and UDP_GRO or UDP_SEGMENT
	// (24), with room to spare; a cut control message (MSG_CTRUNC) would
	// lose a GRO read's segment size.
	oobSize = 128
	// sendDatagrams is the datagrams a send batch holds: batchSize
	// messages of one datagram each, or fewer messages of up to
	// maxSegments datagrams.
	sendDatagrams = 8 * batchSize
)

// recvBatch receives up to batchSize messages at once.
type recvBatch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6
	oobs  [batchSize][oobSize]byte
	buf   []byte

	n   int   // messages received by the last read
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

// packet is the i-th message received: one datagram, or several of one
// flow when control says it is a GRO read.
func (b *recvBatch) packet(i int) []byte {
	start := i * maxDatagram
	return b.buf[start : start+int(b.hdrs[i].Len) : start+maxDatagram]
}

// from is the i-th message's source.
func (b *recvBatch) from(i int) netip.AddrPort {
	return decodeSockaddr(&b.names[i])
}

// control reads the i-th message's control messages: to is the local
// address it was sent to, from IP_PKTINFO or IPV6_PKTINFO (invalid without
// one); segment is the size of each of the datagrams a GRO read joined,
// from UDP_GRO (the last may be shorter; 0 for a plain datagram).
func (b *recvBatch) control(i int, port uint16) (to netip.AddrPort, segment int) {
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
			to = netip.AddrPortFrom(netip.AddrFrom4(info.Addr), port)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			to = netip.AddrPortFrom(netip.AddrFrom16(info.Addr).Unmap(), port)
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			// The kernel writes an int (udp_cmsg_recv).
			segment = int(*(*int32)(unsafe.Pointer(&data[0])))
		}
		next := unix.CmsgSpace(int(h.Len) - unix.SizeofCmsghdr)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return to, segment
}

// sendBatch sends up to sendDatagrams datagrams from one socket at once,
// in up to batchSize messages. When segmentMax is not 0, add joins a
// datagram to the message before it as one more GSO segment (UDP_SEGMENT)
// when the kernel would send them as the same datagrams: same destination
// and source, every segment the size of the first but the last, which may
// be shorter. Segments are an iovec each: the kernel copies them into one
// buffer, so there is no copy here.
type sendBatch struct {
	hdrs  [batchSize]unix.Mmsghdr
	names [batchSize]unix.RawSockaddrInet6
	oobs  [batchSize][oobSize]byte
	msgs  [batchSize]sendMessage
	iovs  [sendDatagrams]unix.Iovec

	// segmentMax is the largest datagram add may join into a GSO message;
	// 0 turns joining off. Set from the socket before the first add.
	segmentMax int

	n      int // messages queued
	nd     int // datagrams queued, in iovs
	errors int // datagrams the last write could not send
	// gsoErr is the error of the last write's first GSO message the kernel
	// refused (whose datagrams were then sent one by one), and gsoSegment
	// that message's segment size; resent counts the datagrams beyond the
	// first of every refused message.
	gsoErr     error
	gsoSegment int
	resent     int
	fn         func(fd uintptr) bool
}

// sendMessage is what sendBatch knows of a queued message.
type sendMessage struct {
	to, from netip.AddrPort
	first    int  // its first iovec
	segments int  // datagrams in it
	size     int  // the first datagram's size: the GSO segment size
	bytes    int  // the datagrams' total size
	closed   bool // a shorter last segment ends it
	pktinfo  int  // Controllen of its IP_PKTINFO or IPV6_PKTINFO alone
}

func newSendBatch() *sendBatch {
	b := &sendBatch{}
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	b.fn = b.write
	return b
}

// add queues payload to to; a valid from sets the source address with
// IP_PKTINFO or IPV6_PKTINFO, for a wildcard socket. It reports false when
// the batch is full.
func (b *sendBatch) add(payload []byte, to, from netip.AddrPort) bool {
	if b.nd == sendDatagrams {
		return false
	}
	if b.n > 0 && b.join(payload, to, from) {
		return true
	}
	if b.n == batchSize {
		return false
	}
	i := b.n
	m := &b.msgs[i]
	*m = sendMessage{to: to, from: from, first: b.nd, segments: 1, size: len(payload), bytes: len(payload)}
	b.setIov(payload)
	h := &b.hdrs[i].Hdr
	h.Namelen = encodeSockaddr(&b.names[i], to)
	h.Iov = &b.iovs[m.first]
	h.SetIovlen(1)
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
		m.pktinfo = int(h.Controllen)
	}
	b.n++
	return true
}

// join adds payload to the last message as one more GSO segment, if the
// kernel's rules and the socket's segment budget allow it.
func (b *sendBatch) join(payload []byte, to, from netip.AddrPort) bool {
	i := b.n - 1
	m := &b.msgs[i]
	if b.segmentMax == 0 || m.closed || m.segments == maxSegments ||
		m.size > b.segmentMax || len(payload) == 0 || len(payload) > m.size ||
		m.bytes+len(payload) > maxGSOBytes || m.to != to || m.from != from {
		return false
	}
	if m.segments == 1 {
		// Now a GSO message: UDP_SEGMENT after the IP_PKTINFO, if any.
		h := &b.hdrs[i].Hdr
		oob := b.oobs[i][m.pktinfo:]
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		c.Level, c.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		c.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(m.size)
		h.Control = &b.oobs[i][0]
		h.SetControllen(m.pktinfo + unix.CmsgSpace(2))
	}
	b.setIov(payload)
	m.segments++
	m.bytes += len(payload)
	m.closed = len(payload) < m.size
	b.hdrs[i].Hdr.SetIovlen(m.segments)
	return true
}

// setIov points the next iovec at payload.
func (b *sendBatch) setIov(payload []byte) {
	v := &b.iovs[b.nd]
	if len(payload) > 0 {
		v.Base = &payload[0]
	} else {
		v.Base = nil
	}
	v.SetLen(len(payload))
	b.nd++
}

// write is the RawConn.Write callback: sendmmsg until every queued
// message is sent or has failed. A failure belongs to one message: a plain
// datagram's (no route to its destination, EMSGSIZE with DF) is counted
// and skipped; a GSO message's is retried as its datagrams one by one, so
// that each meets the fate it would have met alone.
func (b *sendBatch) write(fd uintptr) bool {
	b.errors, b.gsoErr, b.gsoSegment, b.resent = 0, nil, 0, 0
	for off := 0; off < b.n; {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[off])), uintptr(b.n-off), 0, 0, 0)
		switch errno {
		case 0:
			off += int(n)
		case unix.EINTR:
		default:
			if b.msgs[off].segments > 1 {
				if b.gsoErr == nil {
					b.gsoErr, b.gsoSegment = errno, b.msgs[off].size
				}
				b.sendEach(fd, off)
			} else {
				b.errors++
			}
			off++
		}
	}
	return true
}

// sendEach sends the datagrams of GSO message i one by one, without its
// UDP_SEGMENT.
func (b *sendBatch) sendEach(fd uintptr, i int) {
	m := &b.msgs[i]
	b.resent += m.segments - 1
	h := b.hdrs[i].Hdr // a copy: its name and IP_PKTINFO
	h.SetIovlen(1)
	h.SetControllen(m.pktinfo)
	if m.pktinfo == 0 {
		h.Control = nil
	}
	for k := range m.segments {
		h.Iov = &b.iovs[m.first+k]
		for {
			_, _, errno := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&h)), 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				b.errors++
			}
			break
		}
	}
}

// reset empties the batch and drops its references to payloads (the
// headers' iovec pointers point into the batch itself, and add sets them).
func (b *sendBatch) reset() {
	for i := range b.nd {
		b.iovs[i].Base = nil
	}
	b.n, b.nd = 0, 0
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
