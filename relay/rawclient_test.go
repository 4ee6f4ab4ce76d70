package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// rawClient is a TURN client made of STUN messages (pion/stun), for what
// pion/turn's client does not do: ask for an IPv6 relayed address
// (REQUESTED-ADDRESS-FAMILY), never refresh, or read the wire itself.
type rawClient struct {
	t      testing.TB
	c      *net.UDPConn
	server netip.AddrPort
	user   stun.Username
	pass   string
	realm  stun.Realm
	nonce  stun.Nonce
	buf    []byte
}

func newRawClient(t testing.TB, c *net.UDPConn, server netip.AddrPort, user, pass string) *rawClient {
	return &rawClient{t: t, c: c, server: server, user: stun.NewUsername(user), pass: pass, buf: make([]byte, 65536)}
}

// rawAttr is an attribute given as its bytes.
type rawAttr struct {
	typ stun.AttrType
	v   []byte
}

func (a rawAttr) AddTo(m *stun.Message) error {
	m.Add(a.typ, a.v)
	return nil
}

var (
	udpTransport = rawAttr{stun.AttrRequestedTransport, []byte{17, 0, 0, 0}}
	familyIPv6   = rawAttr{stun.AttrRequestedAddressFamily, []byte{2, 0, 0, 0}}
)

func channelNumber(ch uint16) rawAttr {
	return rawAttr{stun.AttrChannelNumber, []byte{byte(ch >> 8), byte(ch), 0, 0}}
}

func lifetimeAttr(secs uint32) rawAttr {
	return rawAttr{stun.AttrLifetime, binary.BigEndian.AppendUint32(nil, secs)}
}

// peerAttr is an XOR-PEER-ADDRESS.
type peerAttr netip.AddrPort

func (p peerAttr) AddTo(m *stun.Message) error {
	a := netip.AddrPort(p)
	return (&stun.XORMappedAddress{IP: a.Addr().AsSlice(), Port: int(a.Port())}).AddToAs(m, stun.AttrXORPeerAddress)
}

// dataAttr is a DATA attribute.
func dataAttr(b []byte) rawAttr { return rawAttr{stun.AttrData, b} }

// send writes b to the relay.
func (rc *rawClient) send(b []byte) {
	rc.t.Helper()
	if _, err := rc.c.WriteToUDPAddrPort(b, rc.server); err != nil {
		rc.t.Fatalf("send to %v: %v", rc.server, err)
	}
}

// read returns the next datagram from the relay, or an error after timeout.
// The datagram is valid until the next read.
func (rc *rawClient) read(timeout time.Duration) ([]byte, error) {
	buf := rc.buf
	rc.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, from, err := rc.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, err
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) == rc.server {
			return buf[:n], nil
		}
	}
}

// response reads until the answer to txn arrives, skipping other datagrams.
func (rc *rawClient) response(txn [stun.TransactionIDSize]byte, timeout time.Duration) (*stun.Message, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := rc.read(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		if !stun.IsMessage(b) {
			continue
		}
		m := new(stun.Message)
		if err := stun.Decode(b, m); err != nil {
			return nil, err
		}
		if m.TransactionID == txn {
			return m, nil
		}
	}
}

// build makes a request of method with attrs, authenticated if the client
// has a nonce.
func (rc *rawClient) build(method stun.Method, attrs ...stun.Setter) *stun.Message {
	rc.t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	if rc.nonce != nil {
		setters = append(setters, rc.user, rc.realm, rc.nonce, stun.NewLongTermIntegrity(rc.user.String(), rc.realm.String(), rc.pass))
	}
	setters = append(setters, stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		rc.t.Fatalf("build %v: %v", method, err)
	}
	return m
}

