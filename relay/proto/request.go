package proto

import (
	"bytes"
	"net/netip"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/relaybox/relaybox/relay/auth"
	"github.com/relaybox/relaybox/relay/policy"
)

// request is one STUN request being answered.
type request struct {
	m   *message
	ft  fiveTuple
	now time.Time
	out *Output

	// Set once authenticated.
	acct   auth.Account
	key    []byte
	sha256 bool // answer with MESSAGE-INTEGRITY-SHA256
}

// handleSTUN handles a datagram that looks like STUN.
func (s *Server) handleSTUN(pkt []byte, ft fiveTuple, now time.Time, out *Output) {
	m := &s.req
	defer func() { m.raw = nil }() // never keep the caller's buffer
	if err := m.parse(pkt); err != nil {
		s.stats.drop(dropMalformed)
		return
	}
	switch m.class {
	case classIndication:
		if m.method == methodSend {
			s.handleSend(m, ft, now, out)
		} else {
			s.stats.drop(dropUnexpected)
		}
		return
	case classRequest:
	default:
		s.stats.drop(dropUnexpected)
		return
	}
	s.sources.received(ft.client.Addr(), len(pkt), now)
	r := &request{m: m, ft: ft, now: now, out: out}
	switch m.method {
	case methodBinding:
		s.handleBinding(r)
	case methodAllocate, methodRefresh, methodCreatePermission, methodChannelBind:
		if !s.authenticate(r) {
			return
		}
		if s.unknownAttributes(r) {
			return
		}
		switch m.method {
		case methodAllocate:
			s.handleAllocate(r)
		case methodRefresh:
			s.handleRefresh(r)
		case methodCreatePermission:
			s.handleCreatePermission(r)
		case methodChannelBind:
			s.handleChannelBind(r)
		}
	default:
		// An unknown method, or Send/Data sent as a request.
		s.unauthError(r, 400, false)
	}
}

// handleBinding answers a Binding request (RFC 8489): no authentication,
// the client's reflexive address back.
func (s *Server) handleBinding(r *request) {
	w := s.begin(r, classSuccess)
	if s.collectUnknown(r.m) {
		w = s.begin(r, classError)
		w.addErrorCode(420, "")
		w.addUnknownAttributes(s.unknown)
	} else {
		w.addXORAddress(attrXORMappedAddress, r.ft.client)
		if sw := s.cfg.Software; sw != "" {
			fp := 0
			if r.m.hasFingerprint {
				fp = attrHeaderLen + 4
			}
			if len(w.bytes())+attrHeaderLen+padded(len(sw))+fp <= len(r.m.raw) {
				w.addString(attrSoftware, sw)
			}
		}
	}
	s.sendUnauth(r, true)
}

// authenticate runs the long-term credential checks of RFC 8489 section
// 9.2.4, in the order given there, answering the request itself when a
// check fails. On success r carries the account and key for the response.
func (s *Server) authenticate(r *request) bool {
	m := r.m
	mi, hasMI := m.find(attrMessageIntegrity)
	mi256, hasMI256 := m.find(attrMessageIntegritySHA256)
	if !hasMI && !hasMI256 {
		s.challenge(r, 401)
		return false
	}
	username, hasUsername := m.get(attrUsername)
	_, hasUserhash := m.find(attrUserhash)
	realm, hasRealm := m.get(attrRealm)
	nonce, hasNonce := m.get(attrNonce)
	if !hasUsername && !hasUserhash || !hasRealm || !hasNonce {
		s.stats.authFailures++
		s.unauthError(r, 400, false)
		return false
	}
	alg, negotiated := auth.MD5, false
	if auth.HasPasswordAlgorithms(nonce) {
		pas, hasPAS := m.get(attrPasswordAlgorithms)
		pa, hasPA := m.get(attrPasswordAlgorithm)
		if hasPAS || hasPA {
			// A bid-down: the offer was changed on the way, or half of
			// the negotiation is missing.
			ok := hasPAS && hasPA && bytes.Equal(pas, offeredAlgorithms)
			if ok {
				a, err := parsePasswordAlgorithm(pa)
				in, err2 := passwordAlgorithmsContain(pas, a)
				ok = err == nil && err2 == nil && in && a.Supported()
				alg = a
			}
			if !ok {
				s.stats.authFailures++
				s.unauthError(r, 400, false)
				return false
			}
			negotiated = true
		}
	}
	if !hasUsername || !utf8.Valid(username) {
		s.stats.authFailures++
		s.challenge(r, 401) // USERHASH: this relay offers no username anonymity
		return false
	}
	name := string(username)
	passwords, acct, err := s.store.Passwords(name, r.now, s.passwords[:0])
	s.passwords = passwords[:0]
	if err != nil || string(realm) != s.store.Realm() {
		s.stats.authFailures++
		s.challenge(r, 401)
		return false
	}
	check := mi
	if hasMI256 {
		check = mi256 // RFC 8489: MESSAGE-INTEGRITY-SHA256 wins when both are there
	}
	var key []byte
	for _, pw := range passwords {
		k := auth.Key(alg, name, s.store.Realm(), pw)
		if m.checkIntegrity(check, k) {
			key = k
			break
		}
	}
	clear(passwords) // drop references to password bytes
	if key == nil {
		s.stats.authFailures++
		s.challenge(r, 401)
		return false
	}
	if !s.nonces.Valid(nonce, r.ft.client, r.now) {
		s.challenge(r, 438)
		return false
	}
	r.acct, r.key = acct, key
	// RFC 8489 section 9.2.4: MESSAGE-INTEGRITY-SHA256 in every response
	// once PASSWORD-ALGORITHM was negotiated; MESSAGE-INTEGRITY for an
	// RFC 5389 client. A client that sent only the SHA-256 one gets it back.
	r.sha256 = negotiated || !hasMI
	return true
}

