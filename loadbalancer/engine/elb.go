package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/elbplan"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"
)

// The Enhanced Load Balancer (ELB) kind. A type enhanced Service goes
// through the same Reconcile as a DSR one (locks, admission, the trigger's
// rights, decide.Next, conditions and Events); only the steps that touch
// the appliance differ:
//
//	locate: the ELBs with the Service's ownership tags (one global
//	        listing), else the ID the Service records, else a young create
//	        record: wait;
//	state:  decide.StateOfELB (no power state: available is up);
//	create: elbplan.Desired → elbplan.CreateRequest;
//	serve:  elbplan.Plan → UpdateSettings (with the read hash), ChangePlan
//	        (the ELB answers under a new ID, which the Service records);
//	delete: after a fresh read shows the tags (apply.ELBs).
//
// ELBs are global: no zone book, block or address is involved; SAKURA
// gives the VIP.

// elbOwner is the memory key of an ELB create in flight for a Service.
func elbOwner(uid string) string { return "elb/" + uid }

// elbTags are the ownership tags of uid's ELB: the ones DSR appliances
// carry, so that cluster-wide tooling sees one scheme.
func elbTags(cluster, uid string) []string {
	return []string{desired.ClusterTag(cluster), desired.ServiceTag(uid)}
}

func (l *Engine) elbs(cluster string) *apply.ELBs {
	return &apply.ELBs{API: l.client.ProxyLBs, ClusterID: cluster}
}

// isEnhanced: the Service asks for an ELB.
func (l *Engine) isEnhanced(svc *v1.Service) bool {
	return annotations.TypeOf(svc, l.defaults()) == annotations.TypeEnhanced
}

// mayOwnELB: the Service asks for an ELB, records one, or recorded a
// create of one. Its deletion then looks for an ELB even when the type
// annotation was changed since.
func (l *Engine) mayOwnELB(svc *v1.Service) bool {
	if l.isEnhanced(svc) || svc.Annotations[annotations.ELBID] != "" {
		return true
	}
	rec, ok, _ := annotations.CreateRecordOf(svc)
	return ok && rec.Kind == annotations.KindELB
}

// elbProblemReasons are the Event reasons of elbplan's blocking problems.
var elbProblemReasons = map[elbplan.ProblemKind]string{
	elbplan.ProblemOption:         ReasonInvalidAnnotation,
	elbplan.ProblemOptionMismatch: ReasonInvalidAnnotation,
	elbplan.ProblemNoPorts:        ReasonUnsupportedProtocol,
	elbplan.ProblemProtocol:       ReasonUnsupportedProtocol,
	elbplan.ProblemTooManyPorts:   ReasonTooManyPorts,
	elbplan.ProblemNoNodePort:     ReasonUnsupportedProtocol,
	elbplan.ProblemTargetsDiffer:  ReasonUnsupportedProtocol,
}

// elbPrepared is the validated input of one ELB reconcile.
type elbPrepared struct {
	opts annotations.Enhanced
	spec elbplan.Spec
	// left are the problems that leave nodes out; the ELB is still wanted.
	left []elbplan.Problem
}

// prepareELB validates the Service for an ELB: every problem at once, and
// nothing is created or changed while one blocks.
func (l *Engine) prepareELB(ctx context.Context, svc *v1.Service, nodes []*v1.Node) (*elbPrepared, error) {
	opts, errs := annotations.ParseEnhanced(svc, l.defaults())
	var servers []desired.Server
	if len(errs) == 0 {
		var err error
		if servers, err = l.elbServers(ctx); err != nil {
			return nil, orReason(ReasonAPIError, err)
		}
	}
	var msgs []string
	reason := ""
	for _, e := range errs {
		msgs = append(msgs, e.Error())
		reason = ReasonInvalidAnnotation
	}
	spec, probs := elbplan.Desired(svc, elbNodes(nodes, servers), opts.ELB)
	var left []elbplan.Problem
	for _, p := range probs {
		switch {
		case !p.Blocking():
			left = append(left, p)
		case p.Kind == elbplan.ProblemOption && len(errs) > 0:
			// Already named by the annotation that carries the option.
		default:
			msgs = append(msgs, p.Msg)
			if reason == "" {
				reason = elbProblemReasons[p.Kind]
			}
		}
	}
	if len(msgs) > 0 {
		return nil, reasoned(reason, fmt.Errorf("%s; nothing was created or changed: the load balancer is left as it is until this is fixed", strings.Join(msgs, "; ")))
	}
	return &elbPrepared{opts: opts, spec: spec, left: left}, nil
}

