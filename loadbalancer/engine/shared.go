package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/plan"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cloud-provider/api"
)

// Sharing one appliance between Services (annotation load-balancer-sharing-key).
//
// A shared appliance carries this cluster's tag, a sharing-key tag and one
// service-uid tag per member Service, so every existing lookup by Service
// UID (reconcile, delete, the sweep) finds it unchanged. Each member owns the
// VIP entries whose description names it and has a VIP of its own; a member
// only ever rewrites its own entries and passes the others' back verbatim.

// sharedOwner is the allocator key of a shared appliance being created.
func sharedOwner(key string) string { return "share/" + key }

// join puts svc on the appliance shared by its key, creating the appliance
// when there is none. The caller holds the key's lock.
func (l *Engine) join(ctx context.Context, exec *apply.Executor, cluster string, svc *v1.Service, nodes []*v1.Node, p *prepared, locked time.Time) (*v1.LoadBalancerStatus, error) {
	key := p.opts.SharingKey
	// A listing newer than the key's lock: it shows every member's join
	// and the last member's unsharing before a shutdown (issue #18,
	// defect 4).
	snap, err := l.zoneSince(ctx, locked)
	if err != nil {
		return nil, orReason(ReasonAPIError, err)
	}
	tags := []string{desired.ClusterTag(exec.ClusterID), desired.SharingTag(key)}
	shared := ownedIn(snap, tags...)
	if len(shared) == 0 {
		if err := snap.ProvesAbsence(); err != nil {
			return nil, orReason(ReasonAPIError, err)
		}
	}
	keyCreate := location{found: decide.FoundListed, lbs: shared}
	if len(shared) > 0 {
		l.mem.release(sharedOwner(key))
	} else if keyCreate, err = l.inFlight(ctx, exec, sharedOwner(key), 0, tags...); err != nil {
		return nil, orReason(ReasonAPIError, err)
	}
	// Another member's create of the key may be in flight since before a
	// restart: its record on that Service says so.
	var other *annotations.CreateRecord
	if keyCreate.found == decide.FoundNone {
		recs, err := l.recordsInFlight(string(svc.UID))
		if err != nil {
			return nil, orReason(ReasonAPIError, err)
		}
		for _, rec := range recs {
			if rec.SharingKey == key {
				other = &rec
				break
			}
		}
	}
	switch decide.KeyAppliance(keyCreate.found, other != nil) {
	case decide.KeyWait:
		if other != nil {
			return nil, api.NewRetryError(fmt.Sprintf("another Service of sharing key %s created its load balancer at %s and it is not listed yet; waiting for it", key, other.At.UTC().Format(time.RFC3339)), BootRetryAfter)
		}
		return nil, keyCreate.wait
	case decide.KeyCreate:
		return l.create(ctx, exec, cluster, svc, nodes, p)
	}
	return l.joinAppliance(ctx, exec, cluster, svc, nodes, p, keyCreate.lbs[0], false)
}

// membersLeaving reads, from the Service cache, whether lb's members
// other than self are leaving (decide.Leaving).
func (l *Engine) membersLeaving(lb *iaas.LoadBalancer, self string) (bool, error) {
	f := l.follower()
	if f == nil {
		return false, nil
	}
	svcs, err := f.services.List(labels.Everything())
	if err != nil {
		return false, fmt.Errorf("listing Services for the members of load balancer %s: %w", lb.ID, err)
	}
	byUID := make(map[string]*v1.Service, len(svcs))
	for _, s := range svcs {
		byUID[string(s.UID)] = s
	}
	var members []decide.Member
	for _, uid := range desired.MemberUIDs(lb.Tags) {
		if uid == self {
			continue
		}
		s := byUID[uid]
		members = append(members, decide.MemberOf(s != nil, s != nil && s.DeletionTimestamp != nil, s != nil && l.scope.Serves(s)))
	}
	return decide.Leaving(members), nil
}

