package engine

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"context"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/plan"
	v1 "k8s.io/api/core/v1"
	"k8s.io/cloud-provider/api"
)

// Request is one reconcile: who asks, for which Service, with which nodes.
type Request struct {
	Trigger decide.Trigger
	// Cluster is the cluster name the service controller passes ("" for
	// the loops: the one remembered with the node set is used).
	Cluster string
	Service *v1.Service
	// Nodes is the node set; the follower and the repair pass leave it
	// nil and the one the service controller passed last is used.
	Nodes []*v1.Node
	// Observed is the Service's appliances as a listing just saw them (the
	// repair pass); nil: the locator looks now.
	Observed []*iaas.LoadBalancer
	// ObservedELBs is the Service's Enhanced Load Balancers as the repair
	// pass's one listing saw them; empty: the locator looks now.
	ObservedELBs []*iaas.ProxyLB
}

// Reconcile brings the Service's appliance in line. It is the one place
// that fixes the order of a reconcile:
//
//	lock the Service → inputs → lock the sharing key → locate → decide →
//	act (under the switch's lock where addresses are chosen) → record →
//	report
//
// A nil status with a nil error means there is no appliance and the
// trigger may not make one.
func (l *Engine) Reconcile(ctx context.Context, r Request) (*v1.LoadBalancerStatus, error) {
	out := outcome{health: l.mem.healthOf(string(r.Service.UID))}
	st, err := l.reconcile(ctx, r, &out)
	st = withPortStatus(r.Service, st, out.skipped)
	if cond, ok := conditionOf(r.Service, st, err, out); ok {
		l.showCondition(ctx, r.Service, cond)
	}
	return st, l.report(r.Service, err)
}

// report is the edge where a reconcile's failure becomes a Warning Event
// and a metric: the reason travels up with the error (reasoned), so the
// steps below only say what went wrong. An error without a reason (a wait,
// a refusal the Service asked for) is returned as it is.
func (l *Engine) report(svc *v1.Service, err error) error {
	var re *reasonedError
	if errors.As(err, &re) {
		_ = l.fail(svc, re.reason, err)
	}
	return err
}

