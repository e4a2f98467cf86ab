package sakurasim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/topology"
)

// bridgedZones: a bridge joins private-a (is1a) and private-b (is1b);
// isolated-b is an is1b switch on no bridge; private-c (is1c) is on a
// second bridge alone. b-3 has NICs on two is1b switches.
const bridgedZones = `
zone: is1a
zones: [is1b, is1c]
bridges:
  - name: k8s-bridge
    description: is1a and is1b
  - name: spare-bridge
switches:
  - name: private-a
    network: 192.168.0.0
    maskLen: 24
    bridge: k8s-bridge
  - name: private-b
    zone: is1b
    network: 192.168.0.0
    maskLen: 24
    bridge: k8s-bridge
  - name: isolated-b
    zone: is1b
    network: 192.168.1.0
    maskLen: 24
  - name: private-c
    zone: is1c
    network: 192.168.2.0
    maskLen: 24
    bridge: spare-bridge
servers:
  - name: a-1
    nics: [{switch: private-a, userIPAddress: 192.168.0.11}]
  - name: b-1
    zone: is1b
    nics: [{switch: private-b, userIPAddress: 192.168.0.21}]
  - name: b-2
    zone: is1b
    nics: [{switch: isolated-b, userIPAddress: 192.168.1.22}]
  - name: b-3
    zone: is1b
    nics:
      - {shared: true, ipAddress: 203.0.113.23}
      - {switch: private-b, userIPAddress: 192.168.0.23}
      - {switch: isolated-b, userIPAddress: 192.168.1.23}
`

func useBridged(t *testing.T) *Simulator {
	t.Helper()
	topo, err := ParseTopology([]byte(bridgedZones))
	if err != nil {
		t.Fatal(err)
	}
	return use(t, topo, Options{})
}

// switchesOf lists a zone's switches through iaas-api-go, by name.
func switchesOf(t *testing.T, zone string) map[string]*iaas.Switch {
	t.Helper()
	res, err := iaas.NewSwitchOp(caller).Find(context.Background(), zone, &iaas.FindCondition{})
	if err != nil {
		t.Fatalf("switches of %s: %v", zone, err)
	}
	out := map[string]*iaas.Switch{}
	for _, sw := range res.Switches {
		out[sw.Name] = sw
	}
	return out
}

func bridgeByName(t *testing.T, zone, name string) *iaas.Bridge {
	t.Helper()
	res, err := iaas.NewBridgeOp(caller).Find(context.Background(), zone, &iaas.FindCondition{
		Filter: search.Filter{search.Key("Name"): search.ExactMatch(name)}})
	if err != nil {
		t.Fatalf("bridges of %s: %v", zone, err)
	}
	if len(res.Bridges) != 1 || res.Bridges[0].Name != name {
		t.Fatalf("bridge %q in %s: found %d", name, zone, len(res.Bridges))
	}
	return res.Bridges[0]
}

// infoOf flattens BridgeInfo to "name@zone(zoneID)" in answer order.
func infoOf(b *iaas.Bridge) string {
	var out []string
	for _, i := range b.BridgeInfo {
		out = append(out, fmt.Sprintf("%s@%s(%s)", i.Name, i.ZoneName, i.ZoneID))
	}
	return strings.Join(out, ",")
}

