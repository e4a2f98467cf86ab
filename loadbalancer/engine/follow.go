package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	servicehelpers "k8s.io/cloud-provider/service/helpers"

	"k8s.io/utils/clock"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/trim"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/endpoints"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"
)

// Following endpoints for externalTrafficPolicy: Local.
//
// The service controller re-syncs a load balancer when nodes change, not
// when pods move. With Local, a node without a ready endpoint drops the
// traffic it gets, and the DSR appliance's health check (ping) cannot see
// that. So the adapter watches EndpointSlices itself and keeps each Local
// Service's real servers to the nodes that run a ready endpoint:
//   - a node gains traffic as soon as it has a ready endpoint, and keeps it
//     for a hold-down after its last one went away (no churn on blips);
//   - a Service is re-synced only when its set of nodes changes, and at most
//     once per minimum interval (bounded writes under pod churn);
//   - the re-sync is the ordinary UpdateLoadBalancer with the nodes the
//     service controller last passed, so plan and apply stay the only path.

// FollowOptions tune endpoint following.
type FollowOptions struct {
	// HoldDown keeps a node a real server this long after its last ready
	// endpoint went away.
	HoldDown time.Duration
	// MinInterval is the least time between two endpoint-driven re-syncs
	// of one Service.
	MinInterval time.Duration
	// Debounce gathers a burst of EndpointSlice changes into one look.
	Debounce time.Duration
	// HealthInterval is the pause between two health polls (0: never poll).
	HealthInterval time.Duration
	// RepairInterval is the pause between two repair passes (0: never).
	RepairInterval time.Duration
	// HealthRate caps the poll's Status reads per second (0: no cap), so
	// that at hundreds of appliances the poll takes a bounded share of the
	// request budget instead of crowding out creates and updates.
	HealthRate float64
}

// follower is the running endpoint follower.
type follower struct {
	opts           FollowOptions
	clock          clock.Clock
	services       corelisters.ServiceLister
	servicesSynced cache.InformerSynced
	damper         *endpoints.Damper
	queue          workqueue.TypedRateLimitingInterface[string]

	// The EndpointSlice cache starts with the first Local Service seen
	// (watchSlices): until then the process keeps no slice at all.
	kube         kubernetes.Interface
	stop         <-chan struct{}
	slicesMu     sync.Mutex
	slices       discoverylisters.EndpointSliceLister // nil until started
	slicesSynced cache.InformerSynced

	mu      sync.Mutex
	applied map[string]string    // Service key -> active nodes last used
	lastRun map[string]time.Time // Service key -> last endpoint-driven re-sync
	nodes   []*v1.Node           // as the service controller last passed them, for any Service
	cluster string
	// nodesOf is, per Service key, the node list of the service
	// controller's latest call for that Service. One list for every
	// Service was last-writer-wins: a slow EnsureLoadBalancer holding an
	// older node list stored it after a node sync had stored the newer
	// one, and the repair pass then rewrote other Services' entries with
	// the old nodes (issue #18, defect 10, torture seed 70840).
	nodesOf map[string][]*v1.Node
}

func serviceKey(namespace, name string) string { return namespace + "/" + name }

// SharedInformers is a Kubernetes client that comes with the process's
// shared informer factory: the cloud-provider app's, whose Service and
// Node informers its controllers use. Handed one, FollowEndpoints takes its
// Service informer from that factory instead of keeping a second cache of
// every Service; the factory's owner sets its transforms and starts it
// (the app does so after Initialize, once its controllers are set up).
type SharedInformers struct {
	kubernetes.Interface
	Factory informers.SharedInformerFactory
}

// sliceSyncWait bounds how long a look at a Local Service's endpoints
// waits for the EndpointSlice cache to fill after it started (one list);
// past it the look answers "not synced" (a RetryError to the service
// controller), as it did when the cache started with the process.
const sliceSyncWait = 3 * time.Second

