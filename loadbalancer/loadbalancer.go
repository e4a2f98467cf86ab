// Package loadbalancer implements cloudprovider.LoadBalancer for Services of
// type LoadBalancer on SAKURA Cloud DSR load balancer appliances.
//
// The adapter is thin: it gathers inputs, then hands over to pure packages
// (annotations → desired → plan) and to ipam for addresses and apply for API
// writes. Every user-visible problem becomes an Event on the Service.
package loadbalancer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/servercache"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/plan"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
)

// Retry intervals while an appliance boots or shuts down.
const (
	// BootRetryAfter is the longest wait between looks at a booting or
	// stopping appliance; BootRetryMin the shortest (boot looks follow
	// decide.NextBootLook).
	BootRetryAfter = 10 * time.Second
	BootRetryMin   = 2 * time.Second
)

// CreateVisibilityGrace is how long a just-created appliance (or one a
// failed create may have made) may stay invisible to listings and reads
// before the controller stops waiting for it and may create again. Tests
// against a simulator whose invisibility window is shorter lower it.
var CreateVisibilityGrace = 2 * time.Minute

// UnavailableCreateGrace is how long a create answered 503 is looked for by
// its tags before it is sent again. SAKURA answers 503 from its front end
// (maintenance, overload) before the request reaches the service, so such a
// create most likely made nothing; the short look covers the rare case that
// it did. A 500, a timeout or a lost answer waits CreateVisibilityGrace.
var UnavailableCreateGrace = 10 * time.Second

// graceOf is how long the create behind r is waited for.
func graceOf(r ipam.Reservation) time.Duration {
	if r.Grace > 0 && r.Grace < CreateVisibilityGrace {
		return r.Grace
	}
	return CreateVisibilityGrace
}

// ServerLister lists the zone's servers with their NICs; the shared server
// cache implements it. Only List is needed, so this package does not depend
// on the cache's full shape.
type ServerLister interface {
	List(ctx context.Context) ([]*iaas.Server, error)
}

// Deps are the collaborators of the adapter.
type Deps struct {
	Client *sakuraapi.Client
	// Servers lists servers (cached). Nil: list through Client every time.
	Servers   ServerLister
	Config    config.LoadBalancerConfig
	ClusterID string
	// Recorder receives Events on Services; nil drops them (logs remain).
	Recorder record.EventRecorder
	// Kube is reserved for sharing one appliance between Services (it will
	// need the other Services); may be nil.
	Kube kubernetes.Interface
}

// LoadBalancer is the cloudprovider.LoadBalancer implementation.
type LoadBalancer struct {
	client    *sakuraapi.Client
	servers   ServerLister
	cfg       config.LoadBalancerConfig
	clusterID string
	recorder  record.EventRecorder
	exec      *apply.Executor
	alloc     *ipam.Allocator
	reserved  []ipam.Range
	cfgErr    error
	switches  switchCache

	locks    keyedLocks
	followMu sync.Mutex
	follow   *follower // nil until FollowEndpoints

	noticesMu sync.Mutex
	notices   map[string]noticeEntry // Service UID/condition -> last report

	// deleteWaits is DeleteConfirmWaits (tests shorten it).
	deleteWaits []time.Duration

	kube          kubernetes.Interface
	stateMu       sync.Mutex
	deleting      map[string]bool     // Service UIDs whose deletion began
	pendingConfig map[types.ID]bool   // appliances with saved, unapplied settings
	reapplied     map[types.ID]string // settings hash last re-applied on suspicion
	bootSent      map[types.ID]time.Time
	boots         bootWatch
	found         map[string]foundAt // GetLoadBalancer's answer, for the delete that follows
}

var _ cloudprovider.LoadBalancer = (*LoadBalancer)(nil)

