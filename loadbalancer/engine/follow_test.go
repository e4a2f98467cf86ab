package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// slice is the EndpointSlice of svc with one endpoint per node; ready[i]
// is the readiness of nodes[i].
func slice(svc *v1.Service, nodes []string, ready []bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc.Name + "-abc", Namespace: svc.Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.10", i)},
			NodeName:   &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready[i]},
		})
	}
	return s
}

// realServers returns the real servers of the only appliance's first entry.
func (e *env) realServers() []string {
	var out []string
	for _, s := range e.lbs()[0].VirtualIPAddresses[0].Servers {
		out = append(out, s.IPAddress)
	}
	return out
}

func (e *env) waitServers(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if fmt.Sprint(e.realServers()) == fmt.Sprint(want) {
			e.quiet(t) // the saved servers show before the Config that follows them
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("real servers %v, want %v", e.realServers(), want)
}

// quiet waits until no API call is made for 100 ms.
func (e *env) quiet(t *testing.T) {
	t.Helper()
	for i := 0; i < 100; i++ {
		snap := e.client.Stats().Snapshot()
		time.Sleep(100 * time.Millisecond)
		if calls(e.client, snap) == 0 {
			return
		}
	}
	t.Fatal("API calls never stopped")
}

func TestLocalServiceFollowsReadyEndpoints(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(3, 0)
	svc := service("web", 80)
	svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	names := []string{"node-000", "node-001", "node-002"}
	kube := kubefake.NewClientset(svc, slice(svc, names, []bool{true, false, false}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.lb.FollowEndpoints(ctx, kube, FollowOptions{HoldDown: 300 * time.Millisecond})

	// Only the node with a ready endpoint becomes a real server.
	e.ensureUp(svc, nodes)
	e.waitServers(t, e.ip(0))
	if ev := findEvent(e.events(), ReasonTrafficPolicyLocal); ev != "" {
		t.Fatalf("Local is followed, yet warned: %s", ev)
	}

	// A pod becomes ready on node-001: the follower adds it by itself.
	snap := e.client.Stats().Snapshot()
	update := func(ready ...bool) {
		t.Helper()
		if _, err := kube.DiscoveryV1().EndpointSlices("default").Update(ctx, slice(svc, names, ready), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	update(true, true, false)
	e.waitServers(t, e.ip(0), e.ip(1))
	if _, by := writes(e.client, snap); by["LoadBalancer.UpdateSettings"] != 1 {
		t.Fatalf("adding a node: want one settings write, got %v", by)
	}

	// A blip shorter than the hold-down on node-000 writes nothing.
	snap = e.client.Stats().Snapshot()
	update(false, true, false)
	time.Sleep(50 * time.Millisecond)
	update(true, true, false)
	time.Sleep(600 * time.Millisecond)
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("a short blip wrote %v", by)
	}

	// node-000 loses its endpoint for good: it goes after the hold-down.
	update(false, true, false)
	e.waitServers(t, e.ip(1))

	// Pods moving between nodes that stay cost no API call at all.
	snap = e.client.Stats().Snapshot()
	s := slice(svc, []string{"node-001", "node-001"}, []bool{true, true})
	if _, err := kube.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := calls(e.client, snap); n != 0 {
		t.Fatalf("an unchanged node set cost %d API calls", n)
	}
}

// listsOf counts the list calls the fake clientset answered for resource.
func listsOf(kube *kubefake.Clientset, resource string) int {
	n := 0
	for _, a := range kube.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

// The follower keeps no EndpointSlice cache while no Service is Local, and
// given the app's informer factory it keeps no Service cache of its own:
// one list of Services in all, one of EndpointSlices once one turns Local.
func TestFollowerCachesOnlyWhatItNeeds(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			e := newEnv(t, 28)
			nodes := e.addNodes(3, 0)
			svc := service("web", 80)
			names := []string{"node-000", "node-001", "node-002"}
			kube := kubefake.NewClientset(svc, slice(svc, names, []bool{true, false, false}))
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			var client kubernetes.Interface = kube
			var factory informers.SharedInformerFactory
			if shared {
				factory = informers.NewSharedInformerFactory(kube, 0)
				client = SharedInformers{Interface: kube, Factory: factory}
			}
			e.lb.FollowEndpoints(ctx, client, FollowOptions{HoldDown: time.Millisecond})
			if shared {
				factory.Start(ctx.Done()) // the app's part, after Initialize
			}
			e.ensureUp(svc, nodes)
			e.waitServers(t, e.ip(0), e.ip(1), e.ip(2))
			waitFor(t, func() bool { return e.lb.follower().servicesSynced() })
			if n := listsOf(kube, "endpointslices"); n != 0 {
				t.Fatalf("EndpointSlices listed %d times with no Local Service", n)
			}

			// The Service turns Local: the slices are watched from now on,
			// and only the node with a ready endpoint stays.
			local := svc.DeepCopy()
			local.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			if _, err := kube.CoreV1().Services("default").Update(ctx, local, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			e.waitServers(t, e.ip(0))
			if n, m := listsOf(kube, "endpointslices"), listsOf(kube, "services"); n != 1 || m != 1 {
				t.Fatalf("lists: %d of EndpointSlices, %d of Services; want one each", n, m)
			}
		})
	}
}

// The follower re-syncs with the node set the service controller passed
// last, read under the Service's lock, and never stores a set of its own:
// it used to store the older snapshot it had read before the service
// controller's newer call, and later write that older set.
func TestFollowerUsesTheServiceControllersLatestNodes(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(3, 0)
	svc := service("web", 80)
	svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	names := []string{"node-000", "node-001", "node-002"}
	kube := kubefake.NewClientset(svc, slice(svc, names, []bool{true, true, true}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.lb.FollowEndpoints(ctx, kube, FollowOptions{HoldDown: time.Millisecond})
	e.ensureUp(svc, nodes[:2])
	e.waitServers(t, e.ip(0), e.ip(1))
	// The service controller's newest set: all three nodes.
	if err := e.lb.UpdateLoadBalancer(ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	// A follower pass handed an older set must not store or use it.
	if _, err := e.lb.Reconcile(ctx, Request{Trigger: decide.ByFollower, Cluster: "test", Service: svc, Nodes: nodes[:1]}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.lb.follower().latestNodes(); len(got) != 3 {
		t.Fatalf("follower replaced the service controller's %d nodes with %d", 3, len(got))
	}
	e.waitServers(t, e.ip(0), e.ip(1), e.ip(2))
}

// UpdateLoadBalancer reports every failure: a RetryError while the
// appliance boots (the service controller then retries these nodes instead
// of recording them as applied), and ErrNoLoadBalancer with no appliance.
func TestUpdateLoadBalancerReportsWhatItCouldNotDo(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes); !errors.Is(err, ErrNoLoadBalancer) {
		t.Fatalf("update with no appliance: %v, want ErrNoLoadBalancer", err)
	}
	if _, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", svc); err != nil || exists {
		t.Fatalf("GetLoadBalancer: exists=%v err=%v", exists, err)
	}
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes[:1]); !isRetry(err) {
		t.Fatalf("create: %v", err)
	}
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
		t.Fatalf("update while booting: %v, want a RetryError", err)
	}
}
