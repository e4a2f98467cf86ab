package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/testcert"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// The Enhanced Load Balancer kind through the engine's Reconcile, Status
// and Delete, over the library's fake (it stores what is written; the
// settings hash is shown against the simulator in e2e/adapter).

func elbNode(name, global string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "192.168.0.9"}, {Type: v1.NodeExternalIP, Address: global}}}}
}

func elbService(name string, ports ...int32) *v1.Service {
	svc := service(name, ports...)
	svc.Annotations[annotations.Type] = annotations.TypeEnhanced
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].NodePort = 30000 + svc.Spec.Ports[i].Port
	}
	return svc
}

func TestEnhancedCreateServeDelete(t *testing.T) {
	e := newEnv(t, 28)
	nodes := []*v1.Node{elbNode("a", "198.51.100.11"), elbNode("b", "198.51.100.12")}
	svc := elbService("web", 80)

	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatalf("create: %v", err)
	}
	if n, by := writes(e.client, snap); n != 1 || by["ProxyLB.Create"] != 1 {
		t.Fatalf("a create is one write, got %v", by)
	}
	elbs, err := e.lb.elbs("test").Find(e.ctx, elbTags("test", string(svc.UID))...)
	if err != nil || len(elbs) != 1 {
		t.Fatalf("owned ELBs = %v, %v", elbs, err)
	}
	// The library's fake gives no VIP (SAKURA gives one at creation).
	elbs[0].VirtualIPAddress, elbs[0].FQDN = "203.0.113.50", "site-1.proxylb.example"
	fake.DataStore.Put(fake.ResourceProxyLB, iaas.APIDefaultZone, elbs[0].ID, elbs[0])
	st, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", svc)
	if err != nil || !exists || len(st.Ingress) != 1 {
		t.Fatalf("GetLoadBalancer = %+v, %v, %v", st, exists, err)
	}
	if in := st.Ingress[0]; in.IP != "203.0.113.50" || in.Hostname != "site-1.proxylb.example" || in.IPMode == nil || *in.IPMode != v1.LoadBalancerIPModeProxy {
		t.Fatalf("ingress = %+v, want the VIP and FQDN with ipMode Proxy", in)
	}
	if got := len(elbs[0].Servers); got != 2 || elbs[0].Servers[0].Port != 30080 {
		t.Fatalf("servers = %d (first port %d), want both nodes on the NodePort", got, elbs[0].Servers[0].Port)
	}
	if !strings.Contains(findEvent(e.events(), ReasonCreated), "enhanced load balancer") {
		t.Fatal("no LoadBalancerCreated Event")
	}

	// A resync with nothing changed writes nothing.
	snap = e.client.Stats().Snapshot()
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("a no-op resync wrote %v", by)
	}

	// A node more: one settings write.
	nodes = append(nodes, elbNode("c", "198.51.100.13"))
	snap = e.client.Stats().Snapshot()
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	if n, by := writes(e.client, snap); n != 1 || by["ProxyLB.UpdateSettings"] != 1 {
		t.Fatalf("a node added is one settings write, got %v", by)
	}

	// GetLoadBalancer sees it; the deletion removes it.
	if _, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", svc); err != nil || !exists {
		t.Fatalf("GetLoadBalancer = %v, %v", exists, err)
	}
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc); err != nil {
		t.Fatal(err)
	}
	if left, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", string(svc.UID))...); len(left) != 0 {
		t.Fatalf("ELBs left after the deletion: %d", len(left))
	}
	if _, exists, _ := e.lb.GetLoadBalancer(e.ctx, "test", svc); exists {
		t.Fatal("GetLoadBalancer still sees the deleted ELB")
	}
}

