package engine

import (
	"context"
	"errors"
	"sort"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cloud-provider/api"
	servicehelpers "k8s.io/cloud-provider/service/helpers"
	"k8s.io/klog/v2"
)

// The repair pass: level-triggered convergence.
//
// The service controller syncs a Service when the Service or the node set
// changes, never when the appliance changes. So, every RepairInterval, the
// pass lists this cluster's appliances once and runs the ordinary reconcile
// for every LoadBalancer Service with what that listing shows: an appliance
// deleted outside the controller is created again (on the address the
// Service shows, when still free), one powered off is booted, entries or
// real servers changed are rewritten, and settings saved but never applied
// are applied. Each repair is an Event (LoadBalancerRepaired). Creates and
// boots re-read the Service first; writes carry the listing's settings hash.

// RepairSummary is what one pass looked at and changed (for tests and logs).
type RepairSummary struct {
	Services int
	// Repaired are the Services (namespace/name) during whose repair the
	// client wrote (approximate while other loops write at the same time).
	Repaired []string
	Failed   []string
}

// RepairPass lists this cluster's appliances and runs one pass (tests; the
// leader runs passes from watchAppliances). It does nothing before the
// service controller has passed a node set (after a start it syncs every
// Service anyway).
func (l *Engine) RepairPass(ctx context.Context) RepairSummary {
	f := l.follower()
	if f == nil {
		return RepairSummary{}
	}
	nodes, cluster := f.latestNodes()
	if nodes == nil {
		return RepairSummary{}
	}
	lbs, err := l.executor(cluster).FindCluster(ctx)
	if err != nil {
		klog.ErrorS(err, "Repair pass skipped: listing this cluster's load balancers failed")
		return RepairSummary{}
	}
	return l.repairWith(ctx, lbs, cluster)
}

// repairWith runs one pass over the listing lbs.
func (l *Engine) repairWith(ctx context.Context, lbs []*iaas.LoadBalancer, cluster string) RepairSummary {
	var sum RepairSummary
	f := l.follower()
	if f == nil {
		return sum
	}
	byUID := map[string][]*iaas.LoadBalancer{}
	for _, lb := range lbs {
		for _, uid := range desired.MemberUIDs(lb.Tags) {
			byUID[uid] = append(byUID[uid], lb)
		}
	}
	svcs, err := f.services.List(labels.Everything())
	if err != nil {
		klog.ErrorS(err, "Repair pass skipped: listing Services failed")
		return sum
	}
	sort.Slice(svcs, func(i, j int) bool {
		return serviceKey(svcs[i].Namespace, svcs[i].Name) < serviceKey(svcs[j].Namespace, svcs[j].Name)
	})
	elbs := elbListing{l: l, cluster: cluster}
	for _, svc := range svcs {
		if !l.wantsRepair(svc) {
			continue
		}
		sum.Services++
		key := serviceKey(svc.Namespace, svc.Name)
		owned := byUID[string(svc.UID)]
		if owned == nil {
			owned = []*iaas.LoadBalancer{} // listed: none (not "find it")
		}
		before := l.client.Stats().Total(sakuraapi.IsWrite)
		req := Request{Trigger: decide.ByRepair, Cluster: cluster, Service: svc, Observed: owned}
		if l.mayOwnELB(svc) {
			req.ObservedELBs = elbs.of(ctx, svc)
		}
		st, err := l.Reconcile(ctx, req)
		if l.client.Stats().Total(sakuraapi.IsWrite) != before {
			sum.Repaired = append(sum.Repaired, key)
		}
		var re *api.RetryError
		if err != nil && !errors.As(err, &re) {
			sum.Failed = append(sum.Failed, key)
			if decide.ClearShownAddress(len(owned) > 0 || len(req.ObservedELBs) > 0, errors.Is(err, ipam.ErrPinnedUnavailable), statusIP(svc), pinnedIP(svc)) {
				l.showStatus(ctx, svc, &v1.LoadBalancerStatus{})
			}
			continue
		}
		l.showStatus(ctx, svc, st)
	}
	return sum
}

// showStatus writes st into svc's status when it differs (the service
// controller does not sync a Service whose appliance the pass re-created on
// another address). A nil st (still booting) clears an address that the
// new appliance did not get: the old one is no longer this Service's.
func (l *Engine) showStatus(ctx context.Context, svc *v1.Service, st *v1.LoadBalancerStatus) {
	if l.kube == nil {
		return
	}
	shown := statusIP(svc)
	switch {
	case st != nil:
		if servicehelpers.LoadBalancerStatusEqual(st, &svc.Status.LoadBalancer) {
			return
		}
	case shown != "" && l.reservedOther(string(svc.UID), shown):
		st = &v1.LoadBalancerStatus{}
	default:
		return
	}
	cp := svc.DeepCopy()
	cp.Status.LoadBalancer = *st
	if _, err := l.kube.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		klog.ErrorS(err, "Repair pass could not update the Service's status; retrying at the next pass", "service", serviceKey(svc.Namespace, svc.Name))
	}
}

// reservedOther: the appliance being created for uid got a VIP other than
// shown.
func (l *Engine) reservedOther(uid, shown string) bool {
	r, ok := l.mem.reservation(uid)
	return ok && len(r.IPs) > 0 && r.IPs[0].String() != shown
}

// elbListing is one pass's listing of the cluster's ELBs, made when the
// first ELB Service asks: a pass over a hundred ELB Services then costs one
// listing, not a hundred.
type elbListing struct {
	l       *Engine
	cluster string
	done    bool
	byUID   map[string][]*iaas.ProxyLB // nil: the listing failed
}

// of is svc's ELBs in the listing; nil (look again) when the listing
// failed or shows none.
func (e *elbListing) of(ctx context.Context, svc *v1.Service) []*iaas.ProxyLB {
	if !e.done {
		e.done = true
		all, err := e.l.elbs(e.l.cluster(e.cluster)).Find(ctx, desired.ClusterTag(e.l.cluster(e.cluster)))
		if err != nil {
			klog.ErrorS(err, "Listing this cluster's enhanced load balancers for the repair pass failed; each is looked up on its own")
			return nil
		}
		e.byUID = map[string][]*iaas.ProxyLB{}
		for _, elb := range all {
			for _, uid := range desired.MemberUIDs(elb.Tags) {
				e.byUID[uid] = append(e.byUID[uid], elb)
			}
		}
	}
	return e.byUID[string(svc.UID)]
}

// pinnedIP is the address svc pins (spec.loadBalancerIP, else the
// annotation), "" when none or unreadable.
func pinnedIP(svc *v1.Service) string {
	if svc.Spec.LoadBalancerIP != "" {
		return svc.Spec.LoadBalancerIP
	}
	return svc.Annotations[annotations.LoadBalancerIP]
}
