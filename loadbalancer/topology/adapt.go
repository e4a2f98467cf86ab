package topology

import (
	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// FromSwitch converts a switch listed under zone's path. iaas.Switch has
// no zone of its own, so the caller names the zone it listed; the bridge
// is the switch's BridgeID (the API's Bridge.ID).
func FromSwitch(zone string, sw *iaas.Switch) Switch {
	out := Switch{ID: sw.ID.String(), Zone: zone}
	if !sw.BridgeID.IsEmpty() {
		out.BridgeID = sw.BridgeID.String()
	}
	return out
}

// FromServer converts a server listed under zone's path; the server's own
// Zone.Name wins when the answer has it. NICs on the shared segment and
// NICs on no switch are left out: an appliance's switch is a user switch.
func FromServer(zone string, sv *iaas.Server) Server {
	out := Server{ID: sv.ID.String(), Name: sv.Name, Zone: zone}
	if sv.Zone != nil && sv.Zone.Name != "" {
		out.Zone = sv.Zone.Name
	}
	for _, n := range sv.Interfaces {
		if n == nil || n.SwitchID.IsEmpty() || n.SwitchScope == types.Scopes.Shared {
			continue
		}
		out.NICs = append(out.NICs, NIC{SwitchID: n.SwitchID.String(), Address: n.UserIPAddress})
	}
	return out
}
