package engine

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
)

// putEarlier stores a running appliance named and tagged the way the
// earlier controller named and tagged svc's, serving vip:80.
func (e *env) putEarlier(svc *v1.Service, vip string, tags ...string) *iaas.LoadBalancer {
	lb := &iaas.LoadBalancer{ID: e.id(), Name: cloudprovider.DefaultLoadBalancerName(svc), SwitchID: e.sw.ID, VRID: 1, PlanID: desired.PlanIDStandard,
		Tags:               types.Tags(append([]string{decide.EarlierMarkerTag, decide.EarlierServiceTag(svc.Name)}, tags...)),
		IPAddresses:        []string{e.ip(20)},
		NetworkMaskLen:     e.sw.Subnets[0].NetworkMaskLen,
		DefaultRoute:       e.sw.Subnets[0].DefaultRoute,
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: vip, Port: 80, DelayLoop: 10}},
		InstanceStatus:     types.ServerInstanceStatuses.Up, Availability: types.Availabilities.Available,
		CreatedAt: time.Now()}
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	return lb
}

func (e *env) adopting() {
	e.cfg.AdoptEarlier = true
	e.rebuild()
}

func TestAdoptEarlierKeepsVIP(t *testing.T) {
	e := newEnv(t, 27)
	e.adopting()
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	old := e.putEarlier(svc, e.ip(10), "@k8s.ClusterID=test")
	st := e.ensureUp(svc, nodes)
	if len(st.Ingress) != 1 || st.Ingress[0].IP != e.ip(10) {
		t.Fatalf("status %+v, want the earlier VIP %s", st, e.ip(10))
	}
	lbs := e.lbs()
	if len(lbs) != 1 || lbs[0].ID != old.ID {
		t.Fatalf("want the one earlier appliance, have %d", len(lbs))
	}
	if !desired.HasTags(lbs[0].Tags, "@k8s", "@k8s.ClusterID=test", decide.EarlierServiceTag("web"), desired.ClusterTag("test"), desired.ServiceTag(string(svc.UID))) {
		t.Fatalf("tags %v: want the earlier ones kept and ours added", lbs[0].Tags)
	}
	if len(lbs[0].VirtualIPAddresses) != 1 || len(lbs[0].VirtualIPAddresses[0].Servers) != 2 {
		t.Fatalf("entries not brought in line: %+v", lbs[0].VirtualIPAddresses)
	}
	if findEvent(e.events(), "Normal", ReasonAdopted, old.ID.String()) == "" {
		t.Fatalf("no %s event", ReasonAdopted)
	}
	// Later syncs find it by its own tags: no second write of the tags.
	snap := e.client.Stats().Snapshot()
	e.ensureUp(svc, nodes)
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("resync wrote %v", by)
	}
}

func TestAdoptEarlierOff(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	old := e.putEarlier(svc, e.ip(10))
	e.ensureUp(svc, nodes)
	for _, lb := range e.lbs() {
		if lb.ID == old.ID && desired.HasTags(lb.Tags, desired.ClusterTag("test")) {
			t.Fatalf("adopted with adoptEarlier off")
		}
	}
	if len(e.lbs()) != 2 {
		t.Fatalf("want a new appliance beside the earlier one")
	}
}

func TestAdoptRefusedWritesNothing(t *testing.T) {
	cases := []struct {
		name   string
		put    func(e *env, svc *v1.Service) []*iaas.LoadBalancer
		whyHas string
	}{
		{"two matches", func(e *env, svc *v1.Service) []*iaas.LoadBalancer {
			return []*iaas.LoadBalancer{e.putEarlier(svc, e.ip(10)), e.putEarlier(svc, e.ip(11))}
		}, "2 load balancers"},
		{"another cluster ID", func(e *env, svc *v1.Service) []*iaas.LoadBalancer {
			return []*iaas.LoadBalancer{e.putEarlier(svc, e.ip(10), "@k8s.ClusterID=elsewhere")}
		}, "@k8s.ClusterID=elsewhere"},
		{"owned by another cluster", func(e *env, svc *v1.Service) []*iaas.LoadBalancer {
			return []*iaas.LoadBalancer{e.putEarlier(svc, e.ip(10), desired.ClusterTag("other"), desired.ServiceTag("x"))}
		}, "another cluster"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 27)
			e.adopting()
			nodes := e.addNodes(2, 0)
			svc := service("web", 80)
			put := c.put(e, svc)
			snap := e.client.Stats().Snapshot()
			_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
			if err == nil || isRetry(err) || !strings.Contains(err.Error(), c.whyHas) {
				t.Fatalf("err %v, want a refusal naming %q", err, c.whyHas)
			}
			for _, lb := range put {
				if !strings.Contains(err.Error(), lb.ID.String()) {
					t.Errorf("refusal does not name %s: %v", lb.ID, err)
				}
			}
			if n, by := writes(e.client, snap); n != 0 {
				t.Fatalf("refusal wrote %v", by)
			}
			if len(e.lbs()) != len(put) {
				t.Fatalf("refusal created an appliance")
			}
			if findEvent(e.events(), "Warning", ReasonAdoptRefused) == "" {
				t.Fatalf("no %s Warning", ReasonAdoptRefused)
			}
		})
	}
}

