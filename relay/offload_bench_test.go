package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"golang.org/x/net/ipv4"
)

// BenchmarkOffload compares UDP GRO and GSO on and off, side by side in
// one run: one relay process per setting in the same namespace (its CPU
// time is its own), a client sending ChannelData in bursts of equal-size
// datagrams on one channel, and a counting sink at the peer.
//
// The client's veth end is left with nstest's defaults and the relay's
// end does GRO with threaded NAPI (napiGRO), so that the relay's socket
// gets what a busy NIC's poll would give it; the relay's veth towards the
// peer has transmit checksum offload, as NICs do. On a veth the sender
// runs the receiver's softirq: a relay's CPU time includes its datagrams'
// trip to the sink's socket, not its own receive path (the NAPI thread's).
//
//	go test -run '^$' -bench Offload -benchtime 200000x -count 3 ./relay/
func BenchmarkOffload(b *testing.B) {
	tp := newTopology(b)
	napiGRO(b, tp.relay, "r0")
	txChecksum(b, tp.relay, "r1")
	type setup struct {
		name string
		off  offloadSwitch
		port uint16
		proc *exec.Cmd
		rc   *rawClient
		sink *countingSink
	}
	setups := []*setup{
		{name: "off", off: offloadSwitch{}},
		{name: "gro", off: offloadSwitch{gro: true}},
		{name: "gso", off: offloadSwitch{gso: true}},
		{name: "on", off: offloadSwitch{gro: true, gso: true}},
	}
	for i, s := range setups {
		s.port = 3478 + uint16(i)
		s.proc = startOffloadRelay(b, tp, s.off, s.port, 41000+1000*i)
		s.sink = newCountingSink(b, tp, netip.AddrPortFrom(peerIP4, 5000+uint16(i)))
		s.rc = newRawClient(b, udpConn(b, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), netip.AddrPortFrom(listenIP4, s.port), testUser, testPass)
		s.rc.allocate()
		mustSucceed(b, s.rc.do(stun.MethodChannelBind, peerAttr(s.sink.addr), channelNumber(0x4000)))
	}
	napi := napiThreads(b, "r0")
	for _, rate := range []int{0, 40_000} {
		for _, size := range []int{100, 1200} {
			for _, s := range setups {
				name := fmt.Sprintf("max/%dB/%s", size, s.name)
				if rate > 0 {
					name = fmt.Sprintf("%dpps/%dB/%s", rate, size, s.name)
				}
				b.Run(name, func(b *testing.B) {
					offloadLoad(b, s.rc, s.sink, s.proc.Process.Pid, napi, size, rate)
				})
			}
		}
	}
}

// napiThreads are the pids of dev's threaded NAPI kernel threads.
func napiThreads(b *testing.B, dev string) []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(comm), "napi/"+dev+"-") {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		b.Fatalf("no napi/%s- thread", dev)
	}
	return pids
}

// offloadLoad sends b.N ChannelData datagrams of size bytes of data in
// bursts of 64, at rate datagrams per second or as fast as it can (0),
// bounded to 20 s; waits for the sink to stop counting; and reports
// delivered datagrams per second, loss, and per delivered datagram the
// CPU time of the relay, of the NAPI threads that receive for it, and of
// the whole machine.
func offloadLoad(b *testing.B, rc *rawClient, sink *countingSink, pid int, napi []int, size, rate int) {
	const burst = 64
	pkt := channelData(0x4000, make([]byte, size))
	msgs := make([]ipv4.Message, burst)
	to := net.UDPAddrFromAddrPort(rc.server)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{pkt}, Addr: to}
	}
	pc := ipv4.NewPacketConn(rc.c)
	got0, cpu0, busy0, napi0 := sink.n.Load(), processCPU(b, pid), machineBusy(b), threadsCPU(b, napi)
	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	sent := 0
	for sent < b.N && time.Now().Before(deadline) {
		k := min(burst, b.N-sent)
		n, err := pc.WriteBatch(msgs[:k], 0)
		if err != nil {
			b.Fatalf("client sendmmsg: %v", err)
		}
		sent += n
		if rate > 0 {
			due := start.Add(time.Duration(sent) * time.Second / time.Duration(rate))
			time.Sleep(time.Until(due))
		}
	}
	// Until the sink has seen all, or nothing more for 100ms.
	last, lastAt := sink.n.Load(), time.Now()
	for last-got0 < uint64(sent) && time.Since(lastAt) < 100*time.Millisecond {
		time.Sleep(5 * time.Millisecond)
		if n := sink.n.Load(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	b.StopTimer()
	got := last - got0
	cpu := processCPU(b, pid) - cpu0
	busy := machineBusy(b) - busy0
	napiCPU := threadsCPU(b, napi) - napi0
	elapsed := lastAt.Sub(start)
	if got == 0 {
		b.Fatalf("sink got none of %d datagrams", sent)
	}
	b.ReportMetric(float64(got)/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(100*float64(uint64(sent)-got)/float64(sent), "loss%")
	b.ReportMetric(float64(cpu.Microseconds())/float64(got), "relay-µs/pkt")
	b.ReportMetric(float64(busy.Microseconds())/float64(got), "machine-µs/pkt")
	b.ReportMetric(float64(napiCPU.Microseconds())/float64(got), "napi-µs/pkt")
	b.ReportMetric(0, "ns/op")
}

// processCPU is pid's user and system time so far.
func processCPU(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is the 3rd
	// field, utime and stime the 14th and 15th.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	const ticks = 100 // USER_HZ
	return time.Duration(utime+stime) * time.Second / ticks
}

// threadsCPU is the CPU time of pids so far.
func threadsCPU(b *testing.B, pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		sum += processCPU(b, pid)
	}
	return sum
}

// machineBusy is the time every CPU of the machine has spent not idle:
// client, NAPI threads and sink as well as the relay, and whatever else
// runs here (so it is only an indication on a shared machine).
func machineBusy(b *testing.B) time.Duration {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	var total uint64
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle or iowait; no guest (counted in user)
			total += v
		}
	}
	return time.Duration(total) * time.Second / 100
}

