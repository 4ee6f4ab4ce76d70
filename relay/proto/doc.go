// Package proto is relaybox's TURN server core (RFC 8656 over UDP, with
// STUN per RFC 8489): a state machine that takes datagrams and the current
// time and returns datagrams to send and events for the data plane. It owns
// no socket and no clock, so every case, hours of expiry included, is tested
// by calling it.
//
// # Driving a Server
//
// The I/O layer owns the sockets: one per listen address, and one per
// allocation port and family. It calls
//
//   - HandleClient for every datagram on a listen address (STUN, ChannelData),
//   - HandlePeer for every datagram on an allocation's relayed address,
//   - HandleTimeout when Deadline has passed (re-read Deadline after every call),
//
// each with the time now and an *Output. Then it acts on the Output: first
// every Event in order (open or close allocation sockets, write or delete
// data-plane bindings), then every Transmit in order (send Payload from
// From to To). Events first is what puts a channel binding into the XDP maps
// before the ChannelBind success response leaves. Then Reset the Output.
//
// Allocation ports come from Config.PortMin..PortMax. The core picks a free
// one at random (it knows which ports its allocations hold) and, if
// Config.Bind is set, asks the I/O layer to open it right then; a refusal
// makes it try another port. AllocationCreated and AllocationDeleted events
// carry each relayed address, for the I/O layer to open (if it has no Bind)
// and close sockets and to route what they receive to HandlePeer.
//
// # Files
//
//   - server.go: Server, New and the entry points.
//   - request.go: request dispatch, authentication, response building.
//   - allocation.go: Allocate and Refresh, allocation state, ports.
//   - permission.go: CreatePermission, ChannelBind, Send, ChannelData.
//   - timers.go: expiry.
//   - limits.go: bandwidth and unauthenticated-answer budgets.
//   - message.go, attrs.go, channeldata.go: the wire formats.
//   - output.go: what comes out. stats.go: counters and listings.
//   - config.go: Config and its validation.
//
// Credentials and nonces are package auth's; which peers may be reached is
// package policy's.
package proto
