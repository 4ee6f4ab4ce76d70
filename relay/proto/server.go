package proto

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/relaybox/relaybox/relay/auth"
	"github.com/relaybox/relaybox/relay/policy"
)

// Server is the sans-IO TURN server: datagrams and the time go in, datagrams
// to send and events for the I/O layer come out. It owns no socket and no
// clock, so tests drive hours of allocations in milliseconds.
//
// A Server is not safe for concurrent use: one goroutine drives it, or the
// callers serialise.
type Server struct {
	cfg    Config
	store  *auth.Store
	nonces *auth.Nonces
	policy *policy.Policy
	relay4 netip.Addr // invalid when the relay has no IPv4 address
	relay6 netip.Addr
	rand   io.Reader

	allocs       map[fiveTuple]*allocation
	byRelayed    map[netip.AddrPort]*allocation
	ports        map[uint16]*allocation // allocation port → its allocation
	reservations map[[8]byte]reservation
	reserved     map[uint16][8]byte // reserved port → its token
	perUser      map[string]int

	timers  timerHeap
	sources sources

	req       message
	w         builder
	passwords [][]byte
	unknown   []uint16
	bindAddrs []netip.AddrPort

	txnPrefix [4]byte
	txnCount  uint64

	stats counters
}

// fiveTuple identifies an allocation (RFC 8656 section 2): the client's
// address and the listen address it talks to, over UDP.
type fiveTuple struct {
	client, server netip.AddrPort
}

// New returns a Server for cfg, or the configuration's errors, each naming
// its key.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:          cfg,
		rand:         cfg.Rand,
		allocs:       make(map[fiveTuple]*allocation),
		byRelayed:    make(map[netip.AddrPort]*allocation),
		ports:        make(map[uint16]*allocation),
		reservations: make(map[[8]byte]reservation),
		reserved:     make(map[uint16][8]byte),
		perUser:      make(map[string]int),
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	var err error
	if s.store, err = auth.NewStore(cfg.Auth); err != nil {
		return nil, err
	}
	self := make([]netip.Addr, 0, len(cfg.RelayAddresses)+len(cfg.Listen))
	for _, a := range cfg.RelayAddresses {
		a = a.Unmap()
		self = append(self, a)
		if a.Is4() {
			s.relay4 = a
		} else {
			s.relay6 = a
		}
	}
	for _, l := range cfg.Listen {
		if !l.Addr().IsUnspecified() {
			self = append(self, l.Addr())
		}
	}
	if s.policy, err = policy.New(policy.Config{Allow: cfg.AllowPeers, Deny: cfg.DenyPeers, Self: self, Listen: cfg.Listen}); err != nil {
		return nil, err
	}
	key := cfg.NonceKey
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := io.ReadFull(s.rand, key); err != nil {
			return nil, fmt.Errorf("nonce-key: no random key: %w", err)
		}
	}
	s.nonces = auth.NewNonces(key, cfg.NonceLifetime)
	if _, err := io.ReadFull(s.rand, s.txnPrefix[:]); err != nil {
		return nil, fmt.Errorf("random transaction IDs: %w", err)
	}
	s.sources = newSources(cfg)
	return s, nil
}

// SetAuth replaces the credentials (realm, static users, REST secrets),
// for an operator who rolls a REST secret without restarting the relay.
// Allocations live on; each request from now on is checked against the new
// credentials, so a refresh with a credential that is gone fails with 401
// and its allocation expires. On an error nothing changes.
func (s *Server) SetAuth(c auth.Config) error {
	store, err := auth.NewStore(c)
	if err != nil {
		return err
	}
	s.store = store
	s.cfg.Auth = c
	return nil
}