// elbServers lists the servers of every zone of the cluster: an ELB is
// global, so its real servers may be nodes of any zone. A zone whose
// listing fails fails the reconcile: its nodes would otherwise lose their
// servers in the next write.
func (l *Engine) elbServers(ctx context.Context) ([]desired.Server, error) {
	servers, err := l.listServers(ctx)
	if err != nil {
		return nil, err
	}
	for zone, lister := range l.others {
		raw, err := lister.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the servers of zone %s: %w", zone, err)
		}
		servers = append(servers, serversOf(zone, raw)...)
	}
	return servers, nil
}

// elbNodes are the nodes as an ELB sees them: by their global address.
// That is the shared-segment address SAKURA shows for the node's server
// (matched by providerID or name), else the Node's ExternalIP: a node that
// just joined has no ExternalIP until the cloud-node controller writes it,
// and the service controller does not sync again when addresses change.
// Nodes excluded from load balancers are left out, as for DSR appliances.
func elbNodes(nodes []*v1.Node, servers []desired.Server) []elbplan.Node {
	byNode := desired.MatchServers(nodes, servers)
	out := make([]elbplan.Node, 0, len(nodes))
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if _, excluded := n.Labels[desired.ExcludeLabel]; excluded {
			continue
		}
		node := elbplan.Node{Name: n.Name}
		if s := byNode[n.Name]; s != nil {
			if ip, err := netip.ParseAddr(s.Global); err == nil && ip.Is4() {
				node.GlobalIP = ip
				out = append(out, node)
				continue
			}
		}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); a.Type == v1.NodeExternalIP && err == nil && ip.Is4() {
				node.GlobalIP = ip
				break
			}
		}
		out = append(out, node)
	}
	return out
}

// elbLocation is the locator's answer for an ELB.
type elbLocation struct {
	found decide.Found
	elbs  []*iaas.ProxyLB // oldest first
	wait  error           // for FoundPending
	// adoption is the decision behind FoundAdoptable / FoundAdoptRefused.
	adoption decide.ELBAdoption
}

// locateELB answers "where is this Service's ELB", in the DSR locator's
// order: listed by its tags (observed, the repair pass's listing, else a
// listing now: an empty observation may be older than a create); else read
// by the ID this process just made or the Service records; else pending
// while a create may be in flight.
func (l *Engine) locateELB(ctx context.Context, elbs *apply.ELBs, svc *v1.Service, observed []*iaas.ProxyLB) (elbLocation, error) {
	uid := string(svc.UID)
	tags := elbTags(elbs.ClusterID, uid)
	listed := observed
	if len(listed) == 0 {
		var err error
		if listed, err = elbs.Find(ctx, tags...); err != nil {
			return elbLocation{}, err
		}
	}
	if len(listed) > 0 {
		l.mem.release(elbOwner(uid))
		return elbLocation{found: decide.FoundListed, elbs: listed}, nil
	}
	r, reserved := l.mem.reservation(elbOwner(uid))
	young := reserved && l.clock.Since(r.At) < graceOf(r)
	if reserved && r.Uncertain {
		if young {
			return elbPending("a failed create may have made an enhanced load balancer that is not listed yet; waiting for it before creating another", BootRetryAfter), nil
		}
		l.mem.release(elbOwner(uid))
		reserved = false
	}
	ids := []types.ID{}
	if reserved && !r.ApplianceID.IsEmpty() {
		ids = append(ids, r.ApplianceID)
	}
	if rec := types.StringID(svc.Annotations[annotations.ELBID]); !rec.IsEmpty() && !slices.Contains(ids, rec) {
		ids = append(ids, rec)
	}
	for _, id := range ids {
		elb, err := elbs.Read(ctx, id)
		res := decide.ReadOK
		switch {
		case sakuraapi.IsNotFound(err):
			res = decide.ReadNotFound
		case err != nil:
			res = decide.ReadFailed
		}
		switch decide.ReadOfID(res, err == nil && apply.OwnedELB(elb, tags...), reserved && id == r.ApplianceID, young) {
		case decide.IDFound:
			return elbLocation{found: decide.FoundUnlisted, elbs: []*iaas.ProxyLB{elb}}, nil
		case decide.IDError:
			return elbLocation{}, fmt.Errorf("reading enhanced load balancer %s: %w", id, err)
		case decide.IDRelease:
			l.mem.release(elbOwner(uid))
		case decide.IDPending:
			return elbPending(fmt.Sprintf("enhanced load balancer %s was just created and is not visible yet", id), BootRetryAfter), nil
		}
	}
	rec, has, err := annotations.CreateRecordOf(svc)
	if err != nil {
		return elbLocation{}, reasoned(ReasonInvalidAnnotation, fmt.Errorf("%w; nothing is created while a create may be in flight", err))
	}
	if wait := decide.CreateWait(rec, has, l.clock.Now(), CreateVisibilityGrace); wait > 0 {
		return elbPending(fmt.Sprintf("a create sent at %s may have made an enhanced load balancer that is not listed yet; waiting for it (up to %s more) before creating another",
			rec.At.UTC().Format(time.RFC3339), wait.Round(time.Second)), min(wait, BootRetryAfter)), nil
	}
	return elbLocation{found: decide.FoundNone}, nil
}

