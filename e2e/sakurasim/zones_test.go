package sakurasim

import (
	"context"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
)

const twoZones = `
zone: is1a
zones: [is1b]
switches:
  - name: private
    network: 192.168.0.0
    maskLen: 24
servers:
  - name: a-1
    nics: [{switch: private, userIPAddress: 192.168.0.11}]
  - name: b-1
    zone: is1b
    cpu: 4
    memoryGB: 8
    nics: [{shared: true, ipAddress: 203.0.113.21}]
  - name: b-2
    zone: is1b
`

// TestZonesServeTheirOwnServers: each zone's path lists and reads only its
// own servers, which carry their zone; the other zone's lists of switches
// and appliances are empty, and a load balancer cannot be made there on a
// switch it does not have.
func TestZonesServeTheirOwnServers(t *testing.T) {
	topo, err := ParseTopology([]byte(twoZones))
	if err != nil {
		t.Fatal(err)
	}
	sim := use(t, topo, Options{})
	ctx := context.Background()
	op := iaas.NewServerOp(caller)
	names := map[string][]string{}
	for _, z := range []string{"is1a", "is1b"} {
		res, err := op.Find(ctx, z, &iaas.FindCondition{})
		if err != nil {
			t.Fatalf("%s: %v", z, err)
		}
		for _, s := range res.Servers {
			if s.Zone == nil || s.Zone.Name != z {
				t.Errorf("%s lists %s with zone %+v", z, s.Name, s.Zone)
			}
			names[z] = append(names[z], s.Name)
		}
		if res.Total != len(res.Servers) {
			t.Errorf("%s: Total %d for %d servers", z, res.Total, len(res.Servers))
		}
	}
	if strings.Join(names["is1a"], ",") != "a-1" || strings.Join(names["is1b"], ",") != "b-1,b-2" {
		t.Fatalf("servers per zone: %v", names)
	}
	b1, err := op.Find(ctx, "is1b", &iaas.FindCondition{})
	if err != nil {
		t.Fatal(err)
	}
	id := b1.Servers[0].ID
	if s, err := op.Read(ctx, "is1b", id); err != nil || s.Name != "b-1" || s.CPU != 4 || s.Interfaces[0].IPAddress != "203.0.113.21" {
		t.Errorf("read in its zone: %+v %v", s, err)
	}
	if _, err := op.Read(ctx, "is1a", id); !iaas.IsNotFoundError(err) {
		t.Errorf("read of an is1b server in is1a: %v, want 404", err)
	}
	if sw, err := iaas.NewSwitchOp(caller).Find(ctx, "is1b", &iaas.FindCondition{}); err != nil || len(sw.Switches) != 0 {
		t.Errorf("is1b switches: %+v %v, want none", sw, err)
	}
	if lbs, err := iaas.NewLoadBalancerOp(caller).Find(ctx, "is1b", &iaas.FindCondition{}); err != nil || len(lbs.LoadBalancers) != 0 {
		t.Errorf("is1b load balancers: %+v %v, want none", lbs, err)
	}
	if _, err := iaas.NewLoadBalancerOp(caller).Create(ctx, "is1b", lbRequest(1, []string{"192.168.0.50"}, 9)); err == nil || !strings.Contains(err.Error(), "Remark.Switch.ID") {
		t.Errorf("create in is1b on a switch it does not have: %v, want a 400 naming Remark.Switch.ID", err)
	}
	if _, err := op.Find(ctx, "tk1a", &iaas.FindCondition{}); !iaas.IsNotFoundError(err) {
		t.Errorf("a zone not served: %v, want 404", err)
	}
	zones, err := iaas.NewZoneOp(caller).Find(ctx, &iaas.FindCondition{})
	if err != nil || len(zones.Zones) != 2 {
		t.Errorf("zones: %+v %v", zones, err)
	}
	// The admin API adds servers to a zone the same way.
	added, err := sim.AddServer(ServerSpec{Name: "b-3", Zone: "is1b"})
	if err != nil || added.Zone == nil || added.Zone.Name != "is1b" {
		t.Fatalf("admin add to is1b: %+v %v", added, err)
	}
	if s, err := op.Read(ctx, "is1b", added.ID); err != nil || s.Name != "b-3" {
		t.Errorf("added server in is1b: %+v %v", s, err)
	}
	if _, err := sim.AddServer(ServerSpec{Name: "c-1", Zone: "is1c"}); err == nil {
		t.Error("a server in a zone not served was added")
	}
}