func (l *Engine) reconcile(ctx context.Context, r Request, out *outcome) (*v1.LoadBalancerStatus, error) {
	svc := r.Service
	uid := string(svc.UID)
	defer l.locks.lock("svc/" + uid)()
	if r.Trigger == decide.ByEnsure {
		l.mem.setDeleting(uid, false) // the service controller wants it (again)
	}
	deleting := l.mem.isDeleting(uid)
	if !decide.Admit(r.Trigger, deleting) {
		return nil, nil // being deleted: nothing may bring it back
	}
	if f := l.follower(); f != nil {
		if r.Trigger.UsesRememberedNodes() {
			// Read under the Service's lock: a newer set stored by the
			// service controller meanwhile is the one used.
			if r.Nodes, r.Cluster = f.nodesFor(serviceKey(svc.Namespace, svc.Name)); r.Nodes == nil {
				return nil, nil // the service controller has not synced it yet; it will
			}
		} else {
			f.remember(r.Cluster, serviceKey(svc.Namespace, svc.Name), r.Nodes)
		}
	}
	if l.scope.Serves(svc) && l.isEnhanced(svc) {
		return l.reconcileELB(ctx, r, deleting, out)
	}
	p, err := l.prepare(ctx, svc)
	if err != nil {
		return nil, err
	}
	if len(p.skipped) > 0 {
		// From here on the Service is what the appliance serves: its TCP
		// ports; the others are reported on the status (portStatus).
		svc = p.served
		out.skipped = p.skipped
		l.notice(svc, ReasonUnsupportedProtocol+"/served", portNames(p.skipped), fmt.Sprintf("ports %s are not served: the SAKURA load balancer serves TCP only (%s: %s); the Service's status shows them with an error", strings.Join(portNames(p.skipped), ", "), annotations.MixedProtocol, annotations.MixedServeTCP))
	}
	exec, cluster := l.executor(r.Cluster), l.cluster(r.Cluster)
	if key := p.opts.SharingKey; key != "" {
		// Members of one key write to one appliance: one at a time.
		defer l.locks.lock(sharedOwner(key))()
	}
	// Listings used from here on must be newer than the locks: they then
	// show every write made under them before (a member's join or
	// unsharing, this Service's create).
	locked := l.clock.Now()
	how := locateFor{observed: r.Observed, since: locked}
	if r.Trigger.MayCreate() {
		how.adopt = &adoptInputs{p: p, nodes: r.Nodes}
	}
	loc, err := l.locate(ctx, exec, svc, how)
	if err != nil {
		return nil, orReason(ReasonAPIError, err)
	}
	var lb *iaas.LoadBalancer
	var bootSent time.Time
	if len(loc.lbs) > 0 && loc.found != decide.FoundAdoptable {
		lb = loc.lbs[0]
		bootSent = l.mem.bootSentAt(lb.ID)
	}
	state := decide.StateOf(lb, bootSent, l.clock.Now())
	step := decide.Next(decide.Facts{Trigger: r.Trigger, Deleting: deleting, Found: loc.found, State: state,
		NoRepair: p.opts.NoRepair, ServiceDeleting: svc.DeletionTimestamp != nil})
	if lb != nil {
		l.recordState(uid, lb, state)
		l.mem.looked(uid, loc.at)
		if len(loc.lbs) > 1 {
			l.reportDuplicates(svc, loc.lbs)
		}
	}
	a := act{l: l, exec: exec, cluster: cluster, svc: svc, nodes: r.Nodes, p: p, trigger: r.Trigger, locked: locked, out: out}
	if (step == decide.StepBoot || step == decide.StepServe) &&
		decide.Reshare(lb.Name, lb.Tags, uid, p.opts.SharingKey, desired.SharedName(cluster, p.opts.SharingKey)) {
		// Wanted again before its deletion finished (torture seed
		// 101907): the key's other members must find it.
		if err := exec.Reshare(ctx, lb, uid, p.opts.SharingKey); err != nil {
			return nil, orReason(ReasonAPIError, err)
		}
	}
	switch step {
	case decide.StepNone:
		return nil, nil
	case decide.StepWaitCreate:
		return nil, loc.wait
	case decide.StepCreate:
		return a.create(ctx)
	case decide.StepAdopt:
		return a.adopt(ctx, loc.adoption)
	case decide.StepRefuseAdopt:
		return nil, refuseAdopt(svc, loc.adoption)
	case decide.StepFailed:
		return nil, orReason(ReasonAPIError, fmt.Errorf("load balancer %s (%s) failed to be created by SAKURA Cloud; delete it (or delete and re-create the Service) to get a new one", lb.Name, lb.ID))
	case decide.StepStayOff:
		return nil, fmt.Errorf("load balancer %s is powered off and the Service opts out of repair (%s: \"false\"); boot it by hand or remove the annotation", lb.ID, annotations.Repair)
	case decide.StepBoot:
		return nil, a.boot(ctx, lb)
	case decide.StepWaitBoot:
		since := lb.CreatedAt
		if !bootSent.IsZero() {
			since = bootSent
		}
		return nil, api.NewRetryError(fmt.Sprintf("load balancer %s is not up yet (%s/%s)", lb.ID, lb.Availability, lb.InstanceStatus), l.nextBootLook(l.clock.Since(since)))
	case decide.StepHandsOff:
		return statusOf(lb, memberVIP(lb, svc)), nil // hands off, as asked
	}
	return a.serve(ctx, lb)
}

// caveat warns that the Service is served, but not as it asks; the
// condition says so too.
func (a act) caveat(reason, msg string) {
	a.l.warn(a.svc, reason, msg)
	a.out.caveatReason, a.out.caveatMsg = reason, msg
}

// recordState keeps the boot memory in line with what was seen of lb.
func (l *Engine) recordState(uid string, lb *iaas.LoadBalancer, state decide.State) {
	switch state {
	case decide.Up:
		l.mem.forgetBoot(lb.ID) // it came up: a later "down" is a stop again
		l.mem.bootOver(uid, lb, true)
	case decide.Booting:
		l.mem.waitForBoot(uid, lb.ID, false)
	default:
		l.mem.bootOver(uid, lb, false)
	}
}

// act carries out one reconcile's decision for one Service.
type act struct {
	l       *Engine
	exec    *apply.Executor
	cluster string
	svc     *v1.Service
	nodes   []*v1.Node
	p       *prepared
	trigger decide.Trigger
	// locked is when the Service's (and its sharing key's) locks were
	// taken: listings made since show every write made under them.
	locked time.Time
	// out collects what the condition shows beside the status.
	out *outcome
}

