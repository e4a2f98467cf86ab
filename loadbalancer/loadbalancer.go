// Package loadbalancer implements cloudprovider.LoadBalancer for Services of
// type LoadBalancer on SAKURA Cloud DSR load balancer appliances.
//
// The adapter is thin: it gathers inputs, then hands over to pure packages
// (annotations → desired → plan) and to ipam for addresses and apply for API
// writes. Every user-visible problem becomes an Event on the Service.
package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud/servercache"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/plan"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	servicehelpers "k8s.io/cloud-provider/service/helpers"
	"k8s.io/klog/v2"
)

// Retry intervals while an appliance boots or shuts down.
const (
	// BootRetryAfter is the longest wait between looks at a booting or
	// stopping appliance; BootRetryMin the shortest (see bootRetryAfter).
	BootRetryAfter = 10 * time.Second
	BootRetryMin   = 2 * time.Second
	// CreateVisibilityGrace is how long a just-created appliance may stay
	// invisible to reads before the controller stops waiting for it.
	CreateVisibilityGrace = 2 * time.Minute
)

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
	deleting      map[string]bool   // Service UIDs whose deletion began
	pendingConfig map[types.ID]bool // appliances with saved, unapplied settings
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
		exec:      &apply.Executor{Client: d.Client, ClusterID: d.ClusterID},
		alloc:     ipam.NewAllocator(),
		switches:  switchCache{items: map[types.ID]cachedSwitch{}, selectors: map[string]cachedBlock{}},
		notices:   map[string]noticeEntry{},

		deleteWaits:   DeleteConfirmWaits,
		kube:          d.Kube,
		deleting:      map[string]bool{},
		pendingConfig: map[types.ID]bool{},
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

func (l *LoadBalancer) event(svc *v1.Service, warning bool, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	typ := v1.EventTypeNormal
	if warning {
		typ = v1.EventTypeWarning
		klog.Warningf("service %s/%s: %s: %s", svc.Namespace, svc.Name, reason, msg)
	} else {
		klog.Infof("service %s/%s: %s: %s", svc.Namespace, svc.Name, reason, msg)
	}
	if l.recorder != nil {
		l.recorder.Event(svc, typ, reason, msg)
	}
}

// fail records a Warning and returns the error for the service controller.
// The Warning is not repeated while the same error recurs (see warn).
func (l *LoadBalancer) fail(svc *v1.Service, reason string, err error) error {
	metrics.CountReconcileError(reason)
	l.warn(svc, reason, err.Error())
	return err
}

