// Package relay is relaybox's TURN server: the sans-IO core (package proto)
// and everything around it that touches the world.
//
// One file per concern:
//   - server.go: Server, the I/O loop around the core: listen and
//     allocation sockets (socket.go), batched epoll workers (worker.go,
//     batch.go), the timer, and the order events and datagrams go out in.
//   - dataplane.go: DataPlane, where the core's channel bindings go before
//     their ChannelBind success leaves; xdp.go, the XDP data plane that
//     writes them into the kernel's maps (package bpf) and reads its
//     counters back.
//   - config.go, configfile.go: Config, the relay's settings, each one a
//     flag of the same name, a config file key, and on the appliance a
//     relaybox.<key>=<value> kernel parameter (PID 1 checks them with
//     these flags).
//   - status.go, metrics.go, control.go: relay status, /metrics and the
//     control socket.
//   - addresses.go: the relay addresses when none are configured.
//
// The relay binary is cmd/relay.
package relay
