// Package engine reconciles a Service's SAKURA Cloud load balancer: a DSR
// appliance, or an Enhanced Load Balancer (elb.go) for a Service of type
// enhanced. One function, Reconcile, fixes the order of every reconcile
// (lock, observe, decide, act, record, report); the choices are made by
// the pure package decide over what was observed, addresses by ipam, and
// every write goes through apply. The cloudprovider adapter (the parent
// package), the endpoint follower, the repair pass and the health poll only
// build requests for it.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	servicehelpers "k8s.io/cloud-provider/service/helpers"

	"k8s.io/utils/clock"

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
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/zoneview"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
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
	// Servers lists the servers of the load balancers' zone (cached). Nil:
	// list through Client every time.
	Servers ServerLister
	// OtherZones lists the servers of the cluster's other zones, by zone:
	// they are real servers of a load balancer whose switch is bridged to
	// a switch of theirs.
	OtherZones map[string]ServerLister
	Config     config.LoadBalancerConfig
	ClusterID  string
	// Recorder receives Events on Services; nil drops them (logs remain).
	Recorder record.EventRecorder
	// Kube records on Services (the create record, the appliance ID) and
	// re-reads them before a boot or a re-create; may be nil in unit tests.
	Kube kubernetes.Interface
	// Clock is the time source; nil: the real clock. The engine never
	// reads time any other way.
	Clock clock.Clock
}

// Engine reconciles Services' appliances; the parent package's adapter and
// the loops call it.
type Engine struct {
	clock     clock.Clock
	client    *sakuraapi.Client
	servers   ServerLister
	others    map[string]ServerLister
	cfg       config.LoadBalancerConfig
	scope     desired.Scope
	clusterID string
	recorder  record.EventRecorder
	exec      *apply.Executor
	reserved  []ipam.Range
	cfgErr    error
	switches  switchCache

	locks    keyedLocks
	followMu sync.Mutex
	follow   *follower // nil until FollowEndpoints

	// deleteWaits is DeleteConfirmWaits (tests shorten it).
	deleteWaits []time.Duration

	kube kubernetes.Interface
	zone *zoneview.Lister
	mem  *memory
}

// ScopeOf is the Services the configuration has this controller serve.
func ScopeOf(cfg config.LoadBalancerConfig) desired.Scope {
	return desired.Scope{Class: cfg.Class, ELBClass: cfg.ELBClass, OwnLoopWithoutClass: cfg.ServiceController == config.ServiceControllerOwn}
}

// Scope is the Services this engine serves.
func (l *Engine) Scope() desired.Scope { return l.scope }