func TestEnhancedRefusalsTouchNothing(t *testing.T) {
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	for _, c := range []struct {
		name   string
		mut    func(*v1.Service)
		reason string
		says   []string
	}{
		{"bad plan", func(s *v1.Service) { s.Annotations[annotations.ELBPlan] = "123" }, ReasonInvalidAnnotation, []string{annotations.ELBPlan}},
		{"DSR annotation", func(s *v1.Service) { s.Annotations[annotations.HA] = "true" }, ReasonInvalidAnnotation, []string{annotations.HA}},
		{"three ports", func(s *v1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "b", Port: 81, NodePort: 30081}, v1.ServicePort{Name: "c", Port: 82, NodePort: 30082})
		}, ReasonTooManyPorts, []string{"at most 2"}},
		{"udp", func(s *v1.Service) { s.Spec.Ports[0].Protocol = v1.ProtocolUDP }, ReasonUnsupportedProtocol, []string{"TCP only"}},
		{"had a DSR appliance", func(s *v1.Service) { s.Annotations[annotations.LoadBalancerID] = "113100000001" }, ReasonChangeNeedsNewAppliance, []string{"cannot change in place"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 28)
			svc := elbService("web", 80)
			c.mut(svc)
			snap := e.client.Stats().Snapshot()
			if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err == nil {
				t.Fatal("accepted")
			}
			if n, by := writes(e.client, snap); n != 0 {
				t.Fatalf("a refused Service made writes: %v", by)
			}
			if ev := findEvent(e.events(), append([]string{"Warning", c.reason}, c.says...)...); ev == "" {
				t.Fatalf("no %s Warning naming %v", c.reason, c.says)
			}
		})
	}
}

// TestEnhancedInvalidChangeKeepsTheRunningELB: an annotation made invalid
// later leaves the ELB serving as it was.
func TestEnhancedInvalidChangeKeepsTheRunningELB(t *testing.T) {
	e := newEnv(t, 28)
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	svc := elbService("web", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	svc.Annotations[annotations.ELBPortModes] = "80=ftp"
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err == nil || !strings.Contains(err.Error(), annotations.ELBPortModes) {
		t.Fatalf("err = %v, want one naming %s", err, annotations.ELBPortModes)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("wrote %v", by)
	}
	if left, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", string(svc.UID))...); len(left) != 1 {
		t.Fatalf("ELBs = %d, want the running one kept", len(left))
	}
}

// TestEnhancedRegionChangeIsReported: the region cannot change in place.
func TestEnhancedRegionChangeIsReported(t *testing.T) {
	e := newEnv(t, 28)
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	svc := elbService("web", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	svc.Annotations[annotations.ELBRegion] = "tk1"
	snap := e.client.Stats().Snapshot()
	if st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil || st == nil {
		t.Fatalf("the running ELB must keep serving: %v, %+v", err, st)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("wrote %v", by)
	}
	if findEvent(e.events(), ReasonChangeNeedsNewAppliance, "region is is1, wanted tk1") == "" {
		t.Fatal("no ChangeNeedsNewLoadBalancer Event for the region")
	}
}

// TestEnhancedPlanChangeFollowsTheNewID: the plan is changed in place, and
// the ELB is found under its new ID afterwards.
func TestEnhancedPlanChangeFollowsTheNewID(t *testing.T) {
	e := newEnv(t, 28)
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	svc := elbService("web", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	svc.Annotations[annotations.ELBPlan] = "500"
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	if n, by := writes(e.client, snap); n != 1 || by["ProxyLB.ChangePlan"] != 1 {
		t.Fatalf("a plan change is one ChangePlan, got %v", by)
	}
	snap = e.client.Stats().Snapshot()
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("after the plan change a resync wrote %v", by)
	}
}

// TestDSRServiceThatHadAnELB: a Service that records an ELB gets no DSR
// appliance beside it, and its deletion still removes the ELB.
func TestDSRServiceThatHadAnELB(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	for i, n := range nodes {
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeExternalIP, Address: fmt.Sprintf("198.51.100.%d", 11+i)}}
	}
	svc := elbService("web", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	elbs, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", string(svc.UID))...)
	svc.Annotations[annotations.ELBID] = elbs[0].ID.String() // as recorded
	delete(svc.Annotations, annotations.Type)
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err == nil {
		t.Fatal("a DSR appliance was allowed beside the ELB")
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("wrote %v", by)
	}
	if !strings.Contains(findEvent(e.events(), ReasonChangeNeedsNewAppliance), annotations.ELBID) {
		t.Fatal("the refusal must name the recorded ELB")
	}
	if _, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", svc); err != nil || !exists {
		t.Fatalf("GetLoadBalancer must still see the ELB: %v %v", exists, err)
	}
	e.deleteUntilGone(svc, false)
	if left, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", string(svc.UID))...); len(left) != 0 {
		t.Fatal("the ELB outlived its Service")
	}
}

