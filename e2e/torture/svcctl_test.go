package torture

// An emulation of the k8s.io/cloud-provider v0.37.2 service controller
// (controllers/service/controller.go) on a compressed clock, and of the
// cloud-node and cloud-node-lifecycle controllers as far as the load
// balancer depends on them. The structure follows the source function by
// function; differences are noted where they are.

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	servicehelper "k8s.io/cloud-provider/service/helpers"
)

const (
	// minRetryDelay and maxRetryDelay of the source (5 s, 300 s), compressed.
	minRetryDelay = 5 * time.Second / timeScale
	maxRetryDelay = 300 * time.Second / timeScale
	// toBeDeletedTaint is the cluster autoscaler's taint (never set here).
	toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"
)

type loadBalancerOperation int

const (
	deleteLoadBalancer loadBalancerOperation = iota
	ensureLoadBalancer
)

type svcController struct {
	m     *ccm
	queue *workqueue.Typed[string]
	nodeQ *workqueue.Typed[string]
	rl    workqueue.TypedRateLimiter[string]
	// pending counts delayed re-adds not yet due; busy items being synced.
	pending atomic.Int64
	busy    atomic.Int64
	stopped atomic.Bool
	wg      sync.WaitGroup
	// lastEnqueue is when an event last queued work (UnixNano).
	lastEnqueue  atomic.Int64
	informerStop chan struct{}

	cacheMu sync.RWMutex
	cache   map[string]*v1.Service // serviceCache: the state last processed

	lastMu     sync.Mutex
	lastSynced map[string][]*v1.Node

	errMu   sync.Mutex
	lastErr map[string]string
}

func newSvcController(m *ccm) *svcController {
	return &svcController{
		m:          m,
		queue:      workqueue.NewTyped[string](),
		nodeQ:      workqueue.NewTyped[string](),
		rl:         workqueue.NewTypedItemExponentialFailureRateLimiter[string](minRetryDelay, maxRetryDelay),
		cache:      map[string]*v1.Service{},
		lastSynced: map[string][]*v1.Node{},
		lastErr:    map[string]string{},
	}
}

// start runs Service and Node informers on the fake API, as the source's
// New does (resync periods 30 s and 100 s, compressed; client-go raises
// them to its 1 s minimum), waits for their sync and starts the workers.
// Every write reaches the handlers through the informers, the product's
// own writes (status, annotations) included.
func (c *svcController) start() {
	c.informerStop = make(chan struct{})
	factory := informers.NewSharedInformerFactory(c.m.w.kube, 0)
	svcInf := factory.Core().V1().Services().Informer()
	nodeInf := factory.Core().V1().Nodes().Informer()
	_, _ = svcInf.AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if s, ok := obj.(*v1.Service); ok {
				c.onServiceAdd(s)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*v1.Service)
			n, ok2 := cur.(*v1.Service)
			if ok1 && ok2 {
				c.onServiceUpdate(o, n)
			}
		},
	}, 30*time.Second/timeScale)
	_, _ = nodeInf.AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if n, ok := obj.(*v1.Node); ok {
				c.onNodeAdd(n)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*v1.Node)
			n, ok2 := cur.(*v1.Node)
			if ok1 && ok2 {
				c.onNodeUpdate(o, n)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*v1.Node); ok {
				c.onNodeDelete(n)
			}
		},
	}, 100*time.Second/timeScale)
	factory.Start(c.informerStop)
	for !svcInf.HasSynced() || !nodeInf.HasSynced() {
		time.Sleep(time.Millisecond) // cache.WaitForCacheSync polls every 100 ms
	}
	for range c.m.w.knobs.workers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for c.processNextServiceItem() {
			}
		}()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for c.processNextNodeItem() {
		}
	}()
}

func (c *svcController) shutdown() {
	c.stopped.Store(true)
	close(c.informerStop)
	c.queue.ShutDown()
	c.nodeQ.ShutDown()
	c.wg.Wait()
}

// quiescent: nothing queued, nothing being synced, no retry scheduled, no
// event for a moment.
func (c *svcController) quiescent() bool {
	return c.queue.Len() == 0 && c.nodeQ.Len() == 0 && c.busy.Load() == 0 && c.pending.Load() == 0 &&
		time.Since(time.Unix(0, c.lastEnqueue.Load())) > 20*time.Millisecond
}

