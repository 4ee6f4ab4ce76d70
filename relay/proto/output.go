package proto

import (
	"fmt"
	"net/netip"
)

// Output collects what the Server wants done. Every Handle call appends to
// it; the caller acts on it, then calls Reset and reuses it, so a busy relay
// allocates nothing once its Output has grown to its working size.
//
// The caller applies every Event before sending any Transmit. That one rule
// gives the ordering RFC 8656 and the data plane need: a channel binding is
// in the data plane before the ChannelBind success response leaves, and an
// allocation's sockets are told about before its first datagram.
type Output struct {
	// Events are changes the I/O layer must apply to sockets and the data
	// plane, in order.
	Events []Event
	// Transmits are datagrams to send, in order.
	Transmits []Transmit

	arena []byte
}

// Reset empties o for reuse. Payloads of the Transmits it held become
// invalid: Reset only after they are sent.
func (o *Output) Reset() {
	clear(o.Events) // drop the strings they hold
	o.Events = o.Events[:0]
	o.Transmits = o.Transmits[:0]
	o.arena = o.arena[:0]
}

// minArena is the first arena's size: a batch of full-size datagrams.
const minArena = 64 << 10

// grow returns n bytes of o's arena for a payload. When the arena is full a
// bigger one replaces it; earlier payloads keep pointing into the old one,
// which stays valid, so Transmits never move.
func (o *Output) grow(n int) []byte {
	if cap(o.arena)-len(o.arena) < n {
		o.arena = make([]byte, 0, max(2*cap(o.arena), n, minArena))
	}
	start := len(o.arena)
	o.arena = o.arena[:start+n]
	return o.arena[start : start+n : start+n]
}

// Transmit is one datagram to send.
type Transmit struct {
	// From is the local address to send from: a listen address (responses,
	// ChannelData and Data indications to clients) or an allocation's
	// relayed address (datagrams to peers).
	From netip.AddrPort
	// To is the destination.
	To netip.AddrPort
	// Payload is the UDP payload. It points into the datagram given to
	// HandleClient (the data of ChannelData and Send, relayed without a
	// copy) or into the Output; it is valid until that datagram's buffer is
	// reused or the Output is Reset.
	Payload []byte
	// DontFragment asks for the IP DF bit (RFC 8656 DONT-FRAGMENT); only
	// set on datagrams to peers.
	DontFragment bool
}

// EventKind says what an Event is about.
type EventKind uint8

// The events.
const (
	// AllocationCreated: open a UDP socket on Relayed (one event per
	// address family of a dual-stack allocation) and give what arrives on
	// it to HandlePeer. When Config.Bind is set, Bind has already opened it
	// and this only confirms it is in use.
	AllocationCreated EventKind = iota + 1
	// AllocationDeleted: close the socket on Relayed.
	AllocationDeleted
	// BindingCreated: install Binding in the data plane, both directions.
	BindingCreated
	// BindingRefreshed: a ChannelBind renewed Binding; rewrite it in the
	// data plane (it is there already unless the data plane lost it).
	BindingRefreshed
	// BindingDeleted: remove Binding from the data plane. Its channel, its
	// permission or its allocation has ended.
	BindingDeleted
)

var eventNames = [...]string{
	AllocationCreated: "allocation-created",
	AllocationDeleted: "allocation-deleted",
	BindingCreated:    "binding-created",
	BindingRefreshed:  "binding-refreshed",
	BindingDeleted:    "binding-deleted",
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is a change for the I/O layer.
type Event struct {
	Kind EventKind
	// Binding is the binding for Binding* events. For Allocation* events
	// only Client, Server and Relayed are set.
	Binding Binding
	// Username is the allocation's USERNAME, for logs and status.
	Username string
	// DontFragment is set on AllocationCreated when the client asked for
	// DF on everything relayed from this allocation.
	DontFragment bool
}

// Binding is a channel binding as the data plane needs it: both directions
// of a client↔peer flow through one allocation.
//
//	client → relay:  Client → Server, ChannelData on Channel ⇒ Relayed → Peer, the data alone
//	peer → client:   Peer → Relayed ⇒ Server → Client, ChannelData on Channel
type Binding struct {
	Client  netip.AddrPort // the client's transport address
	Server  netip.AddrPort // the listen address the client talks to
	Channel uint16
	Relayed netip.AddrPort // the allocation's relayed address of Peer's family
	Peer    netip.AddrPort
}

func (b Binding) String() string {
	return fmt.Sprintf("%s→%s ch %#04x %s→%s", b.Client, b.Server, b.Channel, b.Relayed, b.Peer)
}
