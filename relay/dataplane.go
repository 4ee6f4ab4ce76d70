package relay

import "github.com/relaybox/relaybox/relay/proto"

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
	// "xdp eth0 native") and its counters, by name.
	DataPlaneStatus() DataPlaneStatus
}

// DataPlaneStatus describes a data plane.
type DataPlaneStatus struct {
	Mode     string            `json:"mode"`
	Counters map[string]uint64 `json:"counters,omitempty"`
}

// NoDataPlane relays everything in user space: its Apply does nothing. It is
// the relay's data plane unless Options give another.
type NoDataPlane struct{}

// Apply does nothing.
func (NoDataPlane) Apply(proto.Event) error { return nil }

// DataPlaneStatus says the mode is "off".
func (NoDataPlane) DataPlaneStatus() DataPlaneStatus { return DataPlaneStatus{Mode: "off"} }