func (c *svcController) enqueue(k string) {
	c.lastEnqueue.Store(time.Now().UnixNano())
	c.queue.Add(k)
}

func (c *svcController) enqueueNode(k string) {
	c.lastEnqueue.Store(time.Now().UnixNano())
	c.nodeQ.Add(k)
}

func (c *svcController) addAfter(key string, d time.Duration) {
	if c.stopped.Load() {
		return
	}
	c.pending.Add(1)
	time.AfterFunc(d, func() {
		if !c.stopped.Load() {
			c.enqueue(key)
		}
		c.pending.Add(-1)
	})
}

// --- informer event handlers (New in the source)

func (c *svcController) onServiceAdd(svc *v1.Service) {
	if wantsLoadBalancer(svc) || needsCleanup(svc) {
		c.enqueue(key(svc))
	}
}

func (c *svcController) onServiceUpdate(old, cur *v1.Service) {
	if needsUpdate(old, cur) || needsCleanup(cur) {
		c.enqueue(key(cur))
	}
}

func (c *svcController) onNodeAdd(n *v1.Node)    { c.enqueueNode(n.Name) }
func (c *svcController) onNodeDelete(n *v1.Node) { c.enqueueNode(n.Name) }
func (c *svcController) onNodeUpdate(old, cur *v1.Node) {
	if shouldSyncUpdatedNode(old, cur) {
		c.enqueueNode(cur.Name)
	}
}

// --- workers

func (c *svcController) processNextServiceItem() bool {
	k, quit := c.queue.Get()
	if quit {
		return false
	}
	c.busy.Add(1)
	defer c.busy.Add(-1)
	defer c.queue.Done(k)

	err := c.syncService(k)
	if err == nil {
		c.rl.Forget(k)
		c.setErr(k, nil)
		return true
	}
	c.setErr(k, err)
	if finalRefusal(err) {
		// The real service controller retries this with a backoff that
		// reaches 5 minutes; compressed 1000× here that is 300 ms, which
		// keeps the cluster busy for ever on a refusal that stays until
		// something changes. A change of the Service or of the nodes
		// enqueues it again, as it does in the real controller.
		c.rl.Forget(k)
		return true
	}
	var re *api.RetryError
	if errors.As(err, &re) {
		c.addAfter(k, max(re.RetryAfter()/timeScale, time.Millisecond))
	} else {
		c.addAfter(k, c.rl.When(k))
	}
	return true
}

func (c *svcController) processNextNodeItem() bool {
	k, quit := c.nodeQ.Get()
	if quit {
		return false
	}
	c.busy.Add(1)
	defer c.busy.Add(-1)
	defer c.nodeQ.Done(k)
	for _, s := range c.syncNodes() {
		c.enqueue(s)
	}
	return true
}

func (c *svcController) setErr(k string, err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if err == nil {
		delete(c.lastErr, k)
		return
	}
	c.lastErr[k] = err.Error()
	c.m.w.tr.ctl(fmt.Sprintf("ccm#%d sync %s: %v", c.m.gen, k, err))
}

func (c *svcController) errors() map[string]string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	out := map[string]string{}
	for k, v := range c.lastErr {
		out[k] = v
	}
	return out
}

// syncService: the lister's Service (here: the API's, always fresh), or
// the deletion path when it is gone.
func (c *svcController) syncService(k string) error {
	ns, name := splitKey(k)
	svc, err := c.m.w.getService(ns, name)
	switch {
	case apierrors.IsNotFound(err):
		return c.processServiceDeletion(k)
	case err != nil:
		return err // logged by HandleError in the source, then retried
	default:
		return c.processServiceCreateOrUpdate(svc.DeepCopy(), k)
	}
}

func (c *svcController) processServiceCreateOrUpdate(svc *v1.Service, k string) error {
	c.cacheMu.Lock()
	cached := c.cache[k]
	c.cacheMu.Unlock()
	if cached != nil && cached.UID != svc.UID {
		if err := c.processLoadBalancerDelete(cached); err != nil {
			return err
		}
	}
	c.cacheMu.Lock()
	c.cache[k] = svc
	c.cacheMu.Unlock()
	op, err := c.syncLoadBalancerIfNeeded(svc)
	if err != nil {
		return err
	}
	if op == deleteLoadBalancer {
		c.cacheMu.Lock()
		delete(c.cache, k)
		c.cacheMu.Unlock()
	}
	return nil
}