// create makes the Service's appliance, or joins its sharing key's. The
// repair pass re-reads the Service first: its informer copy may not show
// yet that the Service is being deleted.
func (a act) create(ctx context.Context) (*v1.LoadBalancerStatus, error) {
	l, svc := a.l, a.svc
	if id := svc.Annotations[annotations.ELBID]; id != "" {
		// The Service had an enhanced load balancer: an appliance beside
		// it would leave two addresses for one Service.
		return nil, reasoned(ReasonChangeNeedsNewAppliance, fmt.Errorf("the Service records enhanced load balancer %s (%s); the type cannot change in place, so no load balancer of type %s is created. Delete and re-create the Service to change its type, or set %s back to enhanced", id, annotations.ELBID, a.p.opts.Type, annotations.Type))
	}
	if a.trigger == decide.ByRepair {
		if ok, err := l.stillWanted(ctx, svc); !ok {
			return nil, err
		}
		l.once(svc, false, ReasonRepaired+"/gone", nil, "the Service's load balancer is gone (deleted outside the controller?); creating it again"+onAddress(svc))
	}
	if a.p.opts.SharingKey != "" {
		return l.join(ctx, a.exec, a.cluster, svc, a.nodes, a.p, a.locked)
	}
	return l.create(ctx, a.exec, a.cluster, svc, a.nodes, a.p)
}

// boot powers on an appliance found stopped: the controller never stops
// one of a live Service's appliances (deletion holds the Service's lock
// while it waits), so someone did so outside it.
func (a act) boot(ctx context.Context, lb *iaas.LoadBalancer) error {
	l, svc := a.l, a.svc
	// Every caller may act on a cached copy older than the Service's
	// deletion (a new leader's first pass, a node sync, the follower, the
	// repair pass, even EnsureLoadBalancer from a lagging informer): a boot
	// would undo the deletion's shutdown (issue #18, defect 6; torture seed
	// 10109), so the Service is read again first. Boots are rare; the read
	// goes to the API server, not to SAKURA.
	if ok, err := l.stillWanted(ctx, svc); !ok {
		return err
	}
	booted, err := a.exec.Boot(ctx, lb, desired.MemberUIDs(lb.Tags))
	if err != nil {
		return orReason(ReasonAPIError, err)
	}
	if booted {
		l.mem.markBootSent(lb.ID)
		l.event(svc, false, ReasonRepaired, "load balancer %s (%s) was powered off outside the controller; booting it", lb.Name, lb.ID)
	}
	return api.NewRetryError(fmt.Sprintf("load balancer %s was powered off; booting it", lb.ID), BootRetryMin)
}