// TestEnhancedRepairCreatesAgain: the repair trigger re-creates an ELB
// deleted out of band (stillWanted needs a Kubernetes client: without one
// it declines, which is what this test shows for a nil client).
func TestEnhancedRepairNeedsTheServiceReadAgain(t *testing.T) {
	e := newEnv(t, 28)
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	svc := elbService("web", 80)
	svc.Finalizers = []string{"service.kubernetes.io/load-balancer-cleanup"}
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.Reconcile(e.ctx, Request{Trigger: decide.ByRepair, Cluster: "test", Service: svc, Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("the repair pass created without re-reading the Service: %v", by)
	}
}

// tlsSecret makes a kubernetes.io/tls Secret with a fresh self-signed
// certificate for cn.
func tlsSecret(t *testing.T, name, cn string) *v1.Secret {
	t.Helper()
	certPEM, keyPEM, err := testcert.SelfSigned(cn)
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Type: v1.SecretTypeTLS,
		Data: map[string][]byte{v1.TLSCertKey: certPEM, v1.TLSPrivateKeyKey: keyPEM}}
}

// TestEnhancedBrokenTLSSecret: a Secret that cannot be used writes no
// certificate and says why without showing the key. (Setting and rotating
// certificates is shown against the simulator in e2e/adapter: the
// library's fake cannot store certificates.)
func TestEnhancedBrokenTLSSecret(t *testing.T) {
	e := newEnv(t, 28)
	kube := kubefake.NewClientset()
	e.lb = New(Deps{Client: e.client, Servers: fakeServers{}, Config: e.cfg, ClusterID: "test", Recorder: e.recorder, Kube: kube})
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	svc := elbService("web", 443)
	svc.Annotations[annotations.ELBPortModes] = "https"
	svc.Annotations[annotations.ELBTLSSecret] = "web-tls"
	if _, err := kube.CoreV1().Services("default").Create(e.ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A key that does not fit: nothing written, the reason named, no key shown.
	other := tlsSecret(t, "other", "www.example.com")
	broken := tlsSecret(t, "web-tls", "www.example.com")
	broken.Data[v1.TLSPrivateKeyKey] = other.Data[v1.TLSPrivateKeyKey]
	if _, err := kube.CoreV1().Secrets("default").Create(e.ctx, broken, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := e.client.Stats().Snapshot()
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
	if err == nil || !strings.Contains(err.Error(), "default/web-tls") || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("err = %v", err)
	}
	if n, by := writes(e.client, snap); n != 1 || by["ProxyLB.Create"] != 1 {
		t.Fatalf("a broken Secret: %v, want the ELB created and no certificate written", by)
	}
	ev := findEvent(e.events(), "Warning", ReasonInvalidTLSSecret, annotations.ELBTLSSecret)
	if ev == "" {
		t.Fatal("no InvalidTLSSecret Warning naming the annotation")
	}
	if strings.Contains(ev+err.Error(), "PRIVATE KEY") || strings.Contains(ev+err.Error(), string(broken.Data[v1.TLSPrivateKeyKey][30:60])) {
		t.Fatal("the key reached an Event or an error")
	}

	// A missing Secret, and one of another type.
	svc.Annotations[annotations.ELBTLSSecret] = "nope"
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes); err == nil || !strings.Contains(err.Error(), "default/nope does not exist") {
		t.Fatalf("missing Secret: %v", err)
	}
}

// TestELBClassGetsAnELB: a Service of the ELB class gets an ELB without
// the type annotation.
func TestELBClassGetsAnELB(t *testing.T) {
	e := newEnv(t, 28)
	e.cfg.Class, e.cfg.ELBClass = "k8s.usacloud.jp/dsr", "k8s.usacloud.jp/elb"
	e.rebuild()
	svc := elbService("web", 80)
	delete(svc.Annotations, annotations.Type)
	class := "k8s.usacloud.jp/elb"
	svc.Spec.LoadBalancerClass = &class
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, []*v1.Node{elbNode("a", "198.51.100.11")}); err != nil {
		t.Fatal(err)
	}
	if n, by := writes(e.client, snap); n != 1 || by["ProxyLB.Create"] != 1 {
		t.Fatalf("the ELB class: %v, want one ELB created", by)
	}
}

