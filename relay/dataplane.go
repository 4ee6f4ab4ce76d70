package relay

import (
	"time"

	"github.com/relaybox/relaybox/relay/proto"
)

// DataPlane is where channel bindings go so that something faster than the
// user-space path, the XDP program, can relay their ChannelData. The relay
// calls Apply for every BindingCreated, BindingRefreshed and
// BindingDeleted event, in the order the TURN core made them, before it
// sends the datagrams of the same step: a ChannelBind's binding is in the
// data plane before its success response leaves, and a deleted binding is
// out of it before the Refresh that deleted it is answered.
//
// Apply is called with the relay's state locked, one call at a time: it
// must be quick (a map update) and must not call back into the relay.
//
// A failed Apply is logged and counted, and the relay carries on: the
// user-space path relays whatever the data plane does not know, so a full
// map costs speed, never traffic.
type DataPlane interface {
	Apply(proto.Event) error
}

// DataPlaneReporter is implemented by a DataPlane that can describe itself
// for relay status and the metrics.
type DataPlaneReporter interface {
	// DataPlaneStatus returns the data plane's mode (such as
	// "xdp eth0:native"), its counters, and the traffic of those of
	// bindings it holds. It is called without the relay's state locked,
	// possibly while Apply runs.
	DataPlaneStatus(bindings []proto.Binding) DataPlaneStatus
}

// DataPlaneStatus describes a data plane.
type DataPlaneStatus struct {
	Mode string `json:"mode"`
	// Counters are the data plane's own counters, by name.
	Counters map[string]uint64 `json:"counters,omitempty"`
	// Installed is how many bindings the data plane holds now.
	Installed int `json:"installed"`
	// Relayed is what the data plane relayed, by path (channel-to-peer,
	// peer-to-channel), bindings since removed included: what the
	// user-space path's counters do not see.
	Relayed map[string]proto.Traffic `json:"relayed,omitempty"`
	// Classes counts what the data plane saw addressed to the relay, by
	// class (stun, channel_data, allocation, other).
	Classes map[string]proto.Traffic `json:"classes,omitempty"`
	// Reasons counts every packet the data plane looked at, by the reason
	// for its verdict (tx and redirect: relayed; the rest passed to the
	// stack or dropped).
	Reasons map[string]ReasonCount `json:"reasons,omitempty"`
	// Bindings is the traffic of the bindings asked about that the data
	// plane holds, in the order asked.
	Bindings []BindingTraffic `json:"bindings,omitempty"`
	// Error says what could not be read, if anything.
	Error string `json:"error,omitempty"`
}

// ReasonCount is the traffic counted under one verdict reason.
type ReasonCount struct {
	Verdict string `json:"verdict"`
	proto.Traffic
}

// BindingTraffic is what the data plane relayed for one binding, to tell
// busy bindings from idle ones.
type BindingTraffic struct {
	proto.Binding
	ToPeer   proto.Traffic `json:"to_peer"`
	ToClient proto.Traffic `json:"to_client"`
	// LastSeen is when the data plane last relayed for it, either way;
	// zero if it never did.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// NoDataPlane relays everything in user space: its Apply does nothing. It is
// the relay's data plane unless the Config's xdp keys or Options give
// another.
type NoDataPlane struct{}

// Apply does nothing.
func (NoDataPlane) Apply(proto.Event) error { return nil }

// DataPlaneStatus says the mode is "off".
func (NoDataPlane) DataPlaneStatus([]proto.Binding) DataPlaneStatus {
	return DataPlaneStatus{Mode: "off"}
}