// TestBridgeJoinsSwitchesOfZones reads a bridged topology the way a
// controller would: each zone's switches with their BridgeID, the bridge
// from each zone (SwitchInZone is that zone's switch, BridgeInfo the
// others'), and servers whose NICs are on their own zone's switches.
func TestBridgeJoinsSwitchesOfZones(t *testing.T) {
	useBridged(t)
	ctx := context.Background()
	a, b, c := switchesOf(t, "is1a"), switchesOf(t, "is1b"), switchesOf(t, "is1c")
	if len(a) != 1 || a["private-a"] == nil || len(b) != 2 || b["private-b"] == nil || b["isolated-b"] == nil ||
		len(c) != 1 || c["private-c"] == nil {
		t.Fatalf("switches per zone: is1a %v, is1b %v, is1c %v", keys(a), keys(b), keys(c))
	}
	k8s := bridgeByName(t, "is1a", "k8s-bridge")
	if a["private-a"].BridgeID != k8s.ID || b["private-b"].BridgeID != k8s.ID {
		t.Errorf("bridged switches' BridgeID: %s, %s; want %s", a["private-a"].BridgeID, b["private-b"].BridgeID, k8s.ID)
	}
	if !b["isolated-b"].BridgeID.IsEmpty() {
		t.Errorf("isolated-b has BridgeID %s", b["isolated-b"].BridgeID)
	}
	spare := bridgeByName(t, "is1a", "spare-bridge")
	if c["private-c"].BridgeID != spare.ID || spare.ID == k8s.ID {
		t.Errorf("private-c BridgeID %s, spare-bridge %s, k8s-bridge %s", c["private-c"].BridgeID, spare.ID, k8s.ID)
	}

	// The same bridge seen from each zone.
	for _, tc := range []struct{ zone, inZone, info string }{
		{"is1a", "private-a", "private-b@is1b(31002)"},
		{"is1b", "private-b", "private-a@is1a(31001)"},
		{"is1c", "", "private-a@is1a(31001),private-b@is1b(31002)"},
	} {
		br, err := iaas.NewBridgeOp(caller).Read(ctx, tc.zone, k8s.ID)
		if err != nil {
			t.Fatalf("read in %s: %v", tc.zone, err)
		}
		if br.Name != "k8s-bridge" || br.Description != "is1a and is1b" {
			t.Errorf("%s: bridge %q %q", tc.zone, br.Name, br.Description)
		}
		switch {
		case tc.inZone == "" && br.SwitchInZone != nil:
			t.Errorf("%s: SwitchInZone %+v, want none", tc.zone, br.SwitchInZone)
		case tc.inZone != "" && (br.SwitchInZone == nil || br.SwitchInZone.Name != tc.inZone):
			t.Errorf("%s: SwitchInZone %+v, want %s", tc.zone, br.SwitchInZone, tc.inZone)
		}
		if got := infoOf(br); got != tc.info {
			t.Errorf("%s: BridgeInfo %s, want %s", tc.zone, got, tc.info)
		}
	}
	if in := k8s.SwitchInZone; in == nil || in.ID != a["private-a"].ID || in.ServerCount != 1 || in.Scope != types.Scopes.User {
		t.Errorf("SwitchInZone of is1a: %+v", in)
	}
	if sp := bridgeByName(t, "is1b", "spare-bridge"); sp.SwitchInZone != nil || infoOf(sp) != "private-c@is1c(31003)" {
		t.Errorf("spare-bridge from is1b: %+v %s", sp.SwitchInZone, infoOf(sp))
	}

	// Servers: NICs on their zone's switches.
	res, err := iaas.NewServerOp(caller).Find(ctx, "is1b", &iaas.FindCondition{})
	if err != nil {
		t.Fatal(err)
	}
	nics := map[string][]string{}
	for _, sv := range res.Servers {
		for _, n := range sv.Interfaces {
			nics[sv.Name] = append(nics[sv.Name], fmt.Sprintf("%s=%s", n.SwitchID, n.UserIPAddress))
		}
	}
	pb, ib := b["private-b"].ID, b["isolated-b"].ID
	want := map[string]string{
		"b-1": fmt.Sprintf("%s=192.168.0.21", pb),
		"b-2": fmt.Sprintf("%s=192.168.1.22", ib),
		"b-3": fmt.Sprintf("%s=,%s=192.168.0.23,%s=192.168.1.23", res.Servers[2].Interfaces[0].SwitchID, pb, ib),
	}
	for name, w := range want {
		if got := strings.Join(nics[name], ","); got != w {
			t.Errorf("%s NICs: %s, want %s", name, got, w)
		}
	}
	on, err := iaas.NewSwitchOp(caller).GetServers(ctx, "is1b", pb)
	if err != nil || len(on.Servers) != 2 || on.Servers[0].Name != "b-1" || on.Servers[1].Name != "b-3" {
		t.Errorf("servers on private-b: %+v %v", on, err)
	}

	// A switch is read through its own zone only.
	if _, err := iaas.NewSwitchOp(caller).Read(ctx, "is1a", pb); !iaas.IsNotFoundError(err) {
		t.Errorf("is1b switch read in is1a: %v, want 404", err)
	}
	if sw, err := iaas.NewSwitchOp(caller).Read(ctx, "is1b", pb); err != nil || sw.BridgeID != k8s.ID {
		t.Errorf("private-b read in is1b: %+v %v", sw, err)
	}
}

