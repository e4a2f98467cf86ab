package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Ownership tags as documented in docs/load-balancers.md (written out here:
// the e2e module tests the documented contract, not the controller's code).
const (
	clusterTagKey = "k8s.usacloud.jp/cluster="
	serviceTagKey = "k8s.usacloud.jp/service-uid="
	// sweepGrace is the documented minimum age before the sweep removes an
	// appliance; the wait below allows for it.
	sweepGrace = 2 * time.Minute
)

func hasTag(lb *iaas.LoadBalancer, tag string) bool {
	for _, t := range lb.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// TestSweep: a Service is deleted (its finalizer stripped) while the
// controller is stopped. After the restart, the periodic sweep finds the
// appliance by its ownership tags and removes it, while the appliance of a
// Service that still exists and another cluster's appliance carrying the very
// same Service UID are left alone.
func TestSweep(t *testing.T) {
	e := newEnv(t, envOptions{extraConfig: map[string]any{
		"loadBalancer": map[string]any{"sweepIntervalSec": 3, "sweepMode": "delete"},
	}})
	e.waitInitialized("node-1", "node-2", "node-3")
	keep := e.createLBService("keep")
	gone := e.createLBService("gone")
	e.waitIngressIP("keep")
	e.waitIngressIP("gone")
	ownTag := clusterTagKey + e.clusterID
	goneTag, keepTag := serviceTagKey+string(gone.UID), serviceTagKey+string(keep.UID)

	var keepLB *iaas.LoadBalancer
	all, err := e.sakura.allLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, lb := range all {
		if hasTag(lb, ownTag) && hasTag(lb, keepTag) {
			keepLB = lb
		}
	}
	if keepLB == nil {
		t.Fatalf("no appliance tagged %s and %s", ownTag, keepTag)
	}

	e.ccm.Stop()

	// Another cluster's appliance for a Service with the same UID: not ours,
	// whatever its service-uid tag says.
	foreign, err := e.sakura.lbs.Create(e.ctx, zone, &iaas.LoadBalancerCreateRequest{
		SwitchID: keepLB.SwitchID, PlanID: types.LoadBalancerPlans.Standard, VRID: 200,
		IPAddresses: []string{"203.0.113.29"}, NetworkMaskLen: keepLB.NetworkMaskLen, DefaultRoute: keepLB.DefaultRoute,
		Name: "other-cluster-lb", Tags: types.Tags{clusterTagKey + "some-other-cluster", goneTag},
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: "203.0.113.30", Port: 80, DelayLoop: 10}},
	})
	if err != nil {
		t.Fatalf("creating another cluster's appliance in the simulator: %v", err)
	}

	// Delete the Service for good while nobody watches: without the
	// finalizer the API server removes it at once.
	s, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "gone", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Finalizers = nil
	if _, err := e.kube.CoreV1().Services(e.ns).Update(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.CoreV1().Services(e.ns).Delete(e.ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(shortWait, "Service gone still exists", func() (bool, error) {
		_, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "gone", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err := e.ccm.Restart(); err != nil {
		t.Fatal(err)
	}

	// Two sightings, the grace period since creation, a shutdown and the delete.
	e.eventually(longWait+sweepGrace, "the sweep never removed the deleted Service's appliance", func() (bool, error) {
		all, err := e.sakura.allLBs(e.ctx)
		if err != nil {
			return false, err
		}
		for _, lb := range all {
			if hasTag(lb, ownTag) && hasTag(lb, goneTag) {
				return false, nil
			}
		}
		return true, nil
	})

	// Let one more sweep pass, then check what must remain.
	log := e.ccm.Log()
	e.eventually(shortWait, "no sweep after the removal", func() (bool, error) {
		return strings.Count(e.ccm.Log(), "Load balancer sweep done") > strings.Count(log, "Load balancer sweep done"), nil
	})
	all, err = e.sakura.allLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keepFound, foreignFound bool
	for _, lb := range all {
		keepFound = keepFound || lb.ID == keepLB.ID
		foreignFound = foreignFound || lb.ID == foreign.ID
	}
	if !keepFound {
		t.Errorf("the appliance of the existing Service keep (%s) was removed", keepLB.ID)
	}
	if !foreignFound {
		t.Errorf("another cluster's appliance %s was removed", foreign.ID)
	}
	if got, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "keep", metav1.GetOptions{}); err != nil || len(got.Status.LoadBalancer.Ingress) == 0 {
		t.Errorf("Service keep lost its address: %v", err)
	}
	log = e.ccm.Log()
	if !strings.Contains(log, "Sweep deleted an orphaned load balancer") || !strings.Contains(log, string(gone.UID)) {
		t.Errorf("the controller's log does not record the removal of the appliance of Service UID %s", gone.UID)
	}
}
