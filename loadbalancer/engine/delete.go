package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
)

// Deleting a Service's appliance, or taking the Service off a shared one.

// DeleteConfirmWaits are the pauses, after a shutdown, before each look
// at whether the appliance is down so that it can be deleted in the same
// call. A force shutdown usually takes seconds: waiting that long here (10 s
// at most, never minutes) keeps a normal delete free of the service
// controller's Warning for a failed sync. A slower shutdown returns a
// RetryError and is finished by a later call.
var DeleteConfirmWaits = []time.Duration{2 * time.Second, 3 * time.Second, 5 * time.Second}

// Delete shuts the appliance down and deletes it (EnsureLoadBalancerDeleted). Only
// appliances with this cluster's and this Service's tags are touched, and a
// shared appliance only loses this Service's entries while others use it.
// A Service of another class is left alone (desired.Scope.MayDelete)
// unless it carries this controller's class finalizer.
func (l *Engine) Delete(ctx context.Context, clusterName string, svc *v1.Service) error {
	if !l.scope.MayDelete(svc) {
		return cloudprovider.ImplementedElsewhere
	}
	// Read before anything is decided: an unreadable preserve must not
	// turn into a deletion, which could not be undone.
	preserve, perr := annotations.PreserveOf(svc)
	if perr != nil {
		return l.fail(svc, ReasonInvalidAnnotation, fmt.Errorf("%w; the load balancer is neither deleted nor preserved until this is fixed", perr))
	}
	defer l.locks.lock("svc/" + string(svc.UID))()
	l.mem.setDeleting(string(svc.UID), true)
	l.mem.bootOver(string(svc.UID), nil, false)
	if l.mayOwnELB(svc) {
		var re *api.RetryError
		if err := l.deleteELBs(ctx, clusterName, svc, preserve); errors.As(err, &re) {
			return err
		} else if err != nil {
			return l.fail(svc, ReasonAPIError, err)
		}
	}
	exec := l.executor(clusterName)
	loc, err := l.locate(ctx, exec, svc, locateFor{since: l.clock.Now(), recentIfShown: true})
	if err != nil {
		return err
	}
	if loc.found == decide.FoundPending {
		return api.NewRetryError("the Service's new load balancer is not visible yet; waiting for it to delete it", BootRetryAfter)
	}
	owned := loc.lbs
	l.forgetNotices(string(svc.UID))
	l.mem.setHealth(string(svc.UID), realServerHealth{})
	l.forgetEndpoints(svc)
	var waiting []string
	for _, lb := range owned {
		step, err := l.deleteFrom(ctx, exec, svc, lb, preserve)
		if err != nil {
			return l.fail(svc, ReasonAPIError, err)
		}
		if step != apply.Deleted {
			waiting = append(waiting, lb.ID.String())
		}
	}
	if len(waiting) > 0 {
		// The service controller requeues a failed delete with backoff; it
		// does not honour RetryError on this path in v0.37.
		return api.NewRetryError(fmt.Sprintf("waiting for load balancer %s to shut down before deleting it", strings.Join(waiting, ", ")), BootRetryAfter)
	}
	l.mem.release(string(svc.UID))
	l.mem.release(vipOwner(string(svc.UID)))
	return nil
}

// deleteFrom takes svc off lb: the whole appliance when svc is its last
// member, else only svc's tag and entries. The decision is made on a copy
// read under the sharing key's lock (members join under it), and the
// deletion re-checks that copy's members on every later read.
//
// preserve (the Service's annotation) keeps the appliance of a last member:
// one write takes this cluster's tags off and it keeps running. The write
// re-reads first, so a crash before it leaves the appliance tagged and the
// Service's finalizer in place: the service controller's retry decides
// again, and nothing else (sweep, repair) acts on a Service that still
// carries its finalizer.
func (l *Engine) deleteFrom(ctx context.Context, exec *apply.Executor, svc *v1.Service, lb *iaas.LoadBalancer, preserve bool) (apply.DeleteStep, error) {
	fresh := lb
	if key := desired.SharingKeyOf(lb.Tags); key != "" {
		defer l.locks.lock(sharedOwner(key))()
		var err error
		if fresh, err = exec.Read(ctx, lb.ID); err != nil {
			if sakuraapi.IsNotFound(err) {
				return apply.Deleted, nil
			}
			return 0, err
		}
	}
	d := decide.LeaveOrPreserve(fresh, string(svc.UID), desired.RefOf(svc), preserve)
	switch d.Kind {
	case decide.LeaveNothing:
		return apply.Deleted, nil
	case decide.LeavePreserve:
		kept, err := exec.Release(ctx, fresh, d.Members)
		if err != nil {
			return 0, err
		}
		if kept != nil {
			l.raiseZoneFloor() // listings made before show it as this Service's
			l.preserved(svc, kept)
		}
		return apply.Deleted, nil
	case decide.LeaveMember:
		if err := exec.UpdateMembers(ctx, fresh, d.VIPs, d.Tags); err != nil {
			return 0, err
		}
		l.event(svc, false, ReasonLeftShared, "left load balancer %s (%s) shared by key %s; it stays for the %d other Service(s) using it", fresh.Name, fresh.ID, desired.SharingKeyOf(fresh.Tags), d.Others)
		return apply.Deleted, nil
	}
	step, err := exec.Delete(ctx, fresh, d.Members, true)
	if step == apply.ShutdownSent {
		l.event(svc, false, ReasonShuttingDown, "shutting down load balancer %s (%s) before deleting it", fresh.Name, fresh.ID)
	}
	for _, wait := range l.deleteWaits {
		if err != nil || step == apply.Deleted {
			break
		}
		select {
		case <-ctx.Done():
			return step, nil
		case <-time.After(wait):
		}
		step, err = exec.Delete(ctx, fresh, d.Members, false)
	}
	if err == nil && step == apply.Deleted {
		// Listings made before show it: none may answer for it any more.
		l.raiseZoneFloor()
		l.event(svc, false, ReasonDeleted, "deleted load balancer %s (%s); its addresses are free again", fresh.Name, fresh.ID)
	}
	return step, err
}
