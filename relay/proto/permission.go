package proto

import (
	"net/netip"
	"time"

	"github.com/relaybox/relaybox/relay/policy"
)

// handleCreatePermission implements RFC 8656 section 9.2. Every
// XOR-PEER-ADDRESS is checked before any is installed: one refused peer
// fails the request and installs nothing.
func (s *Server) handleCreatePermission(r *request) {
	a := s.requestAllocation(r)
	if a == nil {
		return
	}
	n, added := 0, 0
	for _, at := range r.m.attrs {
		if at.typ != attrXORPeerAddress {
			continue
		}
		n++
		peer, err := peerAddress(r.m, r.m.value(at))
		if err != nil {
			s.errorResponse(r, 400)
			return
		}
		if !a.relayedFor(peer.Addr()).IsValid() {
			s.errorResponse(r, 443)
			return
		}
		if v := s.policy.Check(peer.Addr()); !v.Allowed() {
			s.refused(v)
			s.errorResponse(r, 403)
			return
		}
		if _, ok := a.perms[peer.Addr()]; !ok {
			added++
		}
	}
	if n == 0 {
		s.errorResponse(r, 400)
		return
	}
	if len(a.perms)+added > s.cfg.MaxPermissions {
		s.errorResponse(r, 508)
		return
	}
	for _, at := range r.m.attrs {
		if at.typ == attrXORPeerAddress {
			peer, _ := peerAddress(r.m, r.m.value(at))
			s.permit(a, peer.Addr(), r.now, r.out)
		}
	}
	s.begin(r, classSuccess)
	s.finish(r, 200)
}

// handleChannelBind implements RFC 8656 section 11.2 (section 12 for the
// rebinding rules).
func (s *Server) handleChannelBind(r *request) {
	a := s.requestAllocation(r)
	if a == nil {
		return
	}
	numV, ok := r.m.get(attrChannelNumber)
	if !ok {
		s.errorResponse(r, 400)
		return
	}
	number, err := parseChannelNumber(numV)
	if err != nil || number < MinChannel || number > MaxChannel {
		s.errorResponse(r, 400)
		return
	}
	peerV, ok := r.m.get(attrXORPeerAddress)
	if !ok {
		s.errorResponse(r, 400)
		return
	}
	peer, err := peerAddress(r.m, peerV)
	if err != nil {
		s.errorResponse(r, 400)
		return
	}
	if !a.relayedFor(peer.Addr()).IsValid() {
		s.errorResponse(r, 443)
		return
	}
	if v := s.policy.CheckAddrPort(peer); !v.Allowed() {
		s.refused(v)
		s.errorResponse(r, 403)
		return
	}
	// A number bound (or cooling down) to another peer, or a peer bound
	// (or cooling down) to another number, cannot be rebound.
	ch := a.chanByNum[number]
	if ch != nil && ch.peer != peer {
		s.errorResponse(r, 400)
		return
	}
	if other := a.chanByPeer[peer]; other != nil && other.number != number {
		s.errorResponse(r, 400)
		return
	}
	if _, ok := a.perms[peer.Addr()]; !ok && len(a.perms) >= s.cfg.MaxPermissions {
		s.errorResponse(r, 508)
		return
	}
	if ch == nil {
		ch = &channel{number: number, peer: peer}
		a.chanByNum[number] = ch
		a.chanByPeer[peer] = ch
		s.stats.channels++
	}
	ch.expires = r.now.Add(s.cfg.ChannelLifetime)
	s.schedule(&ch.timerAt, timer{at: ch.expires, kind: timerChannel, a: a, channel: number})
	// Binding a channel installs or refreshes the permission for its peer
	// (RFC 8656 section 11.2), which may install this channel and others.
	refresh := ch.installed
	s.permit(a, peer.Addr(), r.now, r.out)
	if refresh {
		r.out.Events = append(r.out.Events, Event{Kind: BindingRefreshed, Binding: a.binding(ch), Username: a.username})
	} else if !ch.installed {
		s.install(a, ch, r.out)
	}
	s.begin(r, classSuccess)
	s.finish(r, 200)
}

