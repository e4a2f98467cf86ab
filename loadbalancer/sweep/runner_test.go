package sweep

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ktypes "k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The fake store is process-global: these tests never run in parallel.

type world struct {
	t      *testing.T
	client *sakuraapi.Client
	exec   *apply.Executor
}

func newWorld(t *testing.T) *world {
	t.Helper()
	fake.SwitchFactoryFuncToFake()
	api.SetupFakeDefaults()
	fake.DataStore = fake.NewInMemoryStore()
	c := sakuraapi.NewFromCaller(nil, "is1a", sakuraapi.Limits{})
	return &world{t: t, client: c, exec: &apply.Executor{Client: c, ClusterID: "c1"}}
}

var longAgo = time.Now().Add(-time.Hour)

func (w *world) put(id types.ID, up bool, created time.Time, tags ...string) {
	status := types.ServerInstanceStatuses.Down
	if up {
		status = types.ServerInstanceStatuses.Up
	}
	lb := &iaas.LoadBalancer{ID: id, Name: "lb-" + id.String(), Class: "loadbalancer", Tags: tags, CreatedAt: created,
		Availability: types.Availabilities.Available, InstanceStatus: status,
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: "203.0.113.10", Port: 80}}}
	fake.DataStore.Put(fake.ResourceLoadBalancer, "is1a", id, lb)
}

func (w *world) exists(id types.ID) bool {
	_, err := w.client.LoadBalancers.Read(context.Background(), "is1a", id)
	if err != nil && !sakuraapi.IsNotFound(err) {
		w.t.Fatal(err)
	}
	return err == nil
}

type uids map[string]bool

func (u uids) Claimed(context.Context) (map[string]string, error) {
	out := map[string]string{}
	for uid := range u {
		out[uid] = "ns/" + uid
	}
	return out, nil
}

type failing struct{}

func (failing) Claimed(context.Context) (map[string]string, error) {
	return nil, errors.New("the server is currently unable to handle the request")
}

// metric reads one sample of the controller's metrics from the registry.
func metric(t *testing.T, name, action string) float64 {
	t.Helper()
	metrics.Register()
	fams, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != metrics.Namespace+"_"+name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := action == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "action" && l.GetValue() == action {
					match = true
				}
			}
			if !match {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// sweepUntil sweeps until cond holds (the fake powers appliances off in the
// background), failing after many rounds.
func sweepUntil(t *testing.T, r *Runner, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if _, err := r.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached after 500 sweeps")
}

func TestRunnerDeletesOnlyThisClustersOrphans(t *testing.T) {
	w := newWorld(t)
	cl := desired.ClusterTag("c1")
	w.put(1, false, longAgo, cl, desired.ServiceTag("gone-down"))                       // orphan, already stopped
	w.put(2, true, longAgo, cl, desired.ServiceTag("gone-up"))                          // orphan, running
	w.put(3, true, longAgo, cl, desired.ServiceTag("alive"))                            // its Service exists
	w.put(4, false, longAgo, desired.ClusterTag("c2"), desired.ServiceTag("gone-down")) // other cluster
	w.put(5, false, longAgo, cl)                                                        // no service-uid tag
	w.put(6, false, longAgo, desired.ServiceTag("gone-down"))                           // no cluster tag
	w.put(7, false, longAgo)                                                            // nobody's
	var released []string
	r := &Runner{Exec: w.exec, Services: uids{"alive": true}, Mode: ModeDelete, Grace: time.Minute,
		OnDeleted: func(u []string) { released = append(released, u...) }}
	deletedBefore := metric(t, "swept_load_balancers_total", metrics.SweepDeleted)

	s, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Managed != 4 || s.Orphans != 2 || s.Untagged != 1 || len(s.Deleted)+len(s.ShuttingDown) != 0 {
		t.Fatalf("first sweep: %+v; want 4 managed, 2 orphans noted, nothing removed", s)
	}
	if got := metric(t, "managed_load_balancers", ""); got != 4 {
		t.Errorf("managed gauge = %v, want 4", got)
	}

	s, err = r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Deleted) != 1 || s.Deleted[0] != 1 || len(s.ShuttingDown) != 1 || s.ShuttingDown[0] != 2 {
		t.Fatalf("second sweep: %+v; want 1 deleted and 2 shutting down", s)
	}
	sweepUntil(t, r, func() bool { return !w.exists(2) })

	for _, id := range []types.ID{1, 2} {
		if w.exists(id) {
			t.Errorf("orphan %s still exists", id)
		}
	}
	for _, id := range []types.ID{3, 4, 5, 6, 7} {
		if !w.exists(id) {
			t.Errorf("appliance %s was removed but is not this cluster's orphan", id)
		}
	}
	sort.Strings(released)
	if strings.Join(released, ",") != "gone-down,gone-up" {
		t.Errorf("reservations released for %v", released)
	}
	if got := metric(t, "swept_load_balancers_total", metrics.SweepDeleted) - deletedBefore; got != 2 {
		t.Errorf("deleted counter grew by %v, want 2", got)
	}
	if got := metric(t, "managed_load_balancers", ""); got != 2 {
		t.Errorf("managed gauge = %v after the sweep, want 2", got)
	}
}