func elbPending(msg string, after time.Duration) elbLocation {
	return elbLocation{found: decide.FoundPending, wait: api.NewRetryError(msg, after)}
}

// reconcileELB is the part of Reconcile after the Service's lock and
// admission for a type enhanced Service.
func (l *Engine) reconcileELB(ctx context.Context, r Request, deleting bool, out *outcome) (*v1.LoadBalancerStatus, error) {
	svc := r.Service
	if l.cfgErr != nil {
		return nil, reasoned(ReasonConfigError, l.cfgErr)
	}
	p, err := l.prepareELB(ctx, svc, r.Nodes)
	if err != nil {
		return nil, err
	}
	cluster := l.cluster(r.Cluster)
	elbs := l.elbs(cluster)
	loc, err := l.locateELB(ctx, elbs, svc, r.ObservedELBs)
	if err == nil && loc.found == decide.FoundNone && r.Trigger.MayCreate() && p.opts.AdoptID != "" {
		loc, err = l.adoptableELB(ctx, elbs, svc, p)
	}
	if err != nil {
		return nil, orReason(ReasonAPIError, err)
	}
	var elb *iaas.ProxyLB
	if len(loc.elbs) > 0 {
		elb = loc.elbs[0]
		if len(loc.elbs) > 1 {
			l.reportDuplicateELBs(svc, loc.elbs)
		}
	}
	step := decide.Next(decide.Facts{Trigger: r.Trigger, Deleting: deleting, Found: loc.found, State: decide.StateOfELB(elb),
		NoRepair: p.opts.NoRepair, ServiceDeleting: svc.DeletionTimestamp != nil})
	a := elbAct{l: l, elbs: elbs, cluster: cluster, svc: svc, p: p, trigger: r.Trigger, out: out}
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
		return nil, refuseAdopt(svc, decide.Adoption{Kind: decide.AdoptRefused, IDs: []string{loc.adoption.ID}, Why: loc.adoption.Why})
	case decide.StepHandsOff:
		return elbStatus(elb), nil
	case decide.StepServe:
		return a.serve(ctx, elb)
	case decide.StepFailed:
		return nil, orReason(ReasonAPIError, fmt.Errorf("enhanced load balancer %s (%s) failed to be created by SAKURA Cloud; delete it (or delete and re-create the Service) to get a new one", elb.Name, elb.ID))
	}
	// Booting (migrating): SAKURA is changing it; look again soon.
	return nil, api.NewRetryError(fmt.Sprintf("enhanced load balancer %s is not available yet (%s)", elb.ID, elb.Availability), BootRetryAfter)
}

// elbAct carries out one ELB reconcile's decision.
type elbAct struct {
	l       *Engine
	elbs    *apply.ELBs
	cluster string
	svc     *v1.Service
	p       *elbPrepared
	trigger decide.Trigger
	out     *outcome
}

