package nstest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// UDPChecksumErrors returns the UDP and UDP-Lite checksum errors n's stack
// counted, IPv4 and IPv6 together: a receiver that accepted every checksum
// keeps it where it was.
func (n *NS) UDPChecksumErrors(t testing.TB) int {
	t.Helper()
	total := 0
	for _, f := range []string{"snmp", "snmp6"} {
		b, err := n.procNet(f)
		if err != nil {
			t.Fatal(err)
		}
		k, err := csumErrors(b)
		if err != nil {
			t.Fatalf("%s in %s: %v", f, n.Name, err)
		}
		total += k
	}
	return total
}

// UDPCounter returns field of n's IPv4 UDP counters, a column of the Udp
// lines of /proc/net/snmp such as RcvbufErrors. It returns an error rather
// than failing a test: the benchmark, a program, reads it too.
func (n *NS) UDPCounter(field string) (uint64, error) {
	b, err := n.procNet("snmp")
	if err != nil {
		return 0, err
	}
	v, ok, err := snmpCounter(b, "Udp", field)
	if err == nil && !ok {
		err = fmt.Errorf("no Udp %s counter", field)
	}
	if err != nil {
		return 0, fmt.Errorf("/proc/net/snmp in %s: %w", n.Name, err)
	}
	return v, nil
}

// procNet reads /proc/net/<name> as n's stack shows it.
func (n *NS) procNet(name string) ([]byte, error) {
	var b []byte
	err := n.Do(func() error {
		// thread-self: /proc/self/net would show the namespace of the
		// process's main thread.
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/" + name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("in %s: %w", n.Name, err)
	}
	return b, nil
}

// csumErrors sums the UDP and UDP-Lite InCsumErrors counters of
// /proc/net/snmp or snmp6 text.
func csumErrors(b []byte) (int, error) {
	total := 0
	for _, proto := range []string{"Udp", "UdpLite", "Udp6", "UdpLite6"} {
		v, _, err := snmpCounter(b, proto, "InCsumErrors")
		if err != nil {
			return 0, err
		}
		total += int(v)
	}
	return total, nil
}

// snmpCounter returns proto's counter field from the text of
// /proc/net/snmp, which has a header line of field names and a line of
// values per protocol ("Udp: InDatagrams ..." then "Udp: 5 ..."), or of
// snmp6, which has a line per counter ("Udp6InCsumErrors 2"). ok is false
// if b has no such counter.
func snmpCounter(b []byte, proto, field string) (v uint64, ok bool, err error) {
	var header []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			if len(f) == 2 && f[0] == proto+field {
				return parseCounter(proto, field, f[1])
			}
			continue
		}
		if f[0] != proto+":" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, name := range header {
			if i > 0 && name == field && i < len(f) {
				return parseCounter(proto, field, f[i])
			}
		}
		return 0, false, nil
	}
	return 0, false, nil
}

func parseCounter(proto, field, s string) (uint64, bool, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s %s: %w", proto, field, err)
	}
	return v, true, nil
}