// HandleClient handles one datagram received from client on the listen
// address server: a STUN request or indication, or ChannelData. What it
// wants done is appended to out.
//
// Requests are answered per RFC 8489 and RFC 8656. Answers to requests that
// are not authenticated (the 401 and 438 challenges, a 400 before
// authentication, Binding) are rate limited per source IP address
// (Config.UnauthRate), and, Binding excepted, never add up to more bytes to
// a source address than it sent (Config.Amplification times that): a
// reflection attack through the relay gains nothing. The price: a client
// whose first Allocate is smaller than the 401 challenge (pion's and
// browsers' are 36 bytes; the challenge is about 100) is answered on its
// second or third retransmission, a few hundred milliseconds later. Binding
// is exempt from the byte budget because RFC 8489 requires an answer and a
// minimal Binding request (20 bytes) is smaller than any answer (32 bytes
// at least): its answer is kept minimal instead (SOFTWARE only when the
// answer still fits in the request's size) and rate limited.
//
// The Payload of a Transmit relaying ChannelData or a Send indication's
// DATA points into pkt: send it before reusing pkt.
func (s *Server) HandleClient(pkt []byte, client, server netip.AddrPort, now time.Time, out *Output) {
	client, server = unmapAddrPort(client), unmapAddrPort(server)
	// Nothing can be sent back to port 0; only crafted packets have it.
	if client.Port() == 0 || !client.Addr().IsValid() || len(pkt) == 0 {
		s.stats.drop(dropInvalidSource)
		return
	}
	switch pkt[0] >> 6 {
	case 0:
		s.handleSTUN(pkt, fiveTuple{client, server}, now, out)
	case 1:
		s.handleChannelData(pkt, fiveTuple{client, server}, now, out)
	default:
		s.stats.drop(dropNotTURN)
	}
}

// HandlePeer handles one datagram a peer sent to an allocation's relayed
// address: it is relayed to the client as ChannelData when a channel is
// bound to the peer, as a Data indication otherwise, and dropped without a
// permission for the peer's IP address.
func (s *Server) HandlePeer(pkt []byte, peer, relayed netip.AddrPort, now time.Time, out *Output) {
	peer, relayed = unmapAddrPort(peer), unmapAddrPort(relayed)
	a := s.byRelayed[relayed]
	if a == nil {
		s.stats.drop(dropNoAllocation)
		return
	}
	if !now.Before(a.expires) {
		s.deleteAllocation(a, out)
		s.stats.drop(dropNoAllocation)
		return
	}
	if p := a.perms[peer.Addr()]; p == nil || !now.Before(p.expires) {
		s.stats.drop(dropNoPermission)
		return
	}
	if !s.takeBandwidth(a, len(pkt), now) {
		return
	}
	if ch := a.chanByPeer[peer]; ch != nil && now.Before(ch.expires) {
		b := out.grow(channelDataHeaderLen + len(pkt))
		putChannelData(b, ch.number, len(pkt))
		copy(b[channelDataHeaderLen:], pkt)
		out.Transmits = append(out.Transmits, Transmit{From: a.ft.server, To: a.ft.client, Payload: b})
		s.stats.relay(PathPeerToChannel, len(pkt))
		return
	}
	size := headerLen + attrHeaderLen + xorAddressLen(peer) + attrHeaderLen + padded(len(pkt))
	if size-headerLen > 0xFFFF {
		s.stats.drop(dropTooBig)
		return
	}
	w := builder{b: out.grow(size)[:0]}
	txn := s.nextTxn()
	w.begin(methodData, classIndication, txn[:])
	w.addXORAddress(attrXORPeerAddress, peer)
	w.add(attrData, pkt)
	out.Transmits = append(out.Transmits, Transmit{From: a.ft.server, To: a.ft.client, Payload: w.bytes()})
	s.stats.relay(PathPeerToData, len(pkt))
}

// HandleTimeout expires what is due at now: allocations, permissions,
// channel bindings (their BindingDeleted events), reservations, idle rate
// limit state. Call it at Deadline or later.
func (s *Server) HandleTimeout(now time.Time, out *Output) {
	s.fireTimers(now, out)
	s.sources.sweep(now)
}

// Deadline is when HandleTimeout next has work; the zero Time means
// nothing is pending. It changes with every Handle call.
func (s *Server) Deadline() time.Time {
	d := s.sources.deadline()
	if len(s.timers) > 0 && (d.IsZero() || s.timers[0].at.Before(d)) {
		d = s.timers[0].at
	}
	return d
}

func unmapAddrPort(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}

func xorAddressLen(a netip.AddrPort) int {
	if a.Addr().Unmap().Is4() {
		return 8
	}
	return 20
}

// nextTxn is a transaction ID for a Data indication: unique, cheap, no
// allocation. Indications get no answers, so predictability does not matter.
func (s *Server) nextTxn() [txnLen]byte {
	var t [txnLen]byte
	copy(t[:], s.txnPrefix[:])
	s.txnCount++
	binary.BigEndian.PutUint64(t[4:], s.txnCount)
	return t
}

// randUint32 is a random number for port choice.
func (s *Server) randUint32() uint32 {
	var b [4]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		// crypto/rand does not fail on Linux 3.17+; a test reader that
		// runs dry still gets a working (if predictable) relay.
		s.txnCount++
		return uint32(s.txnCount)
	}
	return binary.BigEndian.Uint32(b[:])
}