// FollowEndpoints starts watching Services, and EndpointSlices once a
// Service has externalTrafficPolicy: Local, re-syncs Local Services when
// their ready nodes change, and polls real-server health, until ctx ends.
// Call it once, in the leader. kube may be a SharedInformers.
func (l *Engine) FollowEndpoints(ctx context.Context, kube kubernetes.Interface, o FollowOptions) {
	var svcInf coreinformers.ServiceInformer
	var factory informers.SharedInformerFactory
	if s, ok := kube.(SharedInformers); ok && s.Factory != nil {
		svcInf = s.Factory.Core().V1().Services()
		// The client itself for the slice informer: the wrapper would hide
		// what client-go looks for on it (e.g. whether it can stream lists).
		kube = s.Interface
	} else {
		factory = informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTransform(trim.Service))
		svcInf = factory.Core().V1().Services()
	}
	f := &follower{
		opts:           o,
		clock:          l.clock,
		services:       svcInf.Lister(),
		servicesSynced: svcInf.Informer().HasSynced,
		damper:         &endpoints.Damper{HoldDown: o.HoldDown},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](FollowRetryMin, FollowRetryMax),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "sakura-endpoints"}),
		kube:    kube,
		stop:    ctx.Done(),
		applied: map[string]string{},
		lastRun: map[string]time.Time{},
	}
	_, _ = svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		// A Local Service already there: its endpoints will be needed
		// (the service controller syncs every Service after a start).
		AddFunc: func(obj any) {
			if s, ok := obj.(*v1.Service); ok && l.isLocal(s) {
				f.watchSlices()
			}
		},
		// A Service turning Local (or back) needs a look at its endpoints.
		UpdateFunc: func(_, obj any) {
			if s, ok := obj.(*v1.Service); ok && l.isLocal(s) {
				f.watchSlices()
				f.queue.AddAfter(serviceKey(s.Namespace, s.Name), o.Debounce)
			}
		},
	})
	l.followMu.Lock()
	l.follow = f
	l.followMu.Unlock()
	if factory != nil {
		factory.Start(ctx.Done())
	}
	go func() {
		<-ctx.Done()
		f.queue.ShutDown()
	}()
	go f.run(ctx, l)
}

// watchSlices returns the EndpointSlice cache, starting it on first use.
// It is never stopped: a cluster that had a Local Service is likely to
// have one again, and a restart would list every slice anew.
func (f *follower) watchSlices() (discoverylisters.EndpointSliceLister, cache.InformerSynced) {
	f.slicesMu.Lock()
	defer f.slicesMu.Unlock()
	if f.slices != nil {
		return f.slices, f.slicesSynced
	}
	inf := discoveryinformers.NewEndpointSliceInformer(f.kube, metav1.NamespaceAll, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = inf.SetTransform(trim.EndpointSlice) // cannot fail: not started
	onSlice := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return
		}
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			f.queue.AddAfter(serviceKey(s.Namespace, name), f.opts.Debounce)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onSlice,
		UpdateFunc: func(_, obj any) { onSlice(obj) },
		DeleteFunc: onSlice,
	})
	go inf.Run(f.stop)
	f.slices, f.slicesSynced = discoverylisters.NewEndpointSliceLister(inf.GetIndexer()), inf.HasSynced
	klog.InfoS("Watching EndpointSlices: a Service has externalTrafficPolicy: Local")
	return f.slices, f.slicesSynced
}

// isLocal: svc is served here, has externalTrafficPolicy: Local and gets
// a DSR appliance, whose real servers follow the ready endpoints.
func (l *Engine) isLocal(svc *v1.Service) bool {
	// An Enhanced Load Balancer needs no endpoint following: its health
	// check on each node's NodePort fails where kube-proxy has no local
	// endpoint for a Local Service, which takes that node out by itself.
	return l.scope.Serves(svc) && servicehelpers.RequestsOnlyLocalTraffic(svc) && !l.isEnhanced(svc)
}

func (l *Engine) follower() *follower {
	l.followMu.Lock()
	defer l.followMu.Unlock()
	return l.follow
}

func (f *follower) run(ctx context.Context, l *Engine) {
	if !cache.WaitForCacheSync(ctx.Done(), f.servicesSynced) {
		return
	}
	go l.watchAppliances(ctx, f.services, f.opts.HealthInterval, f.opts.RepairInterval, f.opts.HealthRate)
	for {
		key, quit := f.queue.Get()
		if quit {
			return
		}
		f.sync(ctx, l, key)
		f.queue.Done(key)
	}
}

