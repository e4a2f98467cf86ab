package sakurasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

// Bridges. The wire form follows iaas-api-go v1.29.3: paths and envelopes
// from internal/define/bridge.go (GET/POST bridge, GET bridge/{id};
// envelopes "Bridge" and "Bridges"), fields from naked/bridge.go. A bridge is
// global (one ID, listed under every zone's path) but its answer depends on
// the zone asked: SwitchInZone is the connected switch of that zone, and
// Info.Switches the connected switches of the other zones only (libsacloud
// v2's bridge test reads an empty BridgeInfo after connecting one switch in
// the zone it asks, noting "only other zones' switches").

// nakedBridge renders b as seen through zone's path.
func (s *Simulator) nakedBridge(b *bridge, zone string) *naked.Bridge {
	out := &naked.Bridge{ID: b.ID, Name: b.Name, Description: b.Description, CreatedAt: tp(b.CreatedAt),
		Info: &naked.BridgeInfo{}}
	for _, sw := range s.switches {
		if sw.BridgeID != b.ID {
			continue
		}
		if sw.Zone == zone {
			out.SwitchInZone = &naked.BridgeSwitchInfo{ID: sw.ID, Name: sw.Name, Scope: types.Scopes.User,
				ServerCount: s.serverCount(sw), ApplianceCount: s.applianceCount(sw)}
			continue
		}
		// iaas.BridgeInfo maps only ID, Name, Zone.ID and Zone.Name.
		out.Info.Switches = append(out.Info.Switches, &naked.Switch{ID: sw.ID, Name: sw.Name,
			Zone: &naked.Zone{ID: zoneIDOf(sw.Zone), Name: sw.Zone}})
	}
	return out
}

func (s *Simulator) serverCount(sw *switchRes) int {
	count := 0
	for _, sv := range s.servers {
		for _, n := range sv.NICs {
			if n.SwitchID == sw.ID {
				count++
				break
			}
		}
	}
	return count
}

func (s *Simulator) applianceCount(sw *switchRes) int {
	count := 0
	for _, lb := range s.lbs {
		if lb.SwitchID == sw.ID {
			count++
		}
	}
	for _, v := range s.vpcRouters {
		if v.SwitchID == sw.ID {
			count++
		}
	}
	return count
}

func bridgeRecord(b *bridge) record {
	return record{"ID": ids(b.ID), "Name": {b.Name}, "Description": {b.Description}}
}

// dispatchBridge answers Bridge.* and the switch's bridge actions. Called
// with mu held; handled is false for other operations.
func (s *Simulator) dispatchBridge(req *request, id types.ID) (status int, resp any, e *apiErr, handled bool) {
	switch req.op {
	case "Bridge.Find":
		var cands []candidate
		for _, b := range s.bridges {
			b := b
			cands = append(cands, candidate{b.ID, b.Name, bridgeRecord(b), func() any { return s.nakedBridge(b, req.zone) }})
		}
		status, resp, e = s.runFind(req.find, bridgeKeys, req.op, "Bridges", cands)
		return status, resp, e, true
	case "Bridge.Read":
		b := s.bridgeByID(id)
		if b == nil {
			return 0, nil, notFound("bridge " + id.String() + " not found"), true
		}
		status, resp, e = ok(map[string]any{"Bridge": s.nakedBridge(b, req.zone)})
		return status, resp, e, true
	case "Bridge.Create":
		var env struct{ Bridge *naked.Bridge }
		if err := json.Unmarshal(req.body, &env); err != nil || env.Bridge == nil {
			return 0, nil, badRequest("body must be {\"Bridge\":{...}}"), true
		}
		if env.Bridge.Name == "" {
			return 0, nil, badRequest("Name is required"), true
		}
		b := &bridge{ID: s.newID(), Name: env.Bridge.Name, Description: env.Bridge.Description, CreatedAt: s.now()}
		s.bridges = append(s.bridges, b)
		return http.StatusCreated, map[string]any{"is_ok": true, "Success": true, "Bridge": s.nakedBridge(b, req.zone)}, nil, true
	case "Switch.ConnectToBridge", "Switch.DisconnectFromBridge":
		sw := s.switchByID(id)
		if sw == nil || sw.Zone != req.zone {
			return 0, nil, notFound("switch " + id.String() + " not found"), true
		}
		if req.op == "Switch.DisconnectFromBridge" {
			if sw.BridgeID == 0 {
				return 0, nil, conflict(fmt.Sprintf("switch %s is not connected to a bridge", sw.ID)), true
			}
			sw.BridgeID = 0
			status, resp, e = ok(map[string]any{})
			return status, resp, e, true
		}
		n, err := strconv.ParseInt(req.parts[4], 10, 64)
		b := s.bridgeByID(types.ID(n))
		if err != nil || b == nil {
			return 0, nil, notFound("bridge " + req.parts[4] + " not found"), true
		}
		if e := s.connectLocked(sw, b); e != nil {
			return 0, nil, e, true
		}
		status, resp, e = ok(map[string]any{})
		return status, resp, e, true
	}
	return 0, nil, nil, false
}

// classifyBridgeAction names the switch's bridge actions:
// PUT switch/{id}/to/bridge/{bridgeID} and DELETE switch/{id}/to/bridge
// (iaas-api-go internal/define/switch.go).
func classifyBridgeAction(p []string, method string) string {
	if len(p) < 4 || p[0] != "switch" || p[2] != "to" || p[3] != "bridge" {
		return ""
	}
	switch {
	case len(p) == 5 && method == http.MethodPut:
		return "Switch.ConnectToBridge"
	case len(p) == 4 && method == http.MethodDelete:
		return "Switch.DisconnectFromBridge"
	}
	return ""
}