// TestFaultInOneZone: a rule with a zone fails that zone's requests only.
func TestFaultInOneZone(t *testing.T) {
	topo, err := ParseTopology([]byte(twoZones))
	if err != nil {
		t.Fatal(err)
	}
	s := use(t, topo, Options{})
	if err := s.SetFaults([]FaultRule{{Op: "*", Zone: "is1b", Status: 503}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	op := iaas.NewServerOp(noRetryCaller)
	if _, err := op.Find(ctx, "is1a", &iaas.FindCondition{}); err != nil {
		t.Errorf("is1a during is1b's outage: %v", err)
	}
	if _, err := op.Find(ctx, "is1b", &iaas.FindCondition{}); err == nil {
		t.Error("is1b answered despite its fault")
	} else if code, _ := apiStatus(err); code != 503 {
		t.Errorf("is1b: %v, want 503", err)
	}
	if err := s.SetFaults([]FaultRule{{Op: "*", Zone: "is9z", Status: 503}}); err == nil || !strings.Contains(err.Error(), `unknown zone "is9z"`) {
		t.Errorf("unknown zone in a rule: %v", err)
	}
}

func TestZonesTopologyErrors(t *testing.T) {
	for _, tc := range []struct{ topo, want string }{
		{"zones: [is9z]\n", `zones: unknown zone "is9z"`},
		{"servers: [{name: x, zone: is1c}]\n", `server "x": zone "is1c" is not served (zones: is1a)`},
		{"zones: [is1b]\nswitches: [{name: sw, network: 192.168.0.0, maskLen: 24}]\nservers: [{name: x, zone: is1b, nics: [{switch: sw, userIPAddress: 192.168.0.9}]}]\n",
			`server "x" nic 0: switch "sw" is in zone is1a, the server in is1b`},
	} {
		topo, err := ParseTopology([]byte(tc.topo))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Build(topo, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.topo, err, tc.want)
		}
	}
}

const zonedBlocks = `
zone: is1a
zones: [is1b]
routers:
  - name: block-a
    switch: {name: block-a-switch, network: 203.0.113.16, maskLen: 28}
  - name: block-b
    zone: is1b
    switch: {name: block-b-switch, network: 203.0.113.32, maskLen: 28}
`

// TestApplianceInItsSwitchsZone: a router+switch may live in is1b; a load
// balancer on its switch is made in is1b (not in is1a, which does not have
// the switch), listed and read there only, and answers 404 in is1a.
func TestApplianceInItsSwitchsZone(t *testing.T) {
	topo, err := ParseTopology([]byte(zonedBlocks))
	if err != nil {
		t.Fatal(err)
	}
	use(t, topo, Options{})
	ctx := context.Background()
	routers, err := iaas.NewInternetOp(caller).Find(ctx, "is1b", &iaas.FindCondition{})
	if err != nil || len(routers.Internet) != 1 || routers.Internet[0].Name != "block-b" {
		t.Fatalf("is1b routers: %+v %v, want block-b", routers, err)
	}
	swB := routers.Internet[0].Switch.ID
	if _, err := iaas.NewInternetOp(caller).Read(ctx, "is1a", routers.Internet[0].ID); !iaas.IsNotFoundError(err) {
		t.Errorf("read of is1b's router in is1a: %v, want 404", err)
	}
	op := iaas.NewLoadBalancerOp(caller)
	req := lbRequest(swB, []string{"203.0.113.36"}, 1)
	req.DefaultRoute = "203.0.113.33"
	if _, err := op.Create(ctx, "is1a", req); err == nil {
		t.Fatal("a load balancer on is1b's switch was made in is1a")
	}
	lb, err := op.Create(ctx, "is1b", req)
	if err != nil {
		t.Fatalf("create in is1b on is1b's switch: %v", err)
	}
	if _, err := op.Read(ctx, "is1b", lb.ID); err != nil {
		t.Errorf("read in is1b: %v", err)
	}
	if _, err := op.Read(ctx, "is1a", lb.ID); !iaas.IsNotFoundError(err) {
		t.Errorf("read of the is1b load balancer in is1a: %v, want 404", err)
	}
	for z, want := range map[string]int{"is1a": 0, "is1b": 1} {
		if got, err := op.Find(ctx, z, &iaas.FindCondition{}); err != nil || len(got.LoadBalancers) != want {
			t.Errorf("%s lists %+v (%v), want %d load balancers", z, got, err, want)
		}
	}
}