// TestBridgeWireForm checks the JSON itself: the switch nests its bridge
// as "Bridge":{"ID":..}, and a bridge answer has SwitchInZone and
// Info.Switches with each switch's zone, as iaas-api-go's naked types do.
func TestBridgeWireForm(t *testing.T) {
	useBridged(t)
	ctx := context.Background()
	pb := switchesOf(t, "is1b")["private-b"]
	data, err := caller.Do(ctx, http.MethodGet, fmt.Sprintf("%s/is1b/api/cloud/1.1/switch/%s", baseURL, pb.ID), nil)
	if err != nil {
		t.Fatal(err)
	}
	var sw struct {
		Switch struct {
			Bridge struct{ ID json.Number }
			Zone   struct{ Name string }
		}
	}
	if err := json.Unmarshal(data, &sw); err != nil {
		t.Fatal(err)
	}
	if sw.Switch.Bridge.ID.String() != pb.BridgeID.String() || sw.Switch.Zone.Name != "is1b" {
		t.Errorf("switch JSON: %s", data)
	}
	data, err = caller.Do(ctx, http.MethodGet, fmt.Sprintf("%s/is1b/api/cloud/1.1/bridge/%s", baseURL, pb.BridgeID), nil)
	if err != nil {
		t.Fatal(err)
	}
	var br struct {
		IsOK   bool `json:"is_ok"`
		Bridge struct {
			SwitchInZone struct{ ID json.Number }
			Info         struct {
				Switches []struct {
					ID   json.Number
					Name string
					Zone struct {
						ID   json.Number
						Name string
					}
				}
			}
		}
	}
	if err := json.Unmarshal(data, &br); err != nil {
		t.Fatal(err)
	}
	got := br.Bridge.Info.Switches
	if !br.IsOK || br.Bridge.SwitchInZone.ID.String() != pb.ID.String() || len(got) != 1 ||
		got[0].Name != "private-a" || got[0].Zone.Name != "is1a" || got[0].Zone.ID != "31001" {
		t.Errorf("bridge JSON: %s", data)
	}
}

