// Package cloud is the sakuracloud cloudprovider.Interface: it loads the
// configuration, builds the one shared API client and server cache, and hands
// out the InstancesV2 and LoadBalancer adapters.
package cloud

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/instances"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/identity"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/servercache"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/trim"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
)

const (
	// ProviderName is --cloud-provider, shared with the earlier controller.
	ProviderName = "sakuracloud"
	// EventComponent is the source of the controller's Events.
	EventComponent = "sakura-cloud-controller-manager"
	// KubeClientName is the client (and, with --use-service-account-credentials,
	// the kube-system ServiceAccount) the provider itself uses for Events.
	KubeClientName = "sakura-cloud-controller-manager"
)

func init() {
	cloudprovider.RegisterCloudProvider(ProviderName, func(r io.Reader) (cloudprovider.Interface, error) {
		cfg, err := config.FromReader(r, os.LookupEnv)
		if err != nil {
			return nil, err
		}
		return New(cfg)
	})
}

// Cloud implements cloudprovider.Interface.
type Cloud struct {
	cfg       *config.Config
	client    *sakuraapi.Client
	servers   *servercache.Zones
	instances *instances.Instances
	lb        cloudprovider.LoadBalancer

	kube     kubernetes.Interface
	recorder record.EventRecorder
	// informers is the app's shared informer factory (SetInformers).
	informers informers.SharedInformerFactory

	// lbOnce builds the load balancer adapter, and starts the loops bound
	// to it, once per process: with leader migration the app may call
	// Initialize twice, and a second adapter would bring a second allocator
	// and lock set acting on the same appliances.
	lbOnce  sync.Once
	sweeper *sweep.Runner // nil unless the sweep runs

	identity identity.Identity
}

var (
	_ cloudprovider.Interface    = (*Cloud)(nil)
	_ cloudprovider.InformerUser = (*Cloud)(nil)
)

// New builds the provider on a real API caller.
func New(cfg *config.Config) (*Cloud, error) {
	caller, err := NewCaller(cfg)
	if err != nil {
		return nil, err
	}
	client := sakuraapi.NewFromCaller(caller, cfg.Zone, cfg.Limits())
	// Every API call shows on the controller manager's /metrics.
	metrics.Register()
	client.Stats().AddObserver(metrics.APIObserver{})
	return NewWithClient(cfg, client), nil
}

// NewWithClient builds the provider on an existing client (tests use fake mode).
func NewWithClient(cfg *config.Config, client *sakuraapi.Client) *Cloud {
	// One cache per zone, all on the one client: a zone more shares the
	// request budget rather than adding to it.
	servers := servercache.NewZones(client, cfg.ClusterZones(), cfg.ServerCacheTTL())
	klog.InfoS("SAKURA Cloud provider configured", "zone", cfg.Zone, "zones", cfg.ClusterZones(), "clusterID", cfg.ClusterID,
		"apiRootURLOverridden", cfg.APIRootURL != "", "loadBalancers", !cfg.DisableLoadBalancer)
	return &Cloud{
		cfg:       cfg,
		client:    client,
		servers:   servers,
		instances: instances.New(client, servers, nil),
	}
}

// SetDefaultClusterID uses --cluster-name when the configuration names no
// cluster ID and the name is not the upstream default "kubernetes" (which
// identifies nothing). Call it before Initialize. ResolveIdentity does this
// and, when nothing is configured, derives the ID.
func (c *Cloud) SetDefaultClusterID(clusterName string) {
	if id, ok := identity.Explicit(c.cfg.ClusterID, clusterName); ok {
		c.SetIdentity(id)
	}
}

// ResolveIdentity settles the cluster ID before the controllers start: the
// configured one, else --cluster-name unless it is "kubernetes", else the
// one recorded in (or now derived from kube-system's UID and recorded in)
// the ConfigMap identity.ConfigMapName in namespace. See package identity.
func (c *Cloud) ResolveIdentity(ctx context.Context, kube kubernetes.Interface, namespace, clusterName string) error {
	var legacy identity.LegacyCheck
	if !c.cfg.DisableLoadBalancer {
		legacy = func(ctx context.Context) (bool, error) { return ownsLegacyAppliances(ctx, c.client, kube) }
	}
	id, err := identity.ResolveWith(ctx, kube, namespace, c.cfg.ClusterID, clusterName, legacy)
	if err != nil {
		return err
	}
	c.SetIdentity(id)
	return nil
}

// ownsLegacyAppliances reports whether a Service of this cluster is a
// member of an appliance tagged with the shared default cluster ID: an
// install from before derived IDs. Service UIDs are unique across clusters,
// so another cluster's appliances under that tag never match.
func ownsLegacyAppliances(ctx context.Context, client *sakuraapi.Client, kube kubernetes.Interface) (bool, error) {
	lbs, err := (&apply.Executor{Client: client, ClusterID: identity.LegacyDefault}).FindCluster(ctx)
	if err != nil || len(lbs) == 0 {
		return false, err
	}
	svcs, err := kube.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, fmt.Errorf("listing Services: %w", err)
	}
	mine := make(map[string]bool, len(svcs.Items))
	for _, s := range svcs.Items {
		mine[string(s.UID)] = true
	}
	for _, lb := range lbs {
		for _, uid := range desired.MemberUIDs(lb.Tags) {
			if mine[uid] {
				return true, nil
			}
		}
	}
	return false, nil
}

