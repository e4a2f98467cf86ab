package cloud

import (
	cloudprovider "k8s.io/cloud-provider"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer"
)

// newLoadBalancer is the one place the load balancer adapter is wired in.
func newLoadBalancer(c *Cloud) cloudprovider.LoadBalancer {
	return loadbalancer.New(loadbalancer.Deps{
		Client:    c.client,
		Servers:   c.servers,
		Config:    c.cfg.LoadBalancer,
		ClusterID: c.cfg.ClusterID,
		Recorder:  c.recorder,
		Kube:      c.kube,
	})
}