// TestBridgeCreateAndConnect: a bridge made through the API is global
// (read from every zone), takes one switch per zone, and connecting and
// disconnecting shows in the switch's BridgeID.
func TestBridgeCreateAndConnect(t *testing.T) {
	useBridged(t)
	ctx := context.Background()
	bop, sop := iaas.NewBridgeOp(caller), iaas.NewSwitchOp(caller)
	br, err := bop.Create(ctx, "is1b", &iaas.BridgeCreateRequest{Name: "new-bridge", Description: "d"})
	if err != nil || br.Name != "new-bridge" || br.ID.IsEmpty() {
		t.Fatalf("create: %+v %v", br, err)
	}
	if got, err := bop.Read(ctx, "is1a", br.ID); err != nil || got.Name != "new-bridge" || got.SwitchInZone != nil || len(got.BridgeInfo) != 0 {
		t.Errorf("new bridge from is1a: %+v %v", got, err)
	}
	b := switchesOf(t, "is1b")
	iso := b["isolated-b"]
	if err := sop.ConnectToBridge(ctx, "is1a", iso.ID, br.ID); !iaas.IsNotFoundError(err) {
		t.Errorf("connect an is1b switch through is1a: %v, want 404", err)
	}
	if err := sop.ConnectToBridge(ctx, "is1b", iso.ID, br.ID); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if sw, err := sop.Read(ctx, "is1b", iso.ID); err != nil || sw.BridgeID != br.ID {
		t.Errorf("after connect: %+v %v", sw, err)
	}
	if got, err := bop.Read(ctx, "is1a", br.ID); err != nil || infoOf(got) != "isolated-b@is1b(31002)" {
		t.Errorf("bridge from is1a after connect: %s %v", infoOf(got), err)
	}
	// private-b is already on k8s-bridge, and k8s-bridge already has an is1b switch.
	if err := sop.ConnectToBridge(ctx, "is1b", b["private-b"].ID, br.ID); err == nil {
		t.Error("a switch connected to two bridges")
	} else if code, _ := apiStatus(err); code != http.StatusConflict {
		t.Errorf("second bridge: %v, want 409", err)
	}
	if err := sop.DisconnectFromBridge(ctx, "is1b", iso.ID); err != nil {
		t.Fatal(err)
	}
	k8s := bridgeByName(t, "is1b", "k8s-bridge")
	if err := sop.ConnectToBridge(ctx, "is1b", iso.ID, k8s.ID); err == nil {
		t.Error("a bridge took two switches of is1b")
	} else if code, _ := apiStatus(err); code != http.StatusConflict {
		t.Errorf("two switches of one zone: %v, want 409", err)
	}
	if sw, err := sop.Read(ctx, "is1b", iso.ID); err != nil || !sw.BridgeID.IsEmpty() {
		t.Errorf("after disconnect: %+v %v", sw, err)
	}
	if err := sop.DisconnectFromBridge(ctx, "is1b", iso.ID); err == nil {
		t.Error("disconnected a switch on no bridge")
	}
	if _, err := bop.Read(ctx, "is1a", 999); !iaas.IsNotFoundError(err) {
		t.Errorf("unknown bridge: %v, want 404", err)
	}
}

// TestZoneSwitchesHoldNoAppliances: appliances stay in the main zone, so a
// load balancer on another zone's switch is refused, through the API and in
// the topology.
func TestZoneSwitchesHoldNoAppliances(t *testing.T) {
	useBridged(t)
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	req := func(sw types.ID) *iaas.LoadBalancerCreateRequest {
		r := lbRequest(sw, []string{"192.168.0.50"}, 9)
		r.NetworkMaskLen, r.DefaultRoute = 24, ""
		return r
	}
	_, err := op.Create(ctx, "is1a", req(switchesOf(t, "is1b")["private-b"].ID))
	if code, _ := apiStatus(err); code != http.StatusBadRequest || !strings.Contains(err.Error(), "not found in zone is1a") {
		t.Errorf("load balancer on an is1b switch: %v, want 400", err)
	}
	// The same request on the is1a end of the bridge is fine.
	if _, err := op.Create(ctx, "is1a", req(switchesOf(t, "is1a")["private-a"].ID)); err != nil {
		t.Errorf("load balancer on private-a: %v", err)
	}
	// b-1 holds .21 on private-b, the same segment as private-a: an
	// appliance there is refused as on b-1's own switch.
	held := lbRequest(switchesOf(t, "is1a")["private-a"].ID, []string{"192.168.0.21"}, 10)
	held.NetworkMaskLen, held.DefaultRoute = 24, ""
	_, err = op.Create(ctx, "is1a", held)
	if code, _ := apiStatus(err); code != http.StatusConflict || !strings.Contains(err.Error(), "server b-1") {
		t.Errorf("load balancer on an address a server holds across the bridge: %v, want 409 naming b-1", err)
	}
}

