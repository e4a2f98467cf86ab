package engine

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

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

// consumerOps are the listings an allocation may reuse for inventoryTTL.
var consumerOps = []string{"Switch.Read", "Switch.GetServers", "VPCRouter.Find", "Database.Find", "NFS.Find", "MobileGateway.Find"}

// ageZoneListing makes the shared zone listing older than zoneLBsReuse.
func (e *env) ageZoneListing() {
	e.lb.switches.mu.Lock()
	e.lb.switches.zoneLBsListed = e.lb.switches.zoneLBsListed.Add(-zoneLBsReuse)
	e.lb.switches.mu.Unlock()
}

// nextAddr is the address after ip.
func nextAddr(t *testing.T, ip string) string {
	t.Helper()
	return netip.MustParseAddr(ip).Next().String()
}

// A second create within loadBalancer.inventoryTTLSec reuses the switch and
// its other consumers, and lists load balancers again once the shared zone
// listing is older than zoneLBsReuse: an appliance made outside the
// controller in between keeps its address.
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
	for _, op := range consumerOps[1:] {
		if n := opCalls(e.client, snap, op); n != 1 {
			t.Errorf("first create: %s called %d times, want 1", op, n)
		}
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
	if n := opCalls(e.client, snap, "LoadBalancer.Find"); n < 2 {
		t.Errorf("second create: LoadBalancer.Find called %d times, want the Service's own look and a fresh zone listing", n)
	}
	if n := calls(e.client, snap); n > 3 {
		t.Errorf("second create made %d calls, want at most 3 (find own, list load balancers, create)", n)
	}
	// A create right after it shares its zone listing (zoneLBsReuse; a
	// find that lists an appliance of its reservation drops the listing,
	// so this comes before the second Service's appliance is seen).
	snap = e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("soon", 80), nodes); !isRetry(err) {
		t.Fatalf("create right after: %v", err)
	}
	if n := opCalls(e.client, snap, "LoadBalancer.Find"); n != 1 {
		t.Errorf("create within zoneLBsReuse of another: %d finds, want 1 (its own; the zone listing shared)", n)
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
// the delete reuses that find: find, shut down, confirm, delete.
func TestDeleteReusesTheServiceControllersFind(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	snap := e.client.Stats().Snapshot()
	e.deleteAsServiceController(svc)
	if n := opCalls(e.client, snap, "LoadBalancer.Find"); n != 1 {
		t.Errorf("delete after GetLoadBalancer: %d finds, want 1", n)
	}
	if n := calls(e.client, snap); n != 4 {
		t.Errorf("delete: %d calls, want 4 (find, shutdown, confirm, delete)", n)
	}
	if len(e.lbs()) != 0 {
		t.Fatal("appliance not deleted")
	}

	// A find older than foundReuse is not reused.
	other := service("other", 80)
	e.ensureUp(other, nodes)
	if _, _, err := e.lb.GetLoadBalancer(e.ctx, "test", other); err != nil {
		t.Fatal(err)
	}
	e.lb.mem.mu.Lock()
	f := e.lb.mem.found[string(other.UID)]
	f.at = f.at.Add(-foundReuse - time.Second)
	e.lb.mem.found[string(other.UID)] = f
	e.lb.mem.mu.Unlock()
	snap = e.client.Stats().Snapshot()
	e.deleteAll(other)
	if n := opCalls(e.client, snap, "LoadBalancer.Find"); n < 1 {
		t.Errorf("delete after a stale GetLoadBalancer: %d finds, want a fresh one", n)
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
	if n := opCalls(e.client, snap, "LoadBalancer.Find"); n > 7 {
		t.Errorf("6 creates in a burst made %d finds, want at most 7 (one own find each, one zone listing)", n)
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