// create makes the Service's ELB: the create is recorded on the Service
// first (a restarted controller waits for it instead of making a second),
// and its ID right after.
func (a elbAct) create(ctx context.Context) (*v1.LoadBalancerStatus, error) {
	l, svc := a.l, a.svc
	if id := svc.Annotations[annotations.LoadBalancerID]; id != "" {
		// The Service had a DSR appliance: a second kind beside it would
		// leave two addresses for one Service.
		return nil, reasoned(ReasonChangeNeedsNewAppliance, fmt.Errorf("the Service records load balancer %s of type internet or switch (%s); the type cannot change in place, so no enhanced load balancer is created. Delete and re-create the Service to change its type, or set %s back", id, annotations.LoadBalancerID, annotations.Type))
	}
	if a.trigger == decide.ByRepair {
		if ok, err := l.stillWanted(ctx, svc); !ok {
			return nil, err
		}
		l.once(svc, false, ReasonRepaired+"/gone", nil, "the Service's enhanced load balancer is gone (deleted outside the controller?); creating it again")
	}
	uid := string(svc.UID)
	rec := annotations.CreateRecord{At: l.clock.Now().UTC(), Kind: annotations.KindELB}
	if err := l.recordCreate(ctx, svc, rec); err != nil {
		return nil, orReason(ReasonAPIError, fmt.Errorf("%w; nothing was created", err))
	}
	req := elbplan.CreateRequest(a.p.spec, elbplan.Identity{
		Name:        desired.Name(a.cluster, svc),
		Description: "Service " + desired.RefOf(svc).String() + " (sakura-cloud-controller-manager)",
		Tags:        elbTags(a.cluster, uid),
	})
	elb, err := a.elbs.Create(ctx, req)
	if err != nil && !sakuraapi.NotDone(err) {
		// A 5xx, a timeout or a lost answer may have made one: wait for it
		// by its tags rather than create a second.
		res := ipam.Reservation{Uncertain: true, Grace: l.uncertainCreateGrace(ctx, svc, rec, err)}
		l.mem.reserve(elbOwner(uid), res)
		_ = l.fail(svc, ReasonAPIError, err)
		return nil, api.NewRetryError(fmt.Sprintf("creating the enhanced load balancer failed (%v); looking for it by its tags before trying again", err), min(BootRetryAfter, graceOf(res)))
	}
	if err != nil {
		return nil, orReason(ReasonAPIError, err)
	}
	l.mem.reserve(elbOwner(uid), ipam.Reservation{ApplianceID: elb.ID})
	l.recordELBID(ctx, svc, elb.ID)
	l.event(svc, false, ReasonCreated, "created enhanced load balancer %s (%s), region %s, plan %d cps, VIP %s%s, %d servers",
		elb.Name, elb.ID, elb.Region, elb.Plan.Int(), orNone(elb.VirtualIPAddress), fqdnNote(elb), len(a.p.spec.Servers))
	a.report(elb)
	if err := a.certificates(ctx, elb); err != nil {
		return nil, err
	}
	return elbStatus(elb), nil
}

