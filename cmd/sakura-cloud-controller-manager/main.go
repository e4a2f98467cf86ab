// Command sakura-cloud-controller-manager runs the Kubernetes cloud controllers
// for SAKURA Cloud. It only wires k8s.io/cloud-provider's app to the
// sakuracloud provider; the logic lives in cloud/, instances/ and loadbalancer/.
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/app"
	cloudcontrollerconfig "k8s.io/cloud-provider/app/config"
	"k8s.io/cloud-provider/names"
	"k8s.io/cloud-provider/options"
	"k8s.io/component-base/cli"
	cliflag "k8s.io/component-base/cli/flag"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	genericcontrollermanager "k8s.io/controller-manager/app"
	"k8s.io/controller-manager/controller"
	"k8s.io/klog/v2"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/memlimit"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/pageout"
)

func main() {
	os.Exit(cli.Run(newCommand()))
}

func newCommand() *cobra.Command {
	opts, err := options.NewCloudControllerManagerOptions()
	if err != nil {
		klog.Fatalf("unable to initialize command options: %v", err)
	}
	cmd := app.NewCloudControllerManagerCommand(opts, cloudInitializer, controllerInitializers(),
		names.CCMControllerAliases(), cliflag.NamedFlagSets{}, wait.NeverStop)
	cmd.Use = "sakura-cloud-controller-manager"
	// SAKURA Cloud has no routes to program and one provider to choose.
	setFlagDefault(cmd, "configure-cloud-routes", "false")
	setFlagDefault(cmd, "cloud-provider", cloud.ProviderName)
	return cmd
}

// controllerInitializers is the app's default set without the route
// controller (the provider has no Routes): cloud-node, cloud-node-lifecycle
// and service, whose "service" starts both Service loops as configured
// (serviceControllers). Client names stay the upstream ones
// (node-controller, service-controller) so existing RBAC for cloud
// controller managers applies.
func controllerInitializers() map[string]app.ControllerInitFuncConstructor {
	out := map[string]app.ControllerInitFuncConstructor{}
	for name, c := range app.DefaultInitFuncConstructors {
		switch name {
		case names.NodeRouteController:
			continue
		case names.ServiceLBController:
			c.Constructor = serviceControllers(c.Constructor)
		}
		out[name] = c
	}
	return out
}

// serviceControllers is this binary's "service" controller: the upstream
// service controller for LoadBalancer Services without a class, unless the
// configuration has the own loop serve them (then it does not start, so
// no Service ever has two loops), and the own loop (loadbalancer/
// serviceloop) for this controller's class. One name keeps --controllers,
// leader election and the RBAC identity as they were.
func serviceControllers(upstream app.InitFuncConstructor) app.InitFuncConstructor {
	return func(ic app.ControllerInitContext, cc *cloudcontrollerconfig.CompletedConfig, provider cloudprovider.Interface) app.InitFunc {
		startUpstream := upstream(ic, cc, provider)
		return func(ctx context.Context, cctx genericcontrollermanager.ControllerContext) (controller.Interface, bool, error) {
			sakura, ok := provider.(*cloud.Cloud)
			if !ok {
				return startUpstream(ctx, cctx)
			}
			runUpstream, runOwn := sakura.ServiceLoops()
			var upstreamOn, ownOn bool
			if runUpstream {
				var err error
				if _, upstreamOn, err = startUpstream(ctx, cctx); err != nil {
					return nil, false, err
				}
			} else {
				klog.InfoS("The upstream service controller stands down: the own Service loop serves Services without a class (loadBalancer.serviceController: own)")
			}
			if runOwn {
				var err error
				ownOn, err = sakura.StartServiceLoop(ctx, cc.ClientBuilder.ClientOrDie(ic.ClientName), cc.SharedInformers,
					cc.ComponentConfig.KubeCloudShared.ClusterName, int(cc.ComponentConfig.ServiceController.ConcurrentServiceSyncs))
				if err != nil {
					return nil, false, err
				}
			}
			return nil, upstreamOn || ownOn, nil
		}
	}
}

