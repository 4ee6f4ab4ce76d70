// Package relay is relaybox's STUN/TURN server.
//
// One file per concern, so the protocol is tested without a network:
//   - stun.go: Handler, the sans-IO core. A datagram and its source in, the
//     datagram to send back out; no sockets, no clock. Today it answers STUN
//     Binding (RFC 8489); the TURN methods (RFC 8656) grow here.
//   - server.go: Serve, the I/O loop around the core: one UDP socket per
//     listen address, buffers reused so a packet costs no allocation.
//   - config.go: Config, the relay's settings, each one a flag of the same
//     name, which PID 1 also uses to check relaybox.<key>=<value> from the
//     kernel command line.
//
// The relay binary is cmd/relay.
package relay