// serve brings an available ELB in line with the Service: settings first
// (their hash was read from the ID the ELB has now), then the plan.
func (a elbAct) serve(ctx context.Context, elb *iaas.ProxyLB) (*v1.LoadBalancerStatus, error) {
	l, svc := a.l, a.svc
	a.l.recordELBID(ctx, svc, elb.ID)
	c := elbplan.Plan(a.p.spec, elb)
	if c.NewELB {
		// Only a region differs, which SAKURA cannot change in place: the
		// ELB is kept, serving as it is.
		a.caveat(ReasonChangeNeedsNewAppliance, fmt.Sprintf("enhanced load balancer %s: %s; SAKURA cannot change this in place, so the running load balancer is kept as it is. To apply it, delete and re-create the Service (its address will change) or revert the setting", elb.ID, elbDriftText(c.Why)))
		a.report(elb)
		return elbStatus(elb), nil
	}
	if c.Settings != nil {
		written, err := a.elbs.UpdateSettings(ctx, elb.ID, c.Settings)
		if err != nil {
			return nil, orReason(ReasonAPIError, fmt.Errorf("updating enhanced load balancer %s: %w", elb.ID, err))
		}
		l.event(svc, false, a.updatedReason(), "updated enhanced load balancer %s: %s", elb.ID, summarize(c.Diff))
		elb = keepStatus(written, elb)
	}
	if c.ChangePlan != nil {
		from := elb.Plan
		changed, err := a.elbs.ChangePlan(ctx, elb, c.ChangePlan, elbTags(a.cluster, string(svc.UID))...)
		if err != nil {
			return nil, orReason(ReasonAPIError, fmt.Errorf("changing the plan of enhanced load balancer %s: %w", elb.ID, err))
		}
		// The plan change answers the ELB under a new ID; until listings
		// show it, the Service's record is how it is found.
		l.mem.reserve(elbOwner(string(svc.UID)), ipam.Reservation{ApplianceID: changed.ID})
		l.recordELBID(ctx, svc, changed.ID)
		l.event(svc, false, ReasonUpdated, "changed the plan of enhanced load balancer %s from %d to %d cps; it is now %s", elb.ID, from.Int(), changed.Plan.Int(), changed.ID)
		elb = changed
	}
	if err := a.certificates(ctx, elb); err != nil {
		return nil, err
	}
	if len(c.Kept) > 0 {
		a.caveat(ReasonChangeNeedsNewAppliance, fmt.Sprintf("enhanced load balancer %s: %s; SAKURA cannot change this in place, so it is kept as it is. To apply it, delete and re-create the Service (its address will change) or revert the setting", elb.ID, elbDriftText(c.Kept)))
	}
	a.report(elb)
	return elbStatus(elb), nil
}

func (a elbAct) updatedReason() string {
	if a.trigger == decide.ByRepair {
		return ReasonRepaired
	}
	return ReasonUpdated
}

func (a elbAct) caveat(reason, msg string) {
	a.l.warn(a.svc, reason, msg)
	a.out.caveatReason, a.out.caveatMsg = reason, msg
}

// report tells, once per change, what the user must act on: the nodes left
// out, and the networks the ELB connects from (to allow on NodePorts).
func (a elbAct) report(elb *iaas.ProxyLB) {
	for _, p := range a.p.left {
		a.l.notice(a.svc, ReasonNodesWithoutServer+"/elb", p.Nodes, p.Msg)
	}
	if len(elb.ProxyNetworks) > 0 {
		nets := slices.Sorted(slices.Values(elb.ProxyNetworks))
		a.l.once(a.svc, false, ReasonProxyNetworks, nets, fmt.Sprintf("enhanced load balancer %s connects to the nodes' NodePorts from %s; allow these source networks in the nodes' firewalls (packet filters)", elb.ID, strings.Join(nets, ", ")))
	}
}

// keepStatus: the settings write may answer without the status part (VIP,
// FQDN, networks), which has not changed.
func keepStatus(written, before *iaas.ProxyLB) *iaas.ProxyLB {
	if written == nil {
		return before
	}
	if written.VirtualIPAddress == "" && written.FQDN == "" {
		w := *written
		w.VirtualIPAddress, w.FQDN, w.ProxyNetworks, w.Region, w.UseVIPFailover = before.VirtualIPAddress, before.FQDN, before.ProxyNetworks, before.Region, before.UseVIPFailover
		return &w
	}
	return written
}

// elbStatus is the Service's status on elb: its VIP, with its FQDN as the
// hostname (the stable name when VIP failover may move the VIP), and ipMode
// Proxy: the ELB terminates connections, so kube-proxy must not route the
// VIP to the Service inside the cluster.
func elbStatus(elb *iaas.ProxyLB) *v1.LoadBalancerStatus {
	if elb == nil || elb.VirtualIPAddress == "" {
		return &v1.LoadBalancerStatus{}
	}
	mode := v1.LoadBalancerIPModeProxy
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: elb.VirtualIPAddress, Hostname: elb.FQDN, IPMode: &mode}}}
}

func fqdnNote(elb *iaas.ProxyLB) string {
	if elb.FQDN == "" {
		return ""
	}
	return " (" + elb.FQDN + ")"
}

func elbDriftText(d []elbplan.Drift) string {
	s := make([]string, len(d))
	for i, x := range d {
		s[i] = x.String()
	}
	return strings.Join(s, "; ")
}