func (c *svcController) syncLoadBalancerIfNeeded(svc *v1.Service) (loadBalancerOperation, error) {
	w, lb, ctx := c.m.w, c.m.lb, c.m.ctx
	previous := svc.Status.LoadBalancer.DeepCopy()
	var newStatus *v1.LoadBalancerStatus
	var op loadBalancerOperation
	if !wantsLoadBalancer(svc) || needsCleanup(svc) {
		op = deleteLoadBalancer
		newStatus = &v1.LoadBalancerStatus{}
		_, exists, err := lb.GetLoadBalancer(ctx, kubeClusterName, svc)
		if err != nil {
			return op, fmt.Errorf("failed to check if load balancer exists before cleanup: %v", err)
		}
		if exists {
			if err := lb.EnsureLoadBalancerDeleted(ctx, kubeClusterName, svc); err != nil {
				if err != cloudprovider.ImplementedElsewhere {
					return op, fmt.Errorf("failed to delete load balancer: %v", err)
				}
			}
		}
		if err := w.removeFinalizer(svc); err != nil {
			return op, fmt.Errorf("failed to remove load balancer cleanup finalizer: %v", err)
		}
	} else {
		op = ensureLoadBalancer
		if err := w.addFinalizer(svc); err != nil {
			return op, fmt.Errorf("failed to add load balancer cleanup finalizer: %v", err)
		}
		var err error
		newStatus, err = c.ensureLoadBalancer(svc)
		if err != nil {
			if err == cloudprovider.ImplementedElsewhere {
				return op, nil
			}
			return op, fmt.Errorf("failed to ensure load balancer: %w", err)
		}
		if newStatus == nil {
			return op, fmt.Errorf("service status returned by EnsureLoadBalancer is nil")
		}
	}
	if err := w.patchStatus(svc, previous, newStatus); err != nil && !apierrors.IsNotFound(err) {
		return op, fmt.Errorf("failed to update load balancer status: %v", err)
	}
	return op, nil
}

func (c *svcController) ensureLoadBalancer(svc *v1.Service) (*v1.LoadBalancerStatus, error) {
	nodes := filterNodes(c.m.w.listNodes(), stableNodeSetPredicates...)
	c.storeLastSyncedNodes(svc, nodes)
	return c.m.lb.EnsureLoadBalancer(c.m.ctx, kubeClusterName, svc, nodes)
}

func (c *svcController) storeLastSyncedNodes(svc *v1.Service, nodes []*v1.Node) {
	c.lastMu.Lock()
	defer c.lastMu.Unlock()
	c.lastSynced[key(svc)] = nodes
}

func (c *svcController) getLastSyncedNodes(svc *v1.Service) []*v1.Node {
	c.lastMu.Lock()
	defer c.lastMu.Unlock()
	return c.lastSynced[key(svc)]
}

func (c *svcController) processServiceDeletion(k string) error {
	c.cacheMu.RLock()
	cached := c.cache[k]
	c.cacheMu.RUnlock()
	if cached == nil {
		return nil
	}
	if err := c.processLoadBalancerDelete(cached); err != nil {
		return err
	}
	c.cacheMu.Lock()
	delete(c.cache, k)
	c.cacheMu.Unlock()
	return nil
}

func (c *svcController) processLoadBalancerDelete(svc *v1.Service) error {
	if !wantsLoadBalancer(svc) {
		return nil
	}
	return c.m.lb.EnsureLoadBalancerDeleted(c.m.ctx, kubeClusterName, svc)
}

// syncNodes updates the hosts of every cached Service (workers at once)
// and returns the keys to retry through the service queue.
func (c *svcController) syncNodes() []string {
	c.cacheMu.RLock()
	services := make([]*v1.Service, 0, len(c.cache))
	for _, s := range c.cache {
		services = append(services, s)
	}
	c.cacheMu.RUnlock()
	var mu sync.Mutex
	var retry []string
	var wg sync.WaitGroup
	work := make(chan *v1.Service)
	for range c.m.w.knobs.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if c.nodeSyncService(s) {
					mu.Lock()
					retry = append(retry, key(s))
					mu.Unlock()
				}
			}
		}()
	}
	for _, s := range services {
		work <- s
	}
	close(work)
	wg.Wait()
	return retry
}

