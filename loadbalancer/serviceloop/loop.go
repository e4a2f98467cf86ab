// Package serviceloop is this project's own Service loop: it serves the
// LoadBalancer Services of this controller's loadBalancerClass (which the
// upstream service controller skips) and, when configured, those without
// a class too (the upstream service controller then stands down). It does
// what the upstream loop does (finalizer, status, node following) through
// the same cloudprovider.LoadBalancer, but a boot is a wait, not a
// failure: no Warning Event, a requeue after the engine's retry delay, and
// the engine's condition on the Service says "booting".
//
// What it does with a Service is decided by Decide (decide.go); this file
// only reads the caches, calls the load balancer and writes what Decide
// and the load balancer answered.
package serviceloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	servicehelpers "k8s.io/cloud-provider/service/helpers"
	"k8s.io/klog/v2"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

// Name is the loop's name in logs and workqueue metrics.
const Name = "sakura-service"

// Retry bounds of a failed sync (not a boot, which waits the engine's
// delay): the upstream service controller's, so that both loops load the
// API alike. RetryAfterDivisor divides the engine's wait before a boot is
// looked at again (1 in the product). They are variables only so that a
// test on a compressed clock (e2e/torture) can scale the loop's waits the
// way it scales the upstream loop's; set them before New.
var (
	MinRetryDelay     = 5 * time.Second
	MaxRetryDelay     = 5 * time.Minute
	RetryAfterDivisor = 1
)

// Options are the loop's collaborators.
type Options struct {
	LoadBalancer cloudprovider.LoadBalancer
	Scope        desired.Scope
	ClusterName  string
	Kube         kubernetes.Interface
	Services     coreinformers.ServiceInformer
	Nodes        coreinformers.NodeInformer
}

// Loop is the own Service loop.
type Loop struct {
	lb          cloudprovider.LoadBalancer
	scope       desired.Scope
	clusterName string
	kube        kubernetes.Interface
	services    corelisters.ServiceLister
	nodes       corelisters.NodeLister
	synced      []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]
}

// New builds the loop and registers its informer handlers; call it before
// the informers start.
func New(o Options) (*Loop, error) {
	l := &Loop{
		lb:          o.LoadBalancer,
		scope:       o.Scope,
		clusterName: o.ClusterName,
		kube:        o.Kube,
		services:    o.Services.Lister(),
		nodes:       o.Nodes.Lister(),
		synced:      []cache.InformerSynced{o.Services.Informer().HasSynced, o.Nodes.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](MinRetryDelay, MaxRetryDelay),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
	}
	if _, err := o.Services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { l.onService(nil, obj) },
		UpdateFunc: func(old, cur any) {
			if o, ok := old.(*v1.Service); ok {
				l.onService(o, cur)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("watching Services: %w", err)
	}
	if _, err := o.Nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { l.enqueueServed() },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*v1.Node)
			c, ok2 := cur.(*v1.Node)
			if ok1 && ok2 && NodeChangeMatters(o, c) {
				l.enqueueServed()
			}
		},
		DeleteFunc: func(any) { l.enqueueServed() },
	}); err != nil {
		return nil, fmt.Errorf("watching Nodes: %w", err)
	}
	return l, nil
}

// A Service's deletion needs no handler: the finalizer keeps it until the
// loop has seen its deletion timestamp.
func (l *Loop) onService(old *v1.Service, obj any) {
	svc, ok := obj.(*v1.Service)
	if !ok || Decide(svc, l.scope) == Skip || !NeedsSync(old, svc) {
		return
	}
	if key, err := cache.MetaNamespaceKeyFunc(svc); err == nil {
		l.queue.Add(key)
	}
}

// enqueueServed queues every Service the loop serves: the node set they
// share changed.
func (l *Loop) enqueueServed() {
	svcs, err := l.services.List(labels.Everything())
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	for _, svc := range svcs {
		if Decide(svc, l.scope) == Ensure {
			if key, err := cache.MetaNamespaceKeyFunc(svc); err == nil {
				l.queue.Add(key)
			}
		}
	}
}

