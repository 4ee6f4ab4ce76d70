package bench

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParsePaths(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/relaybox/relaybox/bpf
cpu: AMD EPYC
BenchmarkPaths/floor/mac_swap-2         	    2000	        81.90 ns/op	         0.9598 x-macswap
BenchmarkPaths/relay/v4_client_to_v4_peer-2         	    2000	       420.7 ns/op	         4.930 x-macswap
    bench_test.go:80: some log line
BenchmarkPaths/drop/channel_length                	    2000	        94.60 ns/op	         1.109 x-macswap
BenchmarkOther-2   	 1000	 5 ns/op
PASS
ok  	github.com/relaybox/relaybox/bpf	1.292s
`
	got, err := parsePaths(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []PathSample{
		{Path: "floor/mac_swap", Ns: 81.90, XMACSwap: 0.9598, Iterations: 2000},
		{Path: "relay/v4_client_to_v4_peer", Ns: 420.7, XMACSwap: 4.930, Iterations: 2000},
		{Path: "drop/channel_length", Ns: 94.60, XMACSwap: 1.109, Iterations: 2000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsePaths: -want +got\n%s", diff)
	}
	if _, err := parsePaths("BenchmarkPaths/x-2 10 abc ns/op\n"); err == nil {
		t.Error("parsePaths accepted a value that is not a number")
	}
	if _, err := parsePaths("BenchmarkPaths/x-2 10 5 x-macswap\n"); err == nil {
		t.Error("parsePaths accepted a line without ns/op")
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name holds a space and a parenthesis.
	line := "4242 (turn server) x) S 1 4242 4242 0 -1 4194560 1207 0 0 0 250 130 0 0 20 0 3 0 1234 1000 200 18446744073709551615\n"
	got, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-3.8) > 1e-9 {
		t.Errorf("parseProcStat = %g s, want 3.8 (250+130 ticks)", got)
	}
	for _, bad := range []string{"4242 turnserver S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 a b"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) accepted it", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\trelay\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n"
	if got, err := parseStatusField(status, "VmRSS"); err != nil || got != 12345*1024 {
		t.Errorf("VmRSS = %g, %v; want %d", got, err, 12345*1024)
	}
	if _, err := parseStatusField(status, "VmSwap"); err == nil {
		t.Error("a missing field gave no error")
	}
}

func TestChannelData(t *testing.T) {
	m := channelData(0x4001, 100)
	if len(m) != 104 || m[0] != 0x40 || m[1] != 0x01 || m[2] != 0 || m[3] != 100 {
		t.Errorf("channelData(0x4001, 100) starts %x, length %d; want 4001 0064, 104 bytes", m[:4], len(m))
	}
}

func TestReadyField(t *testing.T) {
	line := "relaybox: ready listen=0.0.0.0:3478 xdp=eth0:native boot=9.81s init=4.02s"
	if d, ok := readyField(line, "init"); !ok || d != 4020*time.Millisecond {
		t.Errorf("init = %v, %v; want 4.02s", d, ok)
	}
	if d, ok := readyField(line, "boot"); !ok || d != 9810*time.Millisecond {
		t.Errorf("boot = %v, %v; want 9.81s", d, ok)
	}
	for _, l := range []string{"relaybox: ready listen=0.0.0.0:3478 xdp=eth0:native", "relaybox: ready init=soon", "relaybox: ready init=-1s"} {
		if d, ok := readyField(l, "init"); ok {
			t.Errorf("readyField(%q) = %v, want none", l, d)
		}
	}
}
