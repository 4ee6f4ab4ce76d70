package nstest

import (
	"bufio"
	"bytes"
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
	err := n.Do(func() error {
		// thread-self: /proc/self/net would show the namespace of the
		// process's main thread.
		for _, f := range []string{"/proc/thread-self/net/snmp", "/proc/thread-self/net/snmp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			k, err := csumErrors(b)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			total += k
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// csumErrors sums the InCsumErrors counters of /proc/net/snmp (a header
// line and a value line per protocol) or snmp6 (name value lines).
func csumErrors(b []byte) (int, error) {
	total := 0
	var header []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.HasSuffix(f[0], "InCsumErrors") {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return 0, err
			}
			total += n
			continue
		}
		if len(f) < 2 || !strings.HasPrefix(f[0], "Udp") {
			continue
		}
		if header == nil || header[0] != f[0] {
			header = f
			continue
		}
		for i, name := range header {
			if name == "InCsumErrors" && i < len(f) {
				n, err := strconv.Atoi(f[i])
				if err != nil {
					return 0, err
				}
				total += n
			}
		}
		header = nil
	}
	if sc.Err() != nil {
		return 0, sc.Err()
	}
	return total, nil
}