// warn records a Warning unless the very same one (reason and message) was
// recorded for this Service within RepeatNoticeAfter: a standing problem
// seen on every reconcile and retry would otherwise add an Event each time.
func (l *LoadBalancer) warn(svc *v1.Service, reason, msg string) {
	l.notice(svc, reason+"/warn", []string{msg}, msg)
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
	return &apply.Executor{Client: l.client, ClusterID: clusterName}
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

// unlisted looks for svc's appliance where listings may not show it yet:
// by the ID the Service records (annotation) or this process reserved. It
// reports pending when a create is (or may be) in flight and the appliance
// is not readable yet.
func (l *LoadBalancer) unlisted(ctx context.Context, exec *apply.Executor, svc *v1.Service) (*iaas.LoadBalancer, bool, error) {
	uid := string(svc.UID)
	r, reserved := l.alloc.Get(uid)
	young := reserved && time.Since(r.At) < CreateVisibilityGrace
	id := types.StringID(svc.Annotations[annotations.LoadBalancerID])
	if id.IsEmpty() {
		id = r.ApplianceID
	}
	if id.IsEmpty() {
		return nil, young && r.Uncertain, nil
	}
	lb, err := exec.Read(ctx, id)
	switch {
	case err == nil && apply.Owned(lb, desired.ClusterTag(exec.ClusterID), desired.ServiceTag(uid)):
		return lb, false, nil
	case err == nil, sakuraapi.IsNotFound(err), sakuraapi.IsStillCreating(err):
		return nil, young, nil
	}
	return nil, false, err
}

// recordID writes the appliance's ID on the Service, so that it is found
// (and deleted) even while listings do not show it, after a restart or by a
// new leader. A failure is logged, not returned: the tags remain the truth.
func (l *LoadBalancer) recordID(ctx context.Context, svc *v1.Service, id types.ID) {
	if l.kube == nil || svc.Annotations[annotations.LoadBalancerID] == id.String() {
		return
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, annotations.LoadBalancerID, id.String())
	if _, err := l.kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, ktypes.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		klog.ErrorS(err, "Could not record the load balancer's ID on the Service; it is still found by its tags", "service", serviceKey(svc.Namespace, svc.Name), "loadBalancer", id)
	}
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

// RepeatNoticeAfter is how often a standing condition (nodes off the switch,
// too many nodes) is reported again while it does not change. Every sync
// would otherwise add an Event and a log line per Service: at 100 Services
// and frequent node updates that is noise that hides real problems.
const RepeatNoticeAfter = time.Hour

// notice records a Warning unless the same condition (key and the nodes it
// is about) was recorded for this Service within RepeatNoticeAfter. key
// separates conditions that share a reason.
func (l *LoadBalancer) notice(svc *v1.Service, key string, nodes []string, msg string) {
	l.once(svc, true, key, nodes, msg)
}

// once records an Event of key about subject unless the same was recorded
// for this Service within RepeatNoticeAfter.
func (l *LoadBalancer) once(svc *v1.Service, warning bool, key string, nodes []string, msg string) {
	id := string(svc.UID) + "/" + key
	subject := strings.Join(nodes, ",")
	now := time.Now()
	l.noticesMu.Lock()
	last, seen := l.notices[id]
	repeat := seen && last.subject == subject && now.Sub(last.at) < RepeatNoticeAfter
	if !repeat {
		l.notices[id] = noticeEntry{subject: subject, at: now}
	}
	l.noticesMu.Unlock()
	if repeat {
		return
	}
	reason, _, _ := strings.Cut(key, "/")
	l.event(svc, warning, reason, "%s", msg)
}

// forgetNotices drops what was reported for a Service that is gone.
func (l *LoadBalancer) forgetNotices(uid string) {
	l.noticesMu.Lock()
	defer l.noticesMu.Unlock()
	for id := range l.notices {
		if strings.HasPrefix(id, uid+"/") {
			delete(l.notices, id)
		}
	}
}

type noticeEntry struct {
	subject string
	at      time.Time
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
			if nodes, clusterName = f.latestNodes(); nodes == nil {
				return nil, nil // the service controller has not synced yet; it will
			}
		} else {
			f.remember(clusterName, nodes)
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
	if owned == nil {
		if owned, err = exec.FindOwned(ctx, uid); err != nil {
			return nil, l.fail(svc, ReasonAPIError, err)
		}
	}
	visible := len(owned) > 0
	if !visible {
		lb, err := l.justCreated(ctx, string(svc.UID), desired.ClusterTag(exec.ClusterID), desired.ServiceTag(string(svc.UID)))
		if err != nil {
			return nil, err
		}
		if lb == nil {
			if !mayCreate {
				return nil, nil
			}
			if mode == syncRepair {
				if ok, err := l.stillWanted(ctx, svc); !ok || p.opts.NoRepair {
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
		l.alloc.Release(string(svc.UID))
	}
	lb := owned[0]
	if len(owned) > 1 {
		var ids []string
		for _, o := range owned[1:] {
			ids = append(ids, o.ID.String())
		}
		l.warn(svc, ReasonDuplicate, fmt.Sprintf("more than one load balancer carries this Service's ownership tags; managing %s, leaving %s alone (delete them by hand if unused)", lb.ID, strings.Join(ids, ", ")))
	}
	switch decide.StateOf(lb) {
	case decide.Failed:
		return nil, l.fail(svc, ReasonAPIError, fmt.Errorf("load balancer %s (%s) failed to be created by SAKURA Cloud; delete it (or delete and re-create the Service) to get a new one", lb.Name, lb.ID))
	case decide.Stopped:
		return nil, l.bootStopped(ctx, exec, svc, p, lb, mode)
	case decide.Booting:
		return nil, api.NewRetryError(fmt.Sprintf("load balancer %s is not up yet (%s/%s)", lb.ID, lb.Availability, lb.InstanceStatus), bootRetryAfter(time.Since(lb.CreatedAt)))
	}
	if l.takePending(lb.ID) {
		// Settings saved by an earlier pass whose Config failed: apply
		// them before anything else (a plan over the saved settings would
		// find nothing to change).
		if err := exec.Config(ctx, lb); err != nil {
			l.setPending(lb.ID)
			return nil, l.fail(svc, ReasonAPIError, err)
		}
		l.event(svc, false, ReasonRepaired, "load balancer %s runs other settings than it saved (an earlier Config failed); applied the saved settings", lb.ID)
	}
	if p.opts.NoRepair && mode == syncRepair {
		return statusOf(lb, memberVIP(lb, svc)), nil
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
	if p.opts.IP != "" && p.opts.IP != vip {
		if err := l.checkNewVIP(ctx, string(svc.UID), lb, p.opts, nodes); err != nil {
			if errors.Is(err, ipam.ErrPinnedUnavailable) {
				return nil, l.fail(svc, ReasonLoadBalancerIPInvalid, fmt.Errorf("%w; the load balancer keeps %s", err, vip))
			}
			return nil, l.fail(svc, ReasonAPIError, err)
		}
		vip = p.opts.IP
	}
	if vip == "" {
		return nil, l.fail(svc, ReasonAPIError, fmt.Errorf("load balancer %s has no VIP; delete it to let the controller create a new one", lb.ID))
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
			if errors.Is(err, apply.ErrNotApplied) {
				l.setPending(lb.ID)
			}
			return nil, l.fail(svc, ReasonAPIError, err)
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
	return statusOf(lb, vip), nil
}

// bootStopped powers on an appliance found stopped: the controller never
// stops one of a live Service's appliances (deletion holds the Service's
// lock while it waits), so someone did so outside it. The repair pass first
// re-reads the Service: a deletion under way must not be undone.
func (l *LoadBalancer) bootStopped(ctx context.Context, exec *apply.Executor, svc *v1.Service, p *prepared, lb *iaas.LoadBalancer, mode syncMode) error {
	if p.opts.NoRepair {
		return fmt.Errorf("load balancer %s is powered off and the Service opts out of repair (%s: \"false\"); boot it by hand or remove the annotation", lb.ID, annotations.Repair)
	}
	if mode == syncRepair {
		if ok, err := l.stillWanted(ctx, svc); !ok {
			return err
		}
	}
	booted, err := exec.Boot(ctx, lb, desired.MemberUIDs(lb.Tags))
	if err != nil {
		return l.fail(svc, ReasonAPIError, err)
	}
	if booted {
		l.event(svc, false, ReasonRepaired, "load balancer %s (%s) was powered off outside the controller; booting it", lb.Name, lb.ID)
	}
	return api.NewRetryError(fmt.Sprintf("load balancer %s was powered off; booting it", lb.ID), BootRetryMin)
}

// stillWanted re-reads svc from the API server: the repair pass acts on an
// informer's copy, which may not show yet that the Service is being deleted
// or no longer wants a load balancer.
func (l *LoadBalancer) stillWanted(ctx context.Context, svc *v1.Service) (bool, error) {
	if l.kube == nil {
		return false, nil
	}
	cur, err := l.kube.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("re-reading the Service before repairing its load balancer: %w", err)
	}
	return cur.UID == svc.UID && wantsRepair(cur), nil
}

// wantsRepair: svc is a LoadBalancer Service of this provider that the
// service controller has taken on (its finalizer) and that is not being
// deleted.
func wantsRepair(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil &&
		svc.DeletionTimestamp == nil && servicehelpers.HasLBFinalizer(svc)
}

func onAddress(svc *v1.Service) string {
	if ip := statusIP(svc); ip != "" {
		return " on " + ip + " if that address is still free"
	}
	return ""
}

// statusIP is the address svc shows in its status ("" if none).
func statusIP(svc *v1.Service) string {
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			return in.IP
		}
	}
	return ""
}

// The deleting set and the pending Configs are per process: deletion holds
// the Service's finalizer until it is done, and a Config lost with a
// restart is found by the repair pass, which compares each appliance's
// Status (what it runs) with its saved settings.
func (l *LoadBalancer) setDeleting(uid string, on bool) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if on {
		l.deleting[uid] = true
	} else {
		delete(l.deleting, uid)
	}
}

func (l *LoadBalancer) isDeleting(uid string) bool {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.deleting[uid]
}

func (l *LoadBalancer) setPending(id types.ID) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	l.pendingConfig[id] = true
}

// takePending reports and clears a pending Config of appliance id.
func (l *LoadBalancer) takePending(id types.ID) bool {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	p := l.pendingConfig[id]
	delete(l.pendingConfig, id)
	return p
}

func summarize(changes []string) string {
	const max = 8
	if len(changes) <= max {
		return strings.Join(changes, "; ")
	}
	return strings.Join(changes[:max], "; ") + fmt.Sprintf("; and %d more", len(changes)-max)
}

// justCreated covers the moment after a create when the API does not list
// the new appliance yet: rather than create a second one, it reads the one
// this process created, and waits while that is still invisible.
// owner is the allocator key the create was reserved under, tags what the
// appliance must carry to count as the one created.
func (l *LoadBalancer) justCreated(ctx context.Context, owner string, tags ...string) (*iaas.LoadBalancer, error) {
	r, ok := l.alloc.Get(owner)
	if ok && r.Uncertain {
		// A create failed in a way that may hide a new appliance.
		if time.Since(r.At) < CreateVisibilityGrace {
			return nil, api.NewRetryError("a failed create may have made a load balancer that is not listed yet; waiting for it before creating another", BootRetryAfter)
		}
		l.alloc.Release(owner)
		return nil, nil
	}
	if !ok || r.ApplianceID.IsEmpty() {
		return nil, nil
	}
	lb, err := l.client.LoadBalancers.Read(ctx, l.client.Zone, r.ApplianceID)
	switch {
	case err == nil && apply.Owned(lb, tags...):
		return lb, nil
	case err == nil, sakuraapi.IsNotFound(err) && time.Since(r.At) > CreateVisibilityGrace:
		l.alloc.Release(owner) // gone for good (or not ours): allow a new create
		return nil, nil
	case sakuraapi.IsNotFound(err), sakuraapi.IsStillCreating(err):
		return nil, api.NewRetryError(fmt.Sprintf("load balancer %s was just created and is not visible yet", r.ApplianceID), BootRetryAfter)
	default:
		return nil, fmt.Errorf("reading the just created load balancer %s: %w", r.ApplianceID, err)
	}
}

// checkNewVIP validates a pinned address that differs from the current VIP.
func (l *LoadBalancer) checkNewVIP(ctx context.Context, owner string, lb *iaas.LoadBalancer, opts annotations.Options, nodes []*v1.Node) error {
	ip := opts.IP
	defer l.locks.lock(switchLock(lb.SwitchID))()
	block, usage, _, err := l.usageOf(ctx, lb.SwitchID, opts, nodes, owner)
	if err != nil {
		return err
	}
	if err := ipam.CheckVIP(block, usage, l.reserved, ip, fmt.Sprintf("load balancer %s (%s)", lb.Name, lb.ID)); err != nil {
		return err
	}
	// Hold the address for the settings write that follows the lock; the
	// next sync releases it once the appliance shows the new VIP.
	l.alloc.Reserve(owner, ipam.Reservation{SwitchID: lb.SwitchID, IPs: []netip.Addr{netip.MustParseAddr(ip)}})
	return nil
}

// usageOf reads switchID afresh and takes stock of every address in use on
// it: the API's consumers, this process's pending reservations and (plain
// switch) the nodes' own addresses. The caller holds the switch's lock.
// On error, reason is the Event reason that fits it.
//
// The addresses other LoadBalancer Services show in their status count as
// used too: an appliance deleted outside the controller frees its address in
// the cloud, but the Service still shows it (and clients still use it) until
// the repair pass re-creates the appliance on it, so it must never become
// another Service's VIP. self is the UID of the Service allocating.
func (l *LoadBalancer) usageOf(ctx context.Context, switchID types.ID, opts annotations.Options, nodes []*v1.Node, self string) (block ipam.Block, usage *ipam.Usage, reason string, err error) {
	sw, err := l.readSwitch(ctx, switchID, true)
	if err != nil {
		return block, nil, ReasonAPIError, fmt.Errorf("reading switch %s: %w", switchID, err)
	}
	if block, err = blockOf(sw, opts); err != nil {
		return block, nil, ReasonNoAddressBlock, err
	}
	if usage, err = ipam.Inventory(ctx, l.client, sw); err != nil {
		return block, nil, ReasonAPIError, err
	}
	l.alloc.Merge(usage, sw.ID)
	addNodeAddresses(usage, block, nodes)
	if f := l.follower(); f != nil {
		svcs, err := f.services.List(labels.Everything())
		if err != nil {
			return block, nil, ReasonAPIError, fmt.Errorf("listing Services for the addresses they show: %w", err)
		}
		for _, other := range svcs {
			if string(other.UID) != self {
				for _, in := range other.Status.LoadBalancer.Ingress {
					usage.AddIP(in.IP, fmt.Sprintf("Service %s/%s (its status shows it)", other.Namespace, other.Name))
				}
			}
		}
	}
	return block, usage, "", nil
}

// allocFailed reports an ipam.Allocate error as the Event it calls for;
// untouched says what was left as it was.
func (l *LoadBalancer) allocFailed(svc *v1.Service, err error, untouched string) error {
	var ex *ipam.ExhaustedError
	switch {
	case errors.As(err, &ex):
		return l.fail(svc, ReasonAddressBlockExhausted, fmt.Errorf("%w; %s", err, untouched))
	case errors.Is(err, ipam.ErrPinnedUnavailable):
		return l.fail(svc, ReasonLoadBalancerIPInvalid, fmt.Errorf("%w; fix spec.loadBalancerIP or %s", err, annotations.LoadBalancerIP))
	}
	return l.fail(svc, ReasonAPIError, err)
}

// create allocates addresses and creates the appliance under the switch's
// lock, so concurrent Services never receive the same address.
func (l *LoadBalancer) create(ctx context.Context, exec *apply.Executor, cluster string, svc *v1.Service, nodes []*v1.Node, p *prepared) (*v1.LoadBalancerStatus, error) {
	block, err := l.resolve(ctx, svc, p.opts, nodes, p.servers)
	if err != nil {
		var be *blockError
		if errors.As(err, &be) {
			return nil, l.fail(svc, be.reason, err)
		}
		return nil, l.fail(svc, ReasonAPIError, err)
	}
	backends, err := l.backends(svc, nodes, p, block.SwitchID, block.Plain, block.Prefix)
	if err != nil {
		return nil, err
	}

	defer l.locks.lock(switchLock(block.SwitchID))()
	block, usage, reason, err := l.usageOf(ctx, block.SwitchID, p.opts, nodes, string(svc.UID))
	if err != nil {
		return nil, l.fail(svc, reason, err)
	}
	free := len(ipam.Free(block, usage, l.reserved))
	metrics.SetBlockAddresses(block.SwitchID.String(), free, len(block.Usable())-free)
	n := 1
	if p.opts.HA {
		n = 2
	}
	res, err := allocateOn(block, usage, l.reserved, svc, p.opts, n)
	if err != nil {
		return nil, l.allocFailed(svc, err, "nothing was created")
	}
	vrid, err := ipam.PickVRID(usage)
	if err != nil {
		return nil, l.fail(svc, ReasonAddressBlockExhausted, err)
	}
	want, err := desired.Build(desired.Input{ClusterID: cluster, Service: svc, Options: p.opts, SwitchID: block.SwitchID, VIP: res.VIP.String(), Backends: backends.Selected})
	if err != nil {
		return nil, l.fail(svc, ReasonInvalidAnnotation, err)
	}
	ips := append([]netip.Addr{res.VIP}, res.Appliance...)
	lb, err := exec.Create(ctx, want, block, res.Appliance, vrid)
	if err != nil && !sakuraapi.NotDone(err) {
		// A 5xx, a timeout or a lost answer: the appliance may exist and
		// show up in listings only later. Keep its addresses and wait for
		// it (justCreated) rather than create a second one.
		l.alloc.Reserve(string(svc.UID), ipam.Reservation{SwitchID: block.SwitchID, IPs: ips, VRID: vrid, Uncertain: true})
		if key := p.opts.SharingKey; key != "" {
			l.alloc.Reserve(sharedOwner(key), ipam.Reservation{SwitchID: block.SwitchID, Uncertain: true})
		}
		_ = l.fail(svc, ReasonAPIError, err)
		return nil, api.NewRetryError(fmt.Sprintf("creating the load balancer failed (%v); looking for it by its tags before trying again", err), BootRetryAfter)
	}
	if err != nil {
		return nil, l.fail(svc, ReasonAPIError, err)
	}
	l.alloc.Reserve(string(svc.UID), ipam.Reservation{SwitchID: block.SwitchID, IPs: ips, VRID: vrid, ApplianceID: lb.ID})
	l.recordID(ctx, svc, lb.ID)
	if key := p.opts.SharingKey; key != "" {
		// Other members find it by this until the API lists it.
		l.alloc.Reserve(sharedOwner(key), ipam.Reservation{SwitchID: block.SwitchID, ApplianceID: lb.ID})
	}
	l.event(svc, false, ReasonCreated, "created load balancer %s (%s) on %s with VIP %s, %d real servers; it is booting", lb.Name, lb.ID, block, res.VIP, len(backends.Selected))
	return nil, api.NewRetryError(fmt.Sprintf("load balancer %s created, waiting for it to boot", lb.ID), BootRetryMin)
}

// allocateOn takes the Service's addresses from block: its pinned VIP, else
// the address its status already shows when that is still free (an
// appliance re-created after it was deleted outside the controller keeps the
// address clients use), else the lowest free one.
func allocateOn(block ipam.Block, usage *ipam.Usage, reserved []ipam.Range, svc *v1.Service, opts annotations.Options, appliance int) (ipam.Result, error) {
	if opts.IP == "" {
		if shown := statusIP(svc); shown != "" {
			if res, err := ipam.Allocate(block, usage, reserved, ipam.Request{PinnedVIP: shown, Appliance: appliance}); err == nil {
				return res, nil
			}
		}
	}
	return ipam.Allocate(block, usage, reserved, ipam.Request{PinnedVIP: opts.IP, Appliance: appliance})
}

// switchLock is the lock key of allocation on one switch: the inventory,
// the choice of addresses and the create or write that takes them happen
// under it, so two Services never get one address, while Services on other
// switches do not wait.
func switchLock(id types.ID) string { return "switch/" + id.String() }

// bootRetryAfter spaces the looks at a booting appliance by a quarter of its
// age, between BootRetryMin and BootRetryAfter: an appliance that boots
// quickly gets its address within seconds, while one that takes the usual
// minute or more costs only a few more reads than a fixed 10 s poll (about
// 12 instead of 6 in the first minute, then one every 10 s).
func bootRetryAfter(age time.Duration) time.Duration {
	return min(max(age/4, BootRetryMin), BootRetryAfter)
}

// DeleteConfirmWaits are the pauses, after a shutdown, before each look
// at whether the appliance is down so that it can be deleted in the same
// call. A force shutdown usually takes seconds: waiting that long here (10 s
// at most, never minutes) keeps a normal delete free of the service
// controller's Warning for a failed sync. A slower shutdown returns a
// RetryError and is finished by a later call.
var DeleteConfirmWaits = []time.Duration{2 * time.Second, 3 * time.Second, 5 * time.Second}

// EnsureLoadBalancerDeleted shuts the appliance down and deletes it. Only
// appliances with this cluster's and this Service's tags are touched, and a
// shared appliance only loses this Service's entries while others use it.
func (l *LoadBalancer) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *v1.Service) error {
	if svc.Spec.LoadBalancerClass != nil {
		return cloudprovider.ImplementedElsewhere
	}
	defer l.locks.lock("svc/" + string(svc.UID))()
	l.setDeleting(string(svc.UID), true)
	exec := l.executor(clusterName)
	owned, err := exec.FindOwned(ctx, string(svc.UID))
	if err != nil {
		return err
	}
	if len(owned) == 0 {
		lb, pending, err := l.unlisted(ctx, exec, svc)
		if err != nil {
			return err
		}
		if pending {
			return api.NewRetryError("the Service's new load balancer is not visible yet; waiting for it to delete it", BootRetryAfter)
		}
		if lb != nil {
			owned = []*iaas.LoadBalancer{lb}
		}
	}
	l.forgetNotices(string(svc.UID))
	l.forgetEndpoints(svc)
	var waiting []string
	for _, lb := range owned {
		step, err := l.deleteFrom(ctx, exec, svc, lb)
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
	l.alloc.Release(string(svc.UID))
	return nil
}

// deleteFrom takes svc off lb: the whole appliance when svc is its last
// member, else only svc's tag and entries. The decision is made on a copy
// read under the sharing key's lock (members join under it), and the
// deletion re-checks that copy's members on every later read.
func (l *LoadBalancer) deleteFrom(ctx context.Context, exec *apply.Executor, svc *v1.Service, lb *iaas.LoadBalancer) (apply.DeleteStep, error) {
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
	d := decide.LeaveAppliance(fresh, string(svc.UID), desired.RefOf(svc))
	switch d.Kind {
	case decide.LeaveNothing:
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
		l.event(svc, false, ReasonDeleted, "deleted load balancer %s (%s); its addresses are free again", fresh.Name, fresh.ID)
	}
	return step, err
}