// SetIdentity sets the cluster ID in force and where it came from.
func (c *Cloud) SetIdentity(id identity.Identity) {
	c.cfg.ClusterID = id.ID
	c.identity = id
	metrics.SetClusterIdentity(string(id.Source), id.Trusted())
	if id.Trusted() {
		klog.InfoS("Cluster ID in force", "clusterID", id.ID, "source", id.Source)
		return
	}
	klog.InfoS("Cluster ID in force is shared by every cluster installed with defaults; the sweep will only report, never delete. "+
		"Keep it while appliances carry it, or move them to a unique clusterID (docs/load-balancers.md, Leaks and the sweep)",
		"clusterID", id.ID, "source", id.Source)
}

// Identity returns the cluster ID in force and its source.
func (c *Cloud) Identity() identity.Identity {
	if c.identity.ID == "" && c.cfg.ClusterID != "" {
		return identity.Identity{ID: c.cfg.ClusterID, Source: identity.FromConfig}
	}
	return c.identity
}

// SetInformers takes the cloud-provider app's shared informer factory, the
// one its controllers use. Call it before Initialize (cloudInitializer
// does): the endpoint follower then reads Services from the app's cache
// instead of keeping a second one. It also sets the transforms of
// internal/trim on the Node informer and, unless load balancers are off,
// on the Service informer, which must happen before the factory starts:
// the app starts it after Initialize, once the controllers are set up.
// The app calls it again after Initialize (cloudprovider.InformerUser);
// only the first factory counts.
func (c *Cloud) SetInformers(f informers.SharedInformerFactory) {
	if f == nil || c.informers != nil {
		return
	}
	c.informers = f
	trimCache("Node", f.Core().V1().Nodes().Informer(), trim.Node)
	if !c.cfg.DisableLoadBalancer {
		// The service controller and the follower share this one.
		trimCache("Service", f.Core().V1().Services().Informer(), trim.Service)
	}
}

func trimCache(kind string, inf cache.SharedIndexInformer, t cache.TransformFunc) {
	if err := inf.SetTransform(t); err != nil {
		klog.InfoS("Informer cache kept whole", "kind", kind, "reason", err.Error())
	}
}

// Config returns the configuration in use (print it with Redacted()).
func (c *Cloud) Config() *config.Config { return c.cfg }

// Client returns the shared API client (for its Stats).
func (c *Cloud) Client() *sakuraapi.Client { return c.client }

// Servers returns the shared server caches, one per zone.
func (c *Cloud) Servers() *servercache.Zones { return c.servers }

// Initialize builds the kube client and the event recorder, then the load
// balancer adapter, which needs both.
func (c *Cloud) Initialize(clientBuilder cloudprovider.ControllerClientBuilder, stop <-chan struct{}) {
	if c.kube == nil {
		kube, err := clientBuilder.Client(KubeClientName)
		if err != nil {
			klog.ErrorS(err, "Cannot build a Kubernetes client; Events will not be recorded")
		} else {
			c.setKube(kube, stop)
		}
	}
	c.initLoadBalancer(stop)
}

func (c *Cloud) setKube(kube kubernetes.Interface, stop <-chan struct{}) {
	c.kube = kube
	if c.informers != nil {
		// What the load balancer's loops get as their client carries the
		// factory, so the follower takes its Service informer from it.
		c.kube = loadbalancer.SharedInformers{Interface: kube, Factory: c.informers}
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartStructuredLogging(4)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	c.recorder = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: EventComponent})
	c.instances.SetRecorder(c.recorder)
	if stop != nil {
		go func() {
			<-stop
			broadcaster.Shutdown()
		}()
	}
}

func (c *Cloud) initLoadBalancer(stop <-chan struct{}) {
	if c.cfg.DisableLoadBalancer {
		klog.InfoS("Load balancers are disabled by configuration (disableLoadBalancer)")
		return
	}
	c.lbOnce.Do(func() { c.lb = newLoadBalancer(c, stop) })
}

// LoadBalancer is available unless disableLoadBalancer is set.
func (c *Cloud) LoadBalancer() (cloudprovider.LoadBalancer, bool) {
	if c.lb == nil {
		return nil, false
	}
	return c.lb, true
}

// Instances is the legacy interface; InstancesV2 replaces it.
func (c *Cloud) Instances() (cloudprovider.Instances, bool) { return nil, false }

// InstancesV2 matches Nodes to servers.
func (c *Cloud) InstancesV2() (cloudprovider.InstancesV2, bool) { return c.instances, true }

// Zones is not needed: InstancesV2 reports zone and region.
func (c *Cloud) Zones() (cloudprovider.Zones, bool) { return nil, false }

// Clusters is not supported.
func (c *Cloud) Clusters() (cloudprovider.Clusters, bool) { return nil, false }

// Routes is not supported: pod networking is the CNI's job.
func (c *Cloud) Routes() (cloudprovider.Routes, bool) { return nil, false }

// ProviderName returns "sakuracloud".
func (c *Cloud) ProviderName() string { return ProviderName }

// HasClusterID is true once a cluster ID is configured or taken from --cluster-name.
func (c *Cloud) HasClusterID() bool { return c.cfg.ClusterID != "" }

// String keeps %v of the provider from reaching the credentials.
func (c *Cloud) String() string {
	return fmt.Sprintf("sakuracloud(zone=%s, clusterID=%s)", c.cfg.Zone, c.cfg.ClusterID)
}