func TestPreserveThenAdoptByID(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	svc.Annotations[annotations.Preserve] = "true"
	st := e.ensureUp(svc, nodes)
	vip := st.Ingress[0].IP
	e.deleteAsServiceController(svc)
	lbs := e.lbs()
	if len(lbs) != 1 || !lbs[0].InstanceStatus.IsUp() {
		t.Fatalf("preserved appliance gone or down: %+v", lbs)
	}
	kept := lbs[0]
	for _, tag := range kept.Tags {
		if strings.HasPrefix(tag, desired.TagPrefix) {
			t.Fatalf("preserved appliance still carries %s", tag)
		}
	}
	if len(kept.VirtualIPAddresses) != 1 || kept.VirtualIPAddresses[0].VirtualIPAddress != vip {
		t.Fatalf("entries not kept: %+v", kept.VirtualIPAddresses)
	}
	if findEvent(e.events(), "Normal", ReasonPreserved, kept.ID.String()) == "" {
		t.Fatalf("no %s event naming %s", ReasonPreserved, kept.ID)
	}

	// Another Service names it by ID: same appliance, same address.
	next := service("web2", 80, 443)
	next.Annotations[annotations.AdoptID] = kept.ID.String()
	st = e.ensureUp(next, nodes)
	if st.Ingress[0].IP != vip || len(e.lbs()) != 1 {
		t.Fatalf("re-adopted on %v with %d appliances, want %s on one", st.Ingress, len(e.lbs()), vip)
	}
	if got := e.lbs()[0]; len(got.VirtualIPAddresses) != 2 || !desired.HasTags(got.Tags, desired.ServiceTag(string(next.UID))) {
		t.Fatalf("re-adopted appliance: %+v tags %v", got.VirtualIPAddresses, got.Tags)
	}

	// A third Service naming it is refused: it is web2's now.
	third := service("web3", 80)
	third.Annotations[annotations.AdoptID] = kept.ID.String()
	snap := e.client.Stats().Snapshot()
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", third, nodes)
	if err == nil || !strings.Contains(err.Error(), "another Service") {
		t.Fatalf("adopting another Service's appliance: %v", err)
	}
	if n, by := writes(e.client, snap); n != 0 || len(e.lbs()) != 1 {
		t.Fatalf("refusal wrote %v", by)
	}

	// Without preserve, web2's deletion deletes it as usual.
	e.deleteAsServiceController(next)
	if len(e.lbs()) != 0 {
		t.Fatalf("appliance left after an ordinary delete")
	}
}

func TestPreserveInvalidDeletesNothing(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	svc.Annotations[annotations.Preserve] = "yes"
	err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc)
	if err == nil || !strings.Contains(err.Error(), annotations.Preserve) {
		t.Fatalf("err %v", err)
	}
	if lbs := e.lbs(); len(lbs) != 1 || !lbs[0].InstanceStatus.IsUp() {
		t.Fatalf("appliance touched on an invalid preserve annotation")
	}
}

func TestPreserveSharedOnlyLast(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(1, 0)
	a, b := service("a", 80), service("b", 81)
	for _, s := range []*v1.Service{a, b} {
		s.Annotations[annotations.SharingKey] = "team"
		s.Annotations[annotations.Preserve] = "true"
		e.ensureUp(s, nodes)
	}
	e.deleteAsServiceController(a)
	lbs := e.lbs()
	if len(lbs) != 1 || !desired.HasTags(lbs[0].Tags, desired.ClusterTag("test"), desired.SharingTag("team")) || slices.Contains(lbs[0].Tags, desired.ServiceTag(string(a.UID))) {
		t.Fatalf("first member's leave: %v", lbs[0].Tags)
	}
	e.deleteAsServiceController(b)
	lbs = e.lbs()
	if len(lbs) != 1 || len(lbs[0].Tags) != 0 || len(lbs[0].VirtualIPAddresses) != 1 {
		t.Fatalf("last member's preserve: tags %v entries %d", lbs[0].Tags, len(lbs[0].VirtualIPAddresses))
	}
}