// serve brings an appliance that is up in line with the Service
// (decide.Serve plans it).
func (a act) serve(ctx context.Context, lb *iaas.LoadBalancer) (*v1.LoadBalancerStatus, error) {
	l, svc, exec, p := a.l, a.svc, a.exec, a.p
	suspected := l.mem.takePending(lb.ID)
	shared := desired.SharingKeyOf(lb.Tags) != ""
	var mine, others iaas.LoadBalancerVirtualIPAddresses
	if shared {
		mine, others = plan.SplitEntries(lb.VirtualIPAddresses, desired.RefOf(svc))
	}
	facts := decide.ServeFacts{
		Trigger:       a.trigger,
		ConfigPending: suspected || exec.Unapplied(lb.ID) || desired.ConfigPending(lb.Description),
		Shared:        shared, SameKey: p.opts.SharingKey == desired.SharingKeyOf(lb.Tags), HasEntries: len(mine) > 0,
	}
	// Fixed settings are compared first: the plan depends on them. The
	// drift is not read for a rejoin, which reads it itself.
	var drift []plan.Drift
	vip := memberVIP(lb, svc)
	if !(facts.Shared && facts.SameKey && !facts.HasEntries) {
		var err error
		if drift, err = l.fixedDrift(ctx, svc, a.nodes, p, lb); err != nil {
			if suspected {
				l.mem.setPending(lb.ID)
			}
			return nil, err
		}
		facts.Drift = len(drift) > 0
		facts.PinDiffers = p.opts.IP != "" && p.opts.IP != vip
	}
	sp := decide.Serve(facts)

	if sp.ApplyConfigFirst {
		if err := exec.Config(ctx, lb); err != nil {
			if suspected {
				l.mem.setPending(lb.ID)
			}
			return nil, orReason(ReasonAPIError, err)
		}
		l.event(svc, false, ReasonRepaired, "load balancer %s runs other settings than it saved (an earlier Config failed); applied the saved settings", lb.ID)
	}
	if sp.Rejoin {
		return l.joinAppliance(ctx, exec, a.cluster, svc, a.nodes, p, lb, true)
	}
	backends, err := l.backendsOn(ctx, svc, a.nodes, p, lb)
	if err != nil {
		return nil, err
	}
	// A refused pin keeps the current VIP and does not hold up the
	// Service's other changes; it is returned once they are written.
	var pinErr error
	if sp.CheckPin {
		switch err := l.checkNewVIP(ctx, string(svc.UID), lb, p.opts, a.nodes); {
		case errors.Is(err, ipam.ErrPinnedUnavailable):
			pinErr = reasoned(ReasonLoadBalancerIPInvalid, fmt.Errorf("%w; the load balancer keeps %s", err, cmp.Or(vip, "the address the Service shows")))
		case err != nil:
			return nil, orReason(ReasonAPIError, err)
		default:
			vip = p.opts.IP
		}
	}
	if vip == "" {
		// Every entry was removed outside the controller (and no pin took
		// its place): write them back on the address the Service shows
		// (clients use it) when it is still free, else on a new one.
		opts := p.opts
		if pinErr != nil {
			opts.IP = "" // refused above: the shown or a free address
		}
		if vip, err = l.restoreVIP(ctx, svc, opts, a.nodes, lb); err != nil {
			return nil, err
		}
		l.event(svc, false, ReasonRepaired, "load balancer %s had no entries for this Service (removed outside the controller?); writing them back on %s", lb.ID, vip)
	}
	want, err := desired.Build(desired.Input{ClusterID: a.cluster, Service: svc, Options: p.opts, SwitchID: lb.SwitchID, VIP: vip, Backends: backends.Selected})
	if err != nil {
		return nil, reasoned(ReasonInvalidAnnotation, err)
	}
	have := lb
	if shared {
		// Compare and rewrite only this Service's entries; the other
		// members' entries go back verbatim.
		view := *lb
		view.VirtualIPAddresses = mine
		have = &view
	}
	if sp.WriteEntries {
		for _, change := range plan.Compute(want, have) {
			if change.Kind != plan.UpdateSettings {
				continue // fixed settings were compared above
			}
			vips := append(slices.Clone(others), change.VIPs...)
			if err := exec.UpdateSettings(ctx, lb, vips); err != nil {
				l.forgetInventoryIfRefused(lb.SwitchID, err)
				return nil, orReason(ReasonAPIError, err) // a failed Config is remembered by exec
			}
			if sp.AsRepair {
				l.event(svc, false, ReasonRepaired, "load balancer %s differed from the Service (changed outside the controller?); rewrote it: %s", lb.ID, summarize(change.Changes))
			} else {
				l.event(svc, false, ReasonUpdated, "updated load balancer %s: %s", lb.ID, summarize(change.Changes))
			}
			lb.VirtualIPAddresses = vips
		}
	}
	switch sp.Drift {
	case decide.ReportSharingConflict:
		a.caveat(ReasonSharingConflict, fmt.Sprintf("load balancer %s is shared by key %s and differs from this Service: %s; it is left as it is. Make this Service's settings agree with the other Services of the key, or give it another %s and re-create it", lb.ID, desired.SharingKeyOf(lb.Tags), driftText(drift), annotations.SharingKey))
	case decide.ReportNeedsNewAppliance:
		a.caveat(ReasonChangeNeedsNewAppliance, fmt.Sprintf("load balancer %s: %s; SAKURA cannot change this in place, so the running load balancer is kept as it is. To apply it, delete and re-create the Service (its address will change) or revert the setting", lb.ID, driftText(drift)))
	}
	a.out.noBackends = len(backends.Selected) == 0 && a.l.isLocal(svc)
	if pinErr != nil {
		return nil, pinErr
	}
	return statusOf(lb, vip), nil
}