// joinAppliance adds svc's entries, with a newly allocated VIP, to the
// running shared appliance lb; a Service whose settings disagree with the
// appliance, or that does not fit, is refused and lb is left as it is.
// keepShown (a member joining again after its entries were removed): a
// pinned VIP that is refused does not keep the member off its appliance;
// it joins on the address it shows when still free (else a free one) and
// the refusal is returned once its entries are written, as for a member
// whose entries are in place.
func (l *Engine) joinAppliance(ctx context.Context, exec *apply.Executor, cluster string, svc *v1.Service, nodes []*v1.Node, p *prepared, lb *iaas.LoadBalancer, keepShown bool) (*v1.LoadBalancerStatus, error) {
	key := p.opts.SharingKey
	bootSent := l.mem.bootSentAt(lb.ID)
	leaving, err := l.membersLeaving(lb, string(svc.UID))
	if err != nil {
		return nil, orReason(ReasonAPIError, err)
	}
	switch decide.JoinStep(decide.StateOf(lb, bootSent, l.clock.Now()), p.opts.NoRepair, svc.DeletionTimestamp != nil, leaving) {
	case decide.StepServe:
	case decide.StepWaitLeaving:
		return nil, api.NewRetryError(fmt.Sprintf("load balancer %s shared by key %s is powered off and its Services are being deleted; a new one is made once it is gone", lb.ID, key), BootRetryAfter)
	case decide.StepFailed:
		return nil, orReason(ReasonAPIError, fmt.Errorf("load balancer %s (%s) shared by key %s failed to be created by SAKURA Cloud; delete it to let the controller create a new one", lb.Name, lb.ID, key))
	case decide.StepBoot:
		a := act{l: l, exec: exec, cluster: cluster, svc: svc, nodes: nodes, p: p}
		return nil, a.boot(ctx, lb)
	case decide.StepStayOff:
		return nil, fmt.Errorf("load balancer %s shared by key %s is powered off and the Service opts out of repair (%s: \"false\"); boot it by hand or remove the annotation", lb.ID, key, annotations.Repair)
	case decide.StepNone:
		return nil, nil
	default:
		since := lb.CreatedAt
		if !bootSent.IsZero() {
			since = bootSent
		}
		return nil, api.NewRetryError(fmt.Sprintf("load balancer %s shared by key %s is not up yet", lb.ID, key), l.nextBootLook(l.clock.Since(since)))
	}
	if err := l.sharingConflict(ctx, svc, nodes, p, lb); err != nil {
		return nil, err
	}
	j := decide.JoinAppliance(lb, string(svc.UID), desired.RefOf(svc), len(svc.Spec.Ports))
	if !j.Fits {
		return nil, reasoned(ReasonSharedApplianceFull, fmt.Errorf("load balancer %s shared by key %s is full: it has %d other Services and %d VIP+port entries, this Service needs %d more entries (limits: %d Services, %d entries); use another %s",
			lb.ID, key, j.Others, j.OtherEntries, len(svc.Spec.Ports), desired.MaxSharedMembers, desired.MaxVIPEntries, annotations.SharingKey))
	}

	backends, err := l.backendsOn(ctx, svc, nodes, p, lb)
	if err != nil {
		return nil, err
	}

	defer l.locks.lock(switchLock(lb.SwitchID))()
	// An earlier try's hold on a VIP is this Service's own (as for a pin
	// or restored entries): it must not keep the Service off the address.
	l.mem.release(vipOwner(string(svc.UID)))
	vip, err := l.allocateVIP(ctx, svc, p.opts, nodes, lb)
	var pinErr error
	if keepShown && errors.Is(err, ipam.ErrPinnedUnavailable) {
		// torture seeds 100706, 100757: a member pinning another member's
		// VIP, its entries wiped, never got them back.
		pinErr = err
		unpinned := p.opts
		unpinned.IP = ""
		vip, err = l.allocateVIP(ctx, svc, unpinned, nodes, lb)
	}
	if err != nil {
		return nil, err
	}
	want, err := desired.Build(desired.Input{ClusterID: cluster, Service: svc, Options: p.opts, SwitchID: lb.SwitchID, VIP: vip.String(), Backends: backends.Selected})
	if err != nil {
		return nil, reasoned(ReasonInvalidAnnotation, err)
	}
	_, others := plan.SplitEntries(lb.VirtualIPAddresses, desired.RefOf(svc))
	vips := append(others, plan.ToAPI(want.VIPs)...)
	// Held before the write: one answered 5xx may have written the VIP.
	l.mem.reserve(vipOwner(string(svc.UID)), ipam.Reservation{SwitchID: lb.SwitchID, IPs: []netip.Addr{vip}, ApplianceID: lb.ID})
	if err := exec.UpdateMembers(ctx, lb, vips, j.Tags); err != nil {
		if sakuraapi.NotDone(err) {
			l.mem.release(vipOwner(string(svc.UID)))
		}
		l.forgetInventoryIfRefused(lb.SwitchID, err)
		return nil, orReason(ReasonAPIError, err)
	}
	l.recordID(ctx, svc, lb.ID)
	l.event(svc, false, ReasonJoinedShared, "joined load balancer %s (%s) shared by key %s with VIP %s, %d real servers; %d Services share it now",
		lb.Name, lb.ID, key, vip, len(backends.Selected), j.Others+1)
	if pinErr != nil {
		return nil, pinErr
	}
	return statusOf(lb, vip.String()), nil
}