// New builds the adapter.
func New(d Deps) *LoadBalancer {
	servers := d.Servers
	if v := reflect.ValueOf(servers); servers != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		servers = nil // a typed nil (e.g. no cache built) means "list through the client"
	}
	l := &LoadBalancer{
		client:    d.Client,
		servers:   servers,
		cfg:       d.Config,
		clusterID: d.ClusterID,
		recorder:  d.Recorder,
		exec:      &apply.Executor{Client: d.Client, ClusterID: d.ClusterID, StatusPolled: d.Config.HealthPollIntervalSec > 0},
		alloc:     ipam.NewAllocator(),
		switches:  switchCache{items: map[types.ID]cachedSwitch{}, selectors: map[string]cachedBlock{}, others: map[types.ID]cachedUsage{}},
		notices:   map[string]noticeEntry{},

		deleteWaits:   DeleteConfirmWaits,
		kube:          d.Kube,
		deleting:      map[string]bool{},
		pendingConfig: map[types.ID]bool{},
		reapplied:     map[types.ID]string{},
		bootSent:      map[types.ID]time.Time{},
		boots:         newBootWatch(),
		found:         map[string]foundAt{},
	}
	l.reserved, l.cfgErr = ipam.ParseRanges(d.Config.ReservedIPRanges)
	if l.cfgErr == nil && d.Config.Plan != "" {
		if _, err := annotations.NormalizePlan(d.Config.Plan); err != nil {
			l.cfgErr = fmt.Errorf("cloud-config loadBalancer.plan: %w", err)
		}
	}
	if l.cfgErr != nil {
		l.cfgErr = fmt.Errorf("invalid loadBalancer cloud-config: %w", l.cfgErr)
	}
	return l
}

// Allocator exposes the in-process allocator (tests check reservations).
func (l *LoadBalancer) Allocator() *ipam.Allocator { return l.alloc }

func (l *LoadBalancer) defaults() annotations.Defaults {
	return annotations.Defaults{
		Type: l.cfg.Type, Plan: l.cfg.Plan, HA: l.cfg.HA,
		RouterSelector: l.cfg.RouterSelector, SwitchSelector: l.cfg.SwitchSelector,
		IPRange: l.cfg.IPRange, AssignIPRange: l.cfg.AssignIPRange, AssignDefaultGateway: l.cfg.AssignDefaultGateway,
	}
}

// GetLoadBalancerName is deterministic per cluster and Service UID.
func (l *LoadBalancer) GetLoadBalancerName(_ context.Context, clusterName string, svc *v1.Service) string {
	return desired.Name(l.cluster(clusterName), svc)
}

func (l *LoadBalancer) cluster(clusterName string) string {
	if l.clusterID != "" {
		return l.clusterID
	}
	return clusterName
}

func (l *LoadBalancer) executor(clusterName string) *apply.Executor {
	if l.clusterID != "" || clusterName == "" {
		return l.exec
	}
	return &apply.Executor{Client: l.client, ClusterID: clusterName, StatusPolled: l.exec.StatusPolled}
}

// GetLoadBalancer finds the Service's appliance by its ownership tags.
//
// An appliance that listings do not show yet still exists for the service
// controller: one named by the Service's load-balancer-id annotation that a
// read finds, or one this process created (or may have created) moments
// ago. Saying "does not exist" then would let the service controller drop
// the Service's finalizer and the new appliance would leak.
func (l *LoadBalancer) GetLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	exec := l.executor(clusterName)
	lbs, err := exec.FindOwned(ctx, string(svc.UID))
	if err != nil {
		return nil, false, err
	}
	l.rememberFound(string(svc.UID), lbs)
	if len(lbs) == 0 {
		lb, pending, err := l.unlisted(ctx, exec, svc)
		switch {
		case err != nil:
			return nil, false, err
		case lb != nil:
			return statusOf(lb, memberVIP(lb, svc)), true, nil
		case pending:
			return &v1.LoadBalancerStatus{}, true, nil
		}
		return nil, false, nil
	}
	return statusOf(lbs[0], memberVIP(lbs[0], svc)), true, nil
}

func isUp(lb *iaas.LoadBalancer) bool {
	return lb.InstanceStatus.IsUp() && lb.Availability.IsAvailable()
}

func vipOf(lb *iaas.LoadBalancer) string {
	for _, v := range lb.VirtualIPAddresses {
		if v != nil && v.VirtualIPAddress != "" {
			return v.VirtualIPAddress
		}
	}
	return ""
}

// statusOf is the Service's status on lb, whose VIP for it is vip.
func statusOf(lb *iaas.LoadBalancer, vip string) *v1.LoadBalancerStatus {
	if !isUp(lb) || vip == "" {
		return &v1.LoadBalancerStatus{}
	}
	mode := v1.LoadBalancerIPModeVIP
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: vip, IPMode: &mode}}}
}