// Run works the queue with workers goroutines until ctx ends.
func (l *Loop) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer l.queue.ShutDown()
	klog.InfoS("Starting the own Service loop", "class", l.scope.Class, "withoutClass", l.scope.OwnLoopWithoutClass, "workers", workers)
	if !cache.WaitForCacheSync(ctx.Done(), l.synced...) {
		return
	}
	for range max(workers, 1) {
		go wait.UntilWithContext(ctx, l.work, time.Second)
	}
	<-ctx.Done()
}

func (l *Loop) work(ctx context.Context) {
	for l.next(ctx) {
	}
}

func (l *Loop) next(ctx context.Context) bool {
	key, quit := l.queue.Get()
	if quit {
		return false
	}
	defer l.queue.Done(key)
	err := l.sync(ctx, key)
	var retry *api.RetryError
	switch {
	case err == nil:
		l.queue.Forget(key)
	case errors.As(err, &retry):
		// A boot or a shutdown in progress: look again when the engine
		// says, not on the failure back-off, and say nothing louder than
		// the condition and the engine's Normal Events already do.
		klog.V(2).InfoS("Load balancer not settled yet", "service", key, "retryAfter", retry.RetryAfter(), "reason", err.Error())
		l.queue.Forget(key)
		l.queue.AddAfter(key, retry.RetryAfter()/time.Duration(max(RetryAfterDivisor, 1)))
	default:
		// The engine has already recorded the Warning for its own
		// failures; this is for the log and the retry.
		klog.ErrorS(err, "Syncing the Service's load balancer failed; retrying", "service", key, "retries", l.queue.NumRequeues(key))
		l.queue.AddRateLimited(key)
	}
	return true
}

func (l *Loop) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := l.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // gone without a finalizer of ours: nothing left to do here
	}
	if err != nil {
		return err
	}
	switch Decide(svc, l.scope) {
	case Ensure:
		return l.ensure(ctx, svc)
	case Cleanup:
		return l.cleanup(ctx, svc)
	}
	return nil
}

func (l *Loop) ensure(ctx context.Context, svc *v1.Service) error {
	// The finalizer first, so the Service cannot go before its appliance.
	if with := WithFinalizer(svc, desired.FinalizerOf(svc)); with != nil {
		updated, err := l.patch(ctx, svc, with)
		if err != nil {
			return fmt.Errorf("adding the finalizer %s: %w", desired.FinalizerOf(svc), err)
		}
		svc = updated
	}
	all, err := l.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	st, err := l.lb.EnsureLoadBalancer(ctx, l.clusterName, svc, EligibleNodes(all))
	if err != nil {
		return err
	}
	if st == nil || servicehelpers.LoadBalancerStatusEqual(&svc.Status.LoadBalancer, st) {
		return nil
	}
	with := svc.DeepCopy()
	with.Status.LoadBalancer = *st
	if _, err := l.patch(ctx, svc, with); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("writing the load balancer status: %w", err)
	}
	return nil
}

func (l *Loop) cleanup(ctx context.Context, svc *v1.Service) error {
	if err := l.lb.EnsureLoadBalancerDeleted(ctx, l.clusterName, svc); err != nil {
		return err
	}
	if _, err := l.patch(ctx, svc, AfterCleanup(svc, l.scope)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer: %w", err)
	}
	return nil
}

// patch writes cur's finalizers and status over old's, through the status
// subresource as the upstream service controller does, but on the
// condition that the Service of that name is still old (its UID): the
// informer's copy may be of a Service deleted and re-created since, and
// its address or finalizer must not land on the new one.
func (l *Loop) patch(ctx context.Context, old, cur *v1.Service) (*v1.Service, error) {
	base := old.DeepCopy()
	base.UID = "" // so that the patch carries the UID
	with := cur.DeepCopy()
	with.Spec = old.Spec
	from, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	to, err := json.Marshal(with)
	if err != nil {
		return nil, err
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(from, to, v1.Service{})
	if err != nil {
		return nil, err
	}
	return l.kube.CoreV1().Services(old.Namespace).Patch(ctx, old.Name, types.StrategicMergePatchType, p, metav1.PatchOptions{}, "status")
}
