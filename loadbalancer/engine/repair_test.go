package engine

import (
	"context"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// repairEnv is a Service the service controller has taken on (finalizer,
// status) with a running appliance, and the loops started on a fake
// clientset (the repair pass itself is run by hand).
func repairEnv(t *testing.T) (*env, *v1.Service, []*v1.Node, *kubefake.Clientset) {
	t.Helper()
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	svc.Finalizers = []string{sweep.CleanupFinalizer}
	kube := kubefake.NewClientset(svc)
	e.lb.kube = kube
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.lb.FollowEndpoints(ctx, kube, FollowOptions{})
	st := e.ensureUp(svc, nodes)
	svc.Status.LoadBalancer = *st
	if _, err := kube.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s, err := e.lb.follower().services.Services("default").Get("web")
		return err == nil && statusIP(s) != ""
	})
	return e, svc, nodes, kube
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}

// repairUntil runs repair passes until the Service's appliance is up and
// cond holds.
func (e *env) repairUntil(t *testing.T, cond func(*iaas.LoadBalancer) bool) *iaas.LoadBalancer {
	t.Helper()
	for i := 0; i < 500; i++ {
		e.lb.RepairPass(e.ctx)
		if lbs := e.lbs(); len(lbs) == 1 && isUp(lbs[0]) && cond(lbs[0]) {
			return lbs[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("not repaired: %d appliances", len(e.lbs()))
	return nil
}

// An appliance deleted outside the controller is created again, on the
// address the Service shows; the service controller would never re-sync it.
func TestRepairRecreatesADeletedApplianceOnItsAddress(t *testing.T) {
	e, svc, _, _ := repairEnv(t)
	shown := statusIP(svc)
	if err := fake.NewLoadBalancerOp().Delete(e.ctx, zone, e.lbs()[0].ID); err != nil {
		t.Fatal(err)
	}
	lb := e.repairUntil(t, func(*iaas.LoadBalancer) bool { return true })
	if vipOf(lb) != shown {
		t.Fatalf("re-created on %s, the Service shows %s", vipOf(lb), shown)
	}
	if findEvent(e.events(), ReasonRepaired, "gone") == "" {
		t.Fatal("no LoadBalancerRepaired Event")
	}
}

// An address a live Service shows is never handed to another Service, even
// while its appliance is gone.
func TestAddressShownByAServiceIsNotHandedOut(t *testing.T) {
	e, svc, nodes, kube := repairEnv(t)
	shown := statusIP(svc)
	if err := fake.NewLoadBalancerOp().Delete(e.ctx, zone, e.lbs()[0].ID); err != nil {
		t.Fatal(err)
	}
	other := service("other", 80)
	if _, err := kube.CoreV1().Services("default").Create(e.ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st := e.ensureUp(other, nodes)
	if st.Ingress[0].IP == shown {
		t.Fatalf("%s went to another Service while web shows it", shown)
	}
}

// An appliance powered off outside the controller is booted (it used to be
// taken for one still booting, forever).
func TestRepairBootsAStoppedAppliance(t *testing.T) {
	e, _, nodes, _ := repairEnv(t)
	lb := e.lbs()[0]
	lb.InstanceStatus = types.ServerInstanceStatuses.Down
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	snap := e.client.Stats().Snapshot()
	e.repairUntil(t, func(*iaas.LoadBalancer) bool { return true })
	if _, by := writes(e.client, snap); by["LoadBalancer.Boot"] != 1 {
		t.Fatalf("writes %v, want one Boot", by)
	}
	// The service controller's own path boots it too, once the boot this
	// process sent is older than decide.BootGrace (until then a down
	// appliance counts as still booting).
	e.lb.mem.bootSent = map[types.ID]time.Time{}
	lb = e.lbs()[0]
	lb.InstanceStatus = types.ServerInstanceStatuses.Down
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	e.ensureUp(service("web", 80), nodes)
}

// An appliance shut down outside the controller after this process booted
// it, before it was seen up, reads like one still booting: the repair pass
// leaves it alone for decide.BootGrace after the Boot (booting it again would
// restart a real boot) and boots it once the grace has passed, so the outage
// is bounded by the grace (torture seed 112947).
func TestRepairBootsAgainOnceTheBootGraceHasPassed(t *testing.T) {
	e, _, _, _ := repairEnv(t)
	lb := e.lbs()[0]
	lb.InstanceStatus = types.ServerInstanceStatuses.Down
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	for _, c := range []struct {
		name  string
		sent  time.Duration // how long ago this process sent its Boot
		boots int
	}{
		{"boot sent 10 s ago: still booting", 10 * time.Second, 0},
		{"boot sent just within the grace: still booting", decide.BootGrace - time.Second, 0},
		{"boot sent longer ago than the grace: stopped, booted", decide.BootGrace + time.Second, 1},
	} {
		e.lb.mem.bootSent = map[types.ID]time.Time{lb.ID: time.Now().Add(-c.sent)}
		snap := e.client.Stats().Snapshot()
		e.lb.RepairPass(e.ctx)
		if _, by := writes(e.client, snap); by["LoadBalancer.Boot"] != c.boots {
			t.Fatalf("%s: writes %v, want %d Boot", c.name, by, c.boots)
		}
	}
}

// Real servers changed outside the controller are rewritten.
func TestRepairRewritesChangedEntries(t *testing.T) {
	e, _, _, _ := repairEnv(t)
	lb := e.lbs()[0]
	lb.VirtualIPAddresses[0].Servers = lb.VirtualIPAddresses[0].Servers[:1]
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	e.repairUntil(t, func(lb *iaas.LoadBalancer) bool { return len(lb.VirtualIPAddresses[0].Servers) == 2 })
	// In line: a further pass writes nothing.
	snap := e.client.Stats().Snapshot()
	e.lb.RepairPass(e.ctx)
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("a pass over an appliance in line wrote %v", by)
	}
}

// A Service that opts out of repair is left as it is.
func TestRepairOptOut(t *testing.T) {
	e, svc, _, kube := repairEnv(t)
	svc.Annotations["k8s.usacloud.jp/load-balancer-repair"] = "false"
	if _, err := kube.CoreV1().Services("default").Update(e.ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s, _ := e.lb.follower().services.Services("default").Get("web")
		return s != nil && s.Annotations["k8s.usacloud.jp/load-balancer-repair"] == "false"
	})
	id := e.lbs()[0].ID
	if err := fake.NewLoadBalancerOp().Delete(e.ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	snap := e.client.Stats().Snapshot()
	e.lb.RepairPass(e.ctx)
	if n, by := writes(e.client, snap); n != 0 || len(e.lbs()) != 0 {
		t.Fatalf("an opted-out Service was repaired: %v", by)
	}
}

// hidingLBs stands for the moments after a create when the API's listings
// (and, in the first of them, reads) do not show the new appliance yet.
type hidingLBs struct {
	sakuraapi.LoadBalancerAPI
	fromFind, fromRead map[types.ID]bool
}

func (h *hidingLBs) Find(ctx context.Context, zone string, c *iaas.FindCondition) (*iaas.LoadBalancerFindResult, error) {
	r, err := h.LoadBalancerAPI.Find(ctx, zone, c)
	if err != nil {
		return nil, err
	}
	out := *r
	out.LoadBalancers = nil
	for _, lb := range r.LoadBalancers {
		if !h.fromFind[lb.ID] {
			out.LoadBalancers = append(out.LoadBalancers, lb)
		}
	}
	out.Count, out.Total = len(out.LoadBalancers), len(out.LoadBalancers)
	return &out, nil
}

func (h *hidingLBs) Read(ctx context.Context, zone string, id types.ID) (*iaas.LoadBalancer, error) {
	if h.fromRead[id] {
		return nil, &notFound{}
	}
	return h.LoadBalancerAPI.Read(ctx, zone, id)
}

// notFound is a 404 answer as the client reports it.
type notFound struct{ iaas.APIError }

func (*notFound) ResponseCode() int { return 404 }
func (*notFound) Error() string     { return "404 not found" }

// A Service deleted while its new appliance is not listed yet keeps its
// finalizer until the appliance can be deleted: GetLoadBalancer says it
// exists (the service controller would otherwise drop the finalizer and
// leak the appliance). After a restart (no memory) the ID the Service
// records finds it.
func TestUnlistedApplianceIsNotLeaked(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	kube := kubefake.NewClientset(svc)
	e.lb.kube = kube
	hide := &hidingLBs{LoadBalancerAPI: e.client.LoadBalancers, fromFind: map[types.ID]bool{}, fromRead: map[types.ID]bool{}}
	e.client.LoadBalancers = hide
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
		t.Fatalf("create: %v", err)
	}
	id := e.lbs()[0].ID
	hide.fromFind[id], hide.fromRead[id] = true, true
	if _, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", svc); err != nil || !exists {
		t.Fatalf("an appliance created moments ago: exists=%v err=%v", exists, err)
	}
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc); !isRetry(err) || len(e.lbs()) != 1 {
		t.Fatalf("delete while unlisted: %v (%d appliances)", err, len(e.lbs()))
	}
	// The Service records the ID; a new process has no memory of the create.
	rec, err := kube.CoreV1().Services("default").Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil || rec.Annotations["k8s.usacloud.jp/load-balancer-id"] != id.String() {
		t.Fatalf("annotation %v (%v)", rec.Annotations, err)
	}
	for e.lbs()[0].Availability.IsMigrating() || !e.lbs()[0].InstanceStatus.IsUp() {
		time.Sleep(5 * time.Millisecond)
	}
	e.rebuild()
	e.lb.kube = kube
	delete(hide.fromRead, id) // readable by ID, still not listed
	if _, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", rec); err != nil || !exists {
		t.Fatalf("after a restart: exists=%v err=%v", exists, err)
	}
	e.deleteAll(rec)
	if len(e.lbs()) != 0 {
		t.Fatal("the appliance was not deleted")
	}
}