// New builds the adapter.
func New(d Deps) *Engine {
	servers := d.Servers
	if v := reflect.ValueOf(servers); servers != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		servers = nil // a typed nil (e.g. no cache built) means "list through the client"
	}
	clk := d.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	// Appliances are made in zone or in loadBalancer.zones (a Service's
	// zone annotation, a blocks entry of another zone): each of those is
	// listed, and the book remembers where each appliance lives.
	book := sakuraapi.NewZoneBook(d.Client.Zone, d.Config.Zones, slices.Sorted(maps.Keys(d.OtherZones)))
	l := &Engine{
		clock:     clk,
		client:    d.Client,
		servers:   servers,
		others:    d.OtherZones,
		cfg:       d.Config,
		scope:     ScopeOf(d.Config),
		clusterID: d.ClusterID,
		recorder:  d.Recorder,
		exec:      &apply.Executor{Client: d.Client, ClusterID: d.ClusterID, StatusPolled: d.Config.HealthPollIntervalSec > 0, Clock: clk, Zones: book},
		switches: switchCache{items: map[types.ID]cachedSwitch{}, zones: map[types.ID]string{}, selectors: map[string]cachedBlock{}, servers: map[types.ID]cachedServers{},
			bridges: map[types.ID]cachedBridge{}, otherZones: map[string]*zoneview.Lister{}},

		deleteWaits: DeleteConfirmWaits,
		kube:        d.Kube,
		mem:         newMemory(clk),
		zone:        zoneview.NewBookLister(d.Client.Appliances, book, clk),
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

func (l *Engine) defaults() annotations.Defaults {
	return annotations.Defaults{
		Type: l.cfg.Type, Plan: l.cfg.Plan, HA: l.cfg.HA,
		RouterSelector: l.cfg.RouterSelector, SwitchSelector: l.cfg.SwitchSelector,
		IPRange: l.cfg.IPRange, AssignIPRange: l.cfg.AssignIPRange, AssignDefaultGateway: l.cfg.AssignDefaultGateway,
		Zones:   l.exec.Zones.Zones,
		ELBPlan: l.cfg.ELBPlan, ELBRegion: l.cfg.ELBRegion, ELBClass: l.cfg.ELBClass,
	}
}

// ErrNoLoadBalancer says an update found no appliance to update (the
// adapter's UpdateLoadBalancer answers it for a nil status).
var ErrNoLoadBalancer = errors.New("the Service has no load balancer to update (the repair pass creates it again)")

// Name is the appliance name of svc: deterministic per cluster and UID.
func (l *Engine) Name(clusterName string, svc *v1.Service) string {
	return desired.Name(l.cluster(clusterName), svc)
}

func (l *Engine) cluster(clusterName string) string {
	if l.clusterID != "" {
		return l.clusterID
	}
	return clusterName
}

func (l *Engine) executor(clusterName string) *apply.Executor {
	if l.clusterID != "" || clusterName == "" {
		return l.exec
	}
	return &apply.Executor{Client: l.client, ClusterID: clusterName, StatusPolled: l.exec.StatusPolled, Clock: l.clock, Zones: l.exec.Zones}
}

// Status finds the Service's appliance by its ownership tags and gives the
// status it shows (GetLoadBalancer).
//
// An appliance that listings do not show yet still exists for the service
// controller: one named by the Service's load-balancer-id annotation that a
// read finds, or one this process created (or may have created) moments
// ago. Saying "does not exist" then would let the service controller drop
// the Service's finalizer and the new appliance would leak.
func (l *Engine) Status(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	if l.mayOwnELB(svc) {
		st, exists, err := l.statusELB(ctx, clusterName, svc)
		if err != nil || exists || l.isEnhanced(svc) {
			return st, exists, err
		}
		// Recorded an ELB that is gone, and asks for a DSR appliance now.
	}
	loc, err := l.locate(ctx, l.executor(clusterName), svc, locateFor{since: l.clock.Now()})
	if err != nil {
		return nil, false, err
	}
	st, exists := answerStatus(loc.found, func() *v1.LoadBalancerStatus { return statusOf(loc.lbs[0], memberVIP(loc.lbs[0], svc)) })
	return st, exists, nil
}

// answerStatus is GetLoadBalancer's answer for what a locator found: a
// create in flight exists, with no address yet ("does not exist" would let
// the service controller drop the finalizer); none does not exist; a
// found appliance shows its status.
func answerStatus(found decide.Found, show func() *v1.LoadBalancerStatus) (*v1.LoadBalancerStatus, bool) {
	switch found {
	case decide.FoundPending:
		return &v1.LoadBalancerStatus{}, true
	case decide.FoundNone:
		return nil, false
	}
	return show(), true
}

// problemReasons are the Event reasons of desired.CheckService's problems.
var problemReasons = map[desired.ProblemKind]string{
	desired.ProblemProtocol:     ReasonUnsupportedProtocol,
	desired.ProblemTooManyPorts: ReasonTooManyPorts,
	desired.ProblemNoPorts:      ReasonUnsupportedProtocol,
	desired.ProblemIPFamily:     ReasonUnsupportedIPFamily,
}

// prepared is the validated input of one reconcile.
type prepared struct {
	opts    annotations.Options
	servers []desired.Server
	// unlisted holds the other zones whose servers could not be listed,
	// with the error: a load balancer whose segment reaches one of them
	// keeps its real servers until the zone answers.
	unlisted map[string]error
	// served is the Service as the appliance serves it: the Service
	// itself, or a copy with its TCP ports only (annotation
	// load-balancer-mixed-protocol: serve-tcp), whose other ports are
	// skipped.
	served  *v1.Service
	skipped []v1.ServicePort
}

func (l *Engine) prepare(ctx context.Context, svc *v1.Service) (*prepared, error) {
	if !l.scope.Serves(svc) {
		// Another implementation's class: never act on one.
		return nil, cloudprovider.ImplementedElsewhere
	}
	if l.cfgErr != nil {
		return nil, reasoned(ReasonConfigError, l.cfgErr)
	}
	// Every problem at once: the annotations, then the spec.
	opts, errs := annotations.Parse(svc, l.defaults())
	var msgs []string
	reason := ""
	for _, e := range errs {
		msgs = append(msgs, e.Error())
		reason = cmp.Or(reason, ReasonInvalidAnnotation)
	}
	for _, p := range desired.CheckService(svc, opts.ServeTCPOnly) {
		msgs = append(msgs, p.Msg)
		reason = cmp.Or(reason, problemReasons[p.Kind])
	}
	if len(msgs) > 0 {
		return nil, reasoned(reason, fmt.Errorf("%s; nothing was created or changed: the load balancer is left as it is until this is fixed", strings.Join(msgs, "; ")))
	}
	if len(svc.Spec.LoadBalancerSourceRanges) > 0 {
		l.once(svc, false, ReasonSourceRangesOnNodes, svc.Spec.LoadBalancerSourceRanges, fmt.Sprintf("spec.loadBalancerSourceRanges %v is enforced by kube-proxy on the nodes, not by the SAKURA load balancer: with DSR the nodes see the client's address, so connections from other sources reach a node and are dropped there", svc.Spec.LoadBalancerSourceRanges))
	}
	if servicehelpers.RequestsOnlyLocalTraffic(svc) && l.follower() == nil {
		// Not an error (the Service still works on nodes with endpoints),
		// but the DSR health check cannot see endpoints, so say so.
		l.warn(svc, ReasonTrafficPolicyLocal, "externalTrafficPolicy: Local is not followed by the SAKURA load balancer: every node is a real server and its health check cannot see which nodes run endpoints, so connections sent to nodes without one fail; use externalTrafficPolicy: Cluster")
	}
	servers, err := l.listServers(ctx)
	if err != nil {
		return nil, orReason(ReasonAPIError, err)
	}
	pr := &prepared{opts: opts, servers: servers, served: svc}
	for zone, lister := range l.others {
		raw, err := lister.List(ctx)
		if err != nil {
			if pr.unlisted == nil {
				pr.unlisted = map[string]error{}
			}
			pr.unlisted[zone] = err
			continue
		}
		pr.servers = append(pr.servers, serversOf(zone, raw)...)
	}
	if opts.ServeTCPOnly {
		pr.served, pr.skipped = desired.TCPPorts(svc)
	}
	return pr, nil
}

func (l *Engine) listServers(ctx context.Context) ([]desired.Server, error) {
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
	return serversOf(l.client.Zone, raw), nil
}

// serversOf converts the servers listed in zone for backend selection.
func serversOf(zone string, raw []*iaas.Server) []desired.Server {
	out := make([]desired.Server, 0, len(raw))
	for _, s := range raw {
		if s == nil {
			continue
		}
		ds := desired.Server{ID: s.ID, Name: s.Name, Zone: zone, IPs: map[types.ID]string{}, PreviousIDs: servercache.PreviousIDs(s)}
		for _, nic := range s.Interfaces {
			if nic == nil {
				continue
			}
			if ds.Global == "" && nic.IPAddress != "" && (nic.SwitchScope == types.Scopes.Shared || nic.UpstreamType == types.UpstreamNetworkTypes.Shared) {
				ds.Global = nic.IPAddress
			}
			if nic.SwitchID.IsEmpty() {
				continue
			}
			// A NIC without a known address still counts (plain switches).
			if ds.IPs[nic.SwitchID] == "" {
				ds.IPs[nic.SwitchID] = nic.UserIPAddress
			}
			if nic.UpstreamType == types.UpstreamNetworkTypes.Switch {
				if ds.Plain == nil {
					ds.Plain = map[types.ID]bool{}
				}
				ds.Plain[nic.SwitchID] = true
			}
		}
		out = append(out, ds)
	}
	return out
}

func (l *Engine) reportBackends(svc *v1.Service, b desired.Backends, switchID string) {
	if len(b.NotOnSwitch) > 0 {
		l.notice(svc, ReasonNodesNotOnSwitch, b.NotOnSwitch, fmt.Sprintf("nodes %s have no NIC on the load balancer's switch %s (or on a switch a bridge joins to it) and are not real servers; connect them to that switch or exclude them with the label %s",
			strings.Join(b.NotOnSwitch, ", "), switchID, desired.ExcludeLabel))
	}
	if len(b.OtherZone) > 0 {
		l.notice(svc, ReasonNodesInOtherZone, b.OtherZone, fmt.Sprintf("nodes %s are in zones that no bridge joins to the load balancer's switch %s and are not real servers; connect a switch of their zone to that switch's bridge or exclude them with the label %s",
			strings.Join(b.OtherZone, ", "), switchID, desired.ExcludeLabel))
	}
	if len(b.Unmatched) > 0 {
		l.notice(svc, ReasonNodesWithoutServer, b.Unmatched, fmt.Sprintf("nodes %s match no SAKURA server (by providerID or unique name) and are not real servers", strings.Join(b.Unmatched, ", ")))
	}
	if len(b.OutsideNetwork) > 0 {
		l.notice(svc, ReasonNodesNotOnSwitch+"/network", b.OutsideNetwork, fmt.Sprintf("nodes %s are on the load balancer's switch %s but have no address inside its network (SAKURA's NIC address or the Node's InternalIP); they are not real servers",
			strings.Join(b.OutsideNetwork, ", "), switchID))
	}
	if len(b.Truncated) > 0 {
		l.notice(svc, ReasonTooManyNodes, b.Truncated, fmt.Sprintf("%d eligible nodes but a SAKURA load balancer takes at most %d real servers per port: using the first %d by node name; left out: %s",
			len(b.Selected)+len(b.Truncated), desired.MaxRealServers, desired.MaxRealServers, strings.Join(b.Truncated, ", ")))
	}
}

func summarize(changes []string) string {
	const max = 8
	if len(changes) <= max {
		return strings.Join(changes, "; ")
	}
	return strings.Join(changes[:max], "; ") + fmt.Sprintf("; and %d more", len(changes)-max)
}
