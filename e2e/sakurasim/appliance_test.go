package sakurasim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/zoneview"
	clocktesting "k8s.io/utils/clock/testing"
)

// applianceZone is the sample topology (a VPC router and a foreign load
// balancer on k8s-private) plus two load balancers made through the API.
func applianceZone(t *testing.T) (*Simulator, []*iaas.LoadBalancer) {
	t.Helper()
	sim := use(t, sampleTopology(t), Options{})
	op := iaas.NewLoadBalancerOp(caller)
	swID := routerSwitchID(t)
	var made []*iaas.LoadBalancer
	for i, ips := range [][]string{{"203.0.113.23", "203.0.113.24"}, {"203.0.113.26"}} {
		req := lbRequest(swID, ips, 5+i, vip(fmt.Sprintf("203.0.113.%d", 27+i), 80, "203.0.113.20"))
		req.Tags = types.Tags{"k8s", fmt.Sprintf("service-uid=u%d", i)}
		lb, err := op.Create(context.Background(), zone, req)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, lb)
	}
	sim.ResetRequests()
	return sim, made
}

type listedAppliance struct {
	ID    types.ID
	Class string
}

type appliancePage struct {
	Total, From, Count int
	Appliances         []listedAppliance
}

// getAppliances sends GET .../appliance with the raw condition (as the
// clients send it: JSON in the query) and decodes what identifies each one.
func getAppliances(t *testing.T, cond string) appliancePage {
	t.Helper()
	url := fmt.Sprintf("%s/%s/api/cloud/1.1/appliance", baseURL, zone)
	if cond != "" {
		url += "?" + cond
	}
	data, err := caller.Do(context.Background(), "GET", url, nil)
	if err != nil {
		t.Fatalf("GET appliance?%s: %v", cond, err)
	}
	var p appliancePage
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplianceFindWithoutClassListsEveryAppliance(t *testing.T) {
	sim, _ := applianceZone(t)

	all := getAppliances(t, "")
	if all.Total != 4 || all.Count != 4 || len(all.Appliances) != 4 {
		t.Fatalf("listing: %+v, want 3 load balancers and 1 VPC router", all)
	}
	classes := map[string]int{}
	for i, a := range all.Appliances {
		classes[a.Class]++
		if i > 0 && a.ID <= all.Appliances[i-1].ID {
			t.Errorf("not in ID order: %+v", all.Appliances)
		}
	}
	if classes["loadbalancer"] != 3 || classes["vpcrouter"] != 1 {
		t.Errorf("classes %v", classes)
	}

	// Paged: each page is the next slice of the same order, Total unchanged.
	var paged []listedAppliance
	for from := 0; from < all.Total; from += 3 {
		p := getAppliances(t, fmt.Sprintf(`{"Count":3,"From":%d}`, from))
		if p.Total != 4 || p.From != from || p.Count != len(p.Appliances) {
			t.Errorf("page from %d: %+v", from, p)
		}
		paged = append(paged, p.Appliances...)
	}
	if fmt.Sprint(paged) != fmt.Sprint(all.Appliances) {
		t.Errorf("pages %v, want %v", paged, all.Appliances)
	}

	// A filter without Class (or with several classes) is the whole
	// collection too.
	if p := getAppliances(t, `{"Filter":{"Tags.Name":["k8s"]}}`); p.Total != 2 {
		t.Errorf("filtered by tag: %+v, want the two k8s load balancers", p)
	}
	if p := getAppliances(t, `{"Filter":{"Class":["loadbalancer","vpcrouter"]}}`); p.Total != 4 {
		t.Errorf("two classes: %+v", p)
	}
	ops := sim.Requests().Operations
	if ops["Appliance.Find"].ByStatus["200"] != 5 {
		t.Errorf("requests %+v, want 5 Appliance.Find", ops)
	}
	for _, op := range []string{"LoadBalancer.Find", "VPCRouter.Find"} {
		if ops[op].Total != 0 {
			t.Errorf("%s counted for a listing without one Class: %+v", op, ops)
		}
	}
}

// The class finds are still the collection with a Class filter.
func TestClassFindsStillSelectTheirClass(t *testing.T) {
	sim, _ := applianceZone(t)
	ctx := context.Background()
	lbs, err := iaas.NewLoadBalancerOp(caller).Find(ctx, zone, nil)
	if err != nil || lbs.Total != 3 {
		t.Fatalf("LoadBalancer.Find: %v %+v", err, lbs)
	}
	vrs, err := iaas.NewVPCRouterOp(caller).Find(ctx, zone, nil)
	if err != nil || vrs.Total != 1 || vrs.VPCRouters[0].Name != "office-vpc-router" {
		t.Fatalf("VPCRouter.Find: %v %+v", err, vrs)
	}
	dbs, err := iaas.NewDatabaseOp(caller).Find(ctx, zone, nil)
	if err != nil || dbs.Total != 0 {
		t.Fatalf("Database.Find: %v %+v", err, dbs)
	}
	ops := sim.Requests().Operations
	if ops["LoadBalancer.Find"].Total != 1 || ops["VPCRouter.Find"].Total != 1 || ops["Database.Find"].Total != 1 || ops["Appliance.Find"].Total != 0 {
		t.Errorf("requests %+v", ops)
	}
}

// The controller's listing (sakuraapi's Appliance.Find under zoneview's
// Lister) gets load balancers and VPC routers with their addresses, in
// one call per page, and their usage of each switch.
func TestZoneListingAgainstTheSimulator(t *testing.T) {
	sim, made := applianceZone(t)
	ctx := context.Background()
	c := sakuraapi.NewFromCaller(caller, zone, sakuraapi.Limits{})
	l := zoneview.NewLister(c.Appliances, zone, clocktesting.NewFakePassiveClock(time.Now()))
	snap, err := l.Get(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	lbs := snap.LoadBalancers()
	if len(lbs) != 3 {
		t.Fatalf("load balancers %+v", lbs)
	}
	if got := snap.Owned("k8s", "service-uid=u1"); len(got) != 1 || got[0].ID != made[1].ID ||
		fmt.Sprint(got[0].IPAddresses) != "[203.0.113.26]" || got[0].VRID != 6 || got[0].SwitchID != made[1].SwitchID ||
		len(got[0].VirtualIPAddresses) != 1 || got[0].VirtualIPAddresses[0].VirtualIPAddress != "203.0.113.28" {
		t.Errorf("owned by u1: %+v", got)
	}
	a := snap.Appliances()
	if len(a.VPCRouters) != 1 {
		t.Fatalf("VPC routers %+v", a.VPCRouters)
	}
	vr := a.VPCRouters[0]
	if vr.Name != "office-vpc-router" || vr.Settings == nil || vr.Settings.VRID != 1 {
		t.Errorf("VPC router %+v", vr)
	}

	// k8s-private holds the VPC router's and the foreign load balancer's
	// addresses and VRIDs; k8s-global the two load balancers made here.
	var private types.ID
	for _, sw := range sim.Snapshot().Switches {
		if sw.Name == "k8s-private" {
			private = sw.ID
		}
	}
	u := snap.Usage(private)
	for _, ip := range []string{"192.168.100.1", "192.168.100.2", "192.168.100.3", "192.168.100.250", "192.168.100.251", "192.168.100.200"} {
		if u.IPs[netip.MustParseAddr(ip)] == "" {
			t.Errorf("%s not held on k8s-private: %v", ip, u.IPs)
		}
	}
	if u.VRIDs[1] == "" || u.VRIDs[20] == "" {
		t.Errorf("VRIDs on k8s-private %v, want 1 (VPC router) and 20 (foreign load balancer)", u.VRIDs)
	}
	g := snap.Usage(made[0].SwitchID)
	if len(g.IPs) != 5 || len(g.VRIDs) != 2 || len(g.Appliances) != 2 {
		t.Errorf("k8s-global usage %v %v %v", g.IPs, g.VRIDs, g.Appliances)
	}

	if n := c.Stats().Total(nil); n != 1 {
		t.Errorf("the listing cost %d calls: %v", n, c.Stats().Snapshot())
	}
	if ops := sim.Requests().Operations; ops["Appliance.Find"].Total != 1 || sim.Requests().Total != 1 {
		t.Errorf("simulator saw %+v, want one Appliance.Find", ops)
	}
}