// unknownAttributes answers 420 when the request has comprehension-
// required attributes the relay does not know (RFC 8489 section 6.3.1).
func (s *Server) unknownAttributes(r *request) bool {
	if !s.collectUnknown(r.m) {
		return false
	}
	w := s.begin(r, classError)
	w.addErrorCode(420, errorReasons[420])
	w.addUnknownAttributes(s.unknown)
	s.finish(r, 420)
	return true
}

func (s *Server) collectUnknown(m *message) bool {
	s.unknown = s.unknown[:0]
	for _, a := range m.attrs {
		if !known(a.typ) && !slices.Contains(s.unknown, a.typ) {
			s.unknown = append(s.unknown, a.typ)
		}
	}
	return len(s.unknown) > 0
}

// begin starts the response to r in the server's scratch builder.
func (s *Server) begin(r *request, c class) *builder {
	s.w.b = s.w.b[:0]
	s.w.begin(r.m.method, c, r.m.txn())
	return &s.w
}

// errorResponse answers an authenticated request with an error.
func (s *Server) errorResponse(r *request, code int) {
	w := s.begin(r, classError)
	w.addErrorCode(code, errorReasons[code])
	s.finish(r, code)
}

// finish completes an authenticated response (SOFTWARE, integrity,
// FINGERPRINT) and queues it.
func (s *Server) finish(r *request, code int) {
	w := &s.w
	if s.cfg.Software != "" {
		w.addString(attrSoftware, s.cfg.Software)
	}
	w.addIntegrity(r.key, r.sha256)
	w.addFingerprint()
	s.queue(r, w.bytes())
	s.stats.response(code)
}

// challenge answers 401 or 438 with what a client needs to authenticate:
// REALM, a fresh NONCE, PASSWORD-ALGORITHMS.
func (s *Server) challenge(r *request, code int) {
	s.unauthError(r, code, true)
}

// unauthError answers a request that is not authenticated: no reason
// phrase and no SOFTWARE, to stay small, and subject to the byte budget.
func (s *Server) unauthError(r *request, code int, challenge bool) {
	w := s.begin(r, classError)
	w.addErrorCode(code, "")
	if challenge {
		w.addString(attrRealm, s.store.Realm())
		v := w.reserve(attrNonce, auth.NonceLen)
		s.nonces.Append(v[:0], r.ft.client, r.now)
		w.add(attrPasswordAlgorithms, offeredAlgorithms)
	}
	if s.sendUnauth(r, false) {
		s.stats.response(code)
	}
}

// sendUnauth adds FINGERPRINT when the request had one and queues the
// unauthenticated response if the source's budget allows.
func (s *Server) sendUnauth(r *request, binding bool) bool {
	w := &s.w
	if r.m.hasFingerprint {
		w.addFingerprint()
	}
	if reason := s.sources.answer(r.ft.client.Addr(), len(w.bytes()), r.now, binding); reason != dropNone {
		s.stats.drop(reason)
		return false
	}
	s.queue(r, w.bytes())
	if binding {
		s.stats.binding++
	}
	return true
}

// queue copies a response into the output.
func (s *Server) queue(r *request, b []byte) {
	p := r.out.grow(len(b))
	copy(p, b)
	r.out.Transmits = append(r.out.Transmits, Transmit{From: r.ft.server, To: r.ft.client, Payload: p})
}

// peerAddress parses a XOR-PEER-ADDRESS value into the address it means:
// IPv4-mapped and IPv4-compatible forms become IPv4, before any check.
func peerAddress(m *message, v []byte) (netip.AddrPort, error) {
	a, err := parseXORAddress(v, m.txn())
	if err != nil {
		return a, err
	}
	return netip.AddrPortFrom(policy.Normalize(a.Addr()), a.Port()), nil
}