// sync re-syncs one Service if its active nodes differ from those last used.
func (f *follower) sync(ctx context.Context, l *Engine, key string) {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	svc, err := f.services.Services(ns).Get(name)
	if err != nil || !l.isLocal(svc) {
		if apierrors.IsNotFound(err) || err == nil {
			f.forget(key)
		}
		if apierrors.IsNotFound(err) {
			f.forgetNodes(key)
		}
		return
	}
	active, err := f.active(svc)
	if err != nil {
		if errors.Is(err, errNotSynced) {
			f.queue.AddAfter(key, time.Second)
		}
		return
	}
	f.mu.Lock()
	same := f.applied[key] == endpoints.Names(active)
	wait := f.opts.MinInterval - f.clock.Since(f.lastRun[key])
	nodes := f.nodesOf[key]
	if !same && wait <= 0 && nodes != nil {
		f.lastRun[key] = f.clock.Now()
	}
	f.mu.Unlock()
	switch {
	case same:
		return // pods moved between nodes that all stay: nothing to write
	case nodes == nil:
		return // the service controller has not synced yet; it will
	case wait > 0:
		f.queue.AddAfter(key, wait)
		return
	}
	metrics.CountEndpointResync()
	_, err = l.Reconcile(ctx, Request{Trigger: decide.ByFollower, Service: svc})
	if err == nil {
		f.queue.Forget(key)
		return
	}
	f.mu.Lock()
	delete(f.applied, key)
	f.mu.Unlock()
	var re *api.RetryError
	switch {
	case errors.As(err, &re):
		// Booting: come back when the appliance says; not a failure.
		f.queue.AddAfter(key, re.RetryAfter())
	case f.queue.NumRequeues(key) >= FollowMaxRetries:
		// The repair pass and the service controller keep converging it.
		klog.ErrorS(err, "Following endpoints failed repeatedly; leaving the Service to the repair pass", "service", key, "tries", FollowMaxRetries+1)
		f.queue.Forget(key)
	default:
		klog.ErrorS(err, "Following endpoints failed; will retry with backoff", "service", key)
		f.queue.AddRateLimited(key)
	}
}

// Retries of a failed endpoint-driven re-sync: exponential between
// FollowRetryMin and FollowRetryMax, at most FollowMaxRetries times in a
// row (about 8 minutes in all); the periodic repair pass covers the rest.
const (
	FollowRetryMin   = 2 * time.Second
	FollowRetryMax   = 2 * time.Minute
	FollowMaxRetries = 8
)

// active is the damped set of nodes with a ready endpoint of svc. It
// schedules a look for when a held node's hold-down ends. The first call
// starts the EndpointSlice cache and waits (at most sliceSyncWait) for it.
func (f *follower) active(svc *v1.Service) (map[string]bool, error) {
	if !f.servicesSynced() {
		return nil, errNotSynced
	}
	lister, synced := f.watchSlices()
	for deadline := f.clock.Now().Add(sliceSyncWait); !synced(); f.clock.Sleep(20 * time.Millisecond) {
		if f.clock.Now().After(deadline) {
			return nil, errNotSynced
		}
		select {
		case <-f.stop:
			return nil, errNotSynced
		default:
		}
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	slices, err := lister.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return nil, err
	}
	key := serviceKey(svc.Namespace, svc.Name)
	active, recheck := f.damper.Active(key, endpoints.ReadyNodes(slices), f.clock.Now())
	if recheck > 0 {
		f.queue.AddAfter(key, recheck)
	}
	return active, nil
}

var errNotSynced = errors.New("EndpointSlices are not synced yet")

// used records the active nodes a reconcile applied for a Service.
func (f *follower) used(svc *v1.Service, active map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied[serviceKey(svc.Namespace, svc.Name)] = endpoints.Names(active)
}

// latestNodes is the node list of the service controller's latest call
// for any Service (nil: it has not called yet).
func (f *follower) latestNodes() ([]*v1.Node, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes, f.cluster
}

// nodesFor is the node list of the service controller's latest call for
// the Service key (nil: none in this process yet).
func (f *follower) nodesFor(key string) ([]*v1.Node, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodesOf[key], f.cluster
}