// TestELBNodesTakeTheServersGlobalAddress: a node that just joined has no
// ExternalIP yet; its server's shared-segment address stands in, so it is
// not left out until the next node sync (which an address change never
// triggers).
func TestELBNodesTakeTheServersGlobalAddress(t *testing.T) {
	joined := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Spec: v1.NodeSpec{ProviderID: "sakuracloud://is1a/113100000003"}}
	old := elbNode("old", "198.51.100.11")
	excluded := elbNode("excluded", "198.51.100.13")
	excluded.Labels = map[string]string{"node.kubernetes.io/exclude-from-external-load-balancers": ""}
	noServer := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}
	servers := []desired.Server{
		{ID: 113100000003, Name: "new", Global: "198.51.100.12"},
		{ID: 113100000001, Name: "old"}, // no shared NIC: the Node's ExternalIP
	}
	got := map[string]string{}
	for _, n := range elbNodes([]*v1.Node{joined, old, excluded, noServer}, servers) {
		got[n.Name] = ""
		if n.GlobalIP.IsValid() {
			got[n.Name] = n.GlobalIP.String()
		}
	}
	want := map[string]string{"new": "198.51.100.12", "old": "198.51.100.11", "bare": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("elbNodes = %v, want %v", got, want)
	}
}

func TestServersOfKeepsTheSharedAddress(t *testing.T) {
	raw := []*iaas.Server{{ID: 1, Name: "a", Interfaces: []*iaas.InterfaceView{
		{SwitchScope: types.Scopes.Shared, UpstreamType: types.UpstreamNetworkTypes.Shared, IPAddress: "198.51.100.11"},
		{SwitchID: 9, SwitchScope: types.Scopes.User, UpstreamType: types.UpstreamNetworkTypes.Switch, UserIPAddress: "192.168.0.11"},
	}}, {ID: 2, Name: "b", Interfaces: []*iaas.InterfaceView{{SwitchID: 9, UserIPAddress: "192.168.0.12"}}}}
	got := serversOf("is1a", raw)
	if got[0].Global != "198.51.100.11" || got[0].IPs[9] != "192.168.0.11" || got[1].Global != "" {
		t.Fatalf("servers = %+v", got)
	}
}

// TestEnhancedPreserve: with load-balancer-preserve the ELB keeps running,
// without this cluster's tags, and a later sweep or Service never finds it
// as theirs.
func TestEnhancedPreserve(t *testing.T) {
	e := newEnv(t, 28)
	svc := elbService("web", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, []*v1.Node{elbNode("a", "198.51.100.11")}); err != nil {
		t.Fatal(err)
	}
	owned, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", string(svc.UID))...)
	if len(owned) != 1 {
		t.Fatalf("owned = %d", len(owned))
	}
	svc.Annotations[annotations.Preserve] = "true"
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc); err != nil {
		t.Fatal(err)
	}
	kept, err := e.client.ProxyLBs.Read(e.ctx, owned[0].ID)
	if err != nil {
		t.Fatalf("the preserved ELB is gone: %v", err)
	}
	if desired.HasTags(kept.Tags, desired.ClusterTag("test")) || desired.HasTags(kept.Tags, desired.ServiceTag(string(svc.UID))) {
		t.Fatalf("the preserved ELB still carries this cluster's tags: %v", kept.Tags)
	}
	if len(kept.Servers) != 1 || len(kept.BindPorts) != 1 {
		t.Fatalf("the preserved ELB lost its settings: %+v", kept)
	}
	if findEvent(e.events(), ReasonPreserved, owned[0].ID.String()) == "" {
		t.Fatal("no LoadBalancerPreserved Event naming the ELB")
	}
}

// TestRepairPassListsELBsOnce: a pass over several ELB Services lists the
// cluster's ELBs once, and re-creates one deleted out of band.
func TestRepairPassListsELBsOnce(t *testing.T) {
	// A missing ELB younger than its create record is waited for (it may
	// be SAKURA's lag after the create): compress that wait, as an ELB
	// deleted by hand minutes after its create would be past it.
	defer func(g time.Duration) { CreateVisibilityGrace = g }(CreateVisibilityGrace)
	CreateVisibilityGrace = time.Millisecond
	e := newEnv(t, 28)
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	var svcs []runtime.Object
	for _, name := range []string{"a", "b", "c"} {
		svc := elbService(name, 80)
		svc.Finalizers = []string{sweep.CleanupFinalizer}
		svcs = append(svcs, svc)
	}
	kube := kubefake.NewClientset(svcs...)
	e.lb.kube = kube
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.lb.FollowEndpoints(ctx, kube, FollowOptions{})
	for _, o := range svcs {
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", o.(*v1.Service), nodes); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		l, err := e.lb.follower().services.List(labels.Everything())
		return err == nil && len(l) == 3
	})
	gone, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", "uid-b")...)
	if err := e.client.ProxyLBs.Delete(e.ctx, gone[0].ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	snap := e.client.Stats().Snapshot()
	sum := e.lb.RepairPass(e.ctx)
	if sum.Services != 3 || len(sum.Repaired) != 1 || sum.Repaired[0] != "default/b" {
		t.Fatalf("repair pass = %+v, want 3 Services, b repaired", sum)
	}
	finds := 0
	for k, v := range e.client.Stats().Snapshot() {
		if k.Op == "ProxyLB.Find" {
			finds += v - snap[k]
		}
	}
	// One listing for the pass, one more for b, whose observation is empty
	// (it may be older than a create).
	if finds != 2 {
		t.Fatalf("the pass listed ELBs %d times, want 2", finds)
	}
	if again, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", "uid-b")...); len(again) != 1 {
		t.Fatalf("b's ELB was not made again: %d", len(again))
	}
}