// allocateVIP takes a free address (or the pinned one) of lb's block for a
// new member. The caller holds the switch's lock.
func (l *Engine) allocateVIP(ctx context.Context, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, lb *iaas.LoadBalancer) (netip.Addr, error) {
	block, usage, reason, err := l.usageOf(ctx, l.exec.ZoneOf(lb.ID), lb.SwitchID, opts, nodes, string(svc.UID))
	if err != nil {
		return netip.Addr{}, reasoned(reason, err)
	}
	// lb was read after the zone listing usageOf may reuse: its members'
	// VIPs written since count too.
	ipam.AddLoadBalancers(usage, []*iaas.LoadBalancer{lb}, lb.SwitchID)
	res, err := allocateOn(block, usage, l.reserved, svc, opts, 0)
	if err != nil {
		return netip.Addr{}, l.allocFailed(svc, err, fmt.Sprintf("the shared load balancer %s was left as it is", lb.ID))
	}
	return res.VIP, nil
}

// sharingConflict refuses a Service whose fixed settings (type, block,
// plan, HA) differ from the shared appliance's: changing them would need a
// new appliance for every member.
func (l *Engine) sharingConflict(ctx context.Context, svc *v1.Service, nodes []*v1.Node, p *prepared, lb *iaas.LoadBalancer) error {
	drift, err := l.fixedDrift(ctx, svc, nodes, p, lb)
	if err != nil {
		return err
	}
	if len(drift) == 0 {
		return nil
	}
	return reasoned(ReasonSharingConflict, fmt.Errorf("sharing key %s: the shared load balancer %s (%s) differs from this Service: %s; make this Service's settings agree with the other Services of the key or use another %s. The load balancer is left as it is",
		p.opts.SharingKey, lb.Name, lb.ID, driftText(drift), annotations.SharingKey))
}

// fixedDrift lists what differs between the options and what lb was
// created with (type, network, switch, plan, HA): none of it changes in place.
func (l *Engine) fixedDrift(ctx context.Context, svc *v1.Service, nodes []*v1.Node, p *prepared, lb *iaas.LoadBalancer) ([]plan.Drift, error) {
	haveType, _, err := l.haveType(ctx, lb)
	if err != nil {
		return nil, orReason(ReasonAPIError, fmt.Errorf("reading switch %s of load balancer %s: %w", lb.SwitchID, lb.ID, err))
	}
	drift := plan.NetworkDrift(haveType, lb, networkOf(lb), p.opts)
	// Any configured block will do: the one it was made on may have been
	// the next in line when the first was full. A block that cannot be
	// resolved now is no drift (the appliance stays where it is).
	if allowed, berr := l.allowed(ctx, svc, p.opts, nodes, p.servers); berr == nil && !slices.Contains(allowed.switches, lb.SwitchID) {
		drift = append(drift, plan.Drift{Field: "switch", Have: lb.SwitchID.String(), Want: allowed.String()})
	}
	drift = append(drift, plan.ZoneDrift(l.exec.ZoneOf(lb.ID), p.opts.Zone)...)
	drift = append(drift, plan.FixedDrift(lb, desired.PlanIDOf(p.opts), p.opts.HA)...)
	drift = append(drift, plan.SharingDrift(desired.SharingKeyOf(lb.Tags), p.opts.SharingKey)...)
	return drift, nil
}

func driftText(drift []plan.Drift) string {
	parts := make([]string, 0, len(drift))
	for _, d := range drift {
		parts = append(parts, d.String())
	}
	return strings.Join(parts, "; ")
}
