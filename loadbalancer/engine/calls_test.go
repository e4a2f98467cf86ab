package engine

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

// opCalls counts the calls of op made since snap.
func opCalls(c *sakuraapi.Client, snap map[sakuraapi.CallKey]int, op string) int {
	n := 0
	for k, v := range c.Stats().Snapshot() {
		if k.Op == op {
			n += v - snap[k]
		}
	}
	return n
}

// consumerOps are the reads an allocation may reuse for inventoryTTL.
var consumerOps = []string{"Switch.Read", "Switch.GetServers"}

// classFinds are the finds of one appliance class: the zone's one
// listing (Appliance.Find) takes their place.
var classFinds = []string{"LoadBalancer.Find", "VPCRouter.Find", "Database.Find", "NFS.Find", "MobileGateway.Find"}

// ageZoneListing makes the shared zone listing too old to be used again.
func (e *env) ageZoneListing() { e.lb.raiseZoneFloor() }

// nextAddr is the address after ip.
func nextAddr(t *testing.T, ip string) string {
	t.Helper()
	return netip.MustParseAddr(ip).Next().String()
}

// A second create within loadBalancer.inventoryTTLSec reuses the switch and
// its servers, and lists the zone's appliances again once the shared
// listing is older than zoneReuse: an appliance made outside the
// controller in between keeps its address. A create costs at most 4 calls
// cold (listing, switch, its servers, create) and 2 warm.
func TestInventoryIsReusedWithinItsTTL(t *testing.T) {
	e := newEnv(t, 27)
	e.cfg.InventoryTTLSec = 60
	e.rebuild()
	nodes := e.addNodes(3, 0)

	first := service("first", 80)
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", first, nodes); !isRetry(err) {
		t.Fatalf("first create: %v", err)
	}
	if n := opCalls(e.client, snap, "Switch.GetServers"); n != 1 {
		t.Errorf("first create: Switch.GetServers called %d times, want 1", n)
	}
	for _, op := range classFinds {
		if n := opCalls(e.client, snap, op); n != 0 {
			t.Errorf("first create: %s called %d times, want 0 (the zone's one listing serves)", op, n)
		}
	}
	if n := calls(e.client, snap); n > 4 {
		t.Errorf("first create made %d calls, want at most 4 (listing, switch, its servers, create)", n)
	}
	firstVIP := e.ensureUp(first, nodes).Ingress[0].IP

	// An appliance made by hand on the next free address, after the
	// inventory was read.
	taken := nextAddr(t, firstVIP)
	hand := &iaas.LoadBalancer{ID: e.id(), Name: "by-hand", SwitchID: e.sw.ID, VRID: 77,
		IPAddresses:        []string{nextAddr(t, taken)},
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: taken, Port: 80}},
		InstanceStatus:     types.ServerInstanceStatuses.Up, Availability: types.Availabilities.Available}
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, hand.ID, hand)
	e.ageZoneListing()

	second := service("second", 80)
	snap = e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", second, nodes); !isRetry(err) {
		t.Fatalf("second create: %v", err)
	}
	for _, op := range consumerOps {
		if n := opCalls(e.client, snap, op); n != 0 {
			t.Errorf("second create within the TTL: %s called %d times, want 0 (reused)", op, n)
		}
	}
	if n := opCalls(e.client, snap, "Appliance.Find"); n != 1 {
		t.Errorf("second create: Appliance.Find called %d times, want one fresh listing (for its own look and the inventory)", n)
	}
	if n := calls(e.client, snap); n > 2 {
		t.Errorf("second create made %d calls, want at most 2 (listing, create)", n)
	}
	// A create right after it: one listing newer than its lock serves its
	// look and its inventory.
	snap = e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("soon", 80), nodes); !isRetry(err) {
		t.Fatalf("create right after: %v", err)
	}
	if n := opCalls(e.client, snap, "Appliance.Find"); n != 1 {
		t.Errorf("create right after another: %d listings, want 1 (its look and its inventory)", n)
	}
	if n := calls(e.client, snap); n != 2 {
		t.Errorf("create right after another: %d calls, want 2 (listing, create)", n)
	}

	got := e.ensureUp(second, nodes).Ingress[0].IP
	if got == firstVIP || got == taken || got == hand.IPAddresses[0] {
		t.Fatalf("second Service got %s, which is held (first %s, by-hand VIP %s, by-hand appliance %s)", got, firstVIP, taken, hand.IPAddresses[0])
	}

	// A refused create forgets the switch's inventory.
	e.lb.forgetInventory(e.sw.ID)
	third := service("third", 80)
	snap = e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", third, nodes); !isRetry(err) {
		t.Fatalf("third create: %v", err)
	}
	if n := opCalls(e.client, snap, "Switch.GetServers"); n != 1 {
		t.Errorf("after the inventory was forgotten: Switch.GetServers called %d times, want 1", n)
	}
}