func (c *svcController) nodeSyncService(svc *v1.Service) bool {
	if svc == nil || !wantsLoadBalancer(svc) {
		return false
	}
	newNodes := filterNodes(c.m.w.listNodes(), stableNodeSetPredicates...)
	oldNodes := filterNodes(c.getLastSyncedNodes(svc), stableNodeSetPredicates...)
	c.storeLastSyncedNodes(svc, newNodes)
	if nodesSufficientlyEqual(oldNodes, newNodes) {
		return false
	}
	if err := c.lockedUpdateLoadBalancerHosts(svc, newNodes); err != nil {
		c.m.w.tr.ctl(fmt.Sprintf("ccm#%d node sync %s: %v", c.m.gen, key(svc), err))
		return true
	}
	return false
}

func (c *svcController) lockedUpdateLoadBalancerHosts(svc *v1.Service, hosts []*v1.Node) error {
	// The source passes context.TODO(); a dead process makes no calls, so
	// the generation's context is used.
	err := c.m.lb.UpdateLoadBalancer(c.m.ctx, kubeClusterName, svc, hosts)
	if err == nil || err == cloudprovider.ImplementedElsewhere {
		return nil
	}
	if _, exists, gerr := c.m.lb.GetLoadBalancer(c.m.ctx, kubeClusterName, svc); gerr == nil && !exists {
		return nil
	}
	return err
}

// --- the API writes of the controller (servicehelper.PatchService in the source)

func (w *world) addFinalizer(svc *v1.Service) error {
	if servicehelper.HasLBFinalizer(svc) {
		return nil
	}
	return w.updateService(svc.Namespace, svc.Name, "", func(s *v1.Service) {
		if !servicehelper.HasLBFinalizer(s) {
			s.Finalizers = append(s.Finalizers, lbFinalizer)
		}
	})
}

func (w *world) removeFinalizer(svc *v1.Service) error {
	if !servicehelper.HasLBFinalizer(svc) {
		return nil
	}
	return w.updateService(svc.Namespace, svc.Name, "", func(s *v1.Service) {
		var keep []string
		for _, f := range s.Finalizers {
			if f != lbFinalizer {
				keep = append(keep, f)
			}
		}
		s.Finalizers = keep
	})
}

func (w *world) patchStatus(svc *v1.Service, previous, status *v1.LoadBalancerStatus) error {
	if servicehelper.LoadBalancerStatusEqual(previous, status) {
		return nil
	}
	return w.updateServiceStatus(svc.Namespace, svc.Name, status)
}

// --- predicates and comparisons, as in the source

func wantsLoadBalancer(s *v1.Service) bool {
	return s.Spec.Type == v1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil
}

func needsCleanup(s *v1.Service) bool {
	if !servicehelper.HasLBFinalizer(s) {
		return false
	}
	return s.DeletionTimestamp != nil || s.Spec.Type != v1.ServiceTypeLoadBalancer
}

func needsUpdate(old, cur *v1.Service) bool {
	if !wantsLoadBalancer(old) && !wantsLoadBalancer(cur) {
		return false
	}
	if wantsLoadBalancer(old) != wantsLoadBalancer(cur) {
		return true
	}
	if !reflect.DeepEqual(old.Spec.LoadBalancerSourceRanges, cur.Spec.LoadBalancerSourceRanges) {
		return true
	}
	if !portsEqual(old.Spec.Ports, cur.Spec.Ports) || old.Spec.SessionAffinity != cur.Spec.SessionAffinity {
		return true
	}
	if !reflect.DeepEqual(old.Spec.SessionAffinityConfig, cur.Spec.SessionAffinityConfig) {
		return true
	}
	if old.Spec.LoadBalancerIP != cur.Spec.LoadBalancerIP {
		return true
	}
	if !reflect.DeepEqual(old.Spec.ExternalIPs, cur.Spec.ExternalIPs) && (len(old.Spec.ExternalIPs) != 0 || len(cur.Spec.ExternalIPs) != 0) {
		return true
	}
	if !reflect.DeepEqual(old.Annotations, cur.Annotations) {
		return true
	}
	if old.UID != cur.UID || old.Spec.ExternalTrafficPolicy != cur.Spec.ExternalTrafficPolicy ||
		old.Spec.HealthCheckNodePort != cur.Spec.HealthCheckNodePort || len(old.Spec.IPFamilies) != len(cur.Spec.IPFamilies) {
		return true
	}
	return false
}