func (l *Engine) reportDuplicateELBs(svc *v1.Service, elbs []*iaas.ProxyLB) {
	var ids []string
	for _, o := range elbs[1:] {
		ids = append(ids, o.ID.String())
	}
	l.warn(svc, ReasonDuplicate, fmt.Sprintf("more than one enhanced load balancer carries this Service's ownership tags; managing %s, leaving %s alone (delete them by hand if unused)", elbs[0].ID, strings.Join(ids, ", ")))
}

// recordELBID writes the ELB's ID on the Service (see recordID).
func (l *Engine) recordELBID(ctx context.Context, svc *v1.Service, id types.ID) {
	if l.kube == nil || svc.Annotations[annotations.ELBID] == id.String() {
		return
	}
	if err := l.patchAnnotation(ctx, svc, annotations.ELBID, id.String()); err != nil {
		klog.ErrorS(err, "Could not record the enhanced load balancer's ID on the Service; it is still found by its tags", "service", serviceKey(svc.Namespace, svc.Name), "elb", id)
	}
}

// statusELB is Status (GetLoadBalancer) for a Service that may own an ELB.
func (l *Engine) statusELB(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	loc, err := l.locateELB(ctx, l.elbs(l.cluster(clusterName)), svc, nil)
	if err != nil {
		return nil, false, err
	}
	st, exists := answerStatus(loc.found, func() *v1.LoadBalancerStatus { return elbStatus(loc.elbs[0]) })
	return st, exists, nil
}

// deleteELBs deletes the Service's ELBs (all of them, duplicates too), or
// with preserve takes this cluster's tags off and leaves them running.
// Called under the Service's lock by Delete.
func (l *Engine) deleteELBs(ctx context.Context, clusterName string, svc *v1.Service, preserve bool) error {
	cluster := l.cluster(clusterName)
	elbs := l.elbs(cluster)
	loc, err := l.locateELB(ctx, elbs, svc, nil)
	if err != nil {
		return err
	}
	if loc.found == decide.FoundPending {
		return api.NewRetryError("the Service's new enhanced load balancer is not visible yet; waiting for it to delete it", BootRetryAfter)
	}
	tags := elbTags(cluster, string(svc.UID))
	for _, elb := range loc.elbs {
		if preserve {
			kept, err := elbs.Retag(ctx, elb.ID, decide.Released(elb.Tags), tags...)
			if err != nil {
				return fmt.Errorf("preserving enhanced load balancer %s: %w", elb.ID, err)
			}
			l.event(svc, false, ReasonPreserved, "preserved enhanced load balancer %s (%s) with VIP %s: it keeps running and no longer carries this cluster's tags", kept.Name, kept.ID, orNone(elb.VirtualIPAddress))
			continue
		}
		if err := elbs.Delete(ctx, elb.ID, tags...); err != nil {
			return fmt.Errorf("deleting enhanced load balancer %s: %w", elb.ID, err)
		}
		l.event(svc, false, ReasonDeleted, "deleted enhanced load balancer %s (%s) and its certificates", elb.Name, elb.ID)
	}
	l.mem.release(elbOwner(string(svc.UID)))
	return nil
}

