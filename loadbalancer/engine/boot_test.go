package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
)

// putBooting stores an appliance of svc that is still booting.
func (e *env) putBooting(svc *v1.Service, vip string) *iaas.LoadBalancer {
	lb := &iaas.LoadBalancer{ID: e.id(), Name: desired.Name("test", svc), SwitchID: e.sw.ID, VRID: 1,
		Tags:               types.Tags{desired.ClusterTag("test"), desired.ServiceTag(string(svc.UID))},
		IPAddresses:        []string{vip},
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: vip, Port: 80, DelayLoop: 10}},
		InstanceStatus:     types.ServerInstanceStatuses.Down, Availability: types.Availabilities.Migrating,
		CreatedAt: time.Now()}
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	// Runs before the env's settle, which waits for appliances in transition.
	e.t.Cleanup(func() { fake.DataStore.Delete(fake.ResourceLoadBalancer, zone, lb.ID) })
	return lb
}

// Services waiting for their appliances to boot share one listing per look
// round instead of one find each, and each look sees a listing newer than
// its last one (no Service is told "still booting" from an old answer).
func TestBootLooksShareOneListing(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	var svcs []*v1.Service
	var lbs []*iaas.LoadBalancer
	for i := 0; i < 5; i++ {
		svc := service(fmt.Sprintf("boot-%d", i), 80)
		svcs = append(svcs, svc)
		lbs = append(lbs, e.putBooting(svc, e.ip(10+i)))
	}
	look := func() {
		t.Helper()
		for _, svc := range svcs {
			if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
				t.Fatalf("%s: want a RetryError while booting, got %v", svc.Name, err)
			}
		}
	}
	look() // each finds its own appliance booting
	for round := 0; round < 2; round++ {
		snap := e.client.Stats().Snapshot()
		look()
		if n := calls(e.client, snap); n != 1 {
			t.Errorf("look round %d of 5 booting Services made %d calls, want 1 (one shared listing)", round, n)
		}
	}

	// They come up. A look may still use a listing made after its own
	// previous look but before they came up (the shared listing); the
	// round after sees every one up.
	for _, lb := range lbs {
		lb.InstanceStatus, lb.Availability = types.ServerInstanceStatuses.Up, types.Availabilities.Available
		fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	}
	for _, svc := range svcs {
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil && !isRetry(err) {
			t.Fatalf("%s right after its appliance came up: %v", svc.Name, err)
		}
	}
	for i, svc := range svcs {
		st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
		if err != nil || len(st.Ingress) != 1 || st.Ingress[0].IP != e.ip(10+i) {
			t.Fatalf("%s after its appliance came up: status %v, err %v; want %s", svc.Name, st, err, e.ip(10+i))
		}
	}
	e.lb.mem.mu.Lock()
	left := len(e.lb.mem.boots)
	e.lb.mem.mu.Unlock()
	if left != 0 {
		t.Errorf("%d boot waits remain after every appliance came up, want 0", left)
	}
}

// A created appliance's boot time sets where the next boots' looks go
// dense; one found booting (not created here) does not.
func TestBootTimeIsLearnedFromCreates(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	found := service("found", 80)
	lb := e.putBooting(found, e.ip(10))
	lb.CreatedAt = time.Now().Add(-7 * time.Minute)
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", found, nodes); !isRetry(err) {
		t.Fatalf("found booting: %v", err)
	}
	lb.InstanceStatus, lb.Availability = types.ServerInstanceStatuses.Up, types.Availabilities.Available
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	e.ensureUp(found, nodes)
	if got := e.lb.mem.typicalBoot; got != 0 {
		t.Errorf("boot time after an appliance found booting: %v, want none learned", got)
	}

	created := service("created", 80)
	e.ensureUp(created, nodes)
	if got := e.lb.mem.typicalBoot; got <= 0 || got > time.Minute {
		t.Errorf("boot time after a create: %v, want the fake's short boot", got)
	}
}

// A shared listing that does not show a Service's awaited appliance never
// answers "none" for it: it may be older than the moment the appliance was
// listed (and its reservation released), and "none" would create a second
// appliance (torture seeds 11, 13, 20). The Service finds afresh instead.
func TestBootListingWithoutTheApplianceIsNotTrusted(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	a, b := service("a", 80), service("b", 80)
	lbA := e.putBooting(a, e.ip(10))
	e.putBooting(b, e.ip(11))
	for _, svc := range []*v1.Service{a, b} {
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
			t.Fatalf("%s booting: %v", svc.Name, err)
		}
	}
	// b's look lists the cluster at a moment a's appliance is not listed.
	fake.DataStore.Delete(fake.ResourceLoadBalancer, zone, lbA.ID)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes); !isRetry(err) {
		t.Fatalf("b booting: %v", err)
	}
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lbA.ID, lbA)

	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", a, nodes); !isRetry(err) {
		t.Fatalf("a booting: %v", err)
	}
	if n := opCalls(e.client, snap, "LoadBalancer.Create"); n != 0 {
		t.Fatalf("a created %d more appliances from a listing that did not show its own", n)
	}
	if n := opCalls(e.client, snap, "Appliance.Find"); n != 1 {
		t.Errorf("a: %d listings, want 1 (afresh)", n)
	}
}
