package cloud

import (
	"context"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/engine"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/serviceloop"
)

// ServiceLoops says which loops serve LoadBalancer Services: upstream, the
// upstream service controller, for Services without a class unless the own
// loop serves them; own, this project's loop, when it serves a class or the
// Services without one. Never both for one Service: the upstream
// controller skips every Service with a class, and stands down when the
// own loop serves those without.
func (c *Cloud) ServiceLoops() (upstream, own bool) {
	if c.cfg.DisableLoadBalancer {
		return true, false // the upstream controller only finds there is no load balancer
	}
	scope := c.scope()
	return !scope.OwnLoopWithoutClass, scope.Class != "" || scope.ELBClass != "" || scope.OwnLoopWithoutClass
}

// StartServiceLoop starts the own Service loop (package serviceloop) on the
// app's shared informers; kube is the service controller's client. It runs
// until ctx ends. It reports whether it started.
func (c *Cloud) StartServiceLoop(ctx context.Context, kube kubernetes.Interface, f informers.SharedInformerFactory, clusterName string, workers int) (bool, error) {
	if c.lb == nil || f == nil {
		klog.InfoS("Own Service loop not started", "reason", "load balancers are disabled or there are no informers")
		return false, nil
	}
	loop, err := serviceloop.New(serviceloop.Options{
		LoadBalancer: c.lb,
		Scope:        c.scope(),
		ClusterName:  clusterName,
		Kube:         kube,
		Services:     f.Core().V1().Services(),
		Nodes:        f.Core().V1().Nodes(),
	})
	if err != nil {
		return false, err
	}
	go loop.Run(ctx, workers)
	return true, nil
}

// scope is the Services the configuration has this controller serve.
func (c *Cloud) scope() desired.Scope { return engine.ScopeOf(c.cfg.LoadBalancer) }
