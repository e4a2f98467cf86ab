package sweep

import (
	"context"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

func (w *world) putELB(id types.ID, created time.Time, tags ...string) {
	fake.DataStore.Put(fake.ResourceProxyLB, iaas.APIDefaultZone, id, &iaas.ProxyLB{ID: id, Name: "elb-" + id.String(), Tags: tags,
		CreatedAt: created, Availability: types.Availabilities.Available, Plan: 100, Region: "is1"})
}

func (w *world) elbExists(id types.ID) bool {
	_, err := w.client.ProxyLBs.Read(context.Background(), id)
	if err != nil && !sakuraapi.IsNotFound(err) {
		w.t.Fatal(err)
	}
	return err == nil
}

// TestRunnerSweepsOrphanedELBs: ELBs follow the appliances' rules: two
// sweeps, the grace, this cluster's tags and a Service tag; others stay.
func TestRunnerSweepsOrphanedELBs(t *testing.T) {
	w := newWorld(t)
	cl := desired.ClusterTag("c1")
	w.putELB(11, longAgo, cl, desired.ServiceTag("gone"))                       // orphan
	w.putELB(12, longAgo, cl, desired.ServiceTag("alive"))                      // its Service exists
	w.putELB(13, time.Now(), cl, desired.ServiceTag("young"))                   // orphan, too young
	w.putELB(14, longAgo, desired.ClusterTag("c2"), desired.ServiceTag("gone")) // other cluster
	w.putELB(15, longAgo, cl)                                                   // no service-uid tag
	w.put(1, false, longAgo, cl, desired.ServiceTag("gone-lb"))                 // a DSR orphan beside them
	r := &Runner{Exec: w.exec, ELBs: &apply.ELBs{API: w.client.ProxyLBs, ClusterID: "c1"}, Services: uids{"alive": true},
		Mode: ModeDelete, Grace: time.Minute}
	s, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Managed != 5 || s.Orphans != 3 || s.Untagged != 1 || len(s.Deleted) != 0 {
		t.Fatalf("first sweep: %+v; want 5 managed, 3 orphans noted, nothing removed", s)
	}
	if s, err = r.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s.Deleted) != 2 || s.Deleted[0] != 1 || s.Deleted[1] != 11 {
		t.Fatalf("second sweep deleted %v, want the appliance 1 and the ELB 11", s.Deleted)
	}
	for id, want := range map[types.ID]bool{11: false, 12: true, 13: true, 14: true, 15: true} {
		if w.elbExists(id) != want {
			t.Errorf("ELB %s exists = %v, want %v", id, !want, want)
		}
	}
}

// TestRunnerELBListFailureDeletesNothing: a failed ELB listing ends the
// sweep before any appliance is removed.
func TestRunnerELBListFailureDeletesNothing(t *testing.T) {
	w := newWorld(t)
	cl := desired.ClusterTag("c1")
	w.put(1, false, longAgo, cl, desired.ServiceTag("gone"))
	r := &Runner{Exec: w.exec, ELBs: &apply.ELBs{API: failingELBs{}, ClusterID: "c1"}, Services: uids{}, Mode: ModeDelete, Grace: time.Minute}
	for i := 0; i < 2; i++ {
		if _, err := r.Sweep(context.Background()); err == nil {
			t.Fatal("a sweep without the ELB listing went ahead")
		}
	}
	if !w.exists(1) {
		t.Fatal("an appliance was removed by a sweep whose ELB listing failed")
	}
}

type failingELBs struct{ sakuraapi.ProxyLBAPI }

func (failingELBs) Find(context.Context, *iaas.FindCondition) (*iaas.ProxyLBFindResult, error) {
	return nil, context.DeadlineExceeded
}
