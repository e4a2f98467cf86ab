package cloud

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/identity"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/engine"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
)

// newLoadBalancer is the one place the load balancer adapter is wired in.
// It also starts the loops bound to it (sweep, endpoint following, health
// poll and repair): Initialize, its caller, runs only in the elected leader
// (the cloud-provider app calls it from OnStartedLeading, and the process
// exits when leadership is lost), so only one replica ever runs them.
func newLoadBalancer(c *Cloud, stop <-chan struct{}) cloudprovider.LoadBalancer {
	// Load balancers live in one zone (cfg.Zone); the other zones' servers
	// are real servers of an appliance whose switch is bridged to theirs.
	var servers engine.ServerLister
	others := map[string]engine.ServerLister{}
	for _, zc := range c.servers.All() {
		if zc.Zone() == c.cfg.Zone {
			servers = zc
		} else {
			others[zc.Zone()] = zc
		}
	}
	lb := loadbalancer.New(loadbalancer.Deps{
		Client:     c.client,
		Servers:    servers,
		OtherZones: others,
		Config:     c.lbConfig(),
		ClusterID:  c.cfg.ClusterID,
		Recorder:   c.recorder,
		Kube:       c.kube,
	})
	ctx := context.Background()
	if stop != nil {
		ctx = wait.ContextForChannel(stop)
	}
	c.startSweep(ctx, lb)
	c.startFollowing(ctx, lb)
	return lb
}

// startFollowing starts endpoint following, the real-server health poll and
// the repair pass.
func (c *Cloud) startFollowing(ctx context.Context, lb *loadbalancer.LoadBalancer) {
	if c.kube == nil {
		klog.InfoS("Endpoint following not started", "reason", "no Kubernetes client")
		return
	}
	cfg := c.cfg.LoadBalancer
	lb.FollowEndpoints(ctx, c.kube, loadbalancer.FollowOptions{
		HoldDown:       time.Duration(cfg.EndpointHoldDownSec) * time.Second,
		MinInterval:    time.Duration(cfg.EndpointMinIntervalSec) * time.Second,
		Debounce:       time.Second,
		HealthInterval: time.Duration(cfg.HealthPollIntervalSec) * time.Second,
		RepairInterval: time.Duration(cfg.RepairIntervalSec) * time.Second,
		// At most a fifth of the request budget goes to health reads.
		HealthRate: c.cfg.RequestsPerSecond / 5,
	})
}

// startSweep starts the sweep of lb's appliances.
func (c *Cloud) startSweep(ctx context.Context, lb *loadbalancer.LoadBalancer) {
	var services sweep.ServiceLister
	if c.kube != nil {
		services = sweep.KubeServices{Client: c.kube}
	}
	r, err := lb.Sweeper(services)
	if err != nil {
		klog.InfoS("Load balancer sweep not started", "reason", err.Error())
		return
	}
	c.sweeper = r
	go r.Run(ctx)
}

// lbConfig is the load balancer configuration with the sweep held to report
// under a cluster ID other clusters may share (identity.Trusted): deleting
// "orphans" under it could delete another cluster's appliances.
func (c *Cloud) lbConfig() config.LoadBalancerConfig {
	cfg := c.cfg.LoadBalancer
	if cfg.SweepMode != config.SweepModeReport && !identity.Trusted(c.cfg.ClusterID) {
		klog.InfoS("Load balancer sweep held to report-only: the cluster ID may be shared with other clusters, "+
			"so an appliance without a Service here may be another cluster's; set a unique clusterID to let it delete",
			"clusterID", c.cfg.ClusterID, "sweepMode", cfg.SweepMode)
		cfg.SweepMode = config.SweepModeReport
		metrics.SetSweepRefused(true)
	}
	return cfg
}