// TestLocalELBIsNotFollowed: externalTrafficPolicy: Local on an ELB Service
// needs no endpoint following (its NodePort health check does the work), so
// endpoint changes cost it no reconcile.
func TestLocalELBIsNotFollowed(t *testing.T) {
	e := newEnv(t, 28)
	elb, dsr := elbService("web", 80), service("dsr", 80)
	for _, s := range []*v1.Service{elb, dsr} {
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}
	if e.lb.isLocal(elb) || !e.lb.isLocal(dsr) {
		t.Fatalf("isLocal: ELB %v, DSR %v; want false, true", e.lb.isLocal(elb), e.lb.isLocal(dsr))
	}
}

// TestEnhancedAdoptByID: a Service naming an ELB nobody owns takes it over
// (tags, then its settings), creating nothing; one owned by another
// cluster is refused with nothing written.
func TestEnhancedAdoptByID(t *testing.T) {
	e := newEnv(t, 28)
	nodes := []*v1.Node{elbNode("a", "198.51.100.11")}
	put := func(id types.ID, tags ...string) {
		fake.DataStore.Put(fake.ResourceProxyLB, iaas.APIDefaultZone, id, &iaas.ProxyLB{ID: id, Name: "by-hand", Tags: tags, Plan: 100, Region: "is1",
			Availability: types.Availabilities.Available, VirtualIPAddress: "198.18.0.7",
			BindPorts: []*iaas.ProxyLBBindPort{{ProxyMode: "tcp", Port: 80}}, Servers: []*iaas.ProxyLBServer{{IPAddress: "198.51.100.99", Port: 8080, Enabled: true}}})
		// The library's fake keeps a health record beside each ELB it made.
		fake.DataStore.Put(fake.ResourceProxyLB+"Status", iaas.APIDefaultZone, id, &iaas.ProxyLBHealth{})
	}
	put(990000000501, "made-by-hand")
	put(990000000502, desired.ClusterTag("other"), desired.ServiceTag("x"))

	svc := elbService("web", 80)
	svc.Annotations[annotations.AdoptID] = "990000000501"
	snap := e.client.Stats().Snapshot()
	st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if _, by := writes(e.client, snap); by["ProxyLB.Create"] != 0 || by["ProxyLB.Update"] != 1 || by["ProxyLB.UpdateSettings"] != 1 {
		t.Fatalf("adoption wrote %v, want one tag write and one settings write, no create", by)
	}
	if len(st.Ingress) != 1 || st.Ingress[0].IP != "198.18.0.7" {
		t.Fatalf("status %+v, want the adopted ELB's VIP", st)
	}
	adopted, _ := e.client.ProxyLBs.Read(e.ctx, 990000000501)
	if !desired.HasTags(adopted.Tags, "made-by-hand", desired.ClusterTag("test"), desired.ServiceTag(string(svc.UID))) {
		t.Fatalf("tags after adoption: %v", adopted.Tags)
	}
	if len(adopted.Servers) != 1 || adopted.Servers[0].IPAddress != "198.51.100.11" {
		t.Fatalf("servers after adoption: %+v", adopted.Servers)
	}
	if findEvent(e.events(), ReasonAdopted, "990000000501") == "" {
		t.Fatal("no LoadBalancerAdopted Event")
	}

	other := elbService("shop", 80)
	other.Annotations[annotations.AdoptID] = "990000000502"
	snap = e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", other, nodes); err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Fatalf("adopting another cluster's ELB: %v", err)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("a refused adoption wrote %v", by)
	}
	if findEvent(e.events(), "Warning", ReasonAdoptRefused, "990000000502") == "" {
		t.Fatal("no AdoptionRefused Warning")
	}
}