// do sends a request and returns its answer, authenticating on a 401 and
// taking the new nonce on a 438. An error response is returned as a
// message; a missing answer fails the test.
func (rc *rawClient) do(method stun.Method, attrs ...stun.Setter) *stun.Message {
	rc.t.Helper()
	for range 3 {
		req := rc.build(method, attrs...)
		var res *stun.Message
		var err error
		for try := 0; try < 5; try++ { // UDP: retransmit
			rc.send(req.Raw)
			if res, err = rc.response(req.TransactionID, time.Second); err == nil {
				break
			}
		}
		if err != nil {
			rc.t.Fatalf("%v to %v: no answer: %v", method, rc.server, err)
		}
		var code stun.ErrorCodeAttribute
		if res.Type.Class == stun.ClassErrorResponse && code.GetFrom(res) == nil &&
			(code.Code == stun.CodeUnauthorized && rc.nonce == nil || code.Code == stun.CodeStaleNonce) {
			rc.realm.GetFrom(res)
			var n stun.Nonce
			if n.GetFrom(res) == nil {
				rc.nonce = n
			}
			continue
		}
		return res
	}
	rc.t.Fatalf("%v to %v: still challenged after 3 tries", method, rc.server)
	return nil
}

// mustSucceed fails the test unless res is a success response.
func mustSucceed(t testing.TB, res *stun.Message) {
	t.Helper()
	if res.Type.Class != stun.ClassSuccessResponse {
		var code stun.ErrorCodeAttribute
		code.GetFrom(res)
		t.Fatalf("%v: %v %v, want success", res.Type, code.Code, string(code.Reason))
	}
}

// errorCode is res's error code, 0 for a success.
func errorCode(res *stun.Message) int {
	var code stun.ErrorCodeAttribute
	if res.Type.Class != stun.ClassErrorResponse || code.GetFrom(res) != nil {
		return 0
	}
	return int(code.Code)
}

// allocate allocates with attrs and returns the relayed addresses.
func (rc *rawClient) allocate(attrs ...stun.Setter) []netip.AddrPort {
	rc.t.Helper()
	res := rc.do(stun.MethodAllocate, append([]stun.Setter{udpTransport}, attrs...)...)
	mustSucceed(rc.t, res)
	var out []netip.AddrPort
	for _, a := range res.Attributes {
		if a.Type != stun.AttrXORRelayedAddress {
			continue
		}
		one := &stun.Message{TransactionID: res.TransactionID}
		one.Add(a.Type, a.Value)
		var x stun.XORMappedAddress
		if err := x.GetFromAs(one, stun.AttrXORRelayedAddress); err != nil {
			rc.t.Fatalf("XOR-RELAYED-ADDRESS: %v", err)
		}
		ip, _ := netip.AddrFromSlice(x.IP)
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(x.Port)))
	}
	return out
}

// channelData frames b as ChannelData on ch, padded to a multiple of 4
// bytes.
func channelData(ch uint16, b []byte) []byte {
	out := unpaddedChannelData(ch, b)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	return out
}

// unpaddedChannelData frames b as ChannelData on ch as the relay sends it
// over UDP: unpadded.
func unpaddedChannelData(ch uint16, b []byte) []byte {
	out := binary.BigEndian.AppendUint16(nil, ch)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
	return append(out, b...)
}

// onChannel frames each of dgrams with frame, on ch.
func onChannel(ch uint16, dgrams [][]byte, frame func(uint16, []byte) []byte) [][]byte {
	out := make([][]byte, len(dgrams))
	for i, d := range dgrams {
		out[i] = frame(ch, d)
	}
	return out
}

// readChannelData reads until ChannelData arrives and returns its channel
// and data.
func (rc *rawClient) readChannelData(timeout time.Duration) (uint16, []byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := rc.read(time.Until(deadline))
		if err != nil {
			return 0, nil, err
		}
		if len(b) >= 4 && b[0]>>6 == 1 {
			n := int(binary.BigEndian.Uint16(b[2:]))
			if 4+n > len(b) {
				return 0, nil, fmt.Errorf("ChannelData of %d bytes in a %d-byte datagram", n, len(b))
			}
			return binary.BigEndian.Uint16(b), b[4 : 4+n], nil
		}
	}
}

// readData reads until a Data indication arrives and returns its peer and
// data.
func (rc *rawClient) readData(timeout time.Duration) (netip.AddrPort, []byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := rc.read(time.Until(deadline))
		if err != nil {
			return netip.AddrPort{}, nil, err
		}
		m := new(stun.Message)
		if !stun.IsMessage(b) || stun.Decode(b, m) != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
			continue
		}
		var x stun.XORMappedAddress
		if err := x.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
			return netip.AddrPort{}, nil, err
		}
		data, err := m.Get(stun.AttrData)
		ip, _ := netip.AddrFromSlice(x.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(x.Port)), data, err
	}
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
