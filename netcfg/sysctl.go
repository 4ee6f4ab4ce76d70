package netcfg

import (
	"fmt"
	"strconv"
)

// Sysctl is one kernel setting, with the reason a relay needs it.
type Sysctl struct {
	Key     string // path form under /proc/sys, so link names with dots stay whole
	Value   string
	AtLeast bool   // raise to Value, never lower (a bigger value set by hand stays)
	Why     string // for the reader and the log
}

func (s Sysctl) String() string { return s.Key + "=" + s.Value }

// socketBufferMax is what the relay may ask for with SO_RCVBUF and
// SO_SNDBUF.
const socketBufferMax = 16 << 20

// RelaySysctls is the table of the settings a relay needs, for the relay
// NIC link (empty: the settings of no link) and the relay's allocation
// ports (zero: ip_local_port_range is left alone). Configure applies it
// once the relay NIC is known. The IPv6 settings of links that use router
// advertisements (accept_ra, autoconf) are with SLAAC, in slaac_linux.go.
func RelaySysctls(link string, ports PortRange) ([]Sysctl, error) {
	t := []Sysctl{
		{"net/core/rmem_max", strconv.Itoa(socketBufferMax), true,
			"the relay asks for multi-MiB receive buffers so a burst at line rate is queued, not dropped; " +
				"the kernel silently caps SO_RCVBUF at rmem_max (208 KiB by default)"},
		{"net/core/wmem_max", strconv.Itoa(socketBufferMax), true,
			"the same cap on SO_SNDBUF, for the user-space path's batched sends"},
	}
	if !ports.IsZero() {
		lo, hi, err := localPortRange(ports)
		if err != nil {
			return nil, err
		}
		t = append(t, Sysctl{"net/ipv4/ip_local_port_range", fmt.Sprintf("%d %d", lo, hi), false,
			"ephemeral ports (connect, bind to port 0; IPv6 too) must stay out of the allocation range " + ports.String() +
				": an ephemeral port taken there is an allocation the relay cannot make, and the XDP program would " +
				"take that socket's traffic for relay traffic"})
	}
	if link != "" {
		t = append(t,
			Sysctl{"net/ipv4/conf/" + link + "/rp_filter", "2", false,
				"loose reverse-path filtering: strict (1) drops a peer's packets when the route back to it leaves " +
					"by another NIC, as on a multi-homed box; the kernel uses the larger of all/ and the link's value, so 2 wins over all/=1"},
			Sysctl{"net/ipv4/conf/" + link + "/forwarding", "1", false,
				"bpf_fib_lookup answers BPF_FIB_LKUP_RET_FWD_DISABLED unless the ingress link forwards; " +
					"only the relay NIC, so the stack does not route between the box's other networks"},
			Sysctl{"net/ipv6/conf/" + link + "/forwarding", "1", false,
				"the same for IPv6; a forwarding link ignores router advertisements unless accept_ra=2, " +
					"which SLAAC and DHCPv6 links get before this is set"},
		)
	}
	return t, nil
}

// minEphemeral is the fewest ephemeral ports RelaySysctls leaves the box.
const minEphemeral = 1024

// localPortRange picks ip_local_port_range outside the relay's ports: the
// larger gap below or above them, starting at Linux's default 32768 when
// the gap below leaves room, with ends of different parity (the kernel
// hands out one parity to connect() and the other to bind(), and warns
// otherwise). For 49152-65535 it is 32768 49151.
func localPortRange(p PortRange) (lo, hi int, err error) {
	first, last := int(p.First), int(p.Last)
	if first == 0 || first > last {
		return 0, 0, fmt.Errorf("relay ports %s: not a range of ports", p)
	}
	belowLo, belowHi := 1024, first-1
	aboveLo, aboveHi := last+1, 65535
	if belowHi-belowLo >= aboveHi-aboveLo {
		lo, hi = belowLo, belowHi
		if hi-32768+1 >= 8192 {
			lo = 32768
		}
	} else {
		lo, hi = aboveLo, aboveHi
	}
	if lo%2 == hi%2 {
		hi--
	}
	if hi-lo+1 < minEphemeral {
		return 0, 0, fmt.Errorf("relay ports %s leave fewer than %d ports for the kernel's ephemeral ports; narrow the allocation range", p, minEphemeral)
	}
	return lo, hi, nil
}
