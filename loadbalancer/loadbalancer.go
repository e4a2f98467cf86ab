// Package loadbalancer is the cloudprovider.LoadBalancer adapter for
// Services of type LoadBalancer on SAKURA Cloud DSR load balancer
// appliances and Enhanced Load Balancers. It holds only the cloudprovider methods: each says who asks
// and hands the Service and the nodes to the engine (package engine), which
// observes, decides (package decide) and acts (package apply).
package loadbalancer

import (
	"context"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/engine"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	cloudprovider "k8s.io/cloud-provider"
)

// Deps are the adapter's collaborators (see engine.Deps).
type Deps = engine.Deps

// FollowOptions configure the loops that run beside the service
// controller (see engine.FollowOptions).
type FollowOptions = engine.FollowOptions

// SharedInformers is a Kubernetes client with the process's shared
// informer factory (see engine.SharedInformers).
type SharedInformers = engine.SharedInformers

// LoadBalancer implements cloudprovider.LoadBalancer over the engine.
type LoadBalancer struct {
	engine *engine.Engine
}

var _ cloudprovider.LoadBalancer = (*LoadBalancer)(nil)

// New builds the adapter and its engine.
func New(d Deps) *LoadBalancer { return &LoadBalancer{engine: engine.New(d)} }

// ErrNoLoadBalancer says an update found no appliance to update.
var ErrNoLoadBalancer = engine.ErrNoLoadBalancer

// GetLoadBalancerName is deterministic per cluster and Service UID.
func (l *LoadBalancer) GetLoadBalancerName(_ context.Context, clusterName string, svc *v1.Service) string {
	return l.engine.Name(clusterName, svc)
}

// GetLoadBalancer finds the Service's appliance. One that listings do not
// show yet (just created, or recorded on the Service) exists too: "does
// not exist" would let the service controller drop the finalizer and the
// new appliance would leak.
func (l *LoadBalancer) GetLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	return l.engine.Status(ctx, clusterName, svc)
}

// EnsureLoadBalancer creates or updates the Service's appliance. It never
// waits for a boot: it returns a RetryError and reports status once up.
func (l *LoadBalancer) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	return l.engine.Reconcile(ctx, engine.Request{Trigger: decide.ByEnsure, Cluster: clusterName, Service: svc, Nodes: nodes})
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
	st, err := l.engine.Reconcile(ctx, engine.Request{Trigger: decide.ByServiceController, Cluster: clusterName, Service: svc, Nodes: nodes})
	if err == nil && st == nil {
		return ErrNoLoadBalancer
	}
	return err
}

// EnsureLoadBalancerDeleted shuts the appliance down and deletes it. Only
// appliances with this cluster's and this Service's tags are touched, and a
// shared appliance only loses this Service's entries while others use it.
func (l *LoadBalancer) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *v1.Service) error {
	return l.engine.Delete(ctx, clusterName, svc)
}

// FollowEndpoints starts the loops that run beside the service controller
// (endpoint follower, health poll, repair pass). Call it once, in the
// leader.
func (l *LoadBalancer) FollowEndpoints(ctx context.Context, kube kubernetes.Interface, o FollowOptions) {
	l.engine.FollowEndpoints(ctx, kube, o)
}

// Sweeper builds the runner that removes appliances of Services that are
// gone.
func (l *LoadBalancer) Sweeper(services sweep.ServiceLister) (*sweep.Runner, error) {
	return l.engine.Sweeper(services)
}
