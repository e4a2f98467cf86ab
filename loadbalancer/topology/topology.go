// Package topology answers layer-2 questions about a cluster that spans
// zones: which servers reach a switch (on it, or on a switch of another
// zone joined to it by a SAKURA bridge), which do not and why, and which
// address block a Service's address comes from when the default one is
// full.
//
// It is pure: plain values in, plain values out, no API calls, no clock,
// no globals. The engine chooses a Service's block with ChooseBlock and
// HoldingBlock (loadBalancer.blocks); its real servers follow the bridged
// segment through desired.Segment, which Reach describes the same way.
package topology

import (
	"cmp"
	"fmt"
	"slices"
)

// Switch is a switch as listed in its zone.
type Switch struct {
	ID   string
	Zone string
	// BridgeID is the bridge the switch is connected to; empty when none.
	BridgeID string
}

// NIC is one server NIC on a switch, with the address the user set on it.
type NIC struct {
	SwitchID string
	Address  string
}

// Server is a server of some zone with its NICs on switches. NICs on the
// shared segment are left out: an appliance is never there.
type Server struct {
	ID   string
	Name string
	Zone string
	NICs []NIC
}

// Reason says why a server does not reach a switch.
type Reason string

const (
	// OtherZoneNoBridge: the server's zone has no switch on the
	// switch's segment (no bridge joins them).
	OtherZoneNoBridge Reason = "OtherZoneNoBridge"
	// NotOnSegment: the server's zone is on the segment, but none of the
	// server's NICs is on a switch of it.
	NotOnSegment Reason = "NotOnSegment"
)

// Reached is a server that reaches the switch, through its first NIC (in
// NIC order) on a switch of the segment.
type Reached struct {
	ServerID string
	Name     string
	Zone     string
	SwitchID string // the segment's switch the NIC is on
	Address  string // the NIC's address: the real server's address
	Bridged  bool   // the NIC is on another zone's switch, across a bridge
}

// Unreached is a server left out, with the reason.
type Unreached struct {
	ServerID string
	Name     string
	Zone     string
	Reason   Reason
}

// Reachability is the answer of Reach for one switch.
type Reachability struct {
	SwitchID string
	// Segment is every switch on the switch's layer-2 segment: the switch
	// first, then the bridged ones by zone and ID.
	Segment   []Switch
	Reached   []Reached   // by name, then ID
	Unreached []Unreached // by name, then ID
}

// Reach tells which servers reach switchID at layer 2. A switch on no
// bridge is a segment of its own; a bridged one shares its segment with
// every switch on the same bridge, whatever their zones.
func Reach(switches []Switch, servers []Server, switchID string) (Reachability, error) {
	i := slices.IndexFunc(switches, func(s Switch) bool { return s.ID == switchID })
	if i < 0 {
		return Reachability{}, fmt.Errorf("switch %s is not among the switches given", switchID)
	}
	target := switches[i]
	out := Reachability{SwitchID: switchID, Segment: []Switch{target}}
	if target.BridgeID != "" {
		for _, s := range switches {
			if s.ID != target.ID && s.BridgeID == target.BridgeID {
				out.Segment = append(out.Segment, s)
			}
		}
		slices.SortFunc(out.Segment[1:], func(a, b Switch) int {
			return cmp.Or(cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.ID, b.ID))
		})
	}
	onSegment := map[string]Switch{}
	zones := map[string]bool{}
	for _, s := range out.Segment {
		onSegment[s.ID] = s
		zones[s.Zone] = true
	}
	for _, sv := range servers {
		if r, ok := reached(sv, target, onSegment); ok {
			out.Reached = append(out.Reached, r)
			continue
		}
		reason := NotOnSegment
		if !zones[sv.Zone] {
			reason = OtherZoneNoBridge
		}
		out.Unreached = append(out.Unreached, Unreached{ServerID: sv.ID, Name: sv.Name, Zone: sv.Zone, Reason: reason})
	}
	slices.SortFunc(out.Reached, func(a, b Reached) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ServerID, b.ServerID))
	})
	slices.SortFunc(out.Unreached, func(a, b Unreached) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ServerID, b.ServerID))
	})
	return out, nil
}

func reached(sv Server, target Switch, onSegment map[string]Switch) (Reached, bool) {
	for _, n := range sv.NICs {
		if s, ok := onSegment[n.SwitchID]; ok {
			return Reached{ServerID: sv.ID, Name: sv.Name, Zone: sv.Zone, SwitchID: s.ID, Address: n.Address,
				Bridged: s.ID != target.ID}, true
		}
	}
	return Reached{}, false
}

// String says why u is left out, for an Event that names it.
func (u Unreached) String() string {
	switch u.Reason {
	case OtherZoneNoBridge:
		return fmt.Sprintf("%s (zone %s): no switch of zone %s is bridged to the load balancer's switch", u.Name, u.Zone, u.Zone)
	case NotOnSegment:
		return fmt.Sprintf("%s (zone %s): no NIC on the load balancer's switch or a switch bridged to it", u.Name, u.Zone)
	}
	return fmt.Sprintf("%s (zone %s): %s", u.Name, u.Zone, u.Reason)
}