// certificates sets the https ports' certificates from the Service's TLS
// Secrets when the ELB serves others (GetCertificates compares; nothing is
// written when they are the same). A Service without TLS Secrets leaves
// the ELB's certificates alone: they may have been set by hand. A bad
// Secret leaves the ELB serving the certificates it has.
func (a elbAct) certificates(ctx context.Context, elb *iaas.ProxyLB) error {
	names := a.p.opts.TLSSecrets
	if len(names) == 0 || a.l.kube == nil {
		return nil
	}
	ns := a.svc.Namespace
	var sources []elbplan.CertSource
	var problems []string
	for _, name := range names {
		ref := ns + "/" + name
		sec, err := a.l.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			problems = append(problems, fmt.Sprintf("TLS Secret %s does not exist", ref))
		case apierrors.IsForbidden(err):
			problems = append(problems, fmt.Sprintf("the controller may not read Secrets in namespace %s: add it to the chart value rbac.secretNamespaces", ns))
		case err != nil:
			return orReason(ReasonAPIError, fmt.Errorf("reading TLS Secret %s: %w", ref, err))
		case sec.Type != v1.SecretTypeTLS:
			problems = append(problems, fmt.Sprintf("TLS Secret %s is of type %q, not %q", ref, sec.Type, v1.SecretTypeTLS))
		default:
			sources = append(sources, elbplan.CertSource{Source: ref, Chain: sec.Data[v1.TLSCertKey], Key: sec.Data[v1.TLSPrivateKeyKey]})
		}
	}
	var want []elbplan.Cert
	if len(problems) == 0 {
		var errs []error
		if want, errs = elbplan.Certificates(sources); len(errs) > 0 {
			for _, e := range errs {
				problems = append(problems, e.Error())
			}
		}
	}
	if len(problems) > 0 {
		return reasoned(ReasonInvalidTLSSecret, fmt.Errorf("annotation %s: %s; the enhanced load balancer %s keeps the certificates it has", annotations.ELBTLSSecret, strings.Join(problems, "; "), elb.ID))
	}
	have, err := a.elbs.Certificates(ctx, elb.ID)
	if err != nil {
		return orReason(ReasonAPIError, fmt.Errorf("reading the certificates of enhanced load balancer %s: %w", elb.ID, err))
	}
	if !elbplan.CertificatesDiffer(want, have) {
		return nil
	}
	if err := a.elbs.SetCertificates(ctx, elb.ID, elbplan.SetCertificatesRequest(want), elbTags(a.cluster, string(a.svc.UID))...); err != nil {
		return orReason(ReasonAPIError, fmt.Errorf("setting the certificates of enhanced load balancer %s: %w", elb.ID, err))
	}
	var from []string
	for _, c := range want {
		from = append(from, fmt.Sprintf("%s (CN %s)", c.Source, orNone(c.CommonName)))
	}
	a.l.event(a.svc, false, ReasonUpdated, "set the certificates of enhanced load balancer %s from %s", elb.ID, strings.Join(from, ", "))
	return nil
}

// adoptableELB answers, for a Service with no ELB of this controller that
// names one to adopt, whether it may take it over (decide.AdoptELBByID).
func (l *Engine) adoptableELB(ctx context.Context, elbs *apply.ELBs, svc *v1.Service, p *elbPrepared) (elbLocation, error) {
	var byID *iaas.ProxyLB
	switch elb, err := elbs.Read(ctx, types.StringID(p.opts.AdoptID)); {
	case err == nil:
		byID = elb
	case !sakuraapi.IsNotFound(err):
		return elbLocation{}, fmt.Errorf("reading enhanced load balancer %s to adopt: %w", p.opts.AdoptID, err)
	}
	shown, err := l.shownByOthers(string(svc.UID))
	if err != nil {
		return elbLocation{}, err
	}
	a := decide.AdoptELBByID(p.opts.AdoptID, byID, decide.ELBAdoptTarget{ClusterID: elbs.ClusterID, UID: string(svc.UID),
		Region: p.spec.Region, ShownBy: shown, RecordedID: svc.Annotations[annotations.ELBID]})
	switch a.Kind {
	case decide.AdoptIt:
		return elbLocation{found: decide.FoundAdoptable, adoption: a}, nil
	case decide.AdoptRefused:
		return elbLocation{found: decide.FoundAdoptRefused, adoption: a}, nil
	}
	return elbLocation{found: decide.FoundNone}, nil
}

// adopt makes the adoptable ELB the Service's (one tag write, re-checked
// on a fresh read), then serves it like any other.
func (a elbAct) adopt(ctx context.Context, ad decide.ELBAdoption) (*v1.LoadBalancerStatus, error) {
	l, svc := a.l, a.svc
	if a.trigger == decide.ByRepair {
		if ok, err := l.stillWanted(ctx, svc); !ok {
			return nil, err
		}
	}
	// Two Services of this process naming one ELB take turns; the second
	// then finds it tagged and is refused.
	defer l.locks.lock("adopt/" + ad.ELB.ID.String())()
	elb, err := a.elbs.Adopt(ctx, ad.ELB, ad.Tags)
	if err != nil {
		return nil, adoptFailed(err)
	}
	l.recordELBID(ctx, svc, elb.ID)
	l.event(svc, false, ReasonAdopted, "adopted enhanced load balancer %s (%s) with VIP %s: it now carries this cluster's and this Service's ownership tags (its other tags are kept); its settings are brought in line with the Service", elb.Name, elb.ID, orNone(elb.VirtualIPAddress))
	return a.serve(ctx, elb)
}