func setFlagDefault(cmd *cobra.Command, name, value string) {
	f := cmd.Flags().Lookup(name)
	if f == nil {
		klog.Fatalf("flag --%s not found", name)
	}
	if err := f.Value.Set(value); err != nil {
		klog.Fatalf("flag --%s: %v", name, err)
	}
	f.DefValue = value
}

// cloudInitializer builds the provider and settles the cluster ID: the
// configured one, else --cluster-name unless it is the upstream default
// "kubernetes", else derived from the kube-system namespace's UID and
// recorded in a ConfigMap in the leader-election namespace (cloud/identity). It is the app's first call into
// this binary once flags are parsed and logging is set up, and it runs
// before the app starts its informers, so it also sets the Go memory limit
// and hands the provider the app's informer factory (internal/trim's
// transforms must be set before the factory starts).
func cloudInitializer(c *cloudcontrollerconfig.CompletedConfig) cloudprovider.Interface {
	setMemoryLimit()
	time.AfterFunc(startupPagesAfter, releaseStartupPages)
	shared := c.ComponentConfig.KubeCloudShared
	if shared.CloudProvider.Name != cloud.ProviderName {
		klog.Fatalf("--cloud-provider is %q; this binary only provides %q", shared.CloudProvider.Name, cloud.ProviderName)
	}
	provider, err := cloudprovider.InitCloudProvider(shared.CloudProvider.Name, shared.CloudProvider.CloudConfigFile)
	if err != nil {
		// Configuration errors name the field; they never contain credentials.
		klog.Fatalf("SAKURA Cloud provider could not be initialized: %v", err)
	}
	sakura, ok := provider.(*cloud.Cloud)
	if !ok || sakura == nil {
		klog.Fatalf("SAKURA Cloud provider is not available")
	}
	// Before the controllers start: every replica settles the same ID (an
	// explicit one, or the one recorded next to the leader-election Lease).
	ns := c.ComponentConfig.Generic.LeaderElection.ResourceNamespace
	if ns == "" {
		ns = metav1.NamespaceSystem
	}
	var kube kubernetes.Interface
	if c.Client != nil {
		kube = c.Client
	}
	if err := sakura.ResolveIdentity(context.Background(), kube, ns, shared.ClusterName); err != nil {
		klog.Fatalf("no cluster ID: %v", err)
	}
	sakura.SetInformers(c.SharedInformers)
	return sakura
}

// setMemoryLimit sets the Go soft memory limit to a share of the
// container's memory limit (MEMORY_LIMIT_MIB, from the chart) unless
// GOMEMLIMIT is set, and logs the limit in force once.
func setMemoryLimit() {
	d, err := memlimit.Decide(os.LookupEnv)
	switch {
	case err != nil:
		klog.ErrorS(err, "Go memory limit not derived from the container's", "goMemLimit", goMemLimit())
	case d.Bytes > 0:
		debug.SetMemoryLimit(d.Bytes)
		klog.InfoS("Go memory limit set from the container's memory limit", "containerLimitMiB", d.ContainerMiB,
			"percent", memlimit.Percent, "goMemLimit", goMemLimit())
	default:
		klog.InfoS("Go memory limit left as is", "reason", d.Why, "goMemLimit", goMemLimit())
	}
}

// goMemLimit is the soft memory limit in force, for the log.
func goMemLimit() string {
	if b := debug.SetMemoryLimit(-1); b != math.MaxInt64 {
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return "none"
}

// startupPagesAfter is when the executable's pages that only start-up used
// are handed back: package initialisation is long over, and so are leader
// election (at most the 15 s lease a vanished leader left) and the
// controllers' first sync in a usual start. Pages used later map again.
const startupPagesAfter = time.Minute

// releaseStartupPages drops the executable's read-only pages from the
// process's RSS and tells the kernel they are not needed
// (internal/pageout); those still in use map again on their next touch.
// It logs what it did once.
func releaseStartupPages() {
	before, _ := pageout.RSSFile()
	mapped, err := pageout.Run()
	if err != nil {
		klog.V(2).InfoS("The executable's start-up pages were not released", "reason", err.Error())
		return
	}
	after, _ := pageout.RSSFile()
	klog.InfoS("Released the executable's start-up pages to the kernel", "mappedMiB", mapped>>20,
		"residentBeforeMiB", before>>20, "residentAfterMiB", after>>20)
}