func TestRunnerGracePeriod(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	w.put(1, false, now.Add(-10*time.Second), desired.ClusterTag("c1"), desired.ServiceTag("gone"))
	r := &Runner{Exec: w.exec, Services: uids{}, Mode: ModeDelete, Grace: 2 * time.Minute, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if s, err := r.Sweep(context.Background()); err != nil || len(s.Deleted) != 0 {
			t.Fatalf("sweep %d of a 10s old orphan: %+v, %v", i, s, err)
		}
	}
	if !w.exists(1) {
		t.Fatal("a just-created appliance was swept")
	}
	now = now.Add(3 * time.Minute)
	if s, err := r.Sweep(context.Background()); err != nil || len(s.Deleted) != 1 {
		t.Fatalf("sweep after the grace period: %+v, %v", s, err)
	}
	if w.exists(1) {
		t.Error("orphan older than the grace period survived")
	}
}

func TestRunnerReportMode(t *testing.T) {
	w := newWorld(t)
	w.put(1, false, longAgo, desired.ClusterTag("c1"), desired.ServiceTag("gone"))
	w.put(2, true, longAgo, desired.ClusterTag("c1"), desired.ServiceTag("gone-too"))
	r := &Runner{Exec: w.exec, Services: uids{}, Mode: ModeReport, Grace: time.Minute}
	before := metric(t, "swept_load_balancers_total", metrics.SweepReported)
	for i := 0; i < 4; i++ {
		s, err := r.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Deleted)+len(s.ShuttingDown) != 0 {
			t.Fatalf("report mode removed something: %+v", s)
		}
		if i > 0 && len(s.Reported) != 2 {
			t.Fatalf("sweep %d reported %v, want both orphans", i, s.Reported)
		}
	}
	if !w.exists(1) || !w.exists(2) {
		t.Error("report mode deleted an appliance")
	}
	if n, _ := w.client.LoadBalancers.Read(context.Background(), "is1a", 2); !n.InstanceStatus.IsUp() {
		t.Error("report mode shut an appliance down")
	}
	// Counted once per appliance, not once per sweep.
	if got := metric(t, "swept_load_balancers_total", metrics.SweepReported) - before; got != 2 {
		t.Errorf("reported counter grew by %v, want 2", got)
	}
	if n := w.client.Stats().Total(sakuraapi.IsWrite); n != 0 {
		t.Errorf("report mode made %d API writes: %v", n, w.client.Stats().Snapshot())
	}
}

func TestRunnerListFailureDeletesNothing(t *testing.T) {
	w := newWorld(t)
	w.put(1, false, longAgo, desired.ClusterTag("c1"), desired.ServiceTag("gone"))
	r := &Runner{Exec: w.exec, Services: uids{}, Mode: ModeDelete, Grace: time.Minute}
	if _, err := r.Sweep(context.Background()); err != nil { // first sighting
		t.Fatal(err)
	}
	r.Services = failing{}
	for i := 0; i < 3; i++ {
		if _, err := r.Sweep(context.Background()); err == nil {
			t.Fatal("a sweep without a Service list reported success")
		}
	}
	if !w.exists(1) {
		t.Fatal("appliance deleted while Services could not be listed")
	}
	// The Kubernetes lister turns an API error into an error, not an empty set.
	kube := kubefake.NewSimpleClientset()
	kube.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcdserver: request timed out")
	})
	r.Services = KubeServices{Client: kube}
	if _, err := r.Sweep(context.Background()); err == nil || !w.exists(1) {
		t.Fatalf("sweep with a failing Service list: err=%v, appliance exists=%v", err, w.exists(1))
	}
}

