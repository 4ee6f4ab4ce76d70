package proto

import (
	"container/heap"
	"net/netip"
	"time"
)

// timerKind says what a timer expires.
type timerKind uint8

const (
	timerAllocation timerKind = iota
	timerPermission
	timerChannel
	timerCooldown
	timerReservation
)

// timer is an expiry to check at a time. Timers are never cancelled: one
// whose object has since been refreshed finds it not due and re-arms at the
// new expiry; one whose object is gone does nothing. An object has at most
// one timer pending at a time (see schedule), so however often a client
// refreshes, the heap holds about one timer per object.
type timer struct {
	at      time.Time
	seq     uint64 // ties broken in push order, so events are deterministic
	kind    timerKind
	a       *allocation
	ip      netip.Addr
	channel uint16
	token   [8]byte
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{} // drop the allocation pointer
	*h = old[:len(old)-1]
	return t
}

// schedule arms t for an object whose pending timer fires at *pending (zero
// for none), unless that one fires no later than t would.
func (s *Server) schedule(pending *time.Time, t timer) {
	if !pending.IsZero() && !t.at.Before(*pending) {
		return
	}
	*pending = t.at
	s.push(t)
}

// fired notes that t, perhaps the object's pending timer, has fired.
func fired(pending *time.Time, t timer) {
	if pending.Equal(t.at) {
		*pending = time.Time{}
	}
}

func (s *Server) push(t timer) {
	s.stats.timerSeq++
	t.seq = s.stats.timerSeq
	heap.Push(&s.timers, t)
}

func (s *Server) fireTimers(now time.Time, out *Output) {
	for len(s.timers) > 0 && !s.timers[0].at.After(now) {
		t := heap.Pop(&s.timers).(timer)
		switch t.kind {
		case timerAllocation:
			a := t.a
			fired(&a.timerAt, t)
			switch {
			case a.deleted:
			case !now.Before(a.expires):
				s.deleteAllocation(a, out)
			default:
				s.schedule(&a.timerAt, timer{at: a.expires, kind: timerAllocation, a: a})
			}
		case timerPermission:
			s.expirePermission(t, now, out)
		case timerChannel:
			s.expireChannel(t, now, out)
		case timerCooldown:
			if ch := t.a.chanByNum[t.channel]; !t.a.deleted && ch != nil && !now.Before(ch.expires.Add(ChannelCooldown)) {
				delete(t.a.chanByNum, ch.number)
				delete(t.a.chanByPeer, ch.peer)
				s.stats.channels--
			}
		case timerReservation:
			if res, ok := s.reservations[t.token]; ok && !now.Before(res.expires) {
				s.unreserve(t.token)
			}
		}
	}
}

// expirePermission ends a's permission for ip if it is due, and with it
// the data-plane bindings of channels to ip (which stay bound: a new
// permission brings them back).
func (s *Server) expirePermission(t timer, now time.Time, out *Output) {
	a, ip := t.a, t.ip
	p := a.perms[ip]
	if a.deleted || p == nil {
		return
	}
	fired(&p.timerAt, t)
	if now.Before(p.expires) {
		s.schedule(&p.timerAt, timer{at: p.expires, kind: timerPermission, a: a, ip: ip})
		return
	}
	delete(a.perms, ip)
	s.stats.permissions--
	for _, ch := range a.channels() {
		if ch.peer.Addr() == ip {
			s.uninstall(a, ch, out)
		}
	}
}

// expireChannel ends a channel binding if it is due; its number and peer
// stay reserved to each other for ChannelCooldown.
func (s *Server) expireChannel(t timer, now time.Time, out *Output) {
	a, number := t.a, t.channel
	ch := a.chanByNum[number]
	if a.deleted || ch == nil {
		return
	}
	fired(&ch.timerAt, t)
	if now.Before(ch.expires) {
		s.schedule(&ch.timerAt, timer{at: ch.expires, kind: timerChannel, a: a, channel: number})
		return
	}
	s.uninstall(a, ch, out)
	s.push(timer{at: ch.expires.Add(ChannelCooldown), kind: timerCooldown, a: a, channel: number})
}
