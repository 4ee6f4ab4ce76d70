package proto

import (
	"iter"
	"net/netip"
	"time"

	"github.com/relaybox/relaybox/relay/policy"
)

// Path is one way data crosses the relay in user space.
type Path uint8

// The paths.
const (
	PathChannelToPeer Path = iota // client ChannelData → peer
	PathSendToPeer                // client Send indication → peer
	PathPeerToChannel             // peer → client ChannelData
	PathPeerToData                // peer → client Data indication
	NumPaths                      // the number of paths
)

var pathNames = [NumPaths]string{"channel-to-peer", "send-to-peer", "peer-to-channel", "peer-to-data"}

func (p Path) String() string {
	if p < NumPaths {
		return pathNames[p]
	}
	return "path?"
}

// dropReason says why a datagram got nothing.
type dropReason uint8

const (
	dropNone dropReason = iota
	dropInvalidSource
	dropNotTURN
	dropMalformed
	dropUnexpected
	dropNoAllocation
	dropNoChannel
	dropNoPermission
	dropForbidden
	dropFamily
	dropBandwidth
	dropTooBig
	dropRateLimited
	dropAmplification
	dropSources
	numDrops
)

var dropNames = [numDrops]string{
	dropNone:          "none",
	dropInvalidSource: "invalid-source",
	dropNotTURN:       "not-turn",
	dropMalformed:     "malformed",
	dropUnexpected:    "unexpected-class",
	dropNoAllocation:  "no-allocation",
	dropNoChannel:     "no-channel",
	dropNoPermission:  "no-permission",
	dropForbidden:     "forbidden-peer",
	dropFamily:        "family-mismatch",
	dropBandwidth:     "bandwidth",
	dropTooBig:        "too-big",
	dropRateLimited:   "rate-limited",
	dropAmplification: "amplification",
	dropSources:       "too-many-sources",
}

// counters are the Server's running numbers, updated without allocating.
type counters struct {
	allocations, permissions, channels, bindings int
	relayed                                      [NumPaths]Traffic
	drops                                        [numDrops]uint64
	responses                                    map[int]uint64
	refused                                      [policy.Translation + 1]uint64
	authFailures, bindFailures, binding          uint64
	timerSeq                                     uint64
}

func (c *counters) drop(r dropReason) { c.drops[r]++ }

func (c *counters) relay(p Path, n int) {
	c.relayed[p].Packets++
	c.relayed[p].Bytes += uint64(n)
}

func (c *counters) response(code int) {
	if c.responses == nil {
		c.responses = make(map[int]uint64)
	}
	c.responses[code]++
}

// Traffic counts relayed datagrams and their payload bytes.
type Traffic struct {
	Packets, Bytes uint64
}

// Stats is a snapshot of the Server's numbers, for metrics and status.
type Stats struct {
	// Current state. Bindings are the channel bindings in the data plane.
	Allocations, Permissions, Channels, Bindings int
	// Relayed counts user-space relaying per Path.
	Relayed [NumPaths]Traffic
	// Dropped counts datagrams that got nothing, by reason.
	Dropped map[string]uint64
	// Responses counts TURN responses sent, by code (200 for success).
	// Binding answers are counted in BindingResponses.
	Responses        map[int]uint64
	BindingResponses uint64
	// RefusedPeers counts peer addresses refused by the policy, by verdict.
	RefusedPeers map[string]uint64
	// AuthFailures counts requests whose credentials were wrong, unknown,
	// expired or incomplete (stale nonces are not failures).
	AuthFailures uint64
	// BindFailures counts ports Config.Bind could not open.
	BindFailures uint64
}

// Stats returns a snapshot of s's numbers.
func (s *Server) Stats() Stats {
	st := Stats{
		Allocations:      s.stats.allocations,
		Permissions:      s.stats.permissions,
		Channels:         s.stats.channels,
		Bindings:         s.stats.bindings,
		Relayed:          s.stats.relayed,
		Dropped:          make(map[string]uint64),
		Responses:        make(map[int]uint64, len(s.stats.responses)),
		BindingResponses: s.stats.binding,
		RefusedPeers:     make(map[string]uint64),
		AuthFailures:     s.stats.authFailures,
		BindFailures:     s.stats.bindFailures,
	}
	for r, n := range s.stats.drops {
		if n > 0 {
			st.Dropped[dropNames[r]] = n
		}
	}
	for c, n := range s.stats.responses {
		st.Responses[c] = n
	}
	for v, n := range s.stats.refused {
		if n > 0 {
			st.RefusedPeers[policy.Verdict(v).String()] = n
		}
	}
	return st
}

// AllocationInfo describes one allocation, for status listings.
type AllocationInfo struct {
	Client, Server netip.AddrPort
	Username       string
	Relayed        []netip.AddrPort
	Expires        time.Time
	Permissions    int
	Channels       int
}

// Allocations lists the allocations, in no particular order. The Server
// must not be used while the sequence runs.
func (s *Server) Allocations() iter.Seq[AllocationInfo] {
	return func(yield func(AllocationInfo) bool) {
		for _, a := range s.allocs {
			info := AllocationInfo{
				Client: a.ft.client, Server: a.ft.server, Username: a.username,
				Expires: a.expires, Permissions: len(a.perms), Channels: len(a.chanByNum),
			}
			for _, r := range a.relayed {
				if r.IsValid() {
					info.Relayed = append(info.Relayed, r)
				}
			}
			if !yield(info) {
				return
			}
		}
	}
}

// Bindings lists the bindings the data plane should hold now: what the
// BindingCreated and BindingDeleted events so far add up to. An I/O layer
// that lost its data plane (a reloaded XDP program) rebuilds it from this.
func (s *Server) Bindings() iter.Seq[Binding] {
	return func(yield func(Binding) bool) {
		for _, a := range s.allocs {
			for _, ch := range a.chanByNum {
				if ch.installed && !yield(a.binding(ch)) {
					return
				}
			}
		}
	}
}