func TestKubeServicesClaims(t *testing.T) {
	mk := func(ns, name, uid string, typ v1.ServiceType, fin ...string) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: ktypes.UID(uid), Finalizers: fin}, Spec: v1.ServiceSpec{Type: typ}}
	}
	kube := kubefake.NewSimpleClientset(
		mk("a", "lb", "u-lb", v1.ServiceTypeLoadBalancer),
		mk("b", "was-lb", "u-was", v1.ServiceTypeClusterIP, CleanupFinalizer),
		mk("b", "plain", "u-plain", v1.ServiceTypeClusterIP),
	)
	got, err := KubeServices{Client: kube}.Claimed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["u-lb"] != "a/lb" || got["u-was"] != "b/was-lb" {
		t.Errorf("claimed = %v, want u-lb and u-was", got)
	}
}

// A member of a shared appliance deleted while the controller was down
// leaves its entries and tag behind; the sweep removes them (after two
// sightings, Grace apart) and keeps the appliance for the other member.
func TestSweepPrunesVanishedMembersOfSharedAppliance(t *testing.T) {
	w := newWorld(t)
	lb := &iaas.LoadBalancer{ID: 7, Name: "shared", Class: "loadbalancer", CreatedAt: longAgo,
		Availability: types.Availabilities.Available, InstanceStatus: types.ServerInstanceStatuses.Up,
		Tags: []string{desired.ClusterTag("c1"), desired.SharingTag("team"), desired.ServiceTag("uid-a"), desired.ServiceTag("uid-b")},
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{
			{VirtualIPAddress: "203.0.113.10", Port: 80, Description: desired.EntryDescriptionPrefix + "ns/uid-a"},
			{VirtualIPAddress: "203.0.113.11", Port: 80, Description: desired.EntryDescriptionPrefix + "ns/uid-b"},
		}}
	fake.DataStore.Put(fake.ResourceLoadBalancer, "is1a", lb.ID, lb)
	now := time.Now()
	var freed []string
	r := &Runner{Exec: w.exec, Services: uids{"uid-a": true}, Mode: ModeReport, Grace: time.Minute,
		Now: func() time.Time { return now }, OnDeleted: func(u []string) { freed = append(freed, u...) }}
	read := func() *iaas.LoadBalancer {
		got, err := w.client.LoadBalancers.Read(context.Background(), "is1a", 7)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	sweep := func() Summary {
		t.Helper()
		s, err := r.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Report mode: found twice, old enough, but only reported.
	sweep()
	now = now.Add(2 * time.Minute)
	if s := sweep(); len(s.Pruned) != 0 || len(read().VirtualIPAddresses) != 2 {
		t.Fatalf("report mode pruned: %+v", s)
	}
	// Delete mode: the vanished member's entry and tag go; the appliance stays.
	r.Mode = ModeDelete
	now = now.Add(2 * time.Minute)
	if s := sweep(); len(s.Pruned) != 1 || len(s.Deleted) != 0 {
		t.Fatalf("want one pruned appliance, got %+v", s)
	}
	got := read()
	if len(got.VirtualIPAddresses) != 1 || got.VirtualIPAddresses[0].VirtualIPAddress != "203.0.113.10" {
		t.Fatalf("entries after prune: %+v", got.VirtualIPAddresses)
	}
	if strings.Contains(strings.Join(got.Tags, " "), "uid-b") || !strings.Contains(strings.Join(got.Tags, " "), "uid-a") {
		t.Fatalf("tags after prune: %v", got.Tags)
	}
	if len(freed) != 1 || freed[0] != "uid-b" {
		t.Fatalf("reservations freed for %v", freed)
	}
	// A new member seen once is never pruned: it is in the Service list.
	if s := sweep(); len(s.Pruned) != 0 {
		t.Fatalf("pruned again: %+v", s)
	}
}

// joinAfterListing answers the sweep's first listing with the members it
// had, then lets Service uid-c join the shared appliance (its tag and entry
// written, as a join does) before answering any later listing with it too.
type joinAfterListing struct {
	calls int
	join  func()
}

func (j *joinAfterListing) Claimed(context.Context) (map[string]string, error) {
	j.calls++
	if j.calls == 1 {
		return map[string]string{"uid-a": "ns/uid-a"}, nil
	}
	return map[string]string{"uid-a": "ns/uid-a", "uid-c": "ns/uid-c"}, nil
}

// A Service that joins a shared appliance after the sweep listed Services
// keeps its entries when the sweep prunes a vanished member: the entries to
// keep come from a listing taken after the fresh read, not the older one.
func TestSweepPruneKeepsAMemberThatJoinedAfterTheListing(t *testing.T) {
	w := newWorld(t)
	tags := []string{desired.ClusterTag("c1"), desired.SharingTag("team"), desired.ServiceTag("uid-a"), desired.ServiceTag("uid-b")}
	entry := func(ip, ref string) *iaas.LoadBalancerVirtualIPAddress {
		return &iaas.LoadBalancerVirtualIPAddress{VirtualIPAddress: ip, Port: 80, Description: desired.EntryDescriptionPrefix + ref}
	}
	lb := &iaas.LoadBalancer{ID: 7, Name: "shared", Class: "loadbalancer", CreatedAt: longAgo,
		Availability: types.Availabilities.Available, InstanceStatus: types.ServerInstanceStatuses.Up, Tags: tags,
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{entry("203.0.113.10", "ns/uid-a"), entry("203.0.113.11", "ns/uid-b")}}
	fake.DataStore.Put(fake.ResourceLoadBalancer, "is1a", lb.ID, lb)
	now := time.Now()
	lister := &joinAfterListing{}
	r := &Runner{Exec: w.exec, Services: lister, Mode: ModeDelete, Grace: time.Minute, Now: func() time.Time { return now }}
	if _, err := r.Sweep(context.Background()); err != nil { // first sighting of uid-b
		t.Fatal(err)
	}
	// uid-c joins now; the second sweep's own first listing still misses it.
	lister.calls = 0
	joined := *lb
	joined.Tags = append(append([]string(nil), tags...), desired.ServiceTag("uid-c"))
	joined.VirtualIPAddresses = append(lb.VirtualIPAddresses, entry("203.0.113.12", "ns/uid-c"))
	fake.DataStore.Put(fake.ResourceLoadBalancer, "is1a", lb.ID, &joined)
	now = now.Add(2 * time.Minute)
	if _, err := r.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := w.client.LoadBalancers.Read(context.Background(), "is1a", 7)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, v := range got.VirtualIPAddresses {
		ips = append(ips, v.VirtualIPAddress)
	}
	if strings.Join(ips, ",") != "203.0.113.10,203.0.113.12" {
		t.Fatalf("entries after prune %v, want uid-a's and the newcomer uid-c's (uid-b's removed)", ips)
	}
	if !strings.Contains(strings.Join(got.Tags, " "), "uid-c") || strings.Contains(strings.Join(got.Tags, " "), "uid-b") {
		t.Fatalf("tags after prune: %v", got.Tags)
	}
}

// TestSweepUnsharesAnOrphanBeforeItsShutdown is issue #18's defect 4 on the
// sweep's side: a shared orphan loses its sharing-key tag before it is shut
// down, under the key's lock, so no join of the key lands on it.
func TestSweepUnsharesAnOrphanBeforeItsShutdown(t *testing.T) {
	w := newWorld(t)
	cl := desired.ClusterTag("c1")
	w.put(1, true, longAgo, cl, desired.SharingTag("team"), desired.ServiceTag("gone"))
	var locked []string
	held := false
	r := &Runner{Exec: w.exec, Services: uids{}, Mode: ModeDelete, Grace: time.Minute,
		LockKey: func(key string) func() {
			locked = append(locked, key)
			held = true
			return func() { held = false }
		}}
	for i := 0; i < 2; i++ {
		if _, err := r.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	lb, err := w.client.LoadBalancers.Read(context.Background(), "is1a", 1)
	if err != nil {
		t.Fatal(err)
	}
	if desired.SharingKeyOf(lb.Tags) != "" || !desired.HasTags(lb.Tags, cl, desired.ServiceTag("gone")) {
		t.Fatalf("tags after the shutdown was sent: %v; want the sharing key gone and the others kept", lb.Tags)
	}
	if len(locked) == 0 || locked[0] != "team" || held {
		t.Fatalf("key locks taken %v (still held: %v); want the key team, released", locked, held)
	}
}