// TestRouterSwitchOnABridge: a router's switch joins a bridge like a plain
// switch; the is1b end sees it in the bridge, and the router's switch
// reports the bridge.
func TestRouterSwitchOnABridge(t *testing.T) {
	topo, err := ParseTopology([]byte(`
zone: is1a
zones: [is1b]
bridges: [{name: br}]
routers:
  - name: r
    switch: {name: global, network: 203.0.113.0, maskLen: 28, bridge: br}
switches:
  - {name: global-b, zone: is1b, network: 203.0.113.0, maskLen: 28, bridge: br}
`))
	if err != nil {
		t.Fatal(err)
	}
	use(t, topo, Options{})
	br := bridgeByName(t, "is1a", "br")
	global := switchesOf(t, "is1a")["global"]
	if global == nil || global.BridgeID != br.ID || len(global.Subnets) != 1 {
		t.Fatalf("router switch: %+v, want on bridge %s with its subnet", global, br.ID)
	}
	b, err := iaas.NewBridgeOp(caller).Read(context.Background(), "is1b", br.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := infoOf(b); got != "global@is1a(31001)" {
		t.Errorf("bridge seen from is1b: %s", got)
	}
}

// TestAppliancesOfAnotherZone: appliances the topology puts on an is1b
// switch are listed in is1b only, are unknown by ID to is1a, and hold
// their addresses and VRID on the whole bridged segment.
func TestAppliancesOfAnotherZone(t *testing.T) {
	topo, err := ParseTopology([]byte(bridgedZones + `
loadBalancers:
  - {name: lb-b, switch: private-b, ipAddresses: [192.168.0.40], vrid: 7}
vpcRouters:
  - {name: vr-b, switch: private-b, ipAddresses: [192.168.0.41, 192.168.0.42], virtualIPAddress: 192.168.0.43, vrid: 8}
`))
	if err != nil {
		t.Fatal(err)
	}
	use(t, topo, Options{})
	ctx := context.Background()
	names := func(zone string) []string {
		res, err := iaas.NewLoadBalancerOp(caller).Find(ctx, zone, &iaas.FindCondition{})
		if err != nil {
			t.Fatalf("load balancers of %s: %v", zone, err)
		}
		var out []string
		for _, lb := range res.LoadBalancers {
			out = append(out, lb.Name)
		}
		vr, err := iaas.NewVPCRouterOp(caller).Find(ctx, zone, &iaas.FindCondition{})
		if err != nil {
			t.Fatalf("vpc routers of %s: %v", zone, err)
		}
		for _, v := range vr.VPCRouters {
			out = append(out, v.Name)
		}
		return out
	}
	if a, b := names("is1a"), names("is1b"); len(a) != 0 || !slices.Equal(b, []string{"lb-b", "vr-b"}) {
		t.Fatalf("appliances listed: is1a %v, is1b %v; want none and [lb-b vr-b]", a, b)
	}
	res, _ := iaas.NewLoadBalancerOp(caller).Find(ctx, "is1b", &iaas.FindCondition{})
	if _, err := iaas.NewLoadBalancerOp(caller).Read(ctx, "is1a", res.LoadBalancers[0].ID); !iaas.IsNotFoundError(err) {
		t.Errorf("is1b's load balancer read through is1a: %v, want 404", err)
	}
	// The is1a end of the bridge: the addresses and VRIDs are taken.
	privateA := switchesOf(t, "is1a")["private-a"].ID
	for _, tc := range []struct {
		ip   string
		vrid int
		want string
	}{
		{"192.168.0.40", 20, "load balancer lb-b"},
		{"192.168.0.43", 20, "vpc router vr-b"},
		{"192.168.0.60", 7, "load balancer lb-b"},
		{"192.168.0.60", 8, "vpc router vr-b"},
	} {
		req := lbRequest(privateA, []string{tc.ip}, tc.vrid)
		req.NetworkMaskLen, req.DefaultRoute = 24, ""
		_, err := iaas.NewLoadBalancerOp(caller).Create(ctx, "is1a", req)
		if code, _ := apiStatus(err); code != http.StatusConflict || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("load balancer on private-a at %s vrid %d: %v, want 409 naming %s", tc.ip, tc.vrid, err, tc.want)
		}
	}
}