// EnsureLoadBalancer creates or updates the Service's appliance. It never
// waits for a boot: it returns a RetryError and reports status once up.
func (l *LoadBalancer) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	return l.reconcile(ctx, clusterName, svc, nodes, syncCreate)
}

// UpdateLoadBalancer brings real servers (and everything else) in line; it
// never creates an appliance.
//
// Every failure is returned, a RetryError (booting, EndpointSlices not
// synced) included: the service controller then keeps the Service in its
// retry set and calls again with the nodes, instead of recording this node
// set as applied. With no appliance at all it returns ErrNoLoadBalancer; the
// service controller then asks GetLoadBalancer, hears "does not exist" and
// stays quiet, and the repair pass creates the appliance again.
func (l *LoadBalancer) UpdateLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) error {
	st, err := l.reconcile(ctx, clusterName, svc, nodes, syncByServiceController)
	if err == nil && st == nil {
		return ErrNoLoadBalancer
	}
	return err
}

// ErrNoLoadBalancer says an update found no appliance to update.
var ErrNoLoadBalancer = errors.New("the Service has no load balancer to update (the repair pass creates it again)")

// syncMode says who asks for a reconcile, which decides whether it may
// create an appliance and whose node list it uses.
type syncMode int

const (
	// syncByServiceController: UpdateLoadBalancer; the nodes passed are the
	// newest node set and are remembered for the other loops.
	syncByServiceController syncMode = iota
	// syncCreate: EnsureLoadBalancer; may create, remembers the nodes.
	syncCreate
	// syncByFollower: the endpoint follower; uses the node set the service
	// controller passed last, read under the Service's lock, and never
	// stores one of its own.
	syncByFollower
	// syncRepair: the repair pass; like the follower, with the appliance
	// as its listing saw it, and it may re-create or boot an appliance
	// after a fresh read of the Service confirms it is still wanted.
	syncRepair
)

// prepared is the validated input of one reconcile.
type prepared struct {
	opts    annotations.Options
	servers []desired.Server
}

func (l *LoadBalancer) prepare(ctx context.Context, svc *v1.Service) (*prepared, error) {
	if svc.Spec.LoadBalancerClass != nil {
		// The service controller already skips these; never act on one anyway.
		return nil, cloudprovider.ImplementedElsewhere
	}
	if l.cfgErr != nil {
		return nil, l.fail(svc, ReasonConfigError, l.cfgErr)
	}
	opts, errs := annotations.Parse(svc, l.defaults())
	if len(errs) > 0 {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		return nil, l.fail(svc, ReasonInvalidAnnotation, fmt.Errorf("%s; the load balancer is left as it is until this is fixed", strings.Join(msgs, "; ")))
	}
	if err := desired.CheckPorts(svc); err != nil {
		reason := ReasonUnsupportedProtocol
		if errors.Is(err, desired.ErrTooManyPorts) {
			reason = ReasonTooManyPorts
		}
		return nil, l.fail(svc, reason, fmt.Errorf("%w; nothing was created or changed", err))
	}
	if svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal && l.follower() == nil {
		// Not an error (the Service still works on nodes with endpoints),
		// but the DSR health check cannot see endpoints, so say so.
		l.warn(svc, ReasonTrafficPolicyLocal, "externalTrafficPolicy: Local is not followed by the SAKURA load balancer: every node is a real server and its health check cannot see which nodes run endpoints, so connections sent to nodes without one fail; use externalTrafficPolicy: Cluster")
	}
	servers, err := l.listServers(ctx)
	if err != nil {
		return nil, l.fail(svc, ReasonAPIError, err)
	}
	return &prepared{opts: opts, servers: servers}, nil
}