func portsEqual(x, y []v1.ServicePort) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		a, b := x[i], y[i]
		if a.Name != b.Name || a.Protocol != b.Protocol || a.Port != b.Port || a.NodePort != b.NodePort ||
			a.TargetPort != b.TargetPort || !reflect.DeepEqual(a.AppProtocol, b.AppProtocol) {
			return false
		}
	}
	return true
}

func shouldSyncUpdatedNode(old, cur *v1.Node) bool {
	if nodeIncluded(old) != nodeIncluded(cur) {
		return true
	}
	return old.Spec.ProviderID != cur.Spec.ProviderID
}

func nodesSufficientlyEqual(a, b []*v1.Node) bool {
	if len(a) != len(b) {
		return false
	}
	ma, mb := map[string]string{}, map[string]string{}
	for _, n := range a {
		ma[n.Name] = n.Spec.ProviderID
	}
	for _, n := range b {
		mb[n.Name] = n.Spec.ProviderID
	}
	return reflect.DeepEqual(ma, mb)
}

type nodePredicate func(*v1.Node) bool

var stableNodeSetPredicates = []nodePredicate{
	func(n *v1.Node) bool { return n.DeletionTimestamp.IsZero() },
	nodeIncluded,
	func(n *v1.Node) bool {
		for _, t := range n.Spec.Taints {
			if t.Key == toBeDeletedTaint {
				return false
			}
		}
		return true
	},
}

func nodeIncluded(n *v1.Node) bool {
	v, has := n.Labels[excludeLabel]
	if !has {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err == nil && !b
}

func filterNodes(nodes []*v1.Node, preds ...nodePredicate) []*v1.Node {
	var out []*v1.Node
next:
	for _, n := range nodes {
		for _, p := range preds {
			if !p(n) {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

func splitKey(k string) (string, string) {
	for i := range len(k) {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

// --- cloud-node and cloud-node-lifecycle controllers

// nodeControllers initialises new Nodes (InstanceMetadata, then providerID
// and the uninitialized taint removed), and deletes Nodes that are not
// Ready and whose server is gone (InstanceExists false), as the two
// controllers of the cloud-provider app do, on the compressed clock.
func (m *ccm) nodeControllers() {
	defer m.wg.Done()
	next := map[string]time.Time{}
	backoff := map[string]time.Duration{}
	fail := func(name string) {
		d := max(2*backoff[name], 2*time.Millisecond)
		if d > 100*time.Millisecond {
			d = 100 * time.Millisecond
		}
		backoff[name], next[name] = d, time.Now().Add(d)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		}
		for _, n := range m.w.listNodes() {
			if time.Now().Before(next[n.Name]) {
				continue
			}
			// cloud-node: initialise a new Node.
			if hasTaint(n, uninitTaint) {
				m.nodeBusy.Add(1)
				md, err := m.inst.InstanceMetadata(m.ctx, n)
				if err == nil && md != nil && md.ProviderID != "" {
					err = m.w.updateNode(n.Name, string(n.UID), func(cur *v1.Node) {
						if cur.Spec.ProviderID == "" {
							cur.Spec.ProviderID = md.ProviderID
						}
						var keep []v1.Taint
						for _, t := range cur.Spec.Taints {
							if t.Key != uninitTaint {
								keep = append(keep, t)
							}
						}
						cur.Spec.Taints = keep
					})
				} else if err == nil {
					err = fmt.Errorf("no metadata")
				}
				m.nodeBusy.Add(-1)
				if err != nil {
					fail(n.Name)
				}
			}
			// cloud-node-lifecycle: delete a NotReady Node whose server is gone.
			if !nodeReady(n) {
				m.nodeBusy.Add(1)
				exists, err := m.inst.InstanceExists(m.ctx, n)
				if err == nil && !exists {
					err = m.w.deleteNode(n.Name)
				}
				m.nodeBusy.Add(-1)
				if err != nil || exists {
					fail(n.Name)
				}
			}
		}
	}
}

func hasTaint(n *v1.Node, k string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == k {
			return true
		}
	}
	return false
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}