func TestBridgeTopologyErrors(t *testing.T) {
	const base = "zones: [is1b]\nbridges: [{name: br}]\n"
	for _, tc := range []struct{ topo, want string }{
		{"switches: [{name: sw, zone: is1c, network: 192.168.0.0, maskLen: 24}]\n", `switch "sw": zone "is1c" is not served`},
		{base + "switches: [{name: sw, bridge: nope, network: 192.168.0.0, maskLen: 24}]\n", `switch "sw": unknown bridge "nope"`},
		{base + "bridges: [{name: br}, {name: br}]\n", `bridge name "br" empty or duplicate`},
		{base + "switches: [{name: s1, bridge: br, network: 192.168.0.0, maskLen: 24}, {name: s2, bridge: br, network: 192.168.1.0, maskLen: 24}]\n",
			`switch "s2": bridge "br" already has switch "s1" in zone is1a`},
		{base + "routers: [{name: r, switch: {name: g, network: 203.0.113.0, maskLen: 28, bridge: nope}}]\n", `switch "g": unknown bridge "nope"`},
		{base + "switches: [{name: sw, zone: is1b, network: 192.168.0.0, maskLen: 24}]\nservers: [{name: x, nics: [{switch: sw, userIPAddress: 192.168.0.9}]}]\n",
			`server "x" nic 0: switch "sw" is in zone is1b, the server in is1a`},
	} {
		topo, err := ParseTopology([]byte(strings.Replace(tc.topo, "bridges: [{name: br}]\nbridges:", "bridges:", 1)))
		if err != nil {
			t.Fatalf("%q: %v", tc.topo, err)
		}
		if _, err := Build(topo, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.topo, err, tc.want)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBridgedTopologyReach reads every zone's switches and servers through
// iaas-api-go, as a controller would, and asks loadbalancer/topology which
// servers reach private-a: a-1 on it, b-1 and b-3 over the bridge; b-2 is
// only on an unbridged is1b switch.
func TestBridgedTopologyReach(t *testing.T) {
	useBridged(t)
	ctx := context.Background()
	var switches []topology.Switch
	var servers []topology.Server
	for _, z := range []string{"is1a", "is1b", "is1c"} {
		for _, sw := range switchesOf(t, z) {
			switches = append(switches, topology.FromSwitch(z, sw))
		}
		res, err := iaas.NewServerOp(caller).Find(ctx, z, &iaas.FindCondition{})
		if err != nil {
			t.Fatal(err)
		}
		for _, sv := range res.Servers {
			servers = append(servers, topology.FromServer(z, sv))
		}
	}
	r, err := topology.Reach(switches, servers, switchesOf(t, "is1a")["private-a"].ID.String())
	if err != nil {
		t.Fatal(err)
	}
	var reached, unreached []string
	for _, x := range r.Reached {
		reached = append(reached, fmt.Sprintf("%s/%s/%s/%v", x.Name, x.Zone, x.Address, x.Bridged))
	}
	for _, x := range r.Unreached {
		unreached = append(unreached, x.String())
	}
	if got, want := strings.Join(reached, " "), "a-1/is1a/192.168.0.11/false b-1/is1b/192.168.0.21/true b-3/is1b/192.168.0.23/true"; got != want {
		t.Errorf("reached %s, want %s", got, want)
	}
	if got, want := strings.Join(unreached, "; "), "b-2 (zone is1b): no NIC on the load balancer's switch or a switch bridged to it"; got != want {
		t.Errorf("unreached %s, want %s", got, want)
	}
}
