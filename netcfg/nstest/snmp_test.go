package nstest

import (
	"errors"
	"strconv"
	"testing"
)

// TestCsumErrorsParse keeps UDPChecksumErrors honest: it must find the
// counters where the kernel puts them.
func TestCsumErrorsParse(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 5 0 1 5 0 0 3 0 0\nUdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdpLite: 0 0 0 0 0 0 4 0 0\n"
	snmp6 := "Udp6InDatagrams                 \t7\nUdp6InCsumErrors                \t2\nUdpLite6InCsumErrors            \t1\n"
	for _, tc := range []struct {
		in   string
		want int
	}{{snmp, 7}, {snmp6, 3}} {
		got, err := csumErrors([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("csumErrors(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	if _, err := csumErrors([]byte("Udp6InCsumErrors x\n")); !errors.Is(err, strconv.ErrSyntax) {
		t.Errorf("csumErrors(garbage) = %v, want a syntax error", err)
	}
}

// TestSNMPCounter keeps UDPCounter honest: the column asked for, of Udp's
// lines only.
func TestSNMPCounter(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 100 2 7 90 5 0 0 0 0\nUdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdpLite: 0 0 0 0 9\n"
	if got, ok, err := snmpCounter([]byte(snmp), "Udp", "RcvbufErrors"); err != nil || !ok || got != 5 {
		t.Errorf("Udp RcvbufErrors = %d, %v, %v; want 5 (Udp's, not UdpLite's)", got, ok, err)
	}
	if got, ok, err := snmpCounter([]byte(snmp), "Udp", "NoSuchErrors"); err != nil || ok {
		t.Errorf("Udp NoSuchErrors = %d, %v, %v; want none", got, ok, err)
	}
}