func (l *LoadBalancer) listServers(ctx context.Context) ([]desired.Server, error) {
	var raw []*iaas.Server
	var err error
	if l.servers != nil {
		raw, err = l.servers.List(ctx)
	} else {
		raw, err = ipam.FindAll(ctx, func(ctx context.Context, c *iaas.FindCondition) ([]*iaas.Server, int, error) {
			r, err := l.client.Servers.Find(ctx, l.client.Zone, c)
			if err != nil {
				return nil, 0, err
			}
			return r.Servers, r.Total, nil
		}, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("listing servers: %w", err)
	}
	out := make([]desired.Server, 0, len(raw))
	for _, s := range raw {
		if s == nil {
			continue
		}
		ds := desired.Server{ID: s.ID, Name: s.Name, IPs: map[types.ID]string{}, PreviousIDs: servercache.PreviousIDs(s)}
		for _, nic := range s.Interfaces {
			if nic == nil || nic.SwitchID.IsEmpty() {
				continue
			}
			// A NIC without a known address still counts (plain switches).
			if ds.IPs[nic.SwitchID] == "" {
				ds.IPs[nic.SwitchID] = nic.UserIPAddress
			}
		}
		out = append(out, ds)
	}
	return out, nil
}

func (l *LoadBalancer) reportBackends(svc *v1.Service, b desired.Backends, where string) {
	if len(b.NotOnSwitch) > 0 {
		l.notice(svc, ReasonNodesNotOnSwitch, b.NotOnSwitch, fmt.Sprintf("nodes %s have no NIC on the load balancer's switch %s and are not real servers; connect them to that switch or exclude them with the label %s",
			strings.Join(b.NotOnSwitch, ", "), where, desired.ExcludeLabel))
	}
	if len(b.Unmatched) > 0 {
		l.notice(svc, ReasonNodesWithoutServer, b.Unmatched, fmt.Sprintf("nodes %s match no SAKURA server (by providerID or unique name) and are not real servers", strings.Join(b.Unmatched, ", ")))
	}
	if len(b.OutsideNetwork) > 0 {
		l.notice(svc, ReasonNodesNotOnSwitch+"/network", b.OutsideNetwork, fmt.Sprintf("nodes %s are on the load balancer's switch %s but have no address inside its network (SAKURA's NIC address or the Node's InternalIP); they are not real servers",
			strings.Join(b.OutsideNetwork, ", "), where))
	}
	if len(b.Truncated) > 0 {
		l.notice(svc, ReasonTooManyNodes, b.Truncated, fmt.Sprintf("%d eligible nodes but a SAKURA load balancer takes at most %d real servers per port: using the first %d by node name; left out: %s",
			len(b.Selected)+len(b.Truncated), desired.MaxRealServers, desired.MaxRealServers, strings.Join(b.Truncated, ", ")))
	}
}

// reconcile brings svc's appliance in line. A nil status with a nil error
// means there is no appliance and mode may not create one.
func (l *LoadBalancer) reconcile(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node, mode syncMode) (*v1.LoadBalancerStatus, error) {
	return l.reconcileObserved(ctx, clusterName, svc, nodes, mode, nil)
}

// reconcileObserved is reconcile with the Service's appliances as a listing
// just saw them (nil: find them now). Writes stay guarded by the settings
// hash of that copy, and boots and creates re-check on fresh reads.
func (l *LoadBalancer) reconcileObserved(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node, mode syncMode, observed []*iaas.LoadBalancer) (*v1.LoadBalancerStatus, error) {
	defer l.locks.lock("svc/" + string(svc.UID))()
	uid := string(svc.UID)
	if mode == syncCreate {
		l.setDeleting(uid, false) // the service controller wants it (again)
	} else if l.isDeleting(uid) {
		return nil, nil // being deleted: nothing may bring it back
	}
	mayCreate := mode == syncCreate || mode == syncRepair
	if f := l.follower(); f != nil {
		if mode == syncByFollower || mode == syncRepair {
			// Read under the Service's lock: a newer set stored by the
			// service controller meanwhile is the one used.
			if nodes, clusterName = f.nodesFor(serviceKey(svc.Namespace, svc.Name)); nodes == nil {
				return nil, nil // the service controller has not synced it yet; it will
			}
		} else {
			f.remember(clusterName, serviceKey(svc.Namespace, svc.Name), nodes)
		}
	}
	p, err := l.prepare(ctx, svc)
	if err != nil {
		return nil, err
	}
	if key := p.opts.SharingKey; key != "" {
		// Members of one key write to one appliance: one at a time.
		defer l.locks.lock(sharedOwner(key))()
	}
	exec := l.executor(clusterName)
	cluster := l.cluster(clusterName)
	owned := observed
	if len(owned) == 0 {
		// Nothing observed (or the repair pass's listing shows none, which
		// may be older than a create by the service controller): look now,
		// before anything may be created; while a boot is awaited, in the
		// boot looks' shared listing.
		var listed bool
		if owned, listed = l.bootingAppliances(ctx, exec, uid); !listed {
			if owned, err = exec.FindOwned(ctx, uid); err != nil {
				return nil, l.fail(svc, ReasonAPIError, err)
			}
		}
	}
	visible := len(owned) > 0
	if !visible {
		lb, err := l.justCreated(ctx, string(svc.UID), desired.ClusterTag(exec.ClusterID), desired.ServiceTag(string(svc.UID)))
		if err != nil {
			return nil, err
		}
		if lb == nil && mayCreate {
			if lb, err = l.recorded(ctx, exec, svc); err != nil {
				return nil, err
			}
		}
		if lb == nil {
			if !mayCreate {
				return nil, nil
			}
			if mode == syncRepair {
				if p.opts.NoRepair {
					return nil, nil
				}
				if ok, err := l.stillWanted(ctx, svc); !ok {
					return nil, err
				}
				l.once(svc, false, ReasonRepaired+"/gone", nil, "the Service's load balancer is gone (deleted outside the controller?); creating it again"+onAddress(svc))
			}
			if p.opts.SharingKey != "" {
				return l.join(ctx, exec, cluster, svc, nodes, p)
			}
			return l.create(ctx, exec, cluster, svc, nodes, p)
		}
		owned = []*iaas.LoadBalancer{lb}
	}
	if visible {
		// The API lists the appliance: its reservation is no longer needed.
		l.releaseListed(string(svc.UID))
	}
	lb := owned[0]
	if len(owned) > 1 {
		var ids []string
		for _, o := range owned[1:] {
			ids = append(ids, o.ID.String())
		}
		l.warn(svc, ReasonDuplicate, fmt.Sprintf("more than one load balancer carries this Service's ownership tags; managing %s, leaving %s alone (delete them by hand if unused)", lb.ID, strings.Join(ids, ", ")))
	}
	bootSent := l.bootSentAt(lb.ID)
	state := decide.StateOf(lb, bootSent, time.Now())
	switch state {
	case decide.Up:
		l.forgetBoot(lb.ID) // it came up: a later "down" is a stop again
		l.bootOver(uid, lb, true)
	case decide.Booting:
		l.waitForBoot(uid, lb.ID, false)
	default:
		l.bootOver(uid, lb, false)
	}
	switch state {
	case decide.Failed:
		return nil, l.fail(svc, ReasonAPIError, fmt.Errorf("load balancer %s (%s) failed to be created by SAKURA Cloud; delete it (or delete and re-create the Service) to get a new one", lb.Name, lb.ID))
	case decide.Stopped:
		return nil, l.bootStopped(ctx, exec, svc, p, lb)
	case decide.Booting:
		since := lb.CreatedAt
		if !bootSent.IsZero() {
			since = bootSent
		}
		return nil, api.NewRetryError(fmt.Sprintf("load balancer %s is not up yet (%s/%s)", lb.ID, lb.Availability, lb.InstanceStatus), l.nextBootLook(time.Since(since)))
	}
	if p.opts.NoRepair && mode == syncRepair {
		return statusOf(lb, memberVIP(lb, svc)), nil // hands off, as asked
	}
	if suspected := l.takePending(lb.ID); suspected || exec.Unapplied(lb.ID) || desired.ConfigPending(lb.Description) {
		// Settings saved by an earlier pass whose Config failed: apply
		// them before anything else (a plan over the saved settings would
		// find nothing to change).
		if err := exec.Config(ctx, lb); err != nil {
			if suspected {
				l.setPending(lb.ID)
			}
			return nil, l.fail(svc, ReasonAPIError, err)
		}
		l.event(svc, false, ReasonRepaired, "load balancer %s runs other settings than it saved (an earlier Config failed); applied the saved settings", lb.ID)
	}

	shared := desired.SharingKeyOf(lb.Tags) != ""
	var mine, others iaas.LoadBalancerVirtualIPAddresses
	if shared {
		mine, others = plan.SplitEntries(lb.VirtualIPAddresses, desired.RefOf(svc))
		if len(mine) == 0 && p.opts.SharingKey == desired.SharingKeyOf(lb.Tags) {
			// A member without entries (removed by hand or by a sweep,
			// or a join interrupted between write and read): join again,
			// on every path, as it only writes this member's own entries.
			return l.joinAppliance(ctx, exec, cluster, svc, nodes, p, lb)
		}
	}

	// The appliance lives on its switch and network with its plan and
	// redundancy; a different wanted value is drift.
	drift, err := l.fixedDrift(ctx, svc, nodes, p, lb)
	if err != nil {
		return nil, err
	}
	backends, err := l.backendsOn(ctx, svc, nodes, p, lb)
	if err != nil {
		return nil, err
	}

	vip := memberVIP(lb, svc)
	// A refused pin keeps the current VIP and does not hold up the
	// Service's other changes; it is returned once they are written.
	var pinErr error
	if p.opts.IP != "" && p.opts.IP != vip {
		switch err := l.checkNewVIP(ctx, string(svc.UID), lb, p.opts, nodes); {
		case errors.Is(err, ipam.ErrPinnedUnavailable):
			pinErr = l.fail(svc, ReasonLoadBalancerIPInvalid, fmt.Errorf("%w; the load balancer keeps %s", err, cmp.Or(vip, "the address the Service shows")))
		case err != nil:
			return nil, l.fail(svc, ReasonAPIError, err)
		default:
			vip = p.opts.IP
		}
	}
	if vip == "" {
		// Every entry was removed outside the controller: write them back
		// on the address the Service shows (clients use it) when it is
		// still free, else on a new one. A shared member re-joins above.
		opts := p.opts
		if pinErr != nil {
			opts.IP = "" // refused above: the shown or a free address
		}
		if vip, err = l.restoreVIP(ctx, svc, opts, nodes, lb); err != nil {
			return nil, err
		}
		l.event(svc, false, ReasonRepaired, "load balancer %s had no entries for this Service (removed outside the controller?); writing them back on %s", lb.ID, vip)
	}
	want, err := desired.Build(desired.Input{ClusterID: cluster, Service: svc, Options: p.opts, SwitchID: lb.SwitchID, VIP: vip, Backends: backends.Selected})
	if err != nil {
		return nil, l.fail(svc, ReasonInvalidAnnotation, err)
	}
	have := lb
	if shared {
		// Compare and rewrite only this Service's entries; the other
		// members' entries go back verbatim.
		view := *lb
		view.VirtualIPAddresses = mine
		have = &view
	}
	for _, a := range plan.Compute(want, have) {
		if a.Kind != plan.UpdateSettings {
			continue // fixed settings were compared above
		}
		if shared && len(drift) > 0 {
			// A member in conflict leaves the shared appliance exactly as
			// it is, its own entries included, until the conflict is gone.
			break
		}
		vips := append(slices.Clone(others), a.VIPs...)
		if err := exec.UpdateSettings(ctx, lb, vips); err != nil {
			l.forgetInventoryIfRefused(lb.SwitchID, err)
			return nil, l.fail(svc, ReasonAPIError, err) // a failed Config is remembered by exec
		}
		if mode == syncRepair {
			l.event(svc, false, ReasonRepaired, "load balancer %s differed from the Service (changed outside the controller?); rewrote it: %s", lb.ID, summarize(a.Changes))
		} else {
			l.event(svc, false, ReasonUpdated, "updated load balancer %s: %s", lb.ID, summarize(a.Changes))
		}
		lb.VirtualIPAddresses = vips
	}
	if len(drift) > 0 {
		if shared {
			l.warn(svc, ReasonSharingConflict, fmt.Sprintf("load balancer %s is shared by key %s and differs from this Service: %s; it is left as it is. Make this Service's settings agree with the other Services of the key, or give it another %s and re-create it", lb.ID, desired.SharingKeyOf(lb.Tags), driftText(drift), annotations.SharingKey))
		} else {
			l.warn(svc, ReasonChangeNeedsNewAppliance, fmt.Sprintf("load balancer %s: %s; SAKURA cannot change this in place, so the running load balancer is kept as it is. To apply it, delete and re-create the Service (its address will change) or revert the setting", lb.ID, driftText(drift)))
		}
	}
	if pinErr != nil {
		return nil, pinErr
	}
	return statusOf(lb, vip), nil
}

func summarize(changes []string) string {
	const max = 8
	if len(changes) <= max {
		return strings.Join(changes, "; ")
	}
	return strings.Join(changes[:max], "; ") + fmt.Sprintf("; and %d more", len(changes)-max)
}
