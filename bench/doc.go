// Package bench is relaybox's side-by-side benchmark: `make bench` runs it
// (through cmd/relaybench) and writes results.md and results.svg here.
//
// It is a top-level folder, beside the six of the design, because it is not
// part of the relay: it measures relaybox against other TURN servers
// (coturn, pion/turn), drives them all through one topology, and carries its
// own load generator, sink and a small pion/turn server (cmd/pionturn). None
// of that belongs in relay/, bpf/ or image/, and none of it ships.
//
// # The topology
//
// One set of network namespaces, shared by every server, addresses from the
// benchmarking range only (topology.go):
//
//	client  c0 198.18.0.2 ── rc 198.18.0.1 ┐
//	                                       router (forwarding)
//	relay   r0 198.18.1.2 ── rr 198.18.1.1 ┤    the relay's one NIC
//	peer    p0 198.18.2.2 ── rp 198.18.2.1 ┘
//
// Every server listens on 198.18.1.2:3478 and relays from 198.18.1.2 (ports
// 40000-59999), so a client's ChannelData crosses the router twice: client →
// relay, relay → peer. rr, the router's end of the relay's link, always has
// an XDP program (wire.go): XDP_TX from the relay's NIC vanishes on a veth
// whose peer has none, and the program counts what the relay sends towards
// the peer (and, for the in-kernel generator, drops it there). r0 acts as
// a server's NIC does, for every server alike: GRO on, NAPI in a thread of
// its own, so that a poll finds the datagrams that queued since the last
// one, as a busy NIC's does (a veth's sender otherwise polls after every
// datagram, and GRO never finds two together), and a GRO flush timeout of
// 50 µs standing for a NIC's interrupt coalescing. The in-kernel
// generator's runs turn the thread off: they need the path charged to the
// generator's thread.
//
// # What is measured, and how
//
//   - Relayed ChannelData (relay.go, gen.go, sink.go). For each server, flows
//     are allocated through pion/turn's client with TURN REST credentials and
//     bound to a channel towards the sink in the peer namespace; then the
//     generator sends ChannelData from the flows' own sockets with sendmmsg
//     (x/net's WriteBatch), paced at an offered rate, and the sink counts
//     with recvmmsg and MSG_TRUNC, copying no payload. search.go finds the
//     highest offered rate with under 1% loss at the sink by steps (doubling,
//     then bisection); a search that the generator's ceiling or the sink's
//     overflowing socket stopped, not the server, is marked as a lower bound
//     (≥). Delivered pps is the most the sink counted per second in any
//     step. Server CPU per relayed packet is the server process's
//     utime+stime (/proc/<pid>/stat) over the highest lossless step, divided
//     by the packets the sink counted. On veth, the sender of a packet runs
//     the receiver's softirq in its own context, and this kernel (no
//     IRQ_TIME_ACCOUNTING) charges that to the sender: a user-space relay's
//     figure includes its sends' trip through the router to the sink, and
//     excludes its receive path, which the generator pays. Every user-space
//     server is measured the same way.
//   - The XDP path (kernel.go). It is measured like the others too, but a
//     socket generator tops out near 0.5 Mpps here, far below the kernel
//     path, so its capacity comes from an in-kernel generator:
//     BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on rr (as
//     xdp-trafficgen does) sends the flows' ChannelData frames straight
//     into the relay's NIC, as fast as the path takes them, and the program
//     on rr counts and drops what the relay sends back towards the peer.
//     The relay's XDP program rewrites each frame in place and the veth
//     hands the page back to the generator's pool, so each frame's
//     generator program writes its headers back before sending it again.
//     The NET_RX softirq that carries the frames runs in the generator's
//     thread as its syscall returns, and this kernel charges it to that
//     thread, so frames per CPU-second of the thread is what one core
//     relays, and its inverse the whole path's softirq time per packet
//     (generator, two veth hops, the program, the counter). The same run
//     with a bare MAC-swap XDP_TX program on the relay's NIC is the rig's
//     floor. The program's own time per packet comes from the kernel's BPF
//     statistics (BPF_ENABLE_STATS, on only for a second pass, since its
//     clock reads would count as the path's cost). The kernel's figure is
//     what the XDP targets use.
//   - Allocations per second (alloc.go): a lean STUN client (pion/stun
//     messages) makes N allocations with REST credentials from N sockets,
//     C at a time, each an unauthenticated Allocate, the 401 and the
//     authenticated Allocate, as every client does. The same run gives
//     user-space memory per allocation: the server's RSS growth from before
//     to after the N allocations, divided by N.
//   - Kernel memory per binding (kmem.go): the bindings map's memlock, from
//     its fdinfo, at two sizes, per binding; and key plus value sizes times
//     the two entries a binding takes, the floor. The map is preallocated,
//     so this is measured once: it does not vary.
//   - Program.Run per XDP path (paths.go): bpf's BenchmarkPaths, run with
//     go test, parsed; each path's ratio to the MAC-swap program of the same
//     run, measured in turns with it (blocks of 1000 packets) so that a
//     host whose speed changes during the run moves both. It measures
//     every path one BPF_PROG_TEST_RUN call per packet, beside MAC swap, a
//     pass-only program and the least a relay path does
//     (floor/relay_minimum); then the relay paths whole (whole/...): the
//     in-kernel generator sends each path's frame into the relay's NIC from
//     the far end of its veth, the program runs there in native mode, an
//     XDP_DROP program takes the frame at the far end of the NIC it leaves
//     by, and the generator thread's CPU time per frame is the figure, MAC
//     swap's measured the same way. The 2× target is judged on the calls.
//   - Boot (boot.go): QEMU (TCG) with the qemu board's kernel and initramfs
//     and a virtio-net NIC on a tap in a namespace; seconds from QEMU's start
//     to the "relaybox: ready" line, and init's share: the init=<seconds>s
//     init prints on the ready line if it does, else from init's first
//     console line to the ready line by the host's clock.
//
// Every figure is the median of the runs (Program.Run: of go test -count;
// boot: of the boots) with min and max, and every
// comparison is a ratio taken run by run (run k of one server against run k
// of the other) before its median is taken (stats.go). Servers take turns
// within each run, so a noisy minute hurts all of them.
//
// relaybox's XDP column runs `relay --xdp IFACE`; with a relay that lands in
// generic mode, the column says why it is not measured (generic XDP is
// never benchmarked as the fast path).
package bench