// permit installs or refreshes the permission of a for ip. A permission
// coming (back) to life installs the bound channels to ip in the data plane.
func (s *Server) permit(a *allocation, ip netip.Addr, now time.Time, out *Output) {
	p := a.perms[ip]
	live := p != nil && now.Before(p.expires)
	if p == nil {
		p = &permission{}
		a.perms[ip] = p
		s.stats.permissions++
	}
	p.expires = now.Add(s.cfg.PermissionLifetime)
	s.schedule(&p.timerAt, timer{at: p.expires, kind: timerPermission, a: a, ip: ip})
	if live {
		return
	}
	for _, ch := range a.channels() {
		if ch.peer.Addr() == ip && now.Before(ch.expires) && !ch.installed {
			s.install(a, ch, out)
		}
	}
}

func (s *Server) install(a *allocation, ch *channel, out *Output) {
	ch.installed = true
	s.stats.bindings++
	out.Events = append(out.Events, Event{Kind: BindingCreated, Binding: a.binding(ch), Username: a.username})
}

func (s *Server) uninstall(a *allocation, ch *channel, out *Output) {
	if !ch.installed {
		return
	}
	ch.installed = false
	s.stats.bindings--
	out.Events = append(out.Events, Event{Kind: BindingDeleted, Binding: a.binding(ch), Username: a.username})
}

func (s *Server) refused(v policy.Verdict) {
	if int(v) < len(s.stats.refused) {
		s.stats.refused[v]++
	}
}

// handleSend implements RFC 8656 section 10.2: relay DATA to the peer if
// everything checks out, else drop silently (indications get no answer).
func (s *Server) handleSend(m *message, ft fiveTuple, now time.Time, out *Output) {
	a := s.lookup(ft, now, out)
	if a == nil {
		s.stats.drop(dropNoAllocation)
		return
	}
	// An indication cannot be answered with a 420: one with attributes
	// the relay must understand but does not is discarded (RFC 8489 6.3.1).
	for _, at := range m.attrs {
		if !known(at.typ) {
			s.stats.drop(dropMalformed)
			return
		}
	}
	peerV, ok := m.get(attrXORPeerAddress)
	data, ok2 := m.get(attrData)
	if !ok || !ok2 {
		s.stats.drop(dropMalformed)
		return
	}
	peer, err := peerAddress(m, peerV)
	if err != nil {
		s.stats.drop(dropMalformed)
		return
	}
	from := a.relayedFor(peer.Addr())
	if !from.IsValid() {
		s.stats.drop(dropFamily)
		return
	}
	if v := s.policy.CheckAddrPort(peer); !v.Allowed() {
		s.refused(v)
		s.stats.drop(dropForbidden)
		return
	}
	if p := a.perms[peer.Addr()]; p == nil || !now.Before(p.expires) {
		s.stats.drop(dropNoPermission)
		return
	}
	if !s.takeBandwidth(a, len(data), now) {
		return
	}
	_, df := m.find(attrDontFragment)
	out.Transmits = append(out.Transmits, Transmit{From: from, To: peer, Payload: data, DontFragment: df || a.dontFragment})
	s.stats.relay(PathSendToPeer, len(data))
}

// handleChannelData relays a client's ChannelData to the peer bound to its
// channel (RFC 8656 section 12.5). This is the hot path: no allocation.
func (s *Server) handleChannelData(pkt []byte, ft fiveTuple, now time.Time, out *Output) {
	number, data, ok := parseChannelData(pkt)
	if !ok {
		s.stats.drop(dropMalformed)
		return
	}
	a := s.lookup(ft, now, out)
	if a == nil {
		s.stats.drop(dropNoAllocation)
		return
	}
	ch := a.chanByNum[number]
	if ch == nil || !now.Before(ch.expires) {
		s.stats.drop(dropNoChannel)
		return
	}
	if p := a.perms[ch.peer.Addr()]; p == nil || !now.Before(p.expires) {
		s.stats.drop(dropNoPermission)
		return
	}
	if !s.takeBandwidth(a, len(data), now) {
		return
	}
	out.Transmits = append(out.Transmits, Transmit{
		From:         a.relayedFor(ch.peer.Addr()),
		To:           ch.peer,
		Payload:      data,
		DontFragment: a.dontFragment,
	})
	s.stats.relay(PathChannelToPeer, len(data))
}