// TestNoBootForAServiceBeingDeleted is issue #18's defect 6: a new leader's
// node sync or follower, acting on a Service whose deletion began, must not
// boot the appliance the deletion shut down.
func TestNoBootForAServiceBeingDeleted(t *testing.T) {
	for _, c := range []struct {
		name string
		call func(e *env, svc *v1.Service, nodes []*v1.Node) error
	}{
		{"node sync on a copy showing the deletion", func(e *env, svc *v1.Service, nodes []*v1.Node) error {
			now := metav1.Now()
			svc = svc.DeepCopy()
			svc.DeletionTimestamp = &now
			return e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes)
		}},
		{"node sync on a copy older than the deletion", func(e *env, svc *v1.Service, nodes []*v1.Node) error {
			return e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes)
		}},
		// torture seed 10109: a lagging informer hands EnsureLoadBalancer a
		// copy from before the deletion.
		{"EnsureLoadBalancer on a copy older than the deletion", func(e *env, svc *v1.Service, nodes []*v1.Node) error {
			_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, svc, nodes, kube := repairEnv(t)
			// The API server's copy is being deleted (the finalizer holds it).
			if err := kube.CoreV1().Services("default").Delete(e.ctx, "web", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.rebuild() // a new leader: no memory of the deletion
			e.lb.kube = kube
			lb := e.lbs()[0]
			lb.InstanceStatus = types.ServerInstanceStatuses.Down
			fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
			snap := e.client.Stats().Snapshot()
			_ = c.call(e, svc, nodes)
			if _, by := writes(e.client, snap); by["LoadBalancer.Boot"] != 0 {
				t.Fatalf("booted the appliance of a Service being deleted: %v", by)
			}
		})
	}
}

// TestRepairRestoresWipedEntriesOnTheShownAddress: every entry of a
// Service's own appliance was removed outside the controller. The entries
// come back on the address the Service shows (it used to answer "has no
// VIP; delete it" for ever).
func TestRepairRestoresWipedEntriesOnTheShownAddress(t *testing.T) {
	e, svc, nodes, _ := repairEnv(t)
	shown := statusIP(svc)
	lb := e.lbs()[0]
	if _, err := fake.NewLoadBalancerOp().UpdateSettings(e.ctx, zone, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{}, SettingsHash: lb.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
	if err != nil || statusIP(&v1.Service{Status: v1.ServiceStatus{LoadBalancer: *st}}) != shown {
		t.Fatalf("after the wipe: status %v, err %v; want %s back", st, err, shown)
	}
	if got := e.lbs()[0].VirtualIPAddresses; len(got) != 1 || got[0].VirtualIPAddress != shown {
		t.Fatalf("entries %v, want one on %s", got, shown)
	}
}