// countingSink counts the datagrams that reach addr in the peer
// namespace, with recvmmsg.
type countingSink struct {
	addr netip.AddrPort
	n    atomic.Uint64
}

func newCountingSink(b *testing.B, tp *topology, addr netip.AddrPort) *countingSink {
	c := udpConn(b, tp.peer.Do, addr)
	c.SetReadBuffer(8 << 20)
	s := &countingSink{addr: addr}
	go func() {
		pc := ipv4.NewPacketConn(c)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 2048)}
		}
		for {
			n, err := pc.ReadBatch(msgs, 0)
			if err != nil {
				return
			}
			s.n.Add(uint64(n))
		}
	}()
	return s
}

// startOffloadRelay runs this test binary as a relay in tp's relay
// namespace (TestOffloadRelayProcess) with offload set as off says,
// listening on listenIP4:port, until the benchmark ends.
func startOffloadRelay(b *testing.B, tp *topology, off offloadSwitch, port uint16, portMin int) *exec.Cmd {
	cmd := tp.relay.Command(os.Args[0], "-test.run=^TestOffloadRelayProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("RELAYBOX_OFFLOAD_RELAY=%t,%t,%d,%d", off.gro, off.gso, port, portMin))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the relay's signal to stop
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "relay ready" {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			b.Fatal("relay process ended before ready")
		}
	case <-time.After(10 * time.Second):
		b.Fatal("relay process not ready after 10s")
	}
	go io.Copy(io.Discard, stdout)
	return cmd
}

// TestOffloadRelayProcess is BenchmarkOffload's relay, when run by it.
func TestOffloadRelayProcess(t *testing.T) {
	spec := os.Getenv("RELAYBOX_OFFLOAD_RELAY")
	if spec == "" {
		t.Skip("BenchmarkOffload's relay process")
	}
	var port, portMin int
	if _, err := fmt.Sscanf(strings.ReplaceAll(spec, ",", " "), "%t %t %d %d", &udpOffload.gro, &udpOffload.gso, &port, &portMin); err != nil {
		t.Fatalf("RELAYBOX_OFFLOAD_RELAY=%q: %v", spec, err)
	}
	cfg := testConfig(t, []netip.AddrPort{netip.AddrPortFrom(listenIP4, uint16(port))}, []netip.Addr{relayIP4}, benchmarkingRanges...)
	cfg.PortMin, cfg.PortMax = uint16(portMin), uint16(portMin+999)
	r := startServer(t, cfg, Options{})
	fmt.Println("relay ready")
	io.Copy(io.Discard, os.Stdin)
	var gr, gd, gs, ref uint64
	for _, w := range r.workers {
		gr, gd = gr+w.groReads.Load(), gd+w.groDatagrams.Load()
		gs, ref = gs+w.gsoDatagrams.Load(), ref+w.gsoRefused.Load()
	}
	fmt.Fprintf(os.Stderr, "relay %+v: %d GRO reads of %d datagrams; %d datagrams as extra GSO segments, %d GSO messages refused\n", udpOffload, gr, gd, gs, ref)
}
