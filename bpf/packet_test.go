//go:build linux

package bpf

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// packet describes a test frame: Ethernet, optional VLAN tags, IPv4 or IPv6
// (picked by the address family of src and dst), UDP or TCP, payload. The
// zero value of each knob gives the plain case. It is the one packet builder
// of the bpf tests; build turns it into bytes with valid lengths and
// checksums.
type packet struct {
	src, dst netip.AddrPort
	payload  []byte

	// vlan holds VLAN IDs, outermost first. The outer tag's TPID is 802.1Q
	// for one tag and 802.1ad for two, unless tpid says otherwise.
	vlan []uint16
	tpid layers.EthernetType

	tcp bool // TCP segment instead of a UDP datagram

	ipv4Options   bool   // add a 4-byte IPv4 option (router alert)
	moreFragments bool   // IPv4 MF flag
	fragOffset    uint16 // IPv4 fragment offset, in 8-byte units
	hopByHop      bool   // IPv6 hop-by-hop options header before the transport

	truncate int // cut this many bytes off the end of the built frame

	// As the relay sends them: MACs (default client to relay), DF set
	// and no Ethernet padding, TTL 64 as for every frame here.
	srcMAC, dstMAC net.HardwareAddr
	df             bool
	unpadded       bool

	zeroChecksum bool   // UDP checksum 0 (IPv4: "none")
	trailer      []byte // bytes after the IP datagram (Ethernet trailer)
}

var (
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	relayMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// build serializes p. Like a NIC, gopacket pads Ethernet frames shorter
// than 60 bytes with zeros.
func (p packet) build(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: relayMAC}
	if p.srcMAC != nil {
		eth.SrcMAC = p.srcMAC
	}
	if p.dstMAC != nil {
		eth.DstMAC = p.dstMAC
	}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)

	var l3 gopacket.NetworkLayer
	var l3type layers.EthernetType
	proto := layers.IPProtocolUDP
	if p.tcp {
		proto = layers.IPProtocolTCP
	}
	if p.dst.Addr().Is4() {
		l3type = layers.EthernetTypeIPv4
		ip := &layers.IPv4{
			Version:    4,
			TTL:        64,
			Protocol:   proto,
			SrcIP:      p.src.Addr().AsSlice(),
			DstIP:      p.dst.Addr().AsSlice(),
			FragOffset: p.fragOffset,
		}
		if p.moreFragments {
			ip.Flags |= layers.IPv4MoreFragments
		}
		if p.df {
			ip.Flags |= layers.IPv4DontFragment
		}
		if p.ipv4Options {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}
		l3 = ip
	} else {
		l3type = layers.EthernetTypeIPv6
		ip := &layers.IPv6{
			Version:    6,
			HopLimit:   64,
			NextHeader: proto,
			SrcIP:      p.src.Addr().AsSlice(),
			DstIP:      p.dst.Addr().AsSlice(),
		}
		if p.hopByHop {
			// PadN filling the 8-byte header: no option the stack acts on.
			ip.HopByHop = &layers.IPv6HopByHop{}
			ip.HopByHop.NextHeader = proto
			ip.HopByHop.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
		}
		l3 = ip
	}

	// Tags between Ethernet and IP, each naming the type of what follows.
	next := l3type
	tags := make([]gopacket.SerializableLayer, len(p.vlan))
	for i := len(p.vlan) - 1; i >= 0; i-- {
		tags[i] = &layers.Dot1Q{VLANIdentifier: p.vlan[i], Type: next}
		next = layers.EthernetTypeDot1Q
		if i == 0 && len(p.vlan) > 1 {
			next = layers.EthernetTypeQinQ
		}
	}
	if len(p.vlan) > 0 && p.tpid != 0 {
		next = p.tpid
	}
	eth.EthernetType = next
	ls = append(ls, tags...)
	ls = append(ls, l3.(gopacket.SerializableLayer))

	if p.tcp {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()), SYN: true, Window: 65535}
		if err := tcp.SetNetworkLayerForChecksum(l3); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp)
	} else {
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.src.Port()), DstPort: layers.UDPPort(p.dst.Port())}
		if err := udp.SetNetworkLayerForChecksum(l3); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, udp)
	}
	ls = append(ls, gopacket.Payload(p.payload))

	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("build packet: %v", err)
	}
	b := buf.Bytes()
	if p.zeroChecksum && !p.tcp {
		end := ethIPEnd(b) - len(p.payload) // the UDP header's end
		b[end-2], b[end-1] = 0, 0
	}
	if p.unpadded || p.trailer != nil {
		b = b[:ethIPEnd(b)]
	}
	b = append(b, p.trailer...)
	return b[:len(b)-p.truncate]
}

// ethIPEnd returns where the IP datagram in frame b ends: its Ethernet
// padding and trailer start there.
func ethIPEnd(b []byte) int {
	l3 := 14
	etype := binary.BigEndian.Uint16(b[12:])
	for etype == 0x8100 || etype == 0x88A8 {
		etype = binary.BigEndian.Uint16(b[l3+2:])
		l3 += 4
	}
	if etype == 0x0800 {
		return l3 + int(binary.BigEndian.Uint16(b[l3+2:]))
	}
	return l3 + 40 + int(binary.BigEndian.Uint16(b[l3+4:]))
}

// stunMessage returns a STUN message of the given type with attrLen bytes
// of (zero) attributes, as a client would send it.
func stunMessage(msgType uint16, attrLen int) []byte {
	b := make([]byte, 20+attrLen)
	binary.BigEndian.PutUint16(b[0:], msgType)
	binary.BigEndian.PutUint16(b[2:], uint16(attrLen))
	binary.BigEndian.PutUint32(b[4:], 0x2112A442)
	copy(b[8:20], "relayboxtxid")
	return b
}

// channelData returns a ChannelData message for channel carrying data.
func channelData(channel uint16, data []byte) []byte {
	b := make([]byte, 4, 4+len(data))
	binary.BigEndian.PutUint16(b[0:], channel)
	binary.BigEndian.PutUint16(b[2:], uint16(len(data)))
	return append(b, data...)
}