// remember keeps the node list of the service controller's latest call
// for the Service key.
func (f *follower) remember(cluster, key string, nodes []*v1.Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes, f.cluster = nodes, cluster
	if f.nodesOf == nil {
		f.nodesOf = map[string][]*v1.Node{}
	}
	f.nodesOf[key] = nodes
}

func (f *follower) forget(key string) {
	f.mu.Lock()
	delete(f.applied, key)
	delete(f.lastRun, key)
	f.mu.Unlock()
	f.damper.Forget(key)
}

// forgetEndpoints drops the follower's state of a deleted Service.
func (l *Engine) forgetEndpoints(svc *v1.Service) {
	if f := l.follower(); f != nil {
		f.forget(serviceKey(svc.Namespace, svc.Name))
		f.forgetNodes(serviceKey(svc.Namespace, svc.Name))
	}
}

// forgetNodes drops the node list remembered for a deleted Service.
func (f *follower) forgetNodes(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nodesOf, key)
}

// localNodes narrows nodes to those running a ready endpoint of svc when it
// has externalTrafficPolicy: Local and endpoints are followed; otherwise it
// returns nodes unchanged.
func (l *Engine) localNodes(svc *v1.Service, nodes []*v1.Node) ([]*v1.Node, error) {
	f := l.follower()
	if f == nil || !l.isLocal(svc) {
		return nodes, nil
	}
	active, err := f.active(svc)
	if errors.Is(err, errNotSynced) {
		return nil, api.NewRetryError("waiting for the EndpointSlice cache to sync before choosing real servers", BootRetryMin)
	}
	if err != nil {
		return nil, fmt.Errorf("listing EndpointSlices: %w", err)
	}
	f.used(svc, active)
	var out []*v1.Node
	for _, n := range nodes {
		if n != nil && active[n.Name] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		l.notice(svc, ReasonNoReadyEndpoints, nil, "externalTrafficPolicy is Local and no node runs a ready endpoint of this Service, so its load balancer has no real servers; it gets them back as soon as a pod becomes ready")
	}
	return out, nil
}

// backendsOn selects the real servers for svc on the existing appliance lb.
func (l *Engine) backendsOn(ctx context.Context, svc *v1.Service, nodes []*v1.Node, p *prepared, lb *iaas.LoadBalancer) (desired.Backends, error) {
	haveType, _, err := l.haveType(ctx, lb)
	if err != nil {
		return desired.Backends{}, orReason(ReasonAPIError, fmt.Errorf("reading switch %s of load balancer %s: %w", lb.SwitchID, lb.ID, err))
	}
	return l.backends(ctx, svc, nodes, p, lb.SwitchID, haveType == annotations.TypeSwitch, networkOf(lb))
}

// backends selects the real servers for svc on switchID's segment (a plain
// switch with network when plain), narrowed to endpoint nodes for Local
// Services, and reports the nodes left out.
func (l *Engine) backends(ctx context.Context, svc *v1.Service, nodes []*v1.Node, p *prepared, switchID types.ID, plain bool, network netip.Prefix) (desired.Backends, error) {
	candidates, err := l.localNodes(svc, nodes)
	if err != nil {
		return desired.Backends{}, err
	}
	// The switch was read when the block was chosen or the appliance's
	// type judged, which noted its zone.
	sw, err := l.readSwitch(ctx, l.switchZone(switchID), switchID)
	if err != nil {
		return desired.Backends{}, orReason(ReasonAPIError, fmt.Errorf("reading switch %s: %w", switchID, err))
	}
	seg, err := l.segmentOf(ctx, sw, switchTTL)
	if err != nil {
		return desired.Backends{}, orReason(ReasonAPIError, err)
	}
	for _, zone := range seg.Zones {
		if err := p.unlisted[zone]; err != nil {
			// Its nodes would all look gone: keep the real servers as
			// they are until the zone answers.
			return desired.Backends{}, orReason(ReasonAPIError, fmt.Errorf("switch %s is bridged to zone %s, whose servers could not be listed: %w", switchID, zone, err))
		}
	}
	if !plain {
		network = netip.Prefix{}
	}
	b := desired.SelectBackendsIn(candidates, p.servers, seg, network)
	l.reportBackends(svc, b, switchID.String())
	return b, nil
}