// With loadBalancer.inventoryTTLSec 0 every allocation reads everything.
func TestInventoryTTLZeroReadsEveryTime(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	for _, name := range []string{"a", "b"} {
		snap := e.client.Stats().Snapshot()
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service(name, 80), nodes); !isRetry(err) {
			t.Fatalf("create %s: %v", name, err)
		}
		for _, op := range consumerOps {
			if n := opCalls(e.client, snap, op); n < 1 {
				t.Errorf("create %s: %s called %d times, want at least 1", name, op, n)
			}
		}
	}
}

// The service controller asks GetLoadBalancer right before each delete;
// the delete uses the same listing: list, shut down, confirm, delete.
func TestDeleteReusesTheServiceControllersListing(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	e.ageZoneListing()
	snap := e.client.Stats().Snapshot()
	e.deleteAsServiceController(svc)
	if n := opCalls(e.client, snap, "Appliance.Find"); n != 1 {
		t.Errorf("delete after GetLoadBalancer: %d listings, want 1", n)
	}
	if n := calls(e.client, snap); n != 4 {
		t.Errorf("delete: %d calls, want 4 (listing, shutdown, confirm, delete)", n)
	}
	if len(e.lbs()) != 0 {
		t.Fatal("appliance not deleted")
	}
}

// Creates sharing one zone listing still get distinct addresses and VRIDs:
// the listing does not show the appliances made since, their reservations
// do.
func TestCreatesSharingAZoneListingGetDistinctAddresses(t *testing.T) {
	e := newEnv(t, 27)
	e.cfg.InventoryTTLSec = 60
	e.rebuild()
	nodes := e.addNodes(3, 0)
	e.ensureUp(service("first", 80), nodes) // the zone listing is not empty from here on
	snap := e.client.Stats().Snapshot()
	var names []string
	for i := 0; i < 6; i++ {
		svc := service(fmt.Sprintf("burst-%d", i), 80)
		names = append(names, svc.Name)
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
			t.Fatalf("create %s: %v", svc.Name, err)
		}
	}
	if n := opCalls(e.client, snap, "Appliance.Find"); n > 6 {
		t.Errorf("6 creates in a burst made %d listings, want at most 6 (one each serves its look and its inventory)", n)
	}
	vips, vrids := map[string]string{}, map[int]string{}
	for _, lb := range e.lbs() {
		v := vipOf(lb)
		if other, dup := vips[v]; dup {
			t.Errorf("VIP %s on %s and %s", v, other, lb.Name)
		}
		vips[v] = lb.Name
		if other, dup := vrids[lb.VRID]; dup {
			t.Errorf("VRID %d on %s and %s", lb.VRID, other, lb.Name)
		}
		vrids[lb.VRID] = lb.Name
	}
	if len(vips) != 7 {
		t.Errorf("%d appliances with distinct VIPs, want 7", len(vips))
	}
}

// A Service's own find showing its new appliance does not release the
// appliance's reservation: an allocation reusing a zone listing made before
// the appliance was listed would hand its VIP out again (torture seeds
// 6035, 6211). Only an inventory that lists the appliance drops it.
func TestReservationOutlivesTheServicesOwnFind(t *testing.T) {
	e := newEnv(t, 27)
	e.cfg.InventoryTTLSec = 60
	e.rebuild()
	nodes := e.addNodes(3, 0)
	// Another switch's appliance, so the zone listing is not empty.
	_, elsewhere := e.addBlock(28, "elsewhere")
	foreign := &iaas.LoadBalancer{ID: e.id(), Name: "foreign", SwitchID: elsewhere.ID, VRID: 1,
		InstanceStatus: types.ServerInstanceStatuses.Up, Availability: types.Availabilities.Available}
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, foreign.ID, foreign)

	a := service("a", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", a, nodes); !isRetry(err) {
		t.Fatalf("create a: %v", err)
	}
	vipA := e.ensureUp(a, nodes).Ingress[0].IP // a's own finds see its appliance

	b := service("b", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes); !isRetry(err) {
		t.Fatalf("create b: %v", err)
	}
	vipB := e.ensureUp(b, nodes).Ingress[0].IP
	if vipA == vipB {
		t.Fatalf("a and b both got %s", vipA)
	}
}
