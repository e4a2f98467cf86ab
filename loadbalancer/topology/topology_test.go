package topology

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The fixture: bridge br1 joins sw-a (is1a) and sw-b (is1b); bridge br2
// joins sw-a2 (is1a) and sw-c (is1c); sw-a3 (is1a) and sw-b2 (is1b) are on
// no bridge. b3 has NICs on sw-b2 and sw-b.
var (
	fixtureSwitches = []Switch{
		{ID: "101", Zone: "is1a", BridgeID: "br1"}, // sw-a
		{ID: "102", Zone: "is1a", BridgeID: "br2"}, // sw-a2
		{ID: "103", Zone: "is1a"},                  // sw-a3
		{ID: "201", Zone: "is1b", BridgeID: "br1"}, // sw-b
		{ID: "202", Zone: "is1b"},                  // sw-b2
		{ID: "301", Zone: "is1c", BridgeID: "br2"}, // sw-c
	}
	fixtureServers = []Server{
		{ID: "11", Name: "a1", Zone: "is1a", NICs: []NIC{{"101", "192.168.0.11"}}},
		{ID: "12", Name: "a2", Zone: "is1a", NICs: []NIC{{"103", "192.168.3.12"}}},
		{ID: "21", Name: "b1", Zone: "is1b", NICs: []NIC{{"201", "192.168.0.21"}}},
		{ID: "22", Name: "b2", Zone: "is1b", NICs: []NIC{{"202", "192.168.2.22"}}},
		{ID: "23", Name: "b3", Zone: "is1b", NICs: []NIC{{"202", "192.168.2.23"}, {"201", "192.168.0.23"}}},
		{ID: "31", Name: "c1", Zone: "is1c", NICs: []NIC{{"301", "192.168.1.31"}}},
		{ID: "32", Name: "c2", Zone: "is1c"}, // shared segment only
	}
)

// summary flattens a Reachability: the segment's switch IDs, reached
// servers as name@switch=address (+ when bridged), unreached as name:reason.
func summary(r Reachability) (segment, reached, unreached string) {
	var s, re, un []string
	for _, sw := range r.Segment {
		s = append(s, sw.ID)
	}
	for _, x := range r.Reached {
		b := ""
		if x.Bridged {
			b = "+"
		}
		re = append(re, fmt.Sprintf("%s@%s=%s%s", x.Name, x.SwitchID, x.Address, b))
	}
	for _, x := range r.Unreached {
		un = append(un, x.Name+":"+string(x.Reason))
	}
	return strings.Join(s, ","), strings.Join(re, " "), strings.Join(un, " ")
}

func TestReach(t *testing.T) {
	const other, off = ":" + string(OtherZoneNoBridge), ":" + string(NotOnSegment)
	for _, tc := range []struct {
		name, switchID              string
		segment, reached, unreached string
	}{
		{
			name: "bridged switch: its own servers and the other zone's on the bridged switch", switchID: "101",
			segment:   "101,201",
			reached:   "a1@101=192.168.0.11 b1@201=192.168.0.21+ b3@201=192.168.0.23+",
			unreached: "a2" + off + " b2" + off + " c1" + other + " c2" + other,
		},
		{
			name: "the same bridge from the other zone's side", switchID: "201",
			segment:   "201,101",
			reached:   "a1@101=192.168.0.11+ b1@201=192.168.0.21 b3@201=192.168.0.23",
			unreached: "a2" + off + " b2" + off + " c1" + other + " c2" + other,
		},
		{
			name: "switch with no bridge: its own zone only", switchID: "103",
			segment:   "103",
			reached:   "a2@103=192.168.3.12",
			unreached: "a1" + off + " b1" + other + " b2" + other + " b3" + other + " c1" + other + " c2" + other,
		},
		{
			name: "unbridged switch in another zone; a server with NICs on two switches", switchID: "202",
			segment:   "202",
			reached:   "b2@202=192.168.2.22 b3@202=192.168.2.23",
			unreached: "a1" + other + " a2" + other + " b1" + off + " c1" + other + " c2" + other,
		},
		{
			name: "second bridge: its switches only, not the first bridge's", switchID: "102",
			segment:   "102,301",
			reached:   "c1@301=192.168.1.31+",
			unreached: "a1" + off + " a2" + off + " b1" + other + " b2" + other + " b3" + other + " c2" + off,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Reach(fixtureSwitches, fixtureServers, tc.switchID)
			if err != nil {
				t.Fatal(err)
			}
			seg, re, un := summary(r)
			if seg != tc.segment {
				t.Errorf("segment %s, want %s", seg, tc.segment)
			}
			if re != tc.reached {
				t.Errorf("reached\n got %s\nwant %s", re, tc.reached)
			}
			if un != tc.unreached {
				t.Errorf("unreached\n got %s\nwant %s", un, tc.unreached)
			}
			if r.SwitchID != tc.switchID || len(r.Reached)+len(r.Unreached) != len(fixtureServers) {
				t.Errorf("switch %s, %d reached + %d unreached of %d servers", r.SwitchID, len(r.Reached), len(r.Unreached), len(fixtureServers))
			}
		})
	}
}

// TestReachIsDeterministic: the order of the input does not show in the answer.
func TestReachIsDeterministic(t *testing.T) {
	want, err := Reach(fixtureSwitches, fixtureServers, "101")
	if err != nil {
		t.Fatal(err)
	}
	switches, servers := slices.Clone(fixtureSwitches), slices.Clone(fixtureServers)
	slices.Reverse(switches)
	slices.Reverse(servers)
	// Two servers of one name are ordered by ID.
	servers = append(servers, Server{ID: "10", Name: "a1", Zone: "is1a", NICs: []NIC{{"101", "192.168.0.10"}}})
	got, err := Reach(switches, servers, "101")
	if err != nil {
		t.Fatal(err)
	}
	ws, wr, wu := summary(want)
	gs, gr, gu := summary(got)
	if gs != ws || gu != wu || gr != "a1@101=192.168.0.10 "+wr {
		t.Errorf("reversed input:\n%s | %s | %s\nwant\n%s | a1@101=192.168.0.10 %s | %s", gs, gr, gu, ws, wr, wu)
	}
}

func TestReachUnknownSwitch(t *testing.T) {
	if _, err := Reach(fixtureSwitches, fixtureServers, "999"); err == nil || !strings.Contains(err.Error(), "999") {
		t.Errorf("unknown switch: %v", err)
	}
}

func TestUnreachedString(t *testing.T) {
	for _, tc := range []struct {
		u    Unreached
		want string
	}{
		{Unreached{Name: "b2", Zone: "is1b", Reason: OtherZoneNoBridge}, "b2 (zone is1b): no switch of zone is1b is bridged to the load balancer's switch"},
		{Unreached{Name: "a2", Zone: "is1a", Reason: NotOnSegment}, "a2 (zone is1a): no NIC on the load balancer's switch or a switch bridged to it"},
	} {
		if got := tc.u.String(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}
