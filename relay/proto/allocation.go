package proto

import (
	"io"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// allocation is one client's allocation (RFC 8656 section 2.2).
type allocation struct {
	ft       fiveTuple
	username string
	user     string // quota key
	txn      [txnLen]byte
	port     uint16
	// relayed holds the relayed address per family: [0] IPv4, [1] IPv6;
	// an invalid AddrPort where the allocation has none.
	relayed      [2]netip.AddrPort
	expires      time.Time
	dontFragment bool
	// What the Allocate success response said beyond the addresses, to
	// answer a retransmission the same way.
	token     [8]byte
	hasToken  bool
	addrError bool // ADDRESS-ERROR-CODE 440 for IPv6

	perms      map[netip.Addr]*permission
	chanByNum  map[uint16]*channel
	chanByPeer map[netip.AddrPort]*channel

	bucket  bucket
	timerAt time.Time // when its pending expiry timer fires; see schedule
	deleted bool
}

type permission struct {
	expires time.Time
	timerAt time.Time
}

// channel is a channel binding. After expires it stays, unusable, until
// expires+ChannelCooldown, holding its number and peer to each other.
type channel struct {
	number    uint16
	peer      netip.AddrPort
	expires   time.Time
	timerAt   time.Time
	installed bool // the data plane has it: bound, permitted, allocated
}

// reservation is a port held by EVEN-PORT's R bit for a later Allocate
// with its RESERVATION-TOKEN.
type reservation struct {
	port    uint16
	ipv6    bool
	expires time.Time
}

func familyIndex(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// relayedFor is the relayed address that reaches peer, invalid when the
// allocation has none of peer's family.
func (a *allocation) relayedFor(peer netip.Addr) netip.AddrPort {
	return a.relayed[familyIndex(peer)]
}

func (a *allocation) binding(ch *channel) Binding {
	return Binding{
		Client:  a.ft.client,
		Server:  a.ft.server,
		Channel: ch.number,
		Relayed: a.relayedFor(ch.peer.Addr()),
		Peer:    ch.peer,
	}
}

// channels returns the allocation's channels in number order, so that
// events come out in an order tests and logs can rely on.
func (a *allocation) channels() []*channel {
	nums := slices.Sorted(maps.Keys(a.chanByNum))
	chs := make([]*channel, len(nums))
	for i, n := range nums {
		chs[i] = a.chanByNum[n]
	}
	return chs
}

// lookup returns the live allocation of ft, deleting one that has expired
// but whose timer has not fired yet.
func (s *Server) lookup(ft fiveTuple, now time.Time, out *Output) *allocation {
	a := s.allocs[ft]
	if a != nil && !now.Before(a.expires) {
		s.deleteAllocation(a, out)
		return nil
	}
	return a
}

// requestAllocation is the allocation a Refresh, CreatePermission or
// ChannelBind request acts on. Without one it answers 437 (Allocation
// Mismatch), or 441 (Wrong Credentials) when another user holds it, and
// returns nil.
func (s *Server) requestAllocation(r *request) *allocation {
	a := s.lookup(r.ft, r.now, r.out)
	if a == nil {
		s.errorResponse(r, 437)
		return nil
	}
	if a.username != r.acct.Username {
		s.errorResponse(r, 441)
		return nil
	}
	return a
}

// handleAllocate implements RFC 8656 section 7.2, checks in its order.
func (s *Server) handleAllocate(r *request) {
	m := r.m
	if a := s.lookup(r.ft, r.now, r.out); a != nil {
		if a.txn == [txnLen]byte(m.txn()) && a.username == r.acct.Username {
			s.allocateSuccess(r, a) // a retransmission: same answer
			return
		}
		s.errorResponse(r, 437)
		return
	}
	v, ok := m.get(attrRequestedTransport)
	if !ok {
		s.errorResponse(r, 400)
		return
	}
	if proto, err := parseRequestedTransport(v); err != nil {
		s.errorResponse(r, 400)
		return
	} else if proto != protoUDP {
		s.errorResponse(r, 442)
		return
	}
	_, dontFragment := m.find(attrDontFragment)

	tokenV, hasToken := m.get(attrReservationToken)
	evenV, hasEven := m.get(attrEvenPort)
	rafV, hasRAF := m.get(attrRequestedAddressFamily)
	aafV, hasAAF := m.get(attrAdditionalAddressFamily)
	if hasToken && (hasEven || hasRAF || hasAAF) || hasRAF && hasAAF {
		s.errorResponse(r, 400)
		return
	}
	var token [8]byte
	var res reservation
	if hasToken {
		var err error
		if token, err = parseReservationToken(tokenV); err != nil {
			s.errorResponse(r, 400)
			return
		}
		var ok bool
		if res, ok = s.reservations[token]; !ok || !r.now.Before(res.expires) {
			s.errorResponse(r, 508)
			return
		}
	}

	// Which families: IPv4 unless asked otherwise (RFC 8656 section 7.2).
	want4, want6 := true, false
	switch {
	case hasToken:
		want4, want6 = !res.ipv6, res.ipv6
	case hasRAF:
		fam, err := parseFamily(rafV)
		if err != nil {
			s.errorResponse(r, 400)
			return
		}
		switch fam {
		case familyIPv4:
		case familyIPv6:
			want4, want6 = false, true
		default:
			s.errorResponse(r, 440)
			return
		}
	}
	if want4 && !s.relay4.IsValid() || want6 && !s.relay6.IsValid() {
		s.errorResponse(r, 440)
		return
	}
	even, reserveNext := false, false
	if hasEven {
		var err error
		if reserveNext, err = parseEvenPort(evenV); err != nil {
			s.errorResponse(r, 400)
			return
		}
		even = true
		if reserveNext && hasAAF {
			s.errorResponse(r, 400)
			return
		}
	}
	addrError := false
	if hasAAF {
		fam, err := parseFamily(aafV)
		if err != nil || fam != familyIPv6 {
			s.errorResponse(r, 400)
			return
		}
		if s.relay6.IsValid() {
			want6 = true
		} else {
			addrError = true // IPv4 only, and ADDRESS-ERROR-CODE says why
		}
	}
	lifetime, ok := s.lifetime(m, false)
	if !ok {
		s.errorResponse(r, 400)
		return
	}
	if s.cfg.MaxAllocations > 0 && len(s.allocs) >= s.cfg.MaxAllocations ||
		s.cfg.UserQuota > 0 && s.perUser[r.acct.User] >= s.cfg.UserQuota {
		s.errorResponse(r, 486)
		return
	}

	var port uint16
	if hasToken {
		s.unreserve(token)
		port = res.port
		if !s.bind(port, want4, want6) {
			s.errorResponse(r, 508)
			return
		}
	} else if port, ok = s.pickPort(want4, want6, even, reserveNext); !ok {
		s.errorResponse(r, 508)
		return
	}

	a := &allocation{
		ft:           r.ft,
		username:     r.acct.Username,
		user:         r.acct.User,
		txn:          [txnLen]byte(m.txn()),
		port:         port,
		expires:      r.now.Add(lifetime),
		dontFragment: dontFragment,
		addrError:    addrError,
		perms:        make(map[netip.Addr]*permission),
		chanByNum:    make(map[uint16]*channel),
		chanByPeer:   make(map[netip.AddrPort]*channel),
	}
	a.bucket.tokens = s.bandwidthBurst()
	a.bucket.last = r.now
	if want4 {
		a.relayed[0] = netip.AddrPortFrom(s.relay4, port)
	}
	if want6 {
		a.relayed[1] = netip.AddrPortFrom(s.relay6, port)
	}
	s.allocs[r.ft] = a
	s.ports[port] = a
	s.perUser[a.user]++
	for _, rel := range a.relayed {
		if rel.IsValid() {
			s.byRelayed[rel] = a
			r.out.Events = append(r.out.Events, Event{
				Kind:         AllocationCreated,
				Binding:      Binding{Client: a.ft.client, Server: a.ft.server, Relayed: rel},
				Username:     a.username,
				DontFragment: a.dontFragment,
			})
		}
	}
	s.schedule(&a.timerAt, timer{at: a.expires, kind: timerAllocation, a: a})
	if reserveNext {
		a.token, a.hasToken = s.reserve(port+1, want6, r.now), true
	}
	s.stats.allocations++
	s.allocateSuccess(r, a)
}

func (s *Server) allocateSuccess(r *request, a *allocation) {
	w := s.begin(r, classSuccess)
	for _, rel := range a.relayed {
		if rel.IsValid() {
			w.addXORAddress(attrXORRelayedAddress, rel)
		}
	}
	w.addUint32(attrLifetime, seconds(a.expires.Sub(r.now)))
	if a.hasToken {
		w.add(attrReservationToken, a.token[:])
	}
	w.addXORAddress(attrXORMappedAddress, r.ft.client)
	if a.addrError {
		w.addAddressErrorCode(familyIPv6, 440, errorReasons[440])
	}
	s.finish(r, 200)
}

// seconds rounds d up to whole seconds for LIFETIME.
func seconds(d time.Duration) uint32 {
	return uint32((d + time.Second - 1) / time.Second)
}

// lifetime computes the lifetime a request asks for (RFC 8656 sections 7.2
// and 7.3): the default without LIFETIME, else the request's bounded by the
// maximum and raised to the default; zero only for a Refresh that asks for
// it. ok is false for a malformed LIFETIME.
func (s *Server) lifetime(m *message, refresh bool) (d time.Duration, ok bool) {
	v, has := m.get(attrLifetime)
	if !has {
		return s.cfg.DefaultLifetime, true
	}
	secs, err := parseUint32(v)
	if err != nil {
		return 0, false
	}
	if secs == 0 && refresh {
		return 0, true
	}
	d = min(time.Duration(secs)*time.Second, s.cfg.MaxLifetime)
	return max(d, s.cfg.DefaultLifetime), true
}

// pickPort chooses a free allocation port at random in the configured
// range (RFC 8656 section 7.2 asks for randomness, against port guessing)
// and binds it through Config.Bind, trying other ports when that fails.
func (s *Server) pickPort(want4, want6, even, reserveNext bool) (uint16, bool) {
	lo, hi := int(s.cfg.PortMin), int(s.cfg.PortMax)
	size := hi - lo + 1
	if len(s.ports)+len(s.reserved) >= size {
		return 0, false
	}
	start := int(s.randUint32() % uint32(size))
	attempts := 0
	for i := 0; i < size && attempts < maxBindAttempts; i++ {
		p := lo + (start+i)%size
		if even && p%2 != 0 || s.portTaken(uint16(p)) {
			continue
		}
		if reserveNext && (p == hi || s.portTaken(uint16(p+1))) {
			continue
		}
		attempts++
		if s.bind(uint16(p), want4, want6) {
			return uint16(p), true
		}
	}
	return 0, false
}

func (s *Server) portTaken(p uint16) bool {
	if _, ok := s.ports[p]; ok {
		return true
	}
	_, ok := s.reserved[p]
	return ok
}

// bind asks Config.Bind, if any, to open port for the wanted families.
func (s *Server) bind(port uint16, want4, want6 bool) bool {
	if s.cfg.Bind == nil {
		return true
	}
	s.bindAddrs = s.bindAddrs[:0]
	if want4 {
		s.bindAddrs = append(s.bindAddrs, netip.AddrPortFrom(s.relay4, port))
	}
	if want6 {
		s.bindAddrs = append(s.bindAddrs, netip.AddrPortFrom(s.relay6, port))
	}
	if err := s.cfg.Bind(s.bindAddrs); err != nil {
		s.stats.bindFailures++
		return false
	}
	return true
}

// reserve holds port for reservationLifetime and returns its token.
func (s *Server) reserve(port uint16, ipv6 bool, now time.Time) [8]byte {
	var token [8]byte
	_, err := io.ReadFull(s.rand, token[:])
	if _, dup := s.reservations[token]; err != nil || dup {
		// A random source that failed or repeats itself: a counter is
		// unique, if guessable.
		t := s.nextTxn()
		copy(token[:], t[4:])
	}
	s.reservations[token] = reservation{port: port, ipv6: ipv6, expires: now.Add(reservationLifetime)}
	s.reserved[port] = token
	s.push(timer{at: now.Add(reservationLifetime), kind: timerReservation, token: token})
	return token
}

func (s *Server) unreserve(token [8]byte) {
	if res, ok := s.reservations[token]; ok {
		delete(s.reservations, token)
		delete(s.reserved, res.port)
	}
}

// handleRefresh implements RFC 8656 section 7.3.
func (s *Server) handleRefresh(r *request) {
	a := s.requestAllocation(r)
	if a == nil {
		return
	}
	family := -1 // both
	if v, ok := r.m.get(attrRequestedAddressFamily); ok {
		fam, err := parseFamily(v)
		switch {
		case err != nil:
			s.errorResponse(r, 400)
			return
		case fam == familyIPv4 && a.relayed[0].IsValid():
			family = 0
		case fam == familyIPv6 && a.relayed[1].IsValid():
			family = 1
		default:
			s.errorResponse(r, 443)
			return
		}
	}
	lifetime, ok := s.lifetime(r.m, true)
	if !ok {
		s.errorResponse(r, 400)
		return
	}
	switch {
	case lifetime > 0:
		a.expires = r.now.Add(lifetime)
		s.schedule(&a.timerAt, timer{at: a.expires, kind: timerAllocation, a: a})
	case family >= 0 && a.relayed[1-family].IsValid():
		// Lifetime 0 for one family of a dual-stack allocation: drop
		// that family, keep the other.
		s.deleteFamily(a, family, r.out)
	default:
		s.deleteAllocation(a, r.out)
	}
	w := s.begin(r, classSuccess)
	w.addUint32(attrLifetime, seconds(lifetime))
	s.finish(r, 200)
}

// deleteAllocation ends a, telling the I/O layer to remove its bindings and
// close its sockets.
func (s *Server) deleteAllocation(a *allocation, out *Output) {
	if a.deleted {
		return
	}
	for _, ch := range a.channels() {
		s.uninstall(a, ch, out)
	}
	s.stats.permissions -= len(a.perms)
	s.stats.channels -= len(a.chanByNum)
	for i, rel := range a.relayed {
		if rel.IsValid() {
			s.closeRelayed(a, i, out)
		}
	}
	delete(s.allocs, a.ft)
	delete(s.ports, a.port)
	if s.perUser[a.user]--; s.perUser[a.user] <= 0 {
		delete(s.perUser, a.user)
	}
	a.deleted = true
	s.stats.allocations--
}

// deleteFamily removes one family of a dual-stack allocation with its
// permissions and channels.
func (s *Server) deleteFamily(a *allocation, family int, out *Output) {
	for _, ch := range a.channels() {
		if familyIndex(ch.peer.Addr()) == family {
			s.uninstall(a, ch, out)
			delete(a.chanByNum, ch.number)
			delete(a.chanByPeer, ch.peer)
			s.stats.channels--
		}
	}
	for ip := range a.perms {
		if familyIndex(ip) == family {
			delete(a.perms, ip)
			s.stats.permissions--
		}
	}
	s.closeRelayed(a, family, out)
}

func (s *Server) closeRelayed(a *allocation, family int, out *Output) {
	rel := a.relayed[family]
	delete(s.byRelayed, rel)
	a.relayed[family] = netip.AddrPort{}
	out.Events = append(out.Events, Event{
		Kind:     AllocationDeleted,
		Binding:  Binding{Client: a.ft.client, Server: a.ft.server, Relayed: rel},
		Username: a.username,
	})
}
